"""Grade a whole class: a folder or zip of submissions in, a gradebook and feedback out.

    grader batch INPUT --assignment NAME --out DIR [--workers N] ...

1. **Entries.** Each top-level file or folder of INPUT (a folder, or a zip such as an LMS's zip of
   zips) is one student. A single wrapper folder holding only archives and folders is looked
   through. System files (`__MACOSX`, `.DS_Store`, dot-files) and the TA's own files at the top
   (.csv .json .html .log .md .txt .pdf) are skipped. Ids come from `intake.student_id_from_name`
   (for an LMS folder holding one file, the file's name when that gives a roll number); a repeated
   id gets a suffix `-2`, `-3` (shorter names first, then alphabetical: `X.zip` keeps the id,
   `X (1).zip` gets `-2`) and a warning.
2. **Grading.** N students at once (threads: `grade()` mostly waits on its worker process). A zip
   INPUT's entry is extracted under limits into DIR/.work/ just before it is graded and removed
   after; intake then applies its own checks. One student's problem (a refused archive, a crash of
   their code, a timeout, even an exception in the grader) becomes that student's result; an
   exception of ours is marked as a grader fault, saved as DIR/<student>/traceback.txt, and retried
   by the next run.
3. **Resuming.** DIR/<student>/result.json is written atomically and last; it records the profile,
   the data and a fingerprint of the entry. A re-run skips a student whose result is valid and
   matches (unless --force), so a batch killed at any point and re-run ends as an uninterrupted one.
4. **Late policy and gradebook** (after all students): late days and grace days (grader.batch.late), the
   ledger, DIR/batch.json, grades.csv, manual.csv, each feedback.md, and a summary.

Nothing is written outside DIR except the grace-day ledger (in the course folder, by design) and
the pipeline's own temporary folders (system temp, removed after each student).
"""
from __future__ import annotations

import concurrent.futures as futures
import hashlib
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import gold as goldmod
from .. import devices
from ..report import gradebook
from . import late
from ..intake import zipsafe
from .. import rubric as rubricmod
from .executor import GRADER_FAULT, Jobs, grade_submission  # noqa: F401 - grade_submission: batch's API
from ..report.feedback import picture_file
from ..intake.unpack import _ROLL, student_id_from_name
from ..intake.locate import role_of_name
from ..intake.roles import roles_for
from ..pipeline import Options, grade, sandbox_for
from ..records import GradeReport
from .schedule import Planner
from ..sandbox.slots import SlotPool
from ..checks.scoring import error_scores

WORK = ".work"
TA_FILES = {".csv", ".json", ".html", ".htm", ".log", ".md", ".txt", ".pdf"}
SUBMISSION_SUFFIXES = {".py", ".ipynb", ".toml"}


class BatchError(Exception):
    """A problem with the batch's own inputs (INPUT, policy, CSV): the TA's to fix; nothing graded."""


@dataclass(frozen=True)
class ClassZipLimits:
    """Bounds on extracting one entry of a class zip (each student's own archive is then checked by
    intake's tighter ZipLimits)."""

    max_entry_bytes: int = 1 << 30        # one student's entry, all its members together
    max_ratio: float = 100.0              # uncompressed/compressed size of a member ...
    ratio_floor_bytes: int = 1 << 20      # ... larger than this


@dataclass
class Entry:
    student: str
    name: str                             # its name in INPUT (shown in grades.csv, matched by the CSV)
    path: Path | None = None              # folder INPUT: the file or folder itself
    members: list = field(default_factory=list)   # zip INPUT: (ZipInfo, relative parts)
    is_dir: bool = False
    archive_time: datetime | None = None  # zip member time or file mtime
    fingerprint: str = ""
    error: str | None = None              # found unusable while listing (never extracted)
    notes: list[str] = field(default_factory=list)


@dataclass
class Settings:
    input: Path
    out: Path
    assignment: str                       # the pack's name (grader.pack)
    profile: str = "ci"
    data: Path | None = None
    gold_dir: Path | None = None
    workers: int = 0                      # 0: min(4, cpu count)
    force: bool = False
    probe_timeout: float | None = None
    deadline: str | None = None
    late_policy: Path | None = None
    submitted_at: Path | None = None
    ledger: Path | None = None
    always_train: bool = False
    warm: bool = True                     # the warm engine (grader/sandbox/engine.py); --no-warm: cold path
    cache: bool = True                    # the probe-result cache (grader/probes/cache.py); --no-cache
    gpus: str | None = None               # --gpus auto|none|0,1 (grader/devices.py)
    workers_per_gpu: int = 1
    executor: str = "local"               # local | ray (grader/batch/raybatch.py)
    ray_address: str | None = None
    ray_num_cpus: float = 1.0             # per submission (task)
    ray_num_gpus: float = 0.0             # per submission (task); fractions share a GPU


