"""Work that cannot change is not redone: the reference's trained result stands for a student's
model shown to be the same model.

What "the same" means is the pack's `same_model` hook (grader/pack.py), and it must be strict: the
untrained model's initial parameters bit-for-bit the reference's and the same function and gradients
under the harness's seeded weights, so that training it with the same loop, data and seed repeats
the reference's run. Its answer is then reused and the feedback says so; anything short of that is
trained for real. A pack without the hook trains everything.
"""
from __future__ import annotations

from ..records import ProbeResult


def reference_stands(gold_outputs: dict[str, ProbeResult], assignment: str):
    """A `reuse` callback for run_plan, or None if the pack has no `same_model` hook."""
    from .. import pack as packmod

    same_model = packmod.load(assignment).hook("same_model")
    if same_model is None:
        return None

    def reuse(spec, results):
        if not same_model(results.get(spec.reuse_if), gold_outputs.get(spec.reuse_if)):
            return None
        ref = gold_outputs.get(spec.key)
        if ref is None:
            return None
        return ProbeResult(spec.key, True, arrays=dict(ref.arrays), meta=dict(ref.meta, reused_reference=True))

    return reuse
