"""The grader's notes on manual items: what it measured that helps the TA who marks them (trusted side).

The pack's `manual_notes` hook (grader/pack.py) gets the probe answers and the gold after the probes
ran and returns {manual item id: note}; a note is a string (for the TA and the student) or
{"ta": text, "student": text} (no "student", or "": for the TA only). The notes land on the items
(`ItemScore.note`, `.student_note`): result.json, manual.csv's `grader_note` column (what a TA
marks from), the console table, and feedback.md (the student's part only).

What the worker sent is hostile data; the hook checks it. A hook that raises, or returns something
that is not notes, costs the student nothing: the items whose probes feed it (the rubric's `probes`
of a manual item) get a note saying the notes could not be made, and the grading goes on.
"""
from __future__ import annotations

MAX_NOTE = 4000          # characters: a note is read by a person, in a CSV cell and in feedback.md


def _clip(text) -> str:
    text = str(text or "").strip()
    return text if len(text) <= MAX_NOTE else text[:MAX_NOTE - 20].rstrip() + "\n... (cut short)"


def _parse(value) -> tuple[str, str]:
    if isinstance(value, str):
        return _clip(value), _clip(value)
    if isinstance(value, dict) and set(value) <= {"ta", "student"} and isinstance(value.get("ta", ""), str) \
            and isinstance(value.get("student", ""), str):
        return _clip(value.get("ta", "")), _clip(value.get("student", ""))
    raise TypeError(f"a note must be a string or {{'ta': ..., 'student': ...}}, not {type(value).__name__}")


def manual_notes(assignment: str, results: dict, gold, noted: set[str] | frozenset = frozenset()) -> dict:
    """{item id: (note for the TA, note for the student)} from the pack's hook; {} for a pack without
    one. `noted`: the manual items whose probes feed the hook, which say so when it fails."""
    from .. import pack as packmod

    hook = packmod.load(assignment).hook("manual_notes")
    if hook is None:
        return {}
    try:
        made = hook(results, gold) or {}
        if not isinstance(made, dict):
            raise TypeError(f"the hook returned a {type(made).__name__}, not a dict of notes")
        return {str(k): _parse(v) for k, v in made.items()}
    except Exception as exc:  # noqa: BLE001 - a note must never stop the grading
        why = f"The grader's note could not be made ({type(exc).__name__}: {str(exc)[:300]}); mark from the report."
        return {item: (why, "") for item in noted}


def attach(items: list, notes: dict) -> None:
    """Put the notes on the manual items they name (a note for any other item is dropped: the
    automatic items speak through their checks)."""
    for item in items:
        if item.manual and item.id in notes:
            item.note, item.student_note = notes[item.id]
