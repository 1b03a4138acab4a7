"""Report writers: our result.json, Gradescope's results.json, and the console table.

Records stay plain; all formatting happens here. result.json's schema is documented in the README
and validated by `validate_result` (used by the tests and by `grader merge-manual`).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..records import GradeReport, ItemScore

ITEM_STATUSES = ("passed", "partial", "failed", "error", "manual", "skipped")
SCHEMA_VERSION = 1


def result_dict(report: GradeReport) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "assignment": report.assignment,
        "student": report.student,
        "score": report.score,
        "max_score": report.max_score,
        "auto_score": report.auto_score,
        "auto_max": report.auto_max,
        "manual_pending": report.manual_pending,
        "status": report.status,
        "profile": report.profile,
        "items": [asdict(i) for i in report.items],
        "errors": report.errors,
        "notes": report.notes,
        "isolation": report.isolation,
        "execution_time": round(report.execution_time, 2),
    }


def report_from_dict(data: dict) -> GradeReport:
    items = [ItemScore(**i) for i in data["items"]]
    return GradeReport(data["assignment"], data["student"], items, data["status"], data.get("errors", []),
                       data.get("notes", []), data.get("execution_time", 0.0), data.get("profile", ""),
                       data.get("isolation", ""))


def gradescope_dict(report: GradeReport) -> dict:
    """Gradescope's autograder format (results.json)."""
    tests = []
    for number, item in enumerate(report.items, start=1):
        if item.status == "manual":
            continue
        tests.append({
            "name": f"{item.id}: {item.title}",
            "number": str(number),
            "score": item.points,
            "max_score": 0.0 if item.bonus else item.max_points,
            "status": "passed" if item.status == "passed" else "failed",
            "output": item.feedback,
            "visibility": "visible" if item.visibility == "visible" else "after_published",
        })
    output = "\n".join(report.errors + report.notes)
    return {"score": report.auto_score, "execution_time": round(report.execution_time, 2),
            "output": output, "tests": tests}


def write_json_atomic(path: Path, value: dict) -> None:
    """Write then rename, so a reader (or a resumed batch) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.chmod(tmp, 0o644)        # mkstemp makes 0600; other TAs on the machine read the gradebook
    os.replace(tmp, path)


def write_reports(report: GradeReport, out: Path) -> None:
    write_json_atomic(out / "results.json", gradescope_dict(report))
    write_json_atomic(out / "result.json", result_dict(report))   # last: its presence means done


def table(report: GradeReport, show_feedback: bool = True) -> str:
    rows = [f"{report.assignment} - {report.student}: {report.status}, "
            f"{report.auto_score:g}/{report.auto_max:g} automatic"
            + (f", {report.manual_pending:g} manual pending" if report.manual_pending else "")]
    width = max((len(i.id) for i in report.items), default=10)
    for item in report.items:
        pts = f"{item.points:g}/{item.max_points:g}" + (" bonus" if item.bonus else "")
        rows.append(f"  {item.id:<{width}}  {item.status:<8} {pts:>10}")
        if show_feedback and item.status in ("failed", "partial", "error"):
            for line in item.feedback.splitlines()[:6]:
                rows.append(f"      {line}")
        if show_feedback and item.manual and item.note:
            for line in item.note.splitlines()[:6]:
                rows.append(f"      note: {line}")
    rows += [f"  error: {e}" for e in report.errors]
    return "\n".join(rows)


def validate_result(data: dict) -> list[str]:
    """Problems with a result.json document (empty when valid)."""
    problems = []
    top = {"assignment": str, "student": str, "score": (int, float), "max_score": (int, float),
           "auto_score": (int, float), "auto_max": (int, float), "manual_pending": (int, float),
           "status": str, "items": list, "errors": list, "execution_time": (int, float)}
    for key, kind in top.items():
        if not isinstance(data.get(key), kind):
            problems.append(f"{key}: missing or not {kind}")
    if data.get("status") not in ("graded", "error"):
        problems.append(f"status {data.get('status')!r} not graded|error")
    item_keys = {"id": str, "title": str, "points": (int, float), "max_points": (int, float),
                 "status": str, "visibility": str, "feedback": str}
    for i, item in enumerate(data.get("items", [])):
        for key, kind in item_keys.items():
            if not isinstance(item.get(key), kind):
                problems.append(f"items[{i}].{key}: missing or not {kind}")
        if item.get("status") not in ITEM_STATUSES:
            problems.append(f"items[{i}].status {item.get('status')!r}")
        if item.get("visibility") not in ("visible", "hidden"):
            problems.append(f"items[{i}].visibility {item.get('visibility')!r}")
        if isinstance(item.get("points"), (int, float)) and isinstance(item.get("max_points"), (int, float)):
            if not 0 <= item["points"] <= item["max_points"] + 1e-9:
                problems.append(f"items[{i}].points out of range")
    return problems
