"""r1 / r2: temperature sampling and string completion on the char-RNN snapshot.

Statistical checks: the student's draws are compared with the model's exact distribution by a
chi-square goodness-of-fit test whose false-alarm rate for a correct function is the rubric's
`alpha_test`; drawing exactly like the reference (the same numpy calls under the same seed) passes
outright.
"""
from __future__ import annotations

import numpy as np
from conftest import expect, require

from grader.compare import chi_square


def statistical_problem(draws, reference_draws, probs, mistake_probs, alpha_test):
    """None when the draws are right (identical to the reference's, or fitting `probs`); else the
    failed fit and whether the draws fit the common mistake's distribution instead."""
    if np.array_equal(draws, reference_draws):
        return None
    fit = chi_square(np.asarray(draws).ravel(), probs, alpha_test)
    if fit.ok:
        return None
    return fit, chi_square(np.asarray(draws).ravel(), mistake_probs, alpha_test).ok


def check_sample(run, name):
    key = f"rnn_sample/{name}"
    answer = run.answer(key)
    require(answer)
    ctx = next(c for c in run.gold.inputs.meta["sample_contexts"] if c["name"] == name)
    problem = statistical_problem(answer.arrays["draws"][:, 0], run.expected(key).arrays["draws"][:, 0],
                                  run.gold.derived[f"sample_p/{name}"],
                                  run.gold.derived[f"sample_p_divided/{name}"],
                                  run.params("r1.sample")["alpha_test"])
    if problem is None:
        return
    fit, divided = problem
    hint = (" They follow softmax(z / alpha) instead: the handout multiplies the logits by alpha "
            "(1/alpha is the temperature)." if divided else "")
    expect(False, f"{answer.meta.get('function', 'sample')}(h, seed_ix, n, alpha={ctx['alpha']}): "
                  f"{fit.detail}; expected draws from softmax(alpha * z).{hint}")


def test_sample_hot(run):
    check_sample(run, "hot")


def test_sample_cold(run):
    check_sample(run, "cold")


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
        expect(False, f"the first character generated after {ctx['starter']!r}: {fit.detail}; expected "
                      f"the RNN's distribution after the whole starter.{hint}")


def test_complete_length(run):
    for i, ctx in enumerate(run.gold.inputs.meta["complete_contexts"]):
        answer = run.answer(f"rnn_complete/{i}")
        require(answer)
        run.trust_facts()
        lengths = set(answer.arrays["lengths"].tolist())
        expect(lengths == {ctx["n"]}, f"{answer.meta.get('function')}({ctx['starter']!r}, {ctx['n']}) "
                                      f"returned {sorted(lengths)} characters; expected {ctx['n']} "
                                      f"new characters (with or without the starter in front)")
