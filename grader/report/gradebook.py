"""The batch's gradebook: per-student result files, grades.csv, manual.csv and the TA's marks.

- `write_result`: a student's result.json (our schema plus a "batch" block: where it came from, for
  resuming) and results.json (Gradescope: automatic items only), result.json last, both atomic.
- `write_gradebook`: grades.csv (one row per student), manual.csv (one row per student and manual
  item, for TAs to fill in, with the grader's note where the pack makes one: grader/report/notes.py)
  and every feedback.md, from the result files and DIR/batch.json.
- `merge_manual`: fold a filled manual.csv into every result.json; the whole file is checked first
  and nothing is applied if any row is wrong.

A manual item marked by a TA changes status (manual -> passed/partial/failed); which items are manual
comes from the rubric, so the automatic totals stay automatic.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path

from . import feedback
from ..records import GradeReport, automatic_totals
from .results import gradescope_dict, report_from_dict, result_dict, validate_result, write_json_atomic

MANIFEST = "batch.json"
GRADES_CSV = "grades.csv"
MANUAL_CSV = "manual.csv"
GRADES_COLUMNS = ["student", "auto_score", "auto_max", "manual_score", "manual_pending", "late_days",
                  "grace_days_used", "penalty", "final_score", "max_score", "status", "error", "source"]
# grader_note: what the grader measured that helps the TA (the pack's manual_notes hook); read-only
MANUAL_COLUMNS = ["student", "item", "title", "max_points", "points", "comment", "grader_note"]


def num(x) -> str:
    return "" if x is None else f"{round(float(x), 4):g}"


# --------------------------------------------------------------------------------------------------
# One student's result files
# --------------------------------------------------------------------------------------------------

def manual_ids_of(doc: dict | None, manual_ids: set[str]) -> set[str]:
    """The rubric's manual items plus this student's automatic items handed to a TA (an answers
    file that is absent: the item's `manual` flag, which stays once a TA marks it)."""
    return set(manual_ids) | {i["id"] for i in (doc or {}).get("items", []) if i.get("manual")}


def fix_totals(doc: dict, manual_ids: set[str]) -> dict:
    """Automatic totals over the rubric's automatic items only (a marked manual item keeps out)."""
    doc.update(automatic_totals(doc["items"], manual_ids_of(doc, manual_ids)))   # records.py: the one definition
    return doc


def write_result(folder: Path, report: GradeReport, batch_info: dict, manual_ids: set[str]) -> dict:
    doc = fix_totals(result_dict(report), manual_ids)
    doc["batch"] = batch_info
    automatic = replace(report, items=[i for i in report.items if i.id not in manual_ids and not i.manual])
    write_json_atomic(folder / "results.json", gradescope_dict(automatic))
    write_json_atomic(folder / "result.json", doc)          # last: its presence means done
    return doc


def load_result(folder: Path) -> dict | None:
    """A student's result.json if it is there and valid, else None."""
    try:
        doc = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or validate_result(doc):
        return None
    return doc


def manual_marks(doc: dict | None, manual_ids: set[str]) -> dict[str, dict]:
    """The TA marks already in a result (item id -> item), to carry over when it is regraded."""
    if not doc:
        return {}
    manual_ids = manual_ids_of(doc, manual_ids)
    return {i["id"]: i for i in doc.get("items", []) if i["id"] in manual_ids and i["status"] != "manual"}


def apply_mark(report: GradeReport, item_id: str, points: float, comment: str) -> None:
    for item in report.items:
        if item.id == item_id:
            item.points = round(float(points), 4)
            item.status = ("passed" if item.points >= item.max_points - 1e-9
                           else "failed" if item.points <= 1e-9 else "partial")
            item.feedback = comment or "Marked by a TA."
            return
    raise KeyError(item_id)


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------

def final_score(doc: dict, late: dict | None) -> dict:
    """Automatic + manual points, less the late penalty (a fraction of the score)."""
    manual_score = round(doc["score"] - doc["auto_score"], 4)
    penalty = (late or {}).get("penalty") or 0.0
    return {"auto_score": doc["auto_score"], "auto_max": doc["auto_max"], "manual_score": manual_score,
            "manual_pending": doc["manual_pending"], "penalty": penalty,
            "final_score": round(doc["score"] * (1 - penalty), 2), "max_score": doc["max_score"]}


def error_line(doc: dict) -> str:
    text = " | ".join(e.splitlines()[0] for e in doc.get("errors", []) if e.strip())
    return text[:300] + ("..." if len(text) > 300 else "")


# --------------------------------------------------------------------------------------------------
# The gradebook files
# --------------------------------------------------------------------------------------------------

def load_manifest(out: Path) -> dict:
    path = Path(out) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{out} holds no {MANIFEST}: run `grader batch` into it first")
    return json.loads(path.read_text(encoding="utf-8"))


def write_gradebook(out: Path, manifest: dict, manual_items: list) -> list[str]:
    """grades.csv, manual.csv and every feedback.md; returns warnings."""
    out = Path(out)
    manual_ids = {i.id for i in manual_items}
    rows, sheet, warnings = [], [], []
    for entry in manifest["students"]:
        student = entry["student"]
        doc = load_result(out / student)
        late = entry.get("late")
        if doc is None:
            rows.append({"student": student, "status": "missing", "source": entry.get("source", ""),
                         "error": "no valid result.json (the batch did not finish this student)"})
            continue
        final = final_score(doc, late)
        row = dict(final, student=student, status=doc["status"], error=error_line(doc),
                   source=entry.get("source", ""),
                   late_days=(late or {}).get("late_days"), grace_days_used=(late or {}).get("grace_days_used"))
        if row["late_days"] is None:
            row["grace_days_used"] = row["penalty"] = None
        rows.append(row)
        marked = manual_marks(doc, manual_ids)
        notes = {i["id"]: i.get("note", "") for i in doc.get("items", [])}
        for item_id, title, points in _sheet_items(doc, manual_items):
            got = marked.get(item_id)
            sheet.append({"student": student, "item": item_id, "title": title, "max_points": num(points),
                          "points": num(got["points"]) if got else "",
                          "comment": (got.get("feedback", "") if got else ""),
                          "grader_note": notes.get(item_id, "")})
        text = feedback.render(doc, late, final, (out / student / feedback.picture_file(doc)).exists(),
                               manual_ids_of(doc, manual_ids))
        (out / student / "feedback.md").write_text(text, encoding="utf-8")
    _write_csv(out / GRADES_CSV, GRADES_COLUMNS,
               [{k: (num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (v or ""))
                 for k, v in r.items()} for r in rows])
    existing = out / MANUAL_CSV
    if existing.exists() and _unmerged(existing, sheet):
        warnings.append(f"{existing} has marks that are not merged yet, so it was left as it is; run "
                        f"`grader merge-manual {out} {existing}` to fold them in")
    else:
        _write_csv(existing, MANUAL_COLUMNS, sheet)
    return warnings


def _sheet_items(doc: dict, manual_items: list) -> list[tuple[str, str, float]]:
    """(id, title, max points) of the items a TA marks for this student: the rubric's manual items,
    then the automatic items handed to a TA in this student's result."""
    rows = [(i.id, i.title, i.points) for i in manual_items]
    known = {i.id for i in manual_items}
    rows += [(i["id"], i["title"], i["max_points"]) for i in doc.get("items", [])
             if i.get("manual") and i["id"] not in known]
    return rows


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(path)


def _unmerged(path: Path, sheet: list[dict]) -> bool:
    """Does the manual.csv on disk hold marks that differ from what the results say?"""
    want = {(r["student"], r["item"]): (r["points"], r["comment"]) for r in sheet}
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    for row in rows:
        points, comment = (row.get("points") or "").strip(), (row.get("comment") or "").strip()
        if not points and not comment:
            continue
        have = want.get(((row.get("student") or "").strip(), (row.get("item") or "").strip()))
        if have is None:
            continue
        if comment != (have[1] or "").strip() or _float(points) != _float(have[0]):
            return True
    return False


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------
# merge-manual
# --------------------------------------------------------------------------------------------------

class ManualError(Exception):
    """The filled sheet has problems; `problems` lists every bad row. Nothing was applied."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s) in the filled sheet; nothing was applied")
        self.problems = problems


def read_marks(path: Path, students: set[str], manual_items: list,
               deferred: dict[str, dict[str, float]] | None = None) -> dict[tuple[str, str], tuple[float, str]]:
    """(student, item) -> (points, comment) from a filled sheet; raises ManualError listing every
    bad row. Rows with neither points nor a comment are not marked yet and are skipped.
    `deferred`: student -> {item: max points} of automatic items handed to a TA for that student."""
    rubric_maxima = {i.id: i.points for i in manual_items}
    deferred = deferred or {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManualError([f"{path} does not exist"]) from None
    except UnicodeDecodeError:
        raise ManualError([f"{path} is not UTF-8 text (save it as CSV UTF-8)"]) from None
    reader = csv.DictReader(text.splitlines())
    columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in ("student", "item", "points") if c not in columns]
    if missing:
        raise ManualError([f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns)})"])
    marks, problems = {}, []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        student, item = row.get("student", ""), row.get("item", "")
        points, comment = row.get("points", ""), row.get("comment", "")
        if not any(row.values()):
            continue
        where = f"line {line} ({student or '?'}, {item or '?'})"
        maxima = dict(rubric_maxima, **deferred.get(student, {}))
        bad = []
        if student not in students:
            bad.append(f"unknown student {student!r} (not in this batch)")
        if item not in maxima:
            bad.append(f"unknown manual item {item!r} (manual items: {', '.join(maxima)})")
        if not points:
            if comment:
                bad.append("a comment without points (give the points, or leave both empty)")
            elif not bad:
                continue
        else:
            value = _float(points)
            if value is None:
                bad.append(f"points {points!r} is not a number")
            elif item in maxima and not 0 <= value <= maxima[item] + 1e-9:
                bad.append(f"points {points} out of range 0..{num(maxima[item])}")
        if bad:
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        key = (student, item)
        if key in marks and marks[key] != (_float(points), comment):
            problems.append(f"{where}: marked twice with different points or comments")
            continue
        marks[key] = (_float(points), comment)
    if problems:
        raise ManualError(problems)
    return marks


def merge_manual(out: Path, filled: Path, manual_items: list) -> int:
    """Fold the TA's marks into every result.json; returns how many marks were applied."""
    out = Path(out)
    manifest = load_manifest(out)
    students = {e["student"] for e in manifest["students"]}
    manual_ids = {i.id for i in manual_items}
    deferred = {}
    for student in students:
        doc = load_result(out / student)
        deferred[student] = {i["id"]: i["max_points"] for i in (doc or {}).get("items", [])
                             if i.get("manual") and i["id"] not in manual_ids}
    marks = read_marks(filled, students, manual_items, deferred)
    by_student: dict[str, list] = {}
    for (student, item), mark in marks.items():
        by_student.setdefault(student, []).append((item, mark))
    docs, problems = {}, []
    for student in sorted(by_student):
        doc = load_result(out / student)
        if doc is None:
            problems.append(f"{student}: no valid result.json in {out / student} (grade the batch first)")
            continue
        ids = {i["id"] for i in doc["items"]}
        problems += [f"{student}: the result has no item {item!r}" for item, _ in by_student[student]
                     if item not in ids]
        docs[student] = doc
    if problems:
        raise ManualError(problems)
    for student, doc in docs.items():
        report = report_from_dict(doc)
        for item, (points, comment) in by_student[student]:
            apply_mark(report, item, points, comment)
        write_result(out / student, report, doc.get("batch", {}), manual_ids)
    return len(marks)
