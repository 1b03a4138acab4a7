"""q2.5 judged on the data the gradient checker used (rubric/hw5/verdicts._q2_checker_subset over
judge.checker_data / checker_error / one_sided_step): the starter lets a checker run on one batch
or one example of the toy data; its numbers are then the gradient of the loss on those examples.
Hand-built checkers on run_q2's toy data: on one example, a batch of 5, all of it, a sum or a mean
pass; one-sided differences, a doubled step, gradients at other parameters and garbage fail."""
from __future__ import annotations

import numpy as np
import pytest

from rubric.hw5 import judge, verdicts

LIMIT = 1e-4        # rubric.toml's q2.5 max_total_error
KEYS = ("Wlayer1", "blayer1", "Woutput", "boutput")


def toy():
    """run_q2's toy data (its generator, seeded) and a Xavier-initialised 2-25-4 network."""
    rng = np.random.RandomState(0)
    groups = [rng.multivariate_normal(m, c, 10) for m, c in
              (([3.6, 40], [[0.05, 0], [0, 10]]), ([3.9, 10], [[0.01, 0], [0, 5]]),
               ([3.4, 30], [[0.25, 0], [0, 5]]), ([2.0, 10], [[0.5, 0], [0, 10]]))]
    x = np.vstack(groups)
    y = np.eye(4)[np.repeat(np.arange(4), 10)]
    params = {}
    for name, (i, o) in (("layer1", (2, 25)), ("output", (25, 4))):
        bound = np.sqrt(6.0 / (i + o))
        params["W" + name], params["b" + name] = rng.uniform(-bound, bound, (i, o)), np.zeros(o)
    return x, y, params


X, Y, PARAMS = toy()


def loss(p, xs, ys):
    """A student's forward pass and summed cross-entropy (numpy, as nn.py computes them)."""
    h = 1.0 / (1.0 + np.exp(-(xs @ p["Wlayer1"] + p["blayer1"])))
    z = h @ p["Woutput"] + p["boutput"]
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.sum(ys * np.log(probs))


def checker(rows, eps=1e-6, one_sided=False, mean=False, divide=2.0, params=PARAMS):
    """params['grad_' + k] as a checker on x[rows] leaves them (central differences by default)."""
    p = {k: np.array(params[k], dtype=np.float64) for k in KEYS}
    xs, ys = X[rows], Y[rows]
    f = (lambda: loss(p, xs, ys) / len(rows)) if mean else (lambda: loss(p, xs, ys))
    out = {}
    for k in KEYS:
        v, g = p[k], np.zeros_like(p[k])
        for i in np.ndindex(v.shape):
            saved = v[i]
            v[i] = saved + eps
            plus = f()
            v[i] = saved - eps
            minus = f()
            v[i] = saved
            g[i] = (plus - f()) / eps if one_sided else (plus - minus) / (divide * eps)
        out["grad_" + k] = g
    return out


def verdict(numerical):
    """q2.5's accuracy verdict as _q2 reaches it: the whole data first, then the checker's data."""
    _, exact = judge.q2_loss_and_gradients(PARAMS, X, Y)
    whole = judge.gradcheck_error(numerical, exact)
    if not whole:                       # NaN, wrong shapes: failed before any comparison
        return whole
    if whole.value < LIMIT:
        return verdicts.V(True, "whole data", whole.value)
    return verdicts._q2_checker_subset(PARAMS, X, Y, numerical, exact,
                                       verdicts.V(False, "whole data", whole.value), LIMIT)


def test_per_example_gradients_add_up_to_the_whole_data_gradient():
    G, keys, losses = judge.q2_example_gradients(PARAMS, X, Y)
    total, exact = judge.q2_loss_and_gradients(PARAMS, X, Y)
    assert G.shape == (40, 2 * 25 + 25 + 25 * 4 + 4) and keys == ["grad_" + k for k in KEYS]
    assert np.allclose(G.sum(0), np.concatenate([exact[k].ravel() for k in keys]), rtol=1e-12, atol=1e-12)
    assert abs(losses.sum() - total) < 1e-9


@pytest.mark.parametrize("rows", [[7], [33], [4, 10, 17, 25, 38]], ids=["one-class0", "one-class3", "batch5"])
def test_a_central_checker_on_part_of_the_data_passes_and_says_which(rows):
    v = verdict(checker(rows))
    assert v.ok and v.value < LIMIT, v.message
    where = f"example {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
    assert where in v.message and "on all 40 examples it would be" in v.message
    G, keys, _ = judge.q2_example_gradients(PARAMS, X, Y)
    found = judge.checker_data(checker(rows), G, keys)
    assert found.examples == rows and found.kind == "sum" and found.scale == 1.0


