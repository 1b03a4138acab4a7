"""Late policy and grace days (trusted side; the handout's rule by default).

"10% is deducted for each day (including weekend) late ... each student begins the course with 12
grace days (with a max of 7 per submission). Late submissions will automatically use your grace days
balance, if you have any left."

- `LatePolicy`: the deadline, the per-day penalty and the grace-day budget, from a TOML file
  (`load_policy`, format in docs/ta-workflow.md) and/or `--deadline`.
- Days late = the lateness in days rounded up (one second late is one day).
- `Ledger`: a JSON file in the course folder with the grace days each student spent on each
  assignment. The days left for assignment A are the budget minus what was spent on the *other*
  assignments, and grading A replaces A's record, so re-grading never spends days twice.
- `assess`: grace days used = min(days late, the per-assignment cap, the days left); every other
  late day costs `per_day_penalty` of the score (at most all of it).
"""
from __future__ import annotations

import csv
import json
import math
import tomllib
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..report.results import write_json_atomic

LEDGER_NAME = "grace_days.json"
LEDGER_FORMAT = "dl-grader grace-day ledger"
_POLICY_KEYS = {"deadline", "deadlines", "per_day_penalty", "grace_days_total",
                "grace_days_max_per_assignment"}


class LateError(Exception):
    """A policy, ledger or submission-time file the TA must fix (nothing is graded with it)."""


@dataclass
class LatePolicy:
    deadline: datetime | None = None
    per_day_penalty: float = 0.10
    grace_days_total: int = 12
    grace_days_max_per_assignment: int = 7
    source: str | None = None                     # the policy file, for the record

    def describe(self) -> str:
        when = self.deadline.isoformat() if self.deadline else "none"
        return (f"deadline {when}; {self.per_day_penalty:.0%} per late day beyond grace days; "
                f"{self.grace_days_total} grace days per course, at most "
                f"{self.grace_days_max_per_assignment} on one assignment")


@dataclass
class LateResult:
    submitted_at: str | None                      # ISO-8601, as used
    time_source: str                              # "csv" | "archive" | "none"
    late_days: int | None                         # None: no deadline, nothing assessed
    grace_days_left: int | None                   # before this assignment
    grace_days_used: int = 0
    penalty_days: int = 0
    penalty: float = 0.0                          # fraction of the score deducted

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        """What the student reads in the feedback."""
        if self.late_days is None:
            return "No deadline was set for this batch: no late penalty."
        origin = {"csv": "the course site's submission time", "archive": "the archive's time"}
        when = (f" (submitted {self.submitted_at}: {origin.get(self.time_source, self.time_source)})"
                if self.submitted_at else "")
        if self.late_days == 0:
            return f"On time{when}: no late penalty."
        text = f"{self.late_days} day(s) late{when}; {self.grace_days_used} grace day(s) used"
        if self.grace_days_left is not None:
            text += f" ({self.grace_days_left} left before this assignment)"
        if self.penalty_days:
            return text + f"; {self.penalty_days} day(s) beyond grace: {self.penalty:.0%} deducted."
        return text + ": no penalty."


