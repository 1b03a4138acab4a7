"""What the trusted side measures of a script probe's answer, the same way for the reference (gold,
derive.py) and for a student (the checks): so a threshold relative to the reference compares like
with like. Pure numpy over returned arrays (grader.checkkit.ScriptAnswer) and the gold inputs.
"""
from __future__ import annotations

import numpy as np

from . import judge

Q3_WEIGHTS = "q3_weights.pickle"


def as_tuple(value):
    """A cache as the worker returned it: a dict {"0", "1", "2"} (arrays of different shapes) or
    one stacked array [3, ...] (arrays of the same shape) back to the tuple (X, pre, post)."""
    if isinstance(value, dict) and all(str(i) in value for i in range(3)):
        return tuple(value[str(i)] for i in range(3))
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 3:
        return tuple(value)
    return value


def params_of(value) -> dict:
    """A returned `params` (dict of arrays, nested dicts for tuples) with its caches as tuples."""
    if not isinstance(value, dict):
        return {}
    return {k: (as_tuple(v) if str(k).startswith("cache_") else v) for k, v in value.items()}


def _weights(value) -> dict | None:
    """A dict holding a first layer from the 1024 pixels (W [1024, H]), else None."""
    if not isinstance(value, dict):
        return None
    w = {k: v for k, v in value.items() if isinstance(v, np.ndarray) and "_" not in str(k)}
    return w if any(str(k).startswith("W") and np.ndim(v) == 2 and np.shape(v)[0] == 1024
                    for k, v in w.items()) else None


def q3_weights_and_source(answer) -> tuple[dict | None, str]:
    """The weights run_q3 saved, and where they came from: q3_weights.pickle; else the pickle of
    another name or folder it wrote (`nn_weights.pickle`, `../out/...`: the engine's
    output_patterns); else, when it wrote none, its trained `params` global."""
    w = answer.value("file", Q3_WEIGHTS)
    if isinstance(w, dict) and w:
        return w, Q3_WEIGHTS
    for name in answer.facts.get("outputs_found", []):
        w = _weights(answer.value("file", name))
        if w is not None:
            return w, name
    w = _weights(answer.value("global", "params"))
    return (w, "params") if w is not None else (None, "")


def q3_weights(answer) -> dict | None:
    """The weights run_q3 saved (see q3_weights_and_source), else None."""
    return q3_weights_and_source(answer)[0]


def with_accumulators(params: dict, answer) -> dict:
    """params with momentum accumulators kept in a dict of their own (`M_params["W" + name]`,
    returned by the engine's all_dicts) added as 'm_' + name, where params has none."""
    params = dict(params)
    for name in answer.facts.get("dicts", []):
        other = answer.value("global", name)
        if not isinstance(other, dict):
            continue
        for k, v in other.items():
            if (k in params and "m_" + k not in params and isinstance(v, np.ndarray)
                    and np.shape(v) == np.shape(params[k]) and v is not params[k]
                    and not np.array_equal(v, params[k])):
                params["m_" + k] = v
    return params


def q3_hidden(weights: dict) -> list[int]:
    return [int(np.shape(v)[1]) for k, v in weights.items()
            if str(k).startswith("W") and np.ndim(v) == 2 and np.shape(v)[0] == 1024]


def q3_accuracy(answer, inputs) -> judge.Verdict:
    w = q3_weights(answer)
    if w is None:
        return judge.Verdict(False, "run_q3 wrote no q3_weights.pickle (a dict of its W and b arrays)")
    return judge.params_accuracy(w, inputs.arrays["holdout_x"], inputs.arrays["holdout_y"])


def q5_psnr(answer, inputs) -> tuple[float | None, str]:
    """(validation PSNR of the returned autoencoder on the held-out images, problem or "")."""
    p = params_of(answer.value("global", "params"))
    x = np.asarray(inputs.arrays["holdout_x"], dtype=np.float64)
    try:
        recon = judge.autoencoder_forward(p, x)
    except (ValueError, KeyError) as exc:
        return None, f"the autoencoder cannot be evaluated: {exc}"
    if not np.all(np.isfinite(recon)):
        return None, "the autoencoder's reconstructions contain NaN or inf"
    return judge.psnr(x, recon), ""


def q6_accuracy(result, inputs) -> tuple[float | None, str]:
    """The held-out accuracy of the predictions the script's model made (the raw probe result:
    `evaluate/model`, made in the worker from images without their labels)."""
    pred = result.arrays.get("evaluate/model")
    y = np.argmax(inputs.arrays["holdout_y"], axis=1)
    if pred is None:       # a model the engine found elsewhere (a local of a function, an attribute)
        found = [m for m in result.meta.get("models", []) if f"model/{m['where']}/out" in result.arrays
                 and result.arrays[f"model/{m['where']}/out"].shape == (y.size, 36)]
        found.sort(key=lambda m: m.get("input_shape") != [-1, 1024])   # the fully connected one first
        if found:
            pred = np.argmax(result.arrays[f"model/{found[0]['where']}/out"], axis=1)
    if pred is None:
        said = result.meta.get("evaluate/model") or "no torch model named `model` to evaluate"
        return None, said + (f" ({result.meta['error']})" if result.meta.get("error") else "")
    pred = np.asarray(pred).reshape(-1)
    if pred.shape != y.shape:
        return None, f"the model returned {pred.size} predictions for {y.size} images"
    return float(np.mean(pred == y)), ""


def page_rates(boxes_by_page: dict, pages: list[dict], iou: float) -> tuple[float, float]:
    """Recall and precision pooled over the synthetic pages (judge.match_pages)."""
    recall, precision, _ = judge.match_pages([boxes_by_page.get(k, np.zeros((0, 4))) for k in range(len(pages))],
                                             [page["boxes"] for page in pages], iou)
    return recall, precision
