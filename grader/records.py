"""Plain records that cross stages: intake -> worker -> checks -> rubric -> reports.

Records hold data only; formatting lives in the report writers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The roles a submission's files play are each assignment's own (grader.intake.roles.Role, in its pack).


@dataclass
class Submission:
    """One student's work after intake: prepared modules in a workspace only the worker sees."""

    student: str
    source: Path                                  # what was handed in: a zip, folder, .py or .ipynb
    workspace: Path                               # prepared files; the only folder the worker sees
    modules: dict[str, Path] = field(default_factory=dict)  # role -> prepared .py inside workspace
    answers: Path | None = None                   # the answers file (read on the trusted side only)
    notes: list[str] = field(default_factory=list)  # what intake chose, dropped or repaired
    error: str | None = None                      # a student-fault intake error, e.g. corrupt zip
    submitted_at: datetime | None = None
    # role -> why that role's file was found but could not be prepared (e.g. a SyntaxError); the role
    # is then absent from `modules`, and items that need it should show this message.
    role_errors: dict[str, str] = field(default_factory=dict)


@dataclass
class ProbeResult:
    """What the worker answered to one probe request: plain arrays and JSON metadata, or an error."""

    key: str                                      # the probe request's stable key, e.g. "model_fwd/0"
    ok: bool
    arrays: dict[str, Any] = field(default_factory=dict)   # name -> numpy array (never pickled)
    meta: dict[str, Any] = field(default_factory=dict)     # small JSON-safe facts (shapes, names)
    error: str | None = None                      # what went wrong, for the student
    fault: str = "student"                        # "student" (their code) or "grader" (ours)
    seconds: float = 0.0
    cached: bool = False                          # answered by the trusted side's probe cache
    timed_out: bool = False                       # the probe ran past its own timeout (not saved)


@dataclass
class CheckResult:
    """One pytest check's outcome on the trusted side."""

    name: str                                     # "test_q1_model.py::test_output_shapes"
    outcome: str                                  # passed | failed | error | skipped
    message: str = ""


@dataclass
class ItemScore:
    id: str
    title: str
    points: float
    max_points: float
    status: str                                   # passed | partial | failed | error | manual | skipped
    visibility: str                               # visible | hidden
    feedback: str = ""
    bonus: bool = False
    manual: bool = False                          # marked by a TA; stays manual once marked
    # the grader's help to the TA who marks a manual item (the pack's manual_notes hook), and what
    # of it the student's feedback shows ("" = nothing); a TA's mark leaves both as they are
    note: str = ""
    student_note: str = ""


def is_automatic(item, manual_ids=frozenset()) -> bool:
    """The one definition of what the automatic totals count (an ItemScore or its result.json dict):
    not a manual item of the rubric (its own flag, or its id among `manual_ids` when the caller has
    the rubric) and not waiting for a TA. Marked manual items keep out: a TA's mark is not automatic."""
    get = item.get if isinstance(item, dict) else lambda k, d=None: getattr(item, k, d)
    return not get("manual", False) and get("id") not in manual_ids and get("status") != "manual"


def automatic_totals(items, manual_ids=frozenset()) -> dict:
    """auto_score, auto_max (bonus marks raise the score, never the maximum) and manual_pending."""
    get = lambda i, k, d=None: i.get(k, d) if isinstance(i, dict) else getattr(i, k, d)  # noqa: E731
    auto = [i for i in items if is_automatic(i, manual_ids)]
    return {"auto_score": round(sum(get(i, "points") for i in auto), 4),
            "auto_max": round(sum(get(i, "max_points") for i in auto if not get(i, "bonus", False)), 4),
            "manual_pending": round(sum(get(i, "max_points") for i in items if get(i, "status") == "manual"), 4)}


@dataclass
class GradeReport:
    assignment: str
    student: str
    items: list[ItemScore]
    status: str = "graded"                        # graded | error
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    execution_time: float = 0.0
    profile: str = "ci"
    isolation: str = ""

    @property
    def auto_items(self) -> list[ItemScore]:
        return [i for i in self.items if is_automatic(i)]

    @property
    def auto_score(self) -> float:
        return automatic_totals(self.items)["auto_score"]

    @property
    def auto_max(self) -> float:
        # Bonus marks can raise the score but never the maximum.
        return automatic_totals(self.items)["auto_max"]

    @property
    def manual_pending(self) -> float:
        return automatic_totals(self.items)["manual_pending"]   # not yet marked

    @property
    def score(self) -> float:
        return round(sum(i.points for i in self.items), 4)

    @property
    def max_score(self) -> float:
        return round(sum(i.max_points for i in self.items if not i.bonus), 4)
