"""HW5's feedback picture (see grader/pack.py, grader/feedback.py): what the student's code did,
drawn on the trusted side from what the worker returned (checked as hostile data first).

One picture, up to four panels, each drawn only when its parts came back:
  1. the first-layer weights run_q3 saved, as an 8x8 grid of 32x32 images (Q3.3);
  2. the confusion matrix of those weights on the held-out images (Q3.4; rows: true class A-Z 0-9);
  3. the boxes findLetters found on the first synthetic page (Q4.3), in red;
  4. run_q5's autoencoder: five held-out images of different classes (top) and its
     reconstructions (bottom) (Q5.3.1).

`manual_notes`, the TAs' notes on the manual items (grader/report/notes.py), points to these panels
and adds what the grader measured: q4.4's text (ocr.py), q5.3.2's PSNR.
"""
from __future__ import annotations

import numpy as np

from grader.checks.kit import script_answer
from grader.report.images import grid

from . import judge, measure, ocr

PICTURE = "hw5.png"
TITLE = "What your code did"
PANEL = 256                      # pixels: each panel is scaled to about this size
MAX_HIDDEN = 4096


def _panels(results: dict, gold) -> list[tuple[str, np.ndarray | None, str]]:
    """(what, image or None, why not) of each panel, in the picture's order."""
    out = []
    for what, draw in (("the first-layer weights (8x8 of 32x32)", _weights),
                       ("the confusion matrix on held-out images", _confusion),
                       ("the boxes findLetters found on a synthetic page", _boxes),
                       ("five held-out images and the autoencoder's reconstructions", _reconstructions)):
        try:
            out.append((what, draw(results, gold), ""))
        except Exception as exc:  # noqa: BLE001 - a panel that cannot be drawn is left out, with the reason
            out.append((what, None, str(exc)))
    return out


def picture(results: dict, gold) -> dict:
    """{"image", "picture", "picture_title", "picture_alt", "picture_caption"}, or {"picture_note"}."""
    panels, said, why = [], [], []
    for what, image, problem in _panels(results, gold):
        if image is None:
            why.append(f"{what}: {problem}")
        else:
            panels.append(image)
            said.append(what)
    if not panels:
        return {"picture_note": "nothing to draw: " + "; ".join(why), "picture_title": TITLE}
    image = grid([[p.astype(np.float64) / 255.0 for p in panels]], pad=8)
    caption = "Left to right: " + "; ".join(said) + "." + (f" Not drawn: {'; '.join(why)}." if why else "")
    return {"image": image, "picture": PICTURE, "picture_title": TITLE, "picture_alt": "HW5 results",
            "picture_caption": caption}


# ---------------------------------------------------------------------------------------- panels

def _answer(results: dict, key: str):
    result = results.get(key)
    if result is None or not result.ok:
        raise ValueError(f"{key} did not run" if result is None else (result.error or "it failed")[:200])
    return script_answer(result)


def _q3_weights(results: dict) -> dict:
    w = measure.q3_weights(_answer(results, "script/run_q3"))
    if w is None:
        raise ValueError("run_q3 saved no weights")
    return w


def _first_layer(w: dict) -> np.ndarray:
    layers = [v for k, v in w.items() if str(k).startswith("W") and np.ndim(v) == 2 and np.shape(v)[0] == 1024]
    if not layers:
        raise ValueError("no [1024, H] first layer among the saved weights")
    W = np.asarray(layers[0], dtype=np.float64)
    if W.shape[1] > MAX_HIDDEN or not np.isfinite(W).all():
        raise ValueError(f"a first layer of shape {list(W.shape)} that cannot be drawn")
    return W


