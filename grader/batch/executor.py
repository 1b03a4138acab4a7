"""What every batch executor shares (local threads in grader/batch/classrun.py, Ray tasks in
grader/batch/raybatch.py): grading one submission where it runs, and the interface to the batch driver.

An executor gets a `Jobs`: the driver's functions it calls for each student (prepare the folder,
take the submission in, record the result), never the Batch object, so neither executor module
imports the other.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..report.feedback import write_picture
from ..pipeline import Options, grade
from ..records import GradeReport
from ..checks.scoring import error_scores

GRADER_FAULT = "grader fault"


@dataclass
class Jobs:
    """The batch driver as an executor sees it."""

    settings: Any                                   # batch.Settings (executor, ray_*, warm, cache)
    work: Path                                      # scratch folder for unpacking entries
    prepare: Callable                               # entry -> (folder, old result, batch info)
    source: Callable                                # (entry, work) -> (path or None, error report or None)
    options: Callable                               # student -> pipeline.Options
    merge_extra: Callable                           # (folder, info, extra from grade_submission)
    fault: Callable                                 # (folder, info, exception) -> GradeReport
    record: Callable                                # (entry, report, info, old, t0) -> outcome
    done: Callable                                  # (entry, outcome)
    started: Callable                               # () -> None: a student is in progress
    message: Callable                               # (text) -> None: a line for the TA
    describe: Callable                              # (text) -> None: how the batch was executed


def grade_submission(source: Path, opts: Options, sandbox, engine, folder: Path, rubric,
                     log=print) -> tuple[GradeReport, dict]:
    """`grade()` plus what the batch adds: the feedback picture (written into `folder`), and the
    grader-fault flag. Runs wherever the submission is graded (here, or in a Ray task); returns
    the report and the batch info to merge ({"grader_fault", "picture"..., "traceback"})."""
    info: dict = {}

    def keep(results, gold):
        info.update(write_picture(results, gold, folder, opts.assignment))
        # Where the answers came from: how much work the probe cache and the reuse of the
        # reference's training saved (the benchmark reads this; TAs can too).
        info["probes"] = {"run": sum(not r.cached and not r.meta.get("reused_reference") for r in results.values()),
                          "from_cache": sum(r.cached for r in results.values()),
                          "reference_training": sum(bool(r.meta.get("reused_reference")) for r in results.values())}

    try:
        report = grade(source, opts, None, sandbox, log=log, engine=engine, keep=keep)
        # Probes that failed on our side, or checks that could not run (e.g. interrupted by a
        # Ctrl-C that reached them): not this student's result; retried by the next run.
        if any(e.startswith(GRADER_FAULT) for e in report.errors) or (
                report.status == "graded" and any(i.status == "error" for i in report.items)):
            info["grader_fault"] = True
    except Exception as exc:                           # ours, never the student's
        info["traceback"] = traceback.format_exc()
        message = (f"{GRADER_FAULT} (flagged for staff; not your fault): {type(exc).__name__}: "
                   f"{str(exc)[:500]}")
        report = GradeReport(opts.assignment, opts.student, error_scores(rubric, message), status="error",
                             errors=[message], profile=opts.profile)
        info["grader_fault"] = True
    return report, info


