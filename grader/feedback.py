"""Per-student feedback of a batch: `feedback.md` and the colourization picture (trusted side).

The picture shows, on a few validation images, rows: the greyscale input, the ground truth, the
student's trained model's output and the reference's output (both trained by the grader with the
same data, seed and steps). The student's predictions are hostile data: checked for shape and dtype,
and clipped to the colour indices, before they are drawn.
"""
from __future__ import annotations

import numpy as np

from .images import grid, write_png

PICTURE = "colourization.png"
PICTURE_PROBES = (("cnn_train", "CNN"), ("unet_train", "UNet"))
PICTURE_IMAGES = 6


def write_picture(results: dict, gold, folder) -> dict:
    """Draw the picture into `folder` from the probe answers; returns what feedback.md needs to
    say about it: {"picture": name, "picture_model": "CNN"} or {"picture_note": why not}."""
    why = []
    for key, model in PICTURE_PROBES:
        result = results.get(key)
        if result is None:
            continue
        if not result.ok:
            why.append(f"your {model} could not be trained ({(result.error or 'error').splitlines()[0][:200]})")
            continue
        try:
            image = _picture(result.arrays.get("pred"), gold, key)
        except ValueError as exc:
            why.append(f"your {model}'s predictions cannot be drawn: {exc}")
            continue
        except Exception as exc:                     # a picture must never stop the grading
            why.append(f"the picture could not be made ({type(exc).__name__}: {exc})")
            continue
        write_png(folder / PICTURE, image)
        return {"picture": PICTURE, "picture_model": model}
    return {"picture_note": "; ".join(why) or "the colourization models were not run"}


def _picture(pred, gold, key: str) -> np.ndarray:
    arrays = gold.inputs.arrays
    colours = np.asarray(arrays["colours"], dtype=np.float64)            # [NC, 3] in [0, 1]
    grey, truth = arrays["valid_x"], arrays["valid_y"]                   # [N, 1, 32, 32], [N, 32, 32]
    reference = gold.outputs[key].arrays["pred"]                         # [N, 32, 32]
    if not isinstance(pred, np.ndarray):
        raise ValueError("no predictions came back")
    if pred.shape != truth.shape:
        raise ValueError(f"shape {list(pred.shape)}, expected {list(truth.shape)}")
    if pred.dtype.kind not in "iu":
        raise ValueError(f"dtype {pred.dtype}, expected colour indices (integers)")
    nc = len(colours)
    student = np.clip(pred.astype(np.int64), 0, nc - 1)
    pick = np.unique(np.linspace(0, len(truth) - 1, PICTURE_IMAGES).round().astype(int))
    rows = [[grey[i, 0] for i in pick],
            [colours[truth[i]] for i in pick],
            [colours[student[i]] for i in pick],
            [colours[np.clip(reference[i].astype(np.int64), 0, nc - 1)] for i in pick]]
    return grid(rows, pad=2, scale=3)


# --------------------------------------------------------------------------------------------------
# feedback.md
# --------------------------------------------------------------------------------------------------

def _pts(x: float) -> str:
    return f"{round(x, 4):g}"


def _block(text: str) -> list[str]:
    fence = "````" if "```" in text else "```"
    return [fence, text.rstrip(), fence]


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

    if picture_exists:
        model = batch.get("picture_model", "CNN")
        lines += ["## Colourization: your model's output", "", f"![colourization]({PICTURE})", "",
                  f"Rows, top to bottom: the greyscale input, the ground truth, your {model}'s output "
                  f"and the reference {model}'s output, on {PICTURE_IMAGES} validation images. Both models "
                  f"were trained by the grader with the same data, seed and number of steps.", ""]
    elif batch.get("picture_note") and result["status"] != "error":
        lines += ["## Colourization: your model's output", "",
                  f"No picture: {batch['picture_note']}.", ""]

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
        lines.append("")
    if late:
        lines += ["## Late policy", "", late.get("sentence", ""), ""]
    notes = result.get("notes", [])
    if notes:
        lines += ["## Intake notes (how your files were read)", ""]
        lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
