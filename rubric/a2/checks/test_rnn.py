"""r1 / r2: temperature sampling and string completion on the char-RNN snapshot.

Statistical checks: the student's draws are compared with the model's exact distribution by
chi-square goodness-of-fit tests whose false-alarm rate for a correct function is the rubric's
`alpha_test`; drawing exactly like the reference (the same numpy calls under the same seed) passes
outright. Every step of a generated sequence is judged: the first character by the `*_hot/_cold` and
`conditions_on_starter` checks, the later ones, each given the characters drawn before it, by the
`feeds_back` checks.

One bug, one deduction: a wrong temperature is charged by the first-character checks only (the
later steps are accepted at whatever inverse temperature alpha, 1/alpha or 1 they follow); a
completion that starts from the wrong state is charged by `conditions_on_starter` only (the later
steps are accepted from either start).

The temperature's convention follows the student's parameter name (the worker reports it):
`alpha`/`beta` (and the handout's 4th positional argument) multiply the logits, so they are called
with alpha; `temperature`/`temp`/`T`/`tau` divide them, so they are called with 1/alpha. A
temperature-named parameter that the student uses as the handout's multiplier (softmax(temp * z)) is
also accepted: the handout's own formula is never wrong.
"""
from __future__ import annotations

import numpy as np
from conftest import expect, require

from grader.checks.compare import chi_square
from rubric.a2 import rnnmath


def statistical_problem(draws, reference_draws, probs, mistake_probs, alpha_test):
    """None when the draws are right (identical to the reference's, or fitting `probs`); else the
    failed fit and whether the draws fit the common mistake's distribution instead."""
    if np.array_equal(draws, reference_draws):
        return None
    fit = chi_square(np.asarray(draws).ravel(), probs, alpha_test)
    if fit.ok:
        return None
    return fit, chi_square(np.asarray(draws).ravel(), mistake_probs, alpha_test).ok


def _weights(run):
    return {k: np.asarray(run.gold.inputs.arrays[k], dtype=np.float64) for k in ("Wxh", "Whh", "Why", "bh", "by")}


def _assumed(meta) -> str:
    name, convention = meta.get("temperature"), meta.get("convention")
    if not name:
        return ""
    if convention == "divides":
        return (f" (`{name}` was taken as a temperature, which divides the logits, so it was called "
                f"with {name} = 1/alpha)")
    return f" (`{name}` was taken as the handout's alpha, which multiplies the logits)"


def check_sample(run, name):
    key = f"rnn_sample/{name}"
    answer = run.answer(key)
    require(answer)
    ctx = next(c for c in run.gold.inputs.meta["sample_contexts"] if c["name"] == name)
    meta = answer.meta
    draws, reference = answer.arrays["draws"], run.expected(key).arrays["draws"]
    if np.array_equal(draws, reference):
        return
    alpha_test = run.params("r1.sample")["alpha_test"]
    right, divided = run.gold.derived[f"sample_p/{name}"], run.gold.derived[f"sample_p_divided/{name}"]
    problem = statistical_problem(draws[:, 0], reference[:, 0], right, divided, alpha_test)
    if problem is None:
        return
    fit, fits_divided = problem
    if fits_divided and meta.get("convention") == "divides":
        return          # softmax(temp * z) with a temperature-named parameter: the handout's formula
    function = meta.get("signature") or meta.get("function", "sample")
    if fits_divided:
        hint = (" They follow softmax(z / alpha) instead: the handout multiplies the logits by alpha "
                "(1/alpha is the temperature).")
    else:
        hint = ""
    expect(False, f"{function} at alpha = {ctx['alpha']}{_assumed(meta)}: the first character drawn: "
                  f"{fit.detail}; expected draws from softmax(alpha * z).{hint}")


def test_sample_hot(run):
    check_sample(run, "hot")


def test_sample_cold(run):
    check_sample(run, "cold")


def test_sample_feeds_back(run):
    """The characters after the first, each given the ones drawn before it (at the inverse
    temperature the draws follow: a wrong temperature is the other checks' deduction)."""
    w = _weights(run)
    contexts = run.gold.inputs.meta["sample_contexts"]
    alpha_test = run.params("r1.sample")["alpha_test"] / len(contexts)
    for ctx in contexts:
        key = f"rnn_sample/{ctx['name']}"
        answer = run.answer(key)
        require(answer)
        draws = answer.arrays["draws"]
        if draws.shape[1] < 2 or np.array_equal(draws, run.expected(key).arrays["draws"]):
            continue
        h, alpha = run.gold.inputs.arrays[ctx["h"]], ctx["alpha"]
        fits = [rnnmath.sequential_fit(draws, rnnmath.path_probs(w, h, ctx["seed_ix"], draws, beta), alpha_test)
                for beta in (alpha, 1.0 / alpha, 1.0)]
        if any(ok for ok, _, _ in fits):
            continue
        hint = _feedback_hint(w, h, ctx["seed_ix"], draws, alpha, alpha_test)
        function = answer.meta.get("signature") or answer.meta.get("function", "sample")
        expect(False, f"{function} at alpha = {ctx['alpha']}: {fits[0][2]}: after each draw, the drawn "
                      f"character must be fed back as the next input and h carried on to the next "
                      f"step.{hint}")