def parse_time(value, what: str = "time") -> datetime:
    """An ISO-8601 time (string or TOML datetime) as an aware datetime; naive means local time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise LateError(f"{what} {value!r} is not an ISO-8601 time such as "
                            f"2019-03-01T23:59:00+05:30") from None
    else:
        raise LateError(f"{what} {value!r} is not an ISO-8601 time")
    return moment if moment.tzinfo else moment.astimezone()      # naive: this machine's local time


def load_policy(path: Path | None, assignment: str, deadline: str | None = None) -> LatePolicy | None:
    """The policy from a TOML file and/or a deadline (which overrides the file's); None if neither."""
    if path is None and deadline is None:
        return None
    policy = LatePolicy()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LateError(f"late policy {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise LateError(f"late policy {path} is not valid TOML: {exc}") from None
        unknown = sorted(set(data) - _POLICY_KEYS)
        if unknown:
            raise LateError(f"late policy {path}: unknown key(s) {', '.join(unknown)}; "
                            f"expected {', '.join(sorted(_POLICY_KEYS))}")
        policy.source = str(path)
        for key, kind in (("per_day_penalty", (int, float)), ("grace_days_total", int),
                          ("grace_days_max_per_assignment", int)):
            if key in data:
                value = data[key]
                if not isinstance(value, kind) or isinstance(value, bool) or value < 0:
                    raise LateError(f"late policy {path}: {key} must be a non-negative number, "
                                    f"got {value!r}")
                setattr(policy, key, value)
        if policy.per_day_penalty > 1:
            raise LateError(f"late policy {path}: per_day_penalty is a fraction (0.10 for 10%), "
                            f"got {policy.per_day_penalty}")
        deadlines = data.get("deadlines", {})
        if not isinstance(deadlines, dict):
            raise LateError(f"late policy {path}: [deadlines] must be a table of assignment = time")
        if assignment in deadlines:
            policy.deadline = parse_time(deadlines[assignment], f"{path}: deadlines.{assignment}")
        elif "deadline" in data:
            policy.deadline = parse_time(data["deadline"], f"{path}: deadline")
    if deadline is not None:
        policy.deadline = parse_time(deadline, "--deadline")
    if policy.deadline is None:
        raise LateError(f"late policy {path} has no deadline for {assignment} "
                        f"(add `deadline = ...` or `[deadlines] {assignment} = ...`, or pass --deadline)")
    return policy


def read_submission_times(path: Path) -> dict[str, datetime]:
    """A CSV with columns `student` and `submitted_at` (other columns are ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LateError(f"submission-time file {path} does not exist") from None
    rows = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in rows.fieldnames or []]
    if "student" not in fields or "submitted_at" not in fields:
        raise LateError(f"{path}: expected the columns student,submitted_at; found {','.join(fields)}")
    times, problems = {}, []
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        who, when = row.get("student", ""), row.get("submitted_at", "")
        if not who and not when:
            continue
        try:
            moment = parse_time(when, f"line {line}: submitted_at")
        except LateError as exc:
            problems.append(str(exc))
            continue
        if who in times and times[who] != moment:
            problems.append(f"line {line}: {who} has two different times")
        times[who] = moment
    if problems:
        raise LateError(f"{path}: " + "; ".join(problems))
    return times


def days_late(submitted: datetime, deadline: datetime) -> int:
    seconds = (submitted - deadline).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def assess(policy: LatePolicy | None, submitted: datetime | None, time_source: str,
           grace_left: int | None) -> LateResult:
    """The late days, grace days used and penalty of one submission. `grace_left`: the student's
    grace days before this assignment (None = the whole budget, no ledger)."""
    stamp = submitted.replace(microsecond=0).isoformat() if submitted else None
    if policy is None or policy.deadline is None or submitted is None:
        return LateResult(stamp, time_source, None, grace_left)
    left = policy.grace_days_total if grace_left is None else max(0, grace_left)
    late = days_late(submitted, policy.deadline)
    used = min(late, policy.grace_days_max_per_assignment, left)
    beyond = late - used
    penalty = round(min(1.0, policy.per_day_penalty * beyond), 4)
    return LateResult(stamp, time_source, late, left, used, beyond, penalty)


class Ledger:
    """Grace days spent per student and assignment, in a JSON file:

    {"format": "dl-grader grace-day ledger", "version": 1,
     "spent": {"CS17BTECH11001": {"hw1": 3, "hw2": 2}}}

    TAs may add assignments graded elsewhere by hand (same shape)."""

    def __init__(self, path: Path | None, spent: dict[str, dict[str, int]] | None = None):
        self.path = Path(path) if path else None
        self.spent: dict[str, dict[str, int]] = spent or {}

    @classmethod
    def load(cls, path: Path | None) -> "Ledger":
        if path is None or not Path(path).exists():
            return cls(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LateError(f"grace-day ledger {path} is not valid JSON: {exc}") from None
        spent = data.get("spent") if isinstance(data, dict) else None
        if not isinstance(spent, dict):
            raise LateError(f"grace-day ledger {path}: expected an object with \"spent\": "
                            f"{{student: {{assignment: days}}}}")
        for student, per in spent.items():
            if not isinstance(per, dict) or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in per.values()):
                raise LateError(f"grace-day ledger {path}: {student!r} must map assignments to "
                                f"whole numbers of days, got {per!r}")
        return cls(path, {s: dict(p) for s, p in spent.items()})

    def left(self, student: str, assignment: str, total: int) -> int:
        """Grace days left for `assignment`: what the other assignments did not spend."""
        others = sum(d for a, d in self.spent.get(student, {}).items() if a != assignment)
        return max(0, total - others)

    def record(self, student: str, assignment: str, days: int) -> None:
        per = self.spent.setdefault(student, {})
        if days:
            per[assignment] = int(days)
        else:
            per.pop(assignment, None)
        if not per:
            del self.spent[student]

    def save(self) -> None:
        if self.path is None:
            return
        spent = {s: dict(sorted(p.items())) for s, p in sorted(self.spent.items())}
        write_json_atomic(self.path, {"format": LEDGER_FORMAT, "version": 1, "spent": spent})


def default_ledger_path(policy_file: Path | None) -> Path | None:
    return Path(policy_file).parent / LEDGER_NAME if policy_file else None
