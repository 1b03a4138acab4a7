"""Per-student feedback of a batch: `feedback.md` and the pack's feedback picture (trusted side).

The picture is the pack's `feedback_picture` hook (grader/pack.py): from the probe answers and the
gold it returns an image and the words around it, or a note saying why there is none. What the
worker sent is hostile data; the hook checks it before drawing, and a hook that fails costs the
student nothing (the feedback says the picture could not be made).
"""
from __future__ import annotations

import numpy as np

from .images import write_png

DEFAULT_PICTURE = "picture.png"
_WORDS = ("picture", "picture_model", "picture_title", "picture_alt", "picture_caption", "picture_note")


def picture_file(doc: dict | None) -> str:
    """The picture's file name in a student's folder, from their result (a stale one is removed
    before a regrade)."""
    return ((doc or {}).get("batch") or {}).get("picture") or DEFAULT_PICTURE


def write_picture(results: dict, gold, folder, assignment: str) -> dict:
    """Draw the pack's picture into `folder` from the probe answers; returns what feedback.md says
    about it ({"picture": file name, "picture_title", "picture_caption", ...} or {"picture_note"}),
    {} for a pack without a picture."""
    from .. import pack as packmod

    hook = packmod.load(assignment).hook("feedback_picture")
    if hook is None:
        return {}
    try:
        made = hook(results, gold) or {}
        image = made.get("image")
        if image is not None:
            name = str(made.get("picture") or DEFAULT_PICTURE)
            if "/" in name or not name.endswith(".png"):
                raise ValueError(f"the picture's file name must be a plain .png name, not {name!r}")
            write_png(folder / name, np.asarray(image))
            made = dict(made, picture=name)
    except Exception as exc:  # noqa: BLE001 - a picture must never stop the grading
        return {"picture_note": f"the picture could not be made ({type(exc).__name__}: {exc})"}
    return {k: made[k] for k in _WORDS if k in made and (k != "picture" or image is not None)}


# --------------------------------------------------------------------------------------------------
# feedback.md
# --------------------------------------------------------------------------------------------------

def _pts(x: float) -> str:
    return f"{round(x, 4):g}"


def _block(text: str) -> list[str]:
    fence = "````" if "```" in text else "```"
    return [fence, text.rstrip(), fence]


def _note(text: str) -> list[str]:
    """The grader's note on a manual item, under its line: inline when short, else a block."""
    text = text.strip()
    if not text:
        return []
    if "\n" not in text:
        return [f"  - What the grader measured: {text}"]
    # lines kept as they are (extracted text, a table): a fenced block inside the item's bullet
    lines = [line for part in _block(text) for line in part.splitlines()]
    return ["  - What the grader measured:", ""] + ["    " + line for line in lines] + [""]


def render(result: dict, late: dict | None, final: dict, picture_exists: bool,
           manual_ids: set[str]) -> str:
    """feedback.md of one student from their result.json, late assessment and final score.
    `manual_ids`: the rubric's manual items (a merged TA mark is no longer status "manual")."""
    items = result.get("items", [])
    batch = result.get("batch", {})
    auto = [i for i in items if i["status"] != "manual" and i["id"] not in manual_ids]
    manual = [i for i in items if i["status"] == "manual" or i["id"] in manual_ids]
    lines = [f"# {result['assignment']}: feedback for {result['student']}", ""]
    if batch.get("source"):
        lines += [f"Graded from `{batch['source']}` (profile `{result.get('profile', '')}`).", ""]
    lines += ["| part | points |", "| --- | --- |",
              f"| automatic tests | {_pts(result['auto_score'])} / {_pts(result['auto_max'])} |"]
    if manual:
        given = sum(i["points"] for i in manual if i["status"] != "manual")
        mmax = sum(i["max_points"] for i in manual)
        pending = result.get("manual_pending", 0)
        lines.append(f"| written questions (TAs) | {_pts(given)} / {_pts(mmax)}"
                     + (f", {_pts(pending)} still to be marked" if pending else "") + " |")
    if late and late.get("late_days") is not None:
        lines.append(f"| late penalty | {late['penalty']:.0%} ({late['penalty_days']} day(s) beyond grace) |")
    lines.append(f"| **total** | **{_pts(final['final_score'])} / {_pts(result['max_score'])}** |")
    lines.append("")

    if result["status"] == "error":
        lines += ["## Your submission could not be graded", ""]
        lines += [f"- {e}" for e in result.get("errors", [])] + [""]
    elif result.get("errors"):
        lines += ["## Problems on our side (flagged for staff; not your fault)", ""]
        lines += [f"- {e}" for e in result["errors"]] + [""]

    title = batch.get("picture_title", "Your model's output")
    if picture_exists:
        lines += [f"## {title}", "", f"![{batch.get('picture_alt', 'picture')}]({picture_file(result)})", ""]
        lines += [batch["picture_caption"], ""] if batch.get("picture_caption") else []
    elif batch.get("picture_note") and result["status"] != "error":
        lines += [f"## {title}", "", f"No picture: {batch['picture_note']}.", ""]

    passed = [i for i in auto if i["status"] == "passed"]
    todo = [i for i in auto if i["status"] != "passed"]
    if passed:
        lines += ["## Passed", ""]
        lines += [f"- `{i['id']}` {i['title']} ({_pts(i['points'])}/{_pts(i['max_points'])}"
                  + (" bonus" if i.get("bonus") else "") + ")" for i in passed]
        lines.append("")
    if todo and result["status"] != "error":
        lines += ["## Not passed", ""]
        for i in todo:
            lines += [f"### `{i['id']}` {i['title']}: {_pts(i['points'])}/{_pts(i['max_points'])}"
                      + (" (bonus)" if i.get("bonus") else ""), ""]
            lines += _block(i.get("feedback") or i["status"]) + [""]
    if manual:
        lines += ["## Written questions (marked by TAs from your report)", ""]
        for i in manual:
            if i["status"] == "manual":
                # an automatic item handed to a TA says why (e.g. no answers.toml: read from the report)
                note = (i.get("feedback") or "").strip()
                why = f". {note}" if note and note != "Graded by a TA from your report." else ""
                lines.append(f"- `{i['id']}` {i['title']}: not marked yet (out of {_pts(i['max_points'])}){why}")
            else:
                comment = (i.get("feedback") or "").strip()
                lines.append(f"- `{i['id']}` {i['title']}: {_pts(i['points'])}/{_pts(i['max_points'])}"
                             + (f". {comment}" if comment else ""))
            lines += _note(i.get("student_note") or "")
        lines.append("")
    if late:
        lines += ["## Late policy", "", late.get("sentence", ""), ""]
    notes = result.get("notes", [])
    if notes:
        lines += ["## Intake notes (how your files were read)", ""]
        lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
