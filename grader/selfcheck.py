"""The student's view of a self-check: visible items only, what passed and what to fix."""
from __future__ import annotations

from .records import GradeReport


def friendly_summary(report: GradeReport) -> str:
    if report.status == "error":
        return "Your submission could not be checked:\n  " + "\n  ".join(report.errors)
    passed = [i for i in report.items if i.status == "passed"]
    todo = [i for i in report.items if i.status != "passed"]
    lines = [f"Self-check of the visible tests: {report.auto_score:g} of {report.auto_max:g} points "
             f"({len(passed)} of {len(report.items)} items passed)."]
    for item in passed:
        lines.append(f"  ok    {item.id}: {item.title}")
    for item in todo:
        lines.append(f"  fix   {item.id}: {item.title} ({item.points:g}/{item.max_points:g})")
        lines += [f"          {line}" for line in item.feedback.splitlines()[:8]]
    lines.append("Hidden tests and the written questions are graded after the deadline; "
                 "passing every visible test does not guarantee full marks.")
    for note in report.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