def _weights(results: dict, gold) -> np.ndarray:
    W = _first_layer(_q3_weights(results))[:, :64]                       # [1024, <=64]
    tiles = []
    for j in range(W.shape[1]):
        img = W[:, j].reshape(32, 32).T                                   # stored transposed
        lo, hi = img.min(), img.max()
        tiles.append((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))
    rows = [tiles[r * 8:(r + 1) * 8] for r in range((len(tiles) + 7) // 8)]
    return grid(rows, pad=1, scale=1)


def _confusion(results: dict, gold) -> np.ndarray:
    w = _q3_weights(results)
    x, y = gold.inputs.arrays["holdout_x"], gold.inputs.arrays["holdout_y"]
    probs = judge.network_probs(w, x)
    if not np.isfinite(probs).all():
        raise ValueError("the saved weights give NaN or inf outputs")
    k = y.shape[1]
    conf = np.zeros((k, k))
    np.add.at(conf, (np.argmax(y, 1), np.argmax(probs, 1)), 1)
    conf /= np.maximum(conf.sum(1, keepdims=True), 1)
    img = 1.0 - conf                                                      # dark = many
    return grid([[img]], pad=0, scale=max(1, PANEL // k))


def _boxes(results: dict, gold) -> np.ndarray:
    result = results.get("q4/pages")
    if result is None or not result.ok:
        raise ValueError("findLetters did not run")
    page = np.asarray(gold.inputs.arrays["page/0"], dtype=np.float64) / 255.0   # [H, W, 3]
    found = result.arrays.get("q4/0/boxes")
    if found is None:
        raise ValueError("findLetters returned no boxes for the page")
    boxes = judge._boxes(found)[:2000]
    img = page.copy() if page.ndim == 3 else np.repeat(page[..., None], 3, axis=2)
    h, w = img.shape[:2]
    t = max(1, max(h, w) // 300)                                          # line width, in page pixels
    for y1, x1, y2, x2 in np.nan_to_num(boxes).astype(np.int64):
        y1, y2 = sorted((int(np.clip(y1, 0, h - 1)), int(np.clip(y2, 0, h - 1))))
        x1, x2 = sorted((int(np.clip(x1, 0, w - 1)), int(np.clip(x2, 0, w - 1))))
        for a, b in ((slice(y1, y1 + t), slice(x1, x2 + 1)), (slice(max(y2 - t + 1, 0), y2 + 1), slice(x1, x2 + 1)),
                     (slice(y1, y2 + 1), slice(x1, x1 + t)), (slice(y1, y2 + 1), slice(max(x2 - t + 1, 0), x2 + 1))):
            img[a, b] = (1.0, 0.0, 0.0)
    step = max(1, int(np.ceil(max(h, w) / (2 * PANEL))))
    return grid([[img[::step, ::step]]], pad=0)


def _reconstructions(results: dict, gold) -> np.ndarray:
    answer = _answer(results, "script/run_q5")
    p = measure.params_of(answer.value("global", "params"))
    x, y = gold.inputs.arrays["holdout_x"], gold.inputs.arrays["holdout_y"]
    labels = np.argmax(y, 1)
    classes = np.unique(labels)[:: max(1, len(np.unique(labels)) // 5)][:5]
    pick = [int(np.flatnonzero(labels == c)[0]) for c in classes]
    recon = judge.autoencoder_forward(p, np.asarray(x[pick], np.float64))
    if not np.isfinite(recon).all():
        raise ValueError("the reconstructions contain NaN or inf")
    recon = np.clip(recon, 0, 1)
    rows = [[np.asarray(x[i], np.float64).reshape(32, 32).T for i in pick],
            [r.reshape(32, 32).T for r in recon]]
    return grid(rows, pad=2, scale=3)


# ---------------------------------------------------------------------------------- TAs' notes

# manual item -> the picture's panel that shows what the TA marks (its index in _panels)
PANEL_OF = {"q3.3": 0, "q3.4": 1, "q4.3": 2, "q5.3.1": 3}


def manual_notes(results: dict, gold) -> dict:
    """The grader's notes on the manual items it can help with (grader/report/notes.py):
    q3.3, q3.4, q4.3, q5.3.1 point to the feedback picture's panel (or say why it is not drawn);
    q4.4 the text run_q4 extracted from a synthetic page, with its edit distance (ocr.py);
    q5.3.2 the validation PSNR the grader measured (for the TA only: held-out images)."""
    panels = _panels(results, gold)
    drawn = [i for i, (_, image, _) in enumerate(panels) if image is not None]
    notes: dict = {}
    for item, k in PANEL_OF.items():
        what, image, problem = panels[k]
        if image is None:
            notes[item] = f"Not in the feedback picture ({PICTURE}): {what} could not be drawn ({problem[:300]})."
        else:
            notes[item] = (f"The feedback picture ({PICTURE}), panel {drawn.index(k) + 1} of {len(drawn)} "
                           f"from the left: {what}." + _safely(_extra, item, results, gold))
    pages = gold.inputs.meta.get("pages") or []
    notes["q4.4"] = (_safely(ocr.note, results.get("script/run_q4"), pages[0]["lines"]) if pages
                     else "No synthetic page in this profile, so run_q4.py was not run.")
    notes["q5.3.2"] = {"ta": _safely(_psnr_note, results, gold), "student": ""}
    return notes


def _safely(make, *args) -> str:
    """One note's text; what the worker sent is hostile, so a note that cannot be made says why
    and the other notes stand."""
    try:
        return make(*args)
    except Exception as exc:  # noqa: BLE001
        return f" (The grader could not measure more: {type(exc).__name__}: {str(exc)[:200]}.)"


def _extra(item: str, results: dict, gold) -> str:
    """More than the pointer where it is cheap: the boxes' count and recall under q4.3, the most
    confused pairs under q3.4."""
    if item == "q4.3":
        found = judge._boxes(results["q4/pages"].arrays["q4/0/boxes"])
        truth = gold.inputs.meta["pages"][0]["boxes"]
        recall, precision, _ = judge.match_boxes(found, truth, 0.5)
        return (f" {len(found)} boxes for the page's {len(truth)} characters (recall {recall:.2f}, "
                f"precision {precision:.2f} at IoU 0.5).")
    if item != "q3.4":
        return ""
    w = _q3_weights(results)
    x, y = gold.inputs.arrays["holdout_x"], gold.inputs.arrays["holdout_y"]
    true, pred = np.argmax(y, 1), np.argmax(judge.network_probs(w, x), 1)
    pairs: dict = {}
    for t, p in zip(true, pred):
        if t != p:
            pairs[(int(t), int(p))] = pairs.get((int(t), int(p)), 0) + 1
    top = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    said = ", ".join(f"{_LETTERS[t]} read as {_LETTERS[p]} ({n}x)" for (t, p), n in top)
    return (f" Accuracy on {len(true)} held-out images: {np.mean(true == pred):.2f}"
            + (f"; most confused: {said}." if said else "."))


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"             # class i of NIST36


def _psnr_note(results: dict, gold) -> str:
    try:
        answer = _answer(results, "script/run_q5")
    except ValueError as exc:
        return f"No PSNR measured: {exc}."
    value, problem = measure.q5_psnr(answer, gold.inputs)
    if value is None:
        return f"No PSNR measured: {problem}."
    ref = gold.derived_meta.get("q5_psnr")
    return (f"Validation PSNR measured by the grader: {value:.2f} dB, on {len(gold.inputs.arrays['holdout_x'])} "
            f"held-out images, at the grader's training budget"
            + (f"; the reference under the same budget: {ref:.2f} dB" if isinstance(ref, (int, float)) else "")
            + ". The handout's ~15 dB is after its full 100 epochs.")