# --------------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------------

def collect(input_path: Path, out: Path | None = None, *,
            assignment: str) -> tuple[list[Entry], list[str], str | None]:
    """The students of INPUT: (entries sorted by student id, warnings, zip path or None)."""
    input_path = Path(input_path)
    if input_path.is_dir():
        entries, warnings = _collect_folder(input_path, out)
        zpath = None
    elif input_path.is_file():
        entries, warnings = _collect_zip(input_path)
        zpath = str(input_path)
    else:
        raise BatchError(f"{input_path} does not exist")
    roles = roles_for(assignment)
    loose = [e.name for e in entries if not e.is_dir and (role_of_name(e.name, roles) or ("", 9))[1] <= 1]
    if loose:
        raise BatchError(f"{input_path} holds {', '.join(loose[:3])} at its top: it looks like one student's "
                         f"submission, not a class. `grader grade` grades one submission; `grader batch` takes "
                         f"a folder or zip whose entries are the students' submissions")
    warnings += assign_ids(entries)
    return sorted(entries, key=lambda e: e.student), warnings, zpath


def _skip_top(name: str) -> bool:
    return Path(name).suffix.lower() in TA_FILES


def _collect_folder(root: Path, out: Path | None) -> tuple[list[Entry], list[str]]:
    warnings = []
    out_resolved = Path(out).resolve() if out else None

    def children(folder: Path) -> list[Path]:
        kept = []
        for p in sorted(folder.iterdir()):
            if zipsafe.is_junk(p.name):
                continue
            if out_resolved and p.resolve() == out_resolved:
                continue                                  # DIR inside INPUT
            if p.is_file() and _skip_top(p.name):
                warnings.append(f"skipped {p.name}: not a submission (a {p.suffix} file at the top of INPUT)")
                continue
            kept.append(p)
        return kept

    top = children(root)
    while len(top) == 1 and top[0].is_dir() and not top[0].is_symlink():
        inner = children(top[0])
        if len(inner) < 2 or any(p.is_file() and p.suffix.lower() in SUBMISSION_SUFFIXES for p in inner):
            break
        warnings.append(f"looked inside the single folder {top[0].name}/")
        top = inner
    return [path_entry(p) for p in top], warnings


def path_entry(p: Path, student: str = "") -> Entry:
    """The entry of a file or folder on disk (the demo builds its entries with this too)."""
    entry = Entry(student, p.name, path=p, is_dir=p.is_dir() and not p.is_symlink())
    if p.is_symlink() and not student:
        entry.error = f"{p.name} is a symbolic link; it was not followed. Copy the real files into INPUT"
        return entry
    try:
        entry.fingerprint, mtime = _fingerprint_path(p)
        entry.archive_time = datetime.fromtimestamp(mtime).astimezone() if mtime else None
    except OSError as exc:
        entry.error = f"{p.name} cannot be read ({exc.strerror or exc})"
    return entry


