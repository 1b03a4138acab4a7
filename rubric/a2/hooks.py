"""Assignment 2's hooks (see grader/pack.py): the feedback picture, the cost estimate of the batch
planner and the "same model as the reference" test. Trusted side.
"""
from __future__ import annotations

import numpy as np

from grader.checks.compare import allclose
from grader.report.images import grid
from grader.batch.schedule import ROLE, TRAINS, model_code

# ---------------------------------------------------------------------------------- the picture
# On a few validation images, rows: the greyscale input, the ground truth, the student's trained
# model's output and the reference's output (both trained by the grader with the same data, seed and
# steps). The student's predictions are hostile data: checked for shape and dtype, and clipped to the
# colour indices, before they are drawn.

PICTURE = "colourization.png"
PICTURE_PROBES = (("cnn_train", "CNN"), ("unet_train", "UNet"))
PICTURE_IMAGES = 6
TITLE = "Colourization: your model's output"


def picture(results: dict, gold) -> dict:
    """{"image", "picture", "picture_title", "picture_alt", "picture_caption"}, or {"picture_note"}."""
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
        caption = (f"Rows, top to bottom: the greyscale input, the ground truth, your {model}'s output "
                   f"and the reference {model}'s output, on {PICTURE_IMAGES} validation images. Both models "
                   f"were trained by the grader with the same data, seed and number of steps.")
        return {"image": image, "picture": PICTURE, "picture_model": model, "picture_title": TITLE,
                "picture_alt": "colourization", "picture_caption": caption}
    return {"picture_note": "; ".join(why) or "the colourization models were not run", "picture_title": TITLE}


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


# ------------------------------------------------------------------------------- the cost model
# Each of the CNN and UNet classes that is not the reference's, as parsed (line numbers, comments and
# docstrings aside) together with the module's classes and functions it uses (MyConv2d), is expected
# to train (a model equal to the reference's usually has the reference's training result reused);
# otherwise the cost grows with the roles the submission fills.

TRAINED_MODELS = ("CNN", "UNet")


class CostModel:
    def __init__(self, pack):
        ref = pack.reference / "colourization.py" if pack.reference is not None else None
        text = ref.read_text() if ref is not None and ref.is_file() else ""
        self.reference = {m: model_code(text, m) for m in TRAINED_MODELS}

    def cost(self, sub) -> float:
        cost = ROLE * len(sub.modules)
        if "colourization" in sub.modules:
            mine = sub.modules["colourization"].read_text(errors="replace")
            cost += sum(TRAINS for m in TRAINED_MODELS
                        if self.reference[m] is None or model_code(mine, m) != self.reference[m])
        return cost


def cost_model(pack) -> CostModel:
    return CostModel(pack)


# ------------------------------------------------------------------------------ the same model
# "The same" is strict: the untrained model's initial parameters are bit-for-bit the reference's
# (same shapes, same order, same random draws under the harness's seed), and with the harness's
# seeded weights its outputs and input gradients match in eval mode and in training mode, and so do
# the gradients the harness's loss sends to its parameters on a training-size batch.

TOLERANCE = 1e-5
COMPARED = ("out", "grad", "train_out", "param_grad")


def same_model(answer, gold) -> bool:
    if answer is None or gold is None or not answer.ok:
        return False
    if not answer.meta.get("init_digest") or answer.meta.get("init_digest") != gold.meta.get("init_digest"):
        return False
    for name in COMPARED:
        if name not in answer.arrays or name not in gold.arrays:
            return False
        if not allclose(answer.arrays[name], gold.arrays[name], TOLERANCE, TOLERANCE).ok:
            return False
    return True
