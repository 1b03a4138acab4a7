"""Gold computed on the trusted side from the reference's answers: what the relative thresholds
compare with (the reference under the same budget, data and seed), measured by measure.py exactly
as a student's answer is."""
from __future__ import annotations

from grader.checks.kit import script_answer

from . import measure, ocr


def _boxes(result) -> dict:
    return {int(k.split("/")[1]): v for k, v in result.arrays.items()
            if k.startswith("q4/") and k.endswith("/boxes") and k.split("/")[1].isdigit()}


def derive(inputs, outputs) -> tuple[dict, dict]:
    meta, arrays = {}, {}
    if "script/run_q3" in outputs:
        # the reference's trained weights: run_q4's q3_weights.pickle for the TA's note on q4.4 (ocr.py)
        arrays.update(ocr.weights_derived(script_answer(outputs["script/run_q3"])))
        v = measure.q3_accuracy(script_answer(outputs["script/run_q3"]), inputs)
        meta["q3_accuracy"] = round(float(v.value), 4) if v.ok else None
    if "script/run_q5" in outputs:
        value, _ = measure.q5_psnr(script_answer(outputs["script/run_q5"]), inputs)
        meta["q5_psnr"] = round(float(value), 4) if value is not None else None
    if "script/run_q6_1" in outputs:
        value, _ = measure.q6_accuracy(outputs["script/run_q6_1"], inputs)
        meta["q6_accuracy"] = round(float(value), 4) if value is not None else None
    if "q4/pages" in outputs:
        rec, prec = measure.page_rates(_boxes(outputs["q4/pages"]), inputs.meta["pages"], 0.5)
        meta["q4_recall"], meta["q4_precision"] = rec, prec
    return arrays, meta