def test_the_handouts_error_on_one_example_counts_rounding_noise():
    """Why checker_error floors small entries: on one example of a saturated class most entries
    are ~0, and a correct checker's rounding noise scores ~1 each in the handout's measure."""
    rows = [7]
    G, keys, losses = judge.q2_example_gradients(PARAMS, X, Y)
    want = judge.CheckerData(rows, 1.0, "sum", 0.0).exact(G, keys, {"grad_" + k: PARAMS[k].shape for k in KEYS})
    num = checker(rows)
    assert judge.gradcheck_error(num, want).value > 100 * LIMIT
    assert judge.checker_error(num, want, float(losses[rows].sum())).value < LIMIT / 5


def test_a_checker_on_all_the_data_keeps_the_whole_data_verdict():
    v = verdict(checker(list(range(40))))
    assert v.ok and v.message == "whole data"


def test_a_mean_over_a_batch_passes_as_a_mean():
    rows = [2, 12, 22, 32, 39]
    v = verdict(checker(rows, mean=True))
    assert v.ok and "mean loss" in v.message, v.message
    G, keys, _ = judge.q2_example_gradients(PARAMS, X, Y)
    found = judge.checker_data(checker(rows, mean=True), G, keys)
    assert found.kind == "mean" and abs(found.scale - 0.2) < 1e-12


@pytest.mark.parametrize("rows", [[12], [33], [4, 10, 17, 25, 38]], ids=["one", "one-tiny-curvature", "batch5"])
@pytest.mark.parametrize("eps", [1e-5, 1e-6, 1e-7])
def test_one_sided_differences_on_part_of_the_data_fail(rows, eps):
    v = verdict(checker(rows, eps=eps, one_sided=True))
    assert not v.ok, v.message


def test_one_sided_differences_on_all_the_data_fail():
    """At the starter's eps (the gradcheck_one_sided mutant). At eps 1e-7 the whole-data error of
    one-sided differences (7e-5) is under the handout's 1e-4: the whole-data verdict, unchanged."""
    v = verdict(checker(list(range(40)), one_sided=True))
    assert not v.ok and v.message == "whole data"


def test_one_sided_differences_on_one_example_are_caught_by_the_hessian():
    """Example 33's loss is nearly flat: one-sided differences at eps 1e-6 stay under the threshold
    there (6.8e-5); their error along the Hessian's diagonal gives them away (here the least-squares
    fit does not take them for example 33 in the first place: two lines of defence)."""
    rows = [33]
    G, keys, losses = judge.q2_example_gradients(PARAMS, X, Y)
    want = judge.CheckerData(rows, 1.0, "sum", 0.0).exact(G, keys, {"grad_" + k: PARAMS[k].shape for k in KEYS})
    num = checker(rows, one_sided=True)
    assert judge.checker_error(num, want, float(losses[rows].sum())).value < LIMIT
    hess = judge.q2_hessian_diagonal(PARAMS, X[rows], Y[rows])
    step = judge.one_sided_step(num, want, hess, keys)
    assert step is not None and 0.5e-6 < step < 2e-6
    assert judge.one_sided_step(checker(rows), want, hess, keys) is None
    assert not verdict(num)


def test_a_doubled_step_fails():
    """(f(w + eps) - f(w - eps)) / eps: twice the gradient, neither a sum nor a mean."""
    assert not verdict(checker([4, 10, 17, 25, 38], divide=1.0))


def test_gradients_at_other_parameters_fail():
    moved = {k: v + 0.05 * np.random.RandomState(5).randn(*np.shape(v)) for k, v in PARAMS.items()}
    v = verdict(checker([4, 10, 17, 25, 38], params=moved))
    assert not v.ok and v.message == "whole data"


def test_garbage_fails():
    rng = np.random.RandomState(6)
    shapes = {"grad_" + k: PARAMS[k].shape for k in KEYS}
    for numbers in ({k: rng.randn(*s) for k, s in shapes.items()},
                    {k: np.ones(s) for k, s in shapes.items()},
                    {k: np.zeros(s) for k, s in shapes.items()},
                    {k: np.full(s, np.nan) for k, s in shapes.items()}):
        assert not verdict(numbers)
    G, keys, _ = judge.q2_example_gradients(PARAMS, X, Y)
    assert judge.checker_data({k: rng.randn(*s) for k, s in shapes.items()}, G, keys) is None
    # a mixture of examples that is not a subset (weights 1 and 0.5)
    mix = G[3] + 0.5 * G[20]
    at, numbers = 0, {}
    for k in keys:
        size = int(np.prod(shapes[k]))
        numbers[k] = mix[at:at + size].reshape(shapes[k])
        at += size
    assert judge.checker_data(numbers, G, keys) is None and not verdict(numbers)
