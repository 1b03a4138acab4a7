"""Work that cannot change is not redone: the reference's trained result stands for a student's
model shown to be the same model.

"The same" is strict: the untrained model's initial parameters are bit-for-bit the reference's
(same shapes, same order, same random draws under the harness's seed), and with the harness's
seeded weights its outputs and input gradients match in eval mode and in training mode, and so do
the gradients the harness's loss sends to its parameters on a training-size batch (a model with
frozen parameters, or one right only for the probe's small batch, computes the same function but
does not train like the reference). Training such a model with the same loop, data and seed repeats
the reference's run, so its answer is reused and the feedback says so. Anything short of that is
trained for real.
"""
from __future__ import annotations

from .compare import allclose
from .records import ProbeResult

TOLERANCE = 1e-5
COMPARED = ("out", "grad", "train_out", "param_grad")


def same_model(answer: ProbeResult | None, gold: ProbeResult | None) -> bool:
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


def reference_stands(gold_outputs: dict[str, ProbeResult]):
    """A `reuse` callback for run_plan."""

    def reuse(spec, results):
        if not same_model(results.get(spec.reuse_if), gold_outputs.get(spec.reuse_if)):
            return None
        ref = gold_outputs.get(spec.key)
        if ref is None:
            return None
        return ProbeResult(spec.key, True, arrays=dict(ref.arrays), meta=dict(ref.meta, reused_reference=True))

    return reuse