def _feedback_hint(w, h, seed_ix, draws, beta, alpha_test) -> str:
    if rnnmath.sequential_fit(draws, rnnmath.path_probs(w, h, seed_ix, draws, beta, feed_input=False),
                              alpha_test)[0]:
        return (" They fit a generator whose input stays the seed character: the drawn character is "
                "not fed back (x is not updated after a draw).")
    if rnnmath.sequential_fit(draws, rnnmath.path_probs(w, h, seed_ix, draws, beta, carry_h=False),
                              alpha_test)[0]:
        return (" They fit a generator that starts every step from the initial h: the hidden state "
                "is not carried from step to step.")
    return ""


def test_complete_conditions_on_starter(run):
    for i, ctx in enumerate(run.gold.inputs.meta["complete_contexts"]):
        key = f"rnn_complete/{i}"
        answer = run.answer(key)
        require(answer)
        first = answer.arrays["first"]
        expect(bool((first >= 0).all()), f"completing {ctx['starter']!r} returned an empty string")
        problem = statistical_problem(first, run.expected(key).arrays["first"],
                                      run.gold.derived[f"complete_p/{i}"],
                                      run.gold.derived[f"complete_p_last/{i}"],
                                      run.params("r2.complete")["alpha_test"])
        if problem is None:
            continue
        fit, last_only = problem
        hint = (" They look conditioned on the last character only: run the RNN over the whole "
                "starter string to get h first." if last_only else "")
        if not hint and _fits_last_read_twice(run, ctx["starter"], first):
            hint = (" They fit a generator that reads the whole starter and then feeds its last "
                    "character once more: the last character is the input of the first step, so "
                    "build h on all but the last character.")
        function = answer.meta.get("signature") or answer.meta.get("function", "complete")
        expect(False, f"{function}: the first character generated after {ctx['starter']!r}: "
                      f"{fit.detail}; expected the RNN's distribution after the whole starter.{hint}")


def _fits_last_read_twice(run, starter, first) -> bool:
    w, chars = _weights(run), run.gold.inputs.meta["chars"]
    p = rnnmath.probs(w, rnnmath.hidden_after(w, chars, starter), chars.index(starter[-1]))
    return chi_square(np.asarray(first).ravel(), p, run.params("r2.complete")["alpha_test"]).ok


def test_complete_feeds_back(run):
    """The characters after the first, each given the ones generated before it (from any of the
    common start states: conditioning on the starter is the other check's deduction)."""
    w = _weights(run)
    chars = run.gold.inputs.meta["chars"]
    contexts = run.gold.inputs.meta["complete_contexts"]
    alpha_test = run.params("r2.complete")["alpha_test"] / len(contexts)
    zero = np.zeros((w["Whh"].shape[0], 1))
    for i, ctx in enumerate(contexts):
        key = f"rnn_complete/{i}"
        answer = run.answer(key)
        require(answer)
        draws = answer.arrays.get("draws")
        if draws is None or draws.shape[1] < 2 or np.array_equal(draws, run.expected(key).arrays["draws"]):
            continue
        starter = ctx["starter"]
        last = chars.index(starter[-1])
        # the right start, the starter's last character only, the last character read twice
        starts = (rnnmath.hidden_after(w, chars, starter[:-1]), zero, rnnmath.hidden_after(w, chars, starter))
        fits = [rnnmath.sequential_fit(draws, rnnmath.path_probs(w, h, last, draws), alpha_test) for h in starts]
        if any(ok for ok, _, _ in fits):
            continue
        hint = _feedback_hint(w, starts[0], last, draws, 1.0, alpha_test)
        function = answer.meta.get("signature") or answer.meta.get("function", "complete")
        expect(False, f"{function} completing {starter!r}: {fits[0][2]}: after each generated "
                      f"character, feed it back as the next input and carry h on.{hint}")


def test_complete_length(run):
    for i, ctx in enumerate(run.gold.inputs.meta["complete_contexts"]):
        answer = run.answer(f"rnn_complete/{i}")
        require(answer)
        run.trust_facts()
        lengths = sorted(set(answer.arrays["lengths"].tolist()))
        shown = (str(lengths) if len(lengths) <= 4 else
                 f"between {lengths[0]} and {lengths[-1]} ({len(lengths)} different lengths)")
        # `length: at least`: the student's length parameter is a minimum (e.g. `minlength`)
        at_least = answer.meta.get("length") == "at least"
        ok = lengths[0] >= ctx["n"] if at_least else lengths == [ctx["n"]]
        expect(ok, f"{answer.meta.get('signature') or answer.meta.get('function')} "
                   f"asked for {ctx['n']} characters after {ctx['starter']!r} "
                   f"returned {shown}; expected {'at least ' if at_least else ''}{ctx['n']} "
                   f"new characters (with or without the starter in front)")
