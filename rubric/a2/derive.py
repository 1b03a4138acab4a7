"""Gold that is computed from the reference's answers and the inputs, on the trusted side."""
from __future__ import annotations

import numpy as np

from grader.checks.compare import accuracy

from . import rnnmath
from .plan import INIT_PREFIX

SR_FACTOR = 4   # two 2x average-poolings


def derive(inputs, outputs) -> tuple[dict, dict]:
    arrays, meta = {}, {"accuracy": {}, "accuracy_runs": {}}
    for key, result in outputs.items():
        if key.endswith("_train"):
            # the reference's runs from each init seed (0 first); the threshold is their lowest
            runs = [result]
            while f"{key}/{INIT_PREFIX}{len(runs)}" in outputs:
                runs.append(outputs[f"{key}/{INIT_PREFIX}{len(runs)}"])
            accs = [round(accuracy(r.arrays["pred"], inputs.arrays["valid_y"]).value, 4) for r in runs]
            meta["accuracy_runs"][key] = accs
            meta["accuracy"][key] = min(accs)
    w = {k: inputs.arrays[k] for k in ("Wxh", "Whh", "Why", "bh", "by")}
    chars = inputs.meta["chars"]
    for ctx in inputs.meta["sample_contexts"]:
        h = inputs.arrays[ctx["h"]]
        arrays[f"sample_p/{ctx['name']}"] = rnnmath.probs(w, h, ctx["seed_ix"], ctx["alpha"])
        arrays[f"sample_p_divided/{ctx['name']}"] = rnnmath.probs(w, h, ctx["seed_ix"], 1.0 / ctx["alpha"])
    zero = np.zeros((w["Whh"].shape[0], 1))
    for i, ctx in enumerate(inputs.meta["complete_contexts"]):
        arrays[f"complete_p/{i}"] = rnnmath.completion_probs(w, chars, ctx["starter"])
        arrays[f"complete_p_last/{i}"] = rnnmath.probs(w, zero, chars.index(ctx["starter"][-1]))
    from reference.a2 import min_char_rnn

    analysis = min_char_rnn.analyse_following(*(w[k] for k in ("Wxh", "Whh", "Why", "bh", "by")),
                                              {c: i for i, c in enumerate(chars)}, ":")
    meta["colon"] = _jsonable(analysis)
    meta["colon_ix"] = {c: chars.index(c) for c in (":", "\n", " ")}
    size = 32 // SR_FACTOR
    meta["sr_resolution"] = {"input": f"{size}x{size}", "output": "32x32"}
    return arrays, meta


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