def _fingerprint_path(path: Path) -> tuple[str, float]:
    """sha256 of a file, or of a folder's names and contents; the newest modification time."""
    h = hashlib.sha256()
    if path.is_file():
        _hash_file(h, path)
        return h.hexdigest(), path.stat().st_mtime
    newest = 0.0
    for here, dirs, files in os.walk(path):               # symlinked folders are not followed
        dirs.sort()
        for name in sorted(files):
            p = Path(here) / name
            h.update(str(p.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
            st = os.lstat(p)
            if p.is_symlink() or not p.is_file():
                h.update(b"link-or-special\0")
                continue
            _hash_file(h, p)
            newest = max(newest, st.st_mtime)
    return h.hexdigest(), newest or path.stat().st_mtime


def _hash_file(h, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)


def _clean_parts(info: zipfile.ZipInfo) -> tuple[list[str], str | None]:
    """A class-zip member's path parts, or why it cannot be extracted safely."""
    name = zipsafe.entry_name(info)
    parts, problem = zipsafe.member_parts(name), zipsafe.member_problem(info, name)   # the one policy
    words = {zipsafe.ABSOLUTE: "an absolute path", zipsafe.LEAVES: "a path that leaves the archive",
             zipsafe.SYMLINK: "a symbolic link", zipsafe.ENCRYPTED: "a password-protected member"}
    return parts, (f"{words[problem.kind]} ({zipsafe.printable(name)})" if problem else None)


def _collect_zip(zpath: Path) -> tuple[list[Entry], list[str]]:
    try:
        with zipfile.ZipFile(zpath) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise BatchError(f"{zpath} is not a folder or a readable zip archive ({exc})") from None
    warnings, members, unsafe = [], [], {}
    for info in infos:
        parts, problem = _clean_parts(info)
        safe_parts = [p for p in parts if p != ".."]
        if problem:
            key = safe_parts[0] if len(safe_parts) > 1 and parts[0] != ".." else (safe_parts or ["unnamed"])[-1]
            unsafe.setdefault(key, problem)
            continue
        if info.is_dir() or not parts or any(zipsafe.is_junk(p) for p in parts):
            continue
        if len(parts) == 1 and _skip_top(parts[0]):
            warnings.append(f"skipped {parts[0]}: not a submission (a {Path(parts[0]).suffix} file at the top of INPUT)")
            continue
        members.append((info, parts))
    prefix = 0
    while True:                                           # look through one wrapper folder
        tops = {p[prefix] for _, p in members if len(p) > prefix}
        if len(tops) != 1 or any(len(p) == prefix + 1 for _, p in members):
            break
        inner = {p[prefix + 1] for _, p in members if len(p) > prefix + 1}
        direct = {p[prefix + 1] for _, p in members if len(p) == prefix + 2}
        if len(inner) < 2 or any(Path(n).suffix.lower() in SUBMISSION_SUFFIXES for n in direct):
            break
        warnings.append(f"looked inside the single folder {next(iter(tops))}/")
        prefix += 1
    groups: dict[str, list] = {}
    for info, parts in members:
        parts = parts[prefix:]
        groups.setdefault(parts[0], []).append((info, parts))
    entries = []
    for top in sorted(groups):
        group = groups[top]
        is_dir = not (len(group) == 1 and len(group[0][1]) == 1)
        entry = Entry("", top, members=[(i, p[1:] if is_dir else p) for i, p in group], is_dir=is_dir)
        h = hashlib.sha256()
        for info, parts in sorted(entry.members, key=lambda m: m[1]):
            h.update(f"{'/'.join(parts)}\0{info.CRC}\0{info.file_size}\n".encode("utf-8", "surrogateescape"))
        entry.fingerprint = h.hexdigest()
        entry.archive_time = max(_zip_time(i) for i, _ in group)
        if top in unsafe:
            entry.error = (f"the class archive holds {unsafe.pop(top)} in this submission; "
                           f"it was not extracted")
        entries.append(entry)
    for key, problem in sorted(unsafe.items()):
        entries.append(Entry("", key, error=f"the class archive holds {problem}; it was not extracted",
                             fingerprint=hashlib.sha256(problem.encode()).hexdigest()))
        warnings.append(f"{key}: {problem} in the class archive; not extracted")
    return entries, warnings


def _zip_time(info: zipfile.ZipInfo) -> datetime | None:
    try:
        return datetime(*info.date_time).astimezone()      # zip times are local times
    except (ValueError, OverflowError):
        return None


def assign_ids(entries: list[Entry]) -> list[str]:
    """Student ids from the entries' names; repeated ids get -2, -3 ... (shorter names first)."""
    warnings = []
    taken: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: (len(e.name), e.name)):   # `X.zip` before `X (1).zip`
        base = _student_id(entry)
        student, n = base, 1
        while student in taken or student == WORK:
            n += 1
            student = f"{base}-{n}"
        if student != base:
            warnings.append(f"duplicate student id {base}: {entry.name} is graded as {student} "
                            f"({taken[base]} has {base})")
            entry.notes.append(f"another submission ({taken[base]}) has the id {base}, so this one "
                               f"is graded as {student}")
        taken[student] = entry.name
        entry.student = student
    return warnings


def _student_id(entry: Entry) -> str:
    student = student_id_from_name(entry.name)
    if _ROLL.match(student) or not entry.is_dir:
        return student
    inner = [p[-1] for _, p in entry.members] if entry.members else (
        [p.name for p in entry.path.iterdir() if not zipsafe.is_junk(p.name)] if entry.path else [])
    if len(inner) == 1:
        candidate = student_id_from_name(inner[0])
        if _ROLL.match(candidate):
            return candidate
    return student


# --------------------------------------------------------------------------------------------------
# Extracting one entry of a class zip
# --------------------------------------------------------------------------------------------------

class _EntryError(Exception):
    pass


def extract(zpath: Path, entry: Entry, dest: Path, limits: ClassZipLimits = ClassZipLimits()) -> Path:
    """Write one class-zip entry under `dest` (names made safe); returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    root = dest / zipsafe.disk_name(entry.name)
    with zipfile.ZipFile(zpath) as zf:
        for info, parts in entry.members:
            size = info.file_size
            ratio = zipsafe.expansion(info, limits.max_ratio, limits.ratio_floor_bytes)
            if ratio is not None:
                raise _EntryError(f"{'/'.join(parts)} would expand {ratio:.0f} "
                                  f"times in the class archive; this looks like a zip bomb")
            total += size
            if total > limits.max_entry_bytes:
                raise _EntryError(f"the submission is larger than {limits.max_entry_bytes >> 20} MiB "
                                  f"in the class archive")
            target = root
            if entry.is_dir:
                for part in parts:
                    target = target / zipsafe.disk_name(part)
            written = 0
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    continue                               # two names that are equal once made safe
                with zf.open(info) as src, open(target, "xb") as dst:
                    while chunk := src.read(1 << 16):
                        written += len(chunk)
                        if written > size:
                            raise _EntryError(f"{'/'.join(parts)} is larger than the class archive says")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                raise _EntryError(f"{'/'.join(parts)} cannot be read from the class archive ({exc}); "
                                  f"download it again") from None
            except OSError as exc:                     # e.g. `a` is a file and `a/b` another
                raise _EntryError(f"{'/'.join(parts)} cannot be written out of the class archive "
                                  f"({exc.strerror or exc})") from None
            stamp = _zip_time(info)
            if stamp:
                os.utime(target, (stamp.timestamp(), stamp.timestamp()))
    if entry.is_dir:
        root.mkdir(exist_ok=True)
    return root


# --------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------

class Progress:
    """Counts on stderr: a redrawn bar on a terminal, one plain line per finished student otherwise."""

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.lock = threading.Lock()

    def _counts(self) -> str:
        remaining = self.total - self.done - self.failed
        return (f"{self.done + self.failed}/{self.total}: done {self.done}, failed {self.failed}, "
                f"remaining {remaining}" + (f" ({self.running} running)" if self.running else ""))

    def _bar(self) -> str:
        width = 24
        filled = int(width * (self.done + self.failed) / max(self.total, 1))
        return f"[{'#' * filled}{'.' * (width - filled)}] {self._counts()}"

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self._bar())
            self.stream.flush()

    def message(self, text: str) -> None:
        with self.lock:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def start(self) -> None:
        with self.lock:
            self.running += 1
            self._draw()

    def finish(self, student: str, failed: bool, what: str, started: bool = True) -> None:
        with self.lock:
            self.running -= 1 if started else 0
            if failed:
                self.failed += 1
            else:
                self.done += 1
            if self.tty:
                self.stream.write("\r\033[K" + f"{student}: {what}\n")
                self._draw()
            else:
                self.stream.write(f"[{self._counts()}] {student}: {what}\n")
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()


# --------------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    student: str
    doc: dict
    skipped: bool = False
    seconds: float = 0.0


class Batch:
    def __init__(self, settings: Settings, entries: list[Entry], zpath: str | None, warnings: list[str],
                 progress_stream=None):
        self.s = settings
        self.out = Path(settings.out)
        self.entries, self.zpath, self.warnings = entries, zpath, list(warnings)
        self.rubric = rubricmod.load(settings.assignment)
        self.manual_items = [i for i in self.rubric.items if i.manual]
        self.manual_ids = {i.id for i in self.manual_items}
        self.progress = Progress(len(entries), progress_stream)
        self.stop = threading.Event()
        self.gpus: list[str] = []
        self.engine_info = self.cache_info = ""
        # Late policy inputs are checked before anything is graded (a typo must not cost an hour).
        self.policy = late.load_policy(settings.late_policy, settings.assignment, settings.deadline)
        self.times = late.read_submission_times(settings.submitted_at) if settings.submitted_at else {}
        ledger_path = settings.ledger or late.default_ledger_path(settings.late_policy)
        self.ledger = late.Ledger.load(ledger_path)

    # ---- one student -----------------------------------------------------------------------------
    def batch_info(self, entry: Entry) -> dict:
        return {"source": entry.name, "fingerprint": entry.fingerprint,
                "data": str(self.s.data) if self.s.data else None}

    def finished(self, entry: Entry) -> dict | None:
        """The student's result if it can be kept (resume), else None."""
        if self.s.force:
            return None
        doc = gradebook.load_result(self.out / entry.student)
        if doc is None or doc.get("profile") != self.s.profile or doc.get("assignment") != self.s.assignment:
            return None
        info = doc.get("batch") or {}
        if any(info.get(k) != v for k, v in self.batch_info(entry).items()) or info.get("grader_fault"):
            return None
        return doc

    def prepare(self, entry: Entry) -> tuple[Path, dict | None, dict]:
        """The student's folder with stale files removed, their old result, the batch info."""
        folder = self.out / entry.student
        old = gradebook.load_result(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("result.json", picture_file(old), "traceback.txt"):
            (folder / stale).unlink(missing_ok=True)
        return folder, old, self.batch_info(entry)

    def options(self, student: str) -> Options:
        return Options(assignment=self.s.assignment, profile=self.s.profile, data=self.s.data,
                       gold_dir=self.s.gold_dir, student=student, always_train=self.s.always_train,
                       probe_timeout=self.s.probe_timeout, cache=self.s.cache)

    def grade_entry(self, entry: Entry, sandbox, engine=None) -> Outcome:
        started = time.monotonic()
        folder, old, info = self.prepare(entry)
        work = self.out / WORK / entry.student
        try:
            source, report = self.source(entry, work)
            if source is not None:
                report, extra = grade_submission(
                    source, self.options(entry.student), sandbox, engine, folder, self.rubric,
                    log=lambda m: self.progress.message(f"{entry.student}: {m}"))
                self.merge_extra(folder, info, extra)
        except Exception as exc:                           # ours, never the student's
            report = self.fault(folder, info, exc)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.record(entry, report, info, old, started)

    def source(self, entry: Entry, work: Path) -> tuple[Path | None, GradeReport | None]:
        """The submission on disk (a class-zip entry is extracted into `work`), or the error
        report of an entry that cannot be graded."""
        if entry.error:
            return None, self.error_report(entry.student, entry.error)
        if self.zpath is None:
            return entry.path, None
        try:
            return extract(Path(self.zpath), entry, work), None
        except _EntryError as exc:
            return None, self.error_report(entry.student, str(exc))

    @staticmethod
    def merge_extra(folder: Path, info: dict, extra: dict) -> None:
        trace = extra.pop("traceback", None)
        if trace:
            (folder / "traceback.txt").write_text(trace, encoding="utf-8")
        info.update(extra)

    def fault(self, folder: Path, info: dict, exc: BaseException) -> GradeReport:
        (folder / "traceback.txt").write_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), encoding="utf-8")
        info["grader_fault"] = True
        return self.error_report(folder.name, f"{GRADER_FAULT} (flagged for staff; not your fault): "
                                              f"{type(exc).__name__}: {str(exc)[:500]}")

    def record(self, entry: Entry, report: GradeReport, info: dict, old: dict | None, started: float) -> Outcome:
        """Write the student's result (the same for every executor): notes, kept marks, result.json."""
        report.notes = list(entry.notes) + list(report.notes)
        for item_id, item in gradebook.manual_marks(old, self.manual_ids).items():
            try:
                gradebook.apply_mark(report, item_id, item["points"], item.get("feedback", ""))
            except KeyError:
                pass
        report.execution_time = time.monotonic() - started
        doc = gradebook.write_result(self.out / entry.student, report, info, self.manual_ids)
        return Outcome(entry.student, doc, seconds=report.execution_time)

    def error_report(self, student: str, message: str) -> GradeReport:
        return GradeReport(self.s.assignment, student, error_scores(self.rubric, message), status="error",
                           errors=[message], profile=self.s.profile)

    # ---- all students ----------------------------------------------------------------------------
    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.out / WORK, ignore_errors=True)      # a killed run's leftovers
        for w in self.warnings:
            self.progress.message(f"warning: {w}")
        outcomes: dict[str, Outcome] = {}
        todo = []
        for entry in self.entries:
            doc = self.finished(entry)
            if doc is not None:
                outcomes[entry.student] = Outcome(entry.student, doc, skipped=True)
            else:
                todo.append(entry)
        self.gpus = devices.parse_gpus(self.s.gpus)
        workers = devices.worker_count(self.s.workers, self.gpus, self.s.workers_per_gpu)
        self.progress.message(
            f"grading {len(todo)} of {len(self.entries)} submissions of {self.s.assignment} "
            f"(profile {self.s.profile}) with {workers} worker(s) into {self.out}"
            + (f"; {len(outcomes)} already graded, kept (--force regrades)" if outcomes else ""))
        for student in sorted(outcomes):
            self.progress.finish(student, outcomes[student].doc["status"] == "error",
                                 "already graded, kept", started=False)
        if todo:
            profile = self.rubric.profile(self.s.profile)
            gold_root = Path(self.s.gold_dir) if self.s.gold_dir else goldmod.default_dir(
                self.rubric, profile, self.s.data)
            hide = [p.resolve() for p in (self.out, Path(self.s.input), gold_root)]
            run_profile = dict(profile, probe_timeout=self.s.probe_timeout) if self.s.probe_timeout else profile
            engine = cache = None
            if self.s.executor != "ray":     # the warm servers start now, while gold is loaded
                engine, cache, sandboxes = self._engine(run_profile, hide, workers)
            try:
                gold = goldmod.ensure(self.rubric, profile, self.s.data, self.s.gold_dir,
                                      log=lambda m: self.progress.message(m))
                if self.s.executor == "ray":
                    from .raybatch import run_ray

                    finished = run_ray(self.jobs(), todo, outcomes, run_profile, gold, hide, self.gpus, workers)
                else:
                    finished = self._pool(todo, workers, sandboxes, outcomes, engine)
            finally:
                if engine is not None:
                    self.engine_info = engine.describe()
                    engine.close()
                if cache is not None:
                    self.cache_info = f"{cache.hits} probe answers reused, {cache.stored} stored"
                    cache.prune()
            if not finished or INTERRUPTED.is_set():
                return 130
        self.progress.close()
        return self.finish(outcomes)

    def jobs(self) -> Jobs:
        """What an executor needs of this batch (grader/batch/executor.py), without the batch itself."""
        return Jobs(settings=self.s, work=self.out / WORK, prepare=self.prepare, source=self.source,
                    options=self.options, merge_extra=self.merge_extra, fault=self.fault, record=self.record,
                    done=self.job_done, started=self.progress.start, message=self.progress.message,
                    describe=lambda text: setattr(self, "engine_info", text))

    def _engine(self, profile: dict, hide: list[Path], workers: int):
        """The local executor's engine (servers starting in the background), its probe cache, and
        one sandbox per worker slot (each slot's GPU)."""
        from ..sandbox.engine import Engine
        from ..probes.cache import ProbeCache

        cache = ProbeCache() if self.s.cache else None
        engine = Engine(self.s.assignment, warm=self.s.warm, cache=cache, log=self.progress.message)
        sandboxes = [engine.sandbox(sandbox_for(profile, hide=hide, gpu=g if self.gpus else None))
                     for g in devices.assign(workers, self.gpus)]
        return engine, cache, sandboxes

    def job_done(self, entry: Entry, result: Outcome) -> None:
        doc = result.doc
        what = (f"error: {gradebook.error_line(doc)[:160]}" if doc["status"] == "error" else
                f"graded {gradebook.num(doc['auto_score'])}/{gradebook.num(doc['auto_max'])} "
                f"automatic in {result.seconds:.1f} s")
        self.progress.finish(entry.student, doc["status"] == "error", what)

    def _pool(self, todo: list[Entry], workers: int, sandboxes: list, outcomes: dict, engine=None) -> bool:
        """Grade `todo`; False if interrupted (finished students are kept for the next run).
        `sandboxes`: one per worker slot (each slot's GPU). Interchangeable slots are pooled
        (grader/sandbox/slots.py): twice as many grading threads as slots, each holding a slot only while
        its worker runs. Otherwise a job takes a free slot for its whole submission."""
        slots = SlotPool(sandboxes) if SlotPool.poolable(sandboxes) else None
        threads = 2 * len(sandboxes) if slots is not None else workers
        pool = futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grade")
        free: queue.Queue = queue.Queue()
        for sandbox in ([slots] * threads if slots is not None else sandboxes):
            free.put(sandbox)

        def job(entry: Entry) -> Outcome:
            if self.stop.is_set():
                raise futures.CancelledError()
            self.progress.start()
            sandbox = free.get()
            try:
                result = self.grade_entry(entry, sandbox, engine)
            except BaseException:
                self.progress.finish(entry.student, True, "interrupted")
                raise
            finally:
                free.put(sandbox)
            self.job_done(entry, result)
            return result

        # Longest expected first (grader/batch/schedule.py) when there are more students than threads.
        planner = (Planner(todo, self.source, self.out / WORK / ".plan", self.s.assignment, self.stop)
                   if len(todo) > threads else None)
        order = iter(todo)

        def job_next() -> tuple[Entry, Outcome] | None:
            entry = planner.next() if planner is not None else next(order, None)
            return None if entry is None else (entry, job(entry))

        pending = {pool.submit(job_next) for _ in todo}
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_signal)
        try:
            while pending:
                if INTERRUPTED.is_set():      # a KeyboardInterrupt some code swallowed still counts
                    raise KeyboardInterrupt
                done, _ = futures.wait(pending, timeout=0.5, return_when=futures.FIRST_COMPLETED)
                for fut in done:
                    pending.remove(fut)
                    graded = fut.result()
                    if graded is not None:
                        outcomes[graded[0].student] = graded[1]
            if planner is not None:
                planner.join()
            return True
        except KeyboardInterrupt:
            self.stop.set()
            for fut in pending:
                fut.cancel()
            self.progress.message("interrupted: finishing the students being graded (Ctrl-C again to "
                                  "stop at once); run the same command again to resume")
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:
                self.progress.message("stopped; students in progress will be graded again next time")
                os._exit(130)
            return False
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
            pool.shutdown(wait=False)

    # ---- after grading ---------------------------------------------------------------------------
    def assess_late(self) -> dict[str, dict]:
        results = {}
        if self.policy is not None and self.ledger.path is None:
            self.warnings.append("no grace-day ledger (--late-policy FILE or --ledger FILE): grace days are "
                                 "not carried across assignments; every student has the whole budget")
        matched = set()
        for entry in self.entries:
            when, source = entry.archive_time, "archive"
            for key in (entry.student, entry.name):
                if key in self.times:
                    when, source = self.times[key], "csv"
                    matched.add(key)
                    break
            left = None
            if self.policy is not None and self.ledger.path is not None:
                left = self.ledger.left(entry.student, self.s.assignment, self.policy.grace_days_total)
            result = late.assess(self.policy, when, source if when else "none", left)
            if self.policy is not None:
                self.ledger.record(entry.student, self.s.assignment, result.grace_days_used)
            results[entry.student] = dict(result.to_dict(), sentence=result.sentence())
        unknown = sorted(set(self.times) - matched)
        if unknown:
            self.warnings.append(f"{len(unknown)} name(s) in the submission-time CSV match no submission: "
                                 + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
        if self.policy is not None:
            self.ledger.save()
        return results

    def finish(self, outcomes: dict[str, Outcome]) -> int:
        lates = self.assess_late()
        manifest = {
            "assignment": self.s.assignment, "profile": self.s.profile, "input": str(self.s.input),
            "policy": None if self.policy is None else {
                "deadline": self.policy.deadline.isoformat() if self.policy.deadline else None,
                "per_day_penalty": self.policy.per_day_penalty, "grace_days_total": self.policy.grace_days_total,
                "grace_days_max_per_assignment": self.policy.grace_days_max_per_assignment,
                "file": self.policy.source},
            "ledger": str(self.ledger.path) if self.ledger.path and self.policy else None,
            "engine": {"executor": self.s.executor, "description": self.engine_info,
                       "probe_cache": self.cache_info, "gpus": self.gpus},
            "students": [{"student": e.student, "source": e.name, "late": lates.get(e.student)}
                         for e in self.entries],
        }
        gradebook.write_json_atomic(self.out / gradebook.MANIFEST, manifest)
        self.warnings += gradebook.write_gradebook(self.out, manifest, self.manual_items)
        text = summary(self.out, manifest, self.rubric, self.warnings)
        if self.engine_info:
            text += f"\nengine: {self.engine_info}" + (f"; {self.cache_info}" if self.cache_info else "")
        (self.out / "summary.txt").write_text(text + "\n", encoding="utf-8")
        print(text, flush=True)
        faults = [s for s, o in outcomes.items() if (o.doc.get("batch") or {}).get("grader_fault")]
        return 1 if faults else 0


# Set by the first Ctrl-C or SIGTERM of a batch and never cleared until the next `run`: a
# KeyboardInterrupt that some code catches (a library's `except BaseException`) is not lost.
INTERRUPTED = threading.Event()


def _on_signal(signum, frame):
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _install_handlers() -> dict:
    """Our own SIGINT and SIGTERM handlers, whatever was inherited: a process started with SIGINT
    ignored (a background job of a script, some test runners) gets no KeyboardInterrupt from
    Python, so a Ctrl-C sent to its group was lost and the batch ran to the end."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_signal)
    return previous


def summary(out: Path, manifest: dict, rubric, warnings: list[str]) -> str:
    """Counts, a histogram of the automatic scores, the most failed items, warnings."""
    docs = {e["student"]: gradebook.load_result(out / e["student"]) for e in manifest["students"]}
    graded = {s: d for s, d in docs.items() if d and d["status"] == "graded"}
    errors = {s: d for s, d in docs.items() if d and d["status"] == "error"}
    faults = sorted(s for s, d in docs.items() if d and (d.get("batch") or {}).get("grader_fault"))
    lines = [f"{len(docs)} submissions: {len(graded)} graded, {len(errors)} could not be graded (status error)"
             + (f", {len(faults)} with a grader fault (flagged, retried on the next run): {', '.join(faults)}"
                if faults else "")]
    if graded:
        lines.append("automatic score (% of the automatic maximum), graded submissions:")
        bins = [0] * 10
        for d in graded.values():
            pct = 100 * d["auto_score"] / d["auto_max"] if d["auto_max"] else 0
            bins[min(9, int(pct // 10))] += 1
        for i, n in enumerate(bins):
            label = f"{10 * i}-{10 * i + 10}%"
            lines.append(f"  {label:>8} |{'#' * n}{' ' + str(n) if n else ''}")
    manual_ids = {i.id for i in rubric.items if i.manual}
    misses: dict[str, int] = {}
    for d in graded.values():
        for item in d["items"]:
            if item["id"] not in manual_ids and item["status"] in ("failed", "partial", "error"):
                misses[item["id"]] = misses.get(item["id"], 0) + 1
    if misses:
        lines.append("most failed items (students not getting full marks):")
        for item_id, n in sorted(misses.items(), key=lambda kv: (-kv[1], kv[0]))[:6]:
            lines.append(f"  {item_id:<22} {n}/{len(graded)}")
    if errors:
        lines.append("could not be graded:")
        for s, d in sorted(errors.items()):
            lines.append(f"  {s}: {gradebook.error_line(d)[:150]}")
    lines += [f"warning: {w}" for w in warnings]
    lines.append(f"gradebook: {out / gradebook.GRADES_CSV}; TA sheet: {out / gradebook.MANUAL_CSV}; "
                 f"feedback: {out}/<student>/feedback.md")
    return "\n".join(lines)


def merge_manual(out: Path, filled: Path) -> int:
    """`grader merge-manual DIR FILLED.csv`: fold the TA's marks in, rewrite the gradebook."""
    out = Path(out)
    try:
        manifest = gradebook.load_manifest(out)
        rubric = rubricmod.load(manifest["assignment"])
        manual_items = [i for i in rubric.items if i.manual]
        count = gradebook.merge_manual(out, Path(filled), manual_items)
    except FileNotFoundError as exc:
        print(f"grader merge-manual: {exc}", file=sys.stderr)
        return 2
    except gradebook.ManualError as exc:
        print(f"grader merge-manual: {exc}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    warnings = gradebook.write_gradebook(out, manifest, manual_items)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"merged {count} mark(s) from {filled} into {out}; rewrote {out / gradebook.GRADES_CSV}, "
          f"{out / gradebook.MANUAL_CSV} and the feedback")
    return 0


def run(settings: Settings, entries: list[Entry] | None = None, progress_stream=None) -> int:
    """Collect INPUT's entries (unless given) and grade them; the CLI's and the demo's entry point.
    Ctrl-C (or SIGTERM) at any point from here on stops it with status 130; what finished is kept."""
    INTERRUPTED.clear()
    previous = _install_handlers()
    try:
        return _run(settings, entries, progress_stream)
    except KeyboardInterrupt:
        INTERRUPTED.set()
        print("grader batch: interrupted; students finished so far are kept: run the same command "
              "again to resume", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _run(settings: Settings, entries: list[Entry] | None, progress_stream) -> int:
    try:
        if entries is None:
            entries, warnings, zpath = collect(settings.input, settings.out, assignment=settings.assignment)
        else:
            warnings, zpath = [], None
        if not entries:
            raise BatchError(f"{settings.input} holds no submissions")
        try:
            devices.parse_gpus(settings.gpus)
        except ValueError as exc:
            raise BatchError(str(exc)) from None
        if settings.executor == "ray":
            from .raybatch import available

            why = available()
            if why:
                raise BatchError(why)
        batch = Batch(settings, entries, zpath, warnings, progress_stream)
    except (BatchError, late.LateError) as exc:
        print(f"grader batch: {exc}", file=sys.stderr)
        return 2
    return batch.run()
