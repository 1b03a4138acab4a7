"""Plain records that cross stages: intake -> worker -> checks -> rubric -> reports.

Records hold data only; formatting lives in the report writers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Roles a submission's files can play for an assignment (intake finds them; the worker imports them).
ROLE_COLOURIZATION = "colourization"
ROLE_REGRESSION = "regression"
ROLE_RNN = "rnn"


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

    key: str                                      # the probe request's stable key, e.g. "cnn_fwd/0"
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

    name: str                                     # "test_q2a_cnn.py::test_output_shapes"
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
        return [i for i in self.items if not i.manual and i.status != "manual"]

    @property
    def auto_score(self) -> float:
        return round(sum(i.points for i in self.auto_items), 4)

    @property
    def auto_max(self) -> float:
        # Bonus marks can raise the score but never the maximum.
        return round(sum(i.max_points for i in self.auto_items if not i.bonus), 4)

    @property
    def manual_pending(self) -> float:
        return round(sum(i.max_points for i in self.items if i.status == "manual"), 4)   # not yet marked

    @property
    def score(self) -> float:
        return round(sum(i.points for i in self.items), 4)

    @property
    def max_score(self) -> float:
        return round(sum(i.max_points for i in self.items if not i.bonus), 4)
