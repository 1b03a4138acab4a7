"""Trusted-side judging for HW5: numpy and torch, no student code.

Every function here receives plain arrays that came back from the worker (the student's outputs)
and the inputs the trusted side chose, and answers a `Verdict`: passed or not, and a message that
says what was expected and what was found (never a hidden gold value). The checks of
rubric/hw5/checks/ (not written yet: they wait for the pack engine, see docs/hw5.md) call these.

    gold network maths      sigmoid, softmax, forward_gold, backwards_gold, q2_loss_and_gradients,
                            q2_example_gradients (torch; gradients by autograd)
    q2.1.2                  xavier_check
    q2.2.x                  sigmoid_check, forward_check, softmax_check, loss_acc_check
    q2.3.1                  compare_arrays (against backwards_gold)
    q2.4                    batches_check
    q2.5                    gradcheck_error, checker_data (the examples a checker used)
    q3.1 / q6.1.1           layer_chain, params_accuracy
    q4.2                    match_boxes, match_pages, boxes_check, pages_check, bw_check
    q4.4                    edit_distance, text_score
    q5.1                    autoencoder_structure_check, momentum_check, autoencoder_forward, psnr
    thresholds              relative_threshold
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grader.checks.kit import z_two_sided

ACTIVATIONS = ("sigmoid", "linear", "tanh", "relu")


@dataclass
class Verdict:
    ok: bool
    message: str = ""
    value: float | None = None     # the measured number (an accuracy, an error), for the note

    def __post_init__(self):
        self.ok = bool(self.ok)     # numpy booleans come in from comparisons

    def __bool__(self) -> bool:
        return self.ok


def _pass(value: float | None = None, message: str = "") -> Verdict:
    return Verdict(True, message, value)


def _fail(message: str, value: float | None = None) -> Verdict:
    return Verdict(False, message, value)


def _shape(a) -> str:
    return "x".join(map(str, np.shape(a))) or "a scalar"


def _finite_array(a, what: str) -> tuple[np.ndarray | None, Verdict | None]:
    if a is None:
        return None, _fail(f"{what} is None: not implemented?")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        return None, _fail(f"{what} is not a numeric array (got {type(a).__name__})")
    if not np.all(np.isfinite(arr)):
        return None, _fail(f"{what} contains NaN or inf")
    return arr, None


# ----------------------------------------------------------------------------------------------
# The handout's network (the gold): torch in float64, gradients by autograd
# ----------------------------------------------------------------------------------------------
# This module ships in the student bundle (the visible items are judged with it on a student's
# laptop), so the gold is not a numpy version of nn.py's functions: forward passes are torch's
# own operations and every gradient comes from torch.autograd, never a hand-written backward.
# torch is imported on first use: the checks that need no network maths do not pay for it.

def _torch():
    import torch

    return torch


def _t(a, grad: bool = False):
    """A float64 torch copy of an array (a leaf of autograd when `grad`)."""
    return _torch().tensor(np.asarray(a, dtype=np.float64), dtype=_torch().float64, requires_grad=grad)


def _np(t) -> np.ndarray:
    return t.detach().numpy().copy()


def _act(name: str, t):
    torch = _torch()
    return {"sigmoid": torch.sigmoid, "linear": lambda v: v, "tanh": torch.tanh, "relu": torch.relu}[name](t)


def _pre_of(name: str, post):
    """A pre-activation whose activation is `post` (the course's derivatives are functions of
    post_act; torch's sigmoid and tanh backward are too, so saturated 0/1 entries give 0)."""
    torch = _torch()
    return {"sigmoid": torch.logit, "tanh": torch.atanh}.get(name, lambda v: v)(post)


def sigmoid(x):
    return _np(_torch().sigmoid(_t(x)))


def activation(name: str, x):
    return _np(_act(name, _t(x)))


def softmax(x):
    """Row-wise softmax [N, C] of x [N, C]."""
    return _np(_torch().softmax(_t(x), dim=1))


def cross_entropy(y, probs) -> float:
    """The handout's loss: the total (not the mean) cross-entropy of probs against y."""
    torch = _torch()
    return float(-torch.sum(_t(y) * torch.log(_t(probs))))


def accuracy(y, probs) -> float:
    """The fraction of rows whose most probable class is the label's."""
    torch = _torch()
    return float((torch.argmax(_t(y), 1) == torch.argmax(_t(probs), 1)).double().mean())


def forward_gold(X, W, b, act: str = "sigmoid"):
    """(pre_act [N, C], post_act [N, C]) of X [N, D] @ W [D, C] + b [C]."""
    pre = _t(X) @ _t(W) + _t(b).reshape(-1)
    return _np(pre), _np(_act(act, pre))


def backwards_gold(delta, X, W, post, act: str = "sigmoid"):
    """(grad_W [D, C], grad_b [C], grad_X [N, D]) of sum(delta * post_act) for the layer
    post_act = act(X @ W + b) whose output is `post`: what backwards computes (through the
    activation first, summed over the N examples), by autograd."""
    torch = _torch()
    Xt, Wt = _t(X, grad=True), _t(W, grad=True)
    bt = torch.zeros(np.shape(W)[1], dtype=torch.float64, requires_grad=True)
    with torch.no_grad():      # the layer's own pre-activation, recovered from its output
        offset = _pre_of(act, _t(post)) - Xt @ Wt
    out = _act(act, Xt @ Wt + bt + offset)
    gW, gb, gX = torch.autograd.grad(torch.sum(_t(delta) * out), (Wt, bt, Xt))
    return _np(gW), _np(gb), _np(gX)


def _q2_loss(params: dict, x, y, hidden: str, output: str):
    """(loss tensor, leaves): the summed cross-entropy of run_q2's 2-25-4 network on x, y."""
    torch = _torch()
    leaves = {"grad_W" + hidden: _t(params["W" + hidden], grad=True),
              "grad_b" + hidden: _t(np.reshape(params["b" + hidden], -1), grad=True),
              "grad_W" + output: _t(params["W" + output], grad=True),
              "grad_b" + output: _t(np.reshape(params["b" + output], -1), grad=True)}
    W1, b1, W2, b2 = leaves.values()
    h = torch.sigmoid(_t(x) @ W1 + b1)
    logp = torch.log_softmax(h @ W2 + b2, dim=1)
    return -(_t(y) * logp).sum(dim=1), leaves


def q2_loss_and_gradients(params: dict, x, y, hidden: str = "layer1", output: str = "output"):
    """The summed cross-entropy of run_q2's 2-25-4 network (sigmoid, softmax) on x, y, and the
    exact gradient of every W and b: {'grad_Wlayer1': ..., ...} (b's 1-D)."""
    torch = _torch()
    per_example, leaves = _q2_loss(params, x, y, hidden, output)
    loss = per_example.sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return float(loss.detach()), {k: _np(g) for k, g in zip(leaves, grads)}


def q2_example_gradients(params: dict, x, y, hidden: str = "layer1", output: str = "output"):
    """(G [N, P], keys, losses [N]): row i is the exact gradient of example i's cross-entropy
    alone, every W and b flattened in the order of `keys` (q2_loss_and_gradients' keys), losses[i]
    that cross-entropy. The gradient of the loss summed over a subset S of the examples is the sum
    of S's rows."""
    torch = _torch()
    per_example, leaves = _q2_loss(params, x, y, hidden, output)
    rows = []
    for i in range(per_example.shape[0]):
        grads = torch.autograd.grad(per_example[i], list(leaves.values()), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return _np(torch.stack(rows)), list(leaves), _np(per_example)


def q2_hessian_diagonal(params: dict, x, y, hidden: str = "layer1", output: str = "output") -> np.ndarray:
    """[P]: the second derivative of the summed cross-entropy on x, y with respect to each W and b
    entry alone (flattened as q2_example_gradients), by autograd twice. A one-sided difference
    (f(w + eps) - f(w)) / eps is off from the gradient by eps/2 times it."""
    torch = _torch()
    per_example, leaves = _q2_loss(params, x, y, hidden, output)
    grads = torch.autograd.grad(per_example.sum(), list(leaves.values()), create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    out = np.empty(flat.shape[0])
    for j in range(flat.shape[0]):
        second = torch.autograd.grad(flat[j], list(leaves.values()), retain_graph=True, allow_unused=True)
        out[j] = float(torch.cat([(s if s is not None else torch.zeros_like(l)).reshape(-1)
                                  for s, l in zip(second, leaves.values())])[j])
    return out


# ----------------------------------------------------------------------------------------------
# q2.1.2 initialize_weights
# ----------------------------------------------------------------------------------------------

def init_shapes_check(W, b, in_size: int, out_size: int) -> Verdict:
    """W [in, out]; b a 1-D [out] array of zeros (the handout: not [1, out])."""
    Wa, bad = _finite_array(W, "W")
    if bad is not None:
        return bad
    if Wa.shape != (in_size, out_size):
        return _fail(f"W has shape {_shape(Wa)}; expected {in_size}x{out_size} ([in_size, out_size])")
    if b is None:
        return _fail("b is None: not implemented?")
    ba = np.asarray(b, dtype=np.float64)
    if ba.shape != (out_size,):
        return _fail(f"b has shape {_shape(ba)}; expected a 1-D array of {out_size} "
                     "(the handout: 'b should be a 1D array, not a 2D array with a singleton dimension')")
    if np.any(ba != 0):
        return _fail("b is not all zeros")
    return _pass()


def xavier_check(W, b, in_size: int, out_size: int, alpha: float = 1e-6) -> Verdict:
    """W [in, out] ~ U(-a, a), a = sqrt(6 / (in + out)); b [out] 1-D zeros.

    Statistical tests, each with false-alarm rate <= `alpha` for a correct implementation:
    the range (no |w| above a; max |w| within the order statistic's reach of a), the mean (z-test)
    and the variance a^2/3 = 2/(in+out) (z-test with the uniform's fourth moment)."""
    shapes = init_shapes_check(W, b, in_size, out_size)
    if not shapes:
        return shapes
    Wa = np.asarray(W, dtype=np.float64)
    n = Wa.size
    bound = math.sqrt(6.0 / (in_size + out_size))
    top = float(np.max(np.abs(Wa)))
    if top > bound * (1 + 1e-9):
        return _fail(f"a weight of magnitude {top:.4g} exceeds the Xavier uniform bound "
                     f"sqrt(6/(in+out)) = {bound:.4g}: not uniform on [-bound, bound]?", top)
    # P(max |w| < a (1 - d)) = (1 - d)^n for the uniform; choose d so that this is alpha
    reach = 1.0 - alpha ** (1.0 / n)
    if top < bound * (1 - reach):
        return _fail(f"the largest weight magnitude is {top:.4g}, well inside the Xavier bound {bound:.4g}: "
                     "is the range too narrow?", top)
    z = z_two_sided(alpha)
    var = bound ** 2 / 3.0
    mean = float(Wa.mean())
    if abs(mean) > z * math.sqrt(var / n):
        return _fail(f"the weights' mean is {mean:.4g}; expected 0 (zero-centred uniform)", mean)
    s2 = float(Wa.var())
    # Var[s^2] ~ (mu4 - var^2)/n with mu4 = a^4/5 for the uniform, i.e. 0.8 var^2 / n
    if abs(s2 - var) > z * math.sqrt(0.8 * var ** 2 / n) + 1e-12:
        return _fail(f"the weights' variance is {s2:.4g}; Xavier initialisation gives "
                     f"2/(in+out) = {var:.4g}", s2)
    return _pass(s2)


# ----------------------------------------------------------------------------------------------
# q2.2 sigmoid, forward, softmax, loss
# ----------------------------------------------------------------------------------------------

def compare_arrays(found, expected, what: str, rtol: float = 1e-6, atol: float = 1e-8) -> Verdict:
    arr, bad = _finite_array(found, what)
    if bad is not None:
        return bad
    exp = np.asarray(expected, dtype=np.float64)
    if arr.shape != exp.shape:
        return _fail(f"{what} has shape {_shape(arr)}; expected {_shape(exp)}")
    if not np.allclose(arr, exp, rtol=rtol, atol=atol):
        err = float(np.max(np.abs(arr - exp)))
        return _fail(f"{what} differs from the expected values (largest difference {err:.3g})", err)
    return _pass()


def sigmoid_check(x, out) -> Verdict:
    """sigmoid(x) elementwise; x should include extremes such as +-1000 (0 and 1 exactly enough)."""
    return compare_arrays(out, sigmoid(x), "sigmoid(x)", rtol=1e-7, atol=1e-12)


def forward_check(X, W, b, act: str, post, cache) -> Verdict:
    """The returned post-activation, and params['cache_'+name] == (X, pre_act, post_act)."""
    pre, gold_post = forward_gold(X, W, b, act)
    v = compare_arrays(post, gold_post, f"forward(..., activation={act}) output")
    if not v:
        return v
    if cache is None:
        return _fail("forward did not store params['cache_' + name]: backwards needs (X, pre_act, post_act)")
    if not isinstance(cache, (tuple, list)) or len(cache) != 3:
        return _fail("params['cache_' + name] should be the tuple (X, pre_act, post_act); "
                     f"found {type(cache).__name__} of length {len(cache) if hasattr(cache, '__len__') else '?'}")
    for got, want, what in zip(cache, (X, pre, gold_post), ("X", "pre_act", "post_act")):
        v = compare_arrays(got, want, f"cache entry {what}")
        if not v:
            return v
    return _pass()


def cache_check(X, post, cache) -> Verdict:
    """params['cache_'+name] is (X, pre_act, post_act): X the input, post_act the returned output,
    pre_act of the output's shape. Judged against the function's own output, so a wrong output
    (charged by the values check) does not fail this one too."""
    if cache is None:
        return _fail("forward did not store params['cache_' + name] = (X, pre_act, post_act): backwards needs it")
    if not isinstance(cache, (tuple, list)) or len(cache) != 3:
        return _fail("params['cache_' + name] should be the tuple (X, pre_act, post_act)")
    for got, want, what in ((cache[0], X, "X (the layer's input)"), (cache[2], post, "post_act (the returned output)")):
        v = compare_arrays(got, want, f"the cache's {what}", rtol=1e-12, atol=0)
        if not v:
            return v
    if np.shape(cache[1]) != np.shape(post):
        return _fail(f"the cache's pre_act has shape {_shape(cache[1])}; expected {_shape(post)}")
    return _pass()


def softmax_check(x, out, x_after=None) -> Verdict:
    """Row-wise softmax, stable for large inputs, the argument left as it was."""
    v = compare_arrays(out, softmax(x), "softmax(x)", rtol=1e-7, atol=1e-12)
    if not v:
        arr = np.asarray(out, dtype=np.float64) if out is not None else None
        if arr is not None and arr.shape == np.shape(x) and np.all(np.isfinite(arr)):
            if np.allclose(arr.sum(axis=0), 1.0) and not np.allclose(arr.sum(axis=1), 1.0):
                return _fail("softmax normalises each column; the handout's x is [examples, classes]: "
                             "normalise each row", v.value)
        return v
    if x_after is not None and not np.array_equal(np.asarray(x_after), np.asarray(x)):
        return _fail("softmax modified its argument in place (the caller's x changed)")
    return _pass()


def loss_acc_check(y, probs, loss, acc, rtol: float = 1e-6) -> Verdict:
    """loss = -sum(y * log(probs)) (the total, natural log), acc = fraction of argmax matches."""
    y, probs = np.asarray(y, np.float64), np.asarray(probs, np.float64)
    gold_loss, gold_acc = cross_entropy(y, probs), accuracy(y, probs)
    try:
        loss_f, acc_f = float(np.asarray(loss).reshape(())), float(np.asarray(acc).reshape(()))
    except (TypeError, ValueError):
        return _fail(f"compute_loss_and_acc should return two numbers; found {_shape(loss)} and {_shape(acc)}")
    if not math.isclose(loss_f, gold_loss, rel_tol=rtol, abs_tol=1e-9):
        if math.isclose(loss_f * y.shape[0], gold_loss, rel_tol=rtol):
            return _fail("the loss is the mean over the examples; the handout asks for the total "
                         "-sum(y log(probs))", loss_f)
        if math.isclose(loss_f, -gold_loss, rel_tol=rtol):
            return _fail("the loss has the wrong sign (expected -sum(y log(probs)) >= 0)", loss_f)
        return _fail(f"loss {loss_f:.6g} is not the summed cross-entropy -sum(y log(probs))", loss_f)
    if not math.isclose(acc_f, gold_acc, abs_tol=1e-9):
        if math.isclose(acc_f, gold_acc * 100, rel_tol=1e-9) and gold_acc > 0:
            return _fail("the accuracy is a percentage; expected a fraction in [0, 1]", acc_f)
        return _fail(f"accuracy {acc_f:.4g} is not the fraction of rows whose argmax matches the label's", acc_f)
    return _pass()


# ----------------------------------------------------------------------------------------------
# q2.4 get_random_batches
# ----------------------------------------------------------------------------------------------

def batches_check(x, y, batch_size: int, batches, x_after=None, y_after=None) -> Verdict:
    """A shuffled partition: (batch_x, batch_y) pairs, every example at most once and all but a
    dropped remainder (< batch_size) exactly once, every batch of the requested size except one
    partial last batch, rows of x still paired with their y, not in the original order (x should
    have >= 20 distinct rows, so a true shuffle keeps the order with negligible probability), and
    the caller's arrays untouched."""
    x, y = np.asarray(x), np.asarray(y)
    n = x.shape[0]
    if not isinstance(batches, (list, tuple)) or not batches:
        return _fail(f"get_random_batches returned {type(batches).__name__} "
                     f"{'(empty)' if hasattr(batches, '__len__') and not len(batches) else ''}; "
                     "expected a list of (batch_x, batch_y) tuples")
    index = {x[i].tobytes(): i for i in range(n)}
    if len(index) != n:
        raise ValueError("batches_check needs distinct rows of x")
    seen = []
    sizes = []
    for k, pair in enumerate(batches):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return _fail(f"batch {k} is not a (batch_x, batch_y) pair")
        bx, by = np.asarray(pair[0]), np.asarray(pair[1])
        if bx.ndim != 2 or bx.shape[1:] != x.shape[1:] or by.shape[1:] != y.shape[1:] or bx.shape[0] != by.shape[0]:
            return _fail(f"batch {k} has shapes {_shape(bx)} and {_shape(by)}; expected [B, {x.shape[1]}] "
                         f"and [B, {y.shape[1]}]")
        for r in range(bx.shape[0]):
            i = index.get(bx[r].astype(x.dtype).tobytes())
            if i is None:
                return _fail(f"batch {k} holds a row that is not an example of x")
            if not np.array_equal(by[r], y[i]):
                return _fail(f"batch {k}: an example's y is not its own label (x and y shuffled separately?)")
            seen.append(i)
        sizes.append(bx.shape[0])
    counts = np.bincount(seen, minlength=n)
    if counts.max() > 1:
        return _fail(f"{int((counts > 1).sum())} examples appear in more than one batch (sampling with "
                     "replacement?); each epoch should use every example exactly once")
    missing = int((counts == 0).sum())
    full = [s == batch_size for s in sizes]
    if not all(full[:-1]) or sizes[-1] > batch_size or sizes[-1] == 0:
        return _fail(f"batch sizes {sorted(set(sizes))}; expected {batch_size} for every batch but a "
                     "partial last one")
    if missing >= batch_size or (missing and sizes[-1] != batch_size):
        return _fail(f"{missing} of the {n} examples are in no batch")
    if seen == sorted(seen):
        return _fail("the batches keep the examples in their original order: not shuffled")
    if x_after is not None and not np.array_equal(np.asarray(x_after), x):
        return _fail("get_random_batches changed the caller's x (shuffled in place?)")
    if y_after is not None and not np.array_equal(np.asarray(y_after), y):
        return _fail("get_random_batches changed the caller's y (shuffled in place?)")
    return _pass()


# ----------------------------------------------------------------------------------------------
# q2.5 the gradient checker
# ----------------------------------------------------------------------------------------------

def gradcheck_error(numerical: dict, exact: dict, floor: float = 0.0) -> Verdict:
    """The handout's total relative error, sum |a - b| / max(|a|, |b|), of the student's numerical
    gradients against the exact ones (the value run_q2 prints; 'should be less than 1e-4').
    `floor` > 0: entries smaller than it count by |a - b| / floor (finite differences cannot
    resolve them: see checker_error)."""
    total = 0.0
    for k, want in exact.items():
        got, bad = _finite_array(numerical.get(k), f"the numerical {k}")
        if bad is not None:
            return bad
        want = np.asarray(want, np.float64)
        if got.size != want.size:
            return _fail(f"the numerical {k} has shape {_shape(got)}; expected {_shape(want)}")
        got = got.reshape(want.shape)
        denom = np.maximum(np.maximum(np.abs(got), np.abs(want)), floor)
        err = np.divide(np.abs(got - want), denom, out=np.zeros_like(denom), where=denom > 0)
        total += float(err.sum())
    return Verdict(True, "", total)


# Central differences at the starter's eps = 1e-6 round the loss L to ~1e-16 |L| in each of two
# evaluations: every numerical gradient entry carries ~2e-10 |L| of noise. On the whole toy data
# the gradients dwarf it; on one example many entries are ~0 (saturated hidden units) and the
# handout's relative error counts that noise as 1 per entry (a correct checker scores ~10). Below
# FLOOR_OF_LOSS |L| an entry counts by its absolute error against that level: the noise then costs
# at most 2e-7 per entry, 4e-5 over run_q2's 179 parameters.
FLOOR_OF_LOSS = 1e-3


def checker_error(numerical: dict, exact: dict, loss: float) -> Verdict:
    """The handout's total relative error of a checker's numbers on a part of the data, entries
    below the rounding noise of central differences on that part's loss counted absolutely."""
    return gradcheck_error(numerical, exact, floor=FLOOR_OF_LOSS * abs(loss))


def one_sided_step(numerical: dict, exact: dict, hess_diag: np.ndarray, keys: list[str]) -> float | None:
    """The step eps of one-sided differences, when the numbers are the exact gradient plus
    eps/2 times the Hessian's diagonal (their error lies along it: least squares explains more
    than half of it, and the step is at least 1e-9): else None. Central differences err by
    O(eps^2) and rounding noise, which do not line up with the diagonal."""
    r = np.concatenate([np.asarray(numerical[k], np.float64).reshape(-1) - np.asarray(exact[k]).reshape(-1)
                        for k in keys])
    h = np.asarray(hess_diag, np.float64)
    if r.shape != h.shape or not np.any(h) or not np.any(r):
        return None
    alpha = float(r @ h / (h @ h))
    if abs(alpha) * np.linalg.norm(h) > 0.5 * np.linalg.norm(r) and abs(2 * alpha) >= 1e-9:
        return 2 * alpha
    return None


@dataclass
class CheckerData:
    """The examples a gradient checker's numbers are the gradient of: rows `examples` of the toy
    data, the loss summed over them (scale 1) or averaged (scale 1/len)."""
    examples: list[int]
    scale: float
    kind: str                       # "sum" or "mean"
    fit: float                      # relative residual of the least-squares fit

    def exact(self, G: np.ndarray, keys: list[str], shapes: dict) -> dict:
        """The exact gradient of that loss, as {key: array of its parameter's shape}."""
        flat = self.scale * G[self.examples].sum(axis=0)
        out, at = {}, 0
        for k in keys:
            size = int(np.prod(shapes[k]))
            out[k] = flat[at:at + size].reshape(shapes[k])
            at += size
        return out


def checker_data(numerical: dict, G: np.ndarray, keys: list[str], fit_tol: float = 1e-3,
                 tol: float = 0.05) -> CheckerData | None:
    """Which examples a gradient checker used, from its numbers alone.

    G [N, P] holds the exact per-example gradients (q2_example_gradients), so the gradient of the
    loss summed over examples S is G^T 1_S. Solve n ~ G^T w by least squares: when n lies in the
    span of the rows (relative residual <= fit_tol) and w is c on a set S and 0 elsewhere (each
    entry within tol * c), with c = 1 (a sum) or 1/|S| (a mean), the checker used S. None when it
    does not look so (gradients of other data or parameters, or garbage): w is then judged by
    nothing. The caller still judges the numbers against the exact gradient on S."""
    parts = []
    for k in keys:
        got = numerical.get(k)
        if got is None or not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
            return None
        parts.append(np.asarray(got, dtype=np.float64).reshape(-1))
    n = np.concatenate(parts)
    if n.size != G.shape[1] or not np.any(n):
        return None
    w, *_ = np.linalg.lstsq(G.T, n, rcond=None)
    fit = float(np.linalg.norm(G.T @ w - n) / np.linalg.norm(n))
    top = float(w.max())
    if fit > fit_tol or top <= 0:
        return None
    used = w > top / 2
    c = float(w[used].mean())
    if np.any(np.abs(w[used] - c) > tol * c) or np.any(np.abs(w[~used]) > tol * c):
        return None
    size = int(used.sum())
    for scale, kind in ((1.0, "sum"), (1.0 / size, "mean")):
        if abs(c - scale) <= tol * scale:
            return CheckerData([int(i) for i in np.flatnonzero(used)], scale, kind, fit)
    return None


# ----------------------------------------------------------------------------------------------
# q3.1 / q6.1.1 trained weights
# ----------------------------------------------------------------------------------------------

def _weights(params: dict) -> dict[str, np.ndarray]:
    return {k[1:]: np.asarray(v) for k, v in params.items()
            if isinstance(k, str) and k.startswith("W") and ("b" + k[1:]) in params and np.ndim(v) == 2}


def _fed_by(params: dict, before: str, name: str) -> bool:
    """Did layer `name`'s cached input (cache_<name> = (X, pre_act, post_act)) equal layer
    `before`'s cached output, i.e. was it the next layer in the last forward pass?"""
    a, b = params.get("cache_" + before), params.get("cache_" + name)
    try:
        post, x = np.asarray(a[2], np.float64), np.asarray(b[0], np.float64)
        return post.shape == x.shape and bool(np.allclose(post, x))
    except (TypeError, IndexError, ValueError, KeyError):
        return False


def layer_chain(params: dict, in_dim: int, out_dim: int, names: tuple[str, ...] = ()) -> list[str]:
    """The layer names of params in network order, from the input size to the output size.

    The handout's names (`names`, e.g. layer1, output) when all present; else the W's chained by
    shape: among equals, the one the last forward pass's caches show was fed by the layer before,
    else a layer to the output size last, else the dict's order. Raises ValueError (with a message for the student)."""
    Ws = _weights(params)
    if names and all(n in Ws for n in names):
        chain = list(names)
    else:
        chain, dim, left = [], in_dim, dict(Ws)
        while left:
            nxt = [n for n, W in left.items() if W.shape[0] == dim]
            if not nxt:
                break
            # among equals, a layer to the output size last: hidden layers of one size (32 -> 32,
            # named in any order, e.g. eout, dlyr1) all come before it
            nxt.sort(key=lambda n: left[n].shape[1] == out_dim)
            if len(nxt) > 1 and chain:
                # hidden layers of one shape (32 -> 32, named e.g. eout and dlyr1, which sort the
                # wrong way round): the last forward pass's caches say which took the previous
                # layer's output as its input
                fed = [n for n in nxt if _fed_by(params, chain[-1], n)]
                nxt = fed + [n for n in nxt if n not in fed]
            chain.append(nxt[0])
            dim = left.pop(nxt[0]).shape[1]
            if dim == out_dim and not any(W.shape[0] == dim for W in left.values()):
                break
    if not chain:
        raise ValueError(f"no weight matrix of {in_dim} rows among the parameters "
                         f"({', '.join('W' + n for n in Ws) or 'none'})")
    dims = [Ws[chain[0]].shape[0]] + [Ws[n].shape[1] for n in chain]
    if dims[0] != in_dim or dims[-1] != out_dim:
        raise ValueError(f"the layers {' -> '.join(map(str, dims))} do not map {in_dim} inputs to {out_dim} outputs")
    for a, b_ in zip(chain, chain[1:]):
        if Ws[a].shape[1] != Ws[b_].shape[0]:
            raise ValueError(f"W{a} ({_shape(Ws[a])}) does not feed W{b_} ({_shape(Ws[b_])})")
    return chain


def network_probs(params: dict, x, hidden_act: str = "sigmoid", in_dim: int = 1024, out_dim: int = 36) -> np.ndarray:
    """Softmax probabilities [N, out] of the handout's network (sigmoid hidden layers, softmax
    output) built from a params dict; a 2-D b [1, C] is accepted (it is charged in q2.1.2)."""
    chain = layer_chain(params, in_dim, out_dim, ("layer1", "output"))
    return _chain_forward(params, chain, x, [hidden_act] * (len(chain) - 1) + ["softmax"])


def _chain_forward(params: dict, chain: list[str], x, acts: list[str]) -> np.ndarray:
    """x through the layers `chain` of params, each X @ W + b then its activation (torch)."""
    torch = _torch()
    h = _t(x)
    with torch.no_grad():
        for name, act in zip(chain, acts):
            W, b = _t(params["W" + name]), _t(params["b" + name]).reshape(-1)
            if h.shape[1] != W.shape[0]:
                raise ValueError(f"W{name} has {W.shape[0]} rows for inputs of {h.shape[1]} values")
            if b.shape[0] != W.shape[1]:
                raise ValueError(f"b{name} has {b.shape[0]} entries for the {W.shape[1]} columns of W{name}")
            pre = h @ W + b
            h = torch.softmax(pre, dim=1) if act == "softmax" else _act(act, pre)
    return _np(h)


def params_accuracy(params: dict, x, y, **kw) -> Verdict:
    """The accuracy of returned weights on labelled data the worker never saw."""
    try:
        probs = network_probs(params, x, **kw)
    except (ValueError, KeyError) as exc:
        return _fail(f"the saved weights cannot be evaluated: {exc}")
    if not np.all(np.isfinite(probs)):
        return _fail("the saved weights give NaN or inf outputs")
    acc = float(np.mean(np.argmax(probs, 1) == np.argmax(np.asarray(y), 1)))
    return _pass(acc, f"accuracy {acc:.3f}")


def relative_threshold(value: float, reference: float, margin: float, what: str, floor: float | None = None) -> Verdict:
    """Passes when value >= reference - margin (and >= floor): thresholds relative to the reference
    trained with the same budget, data and seed."""
    need = reference - margin if floor is None else max(reference - margin, floor)
    if value >= need:
        return _pass(value, f"{what} {value:.3f}")
    return _fail(f"{what} is {value:.3f}; the reference reaches {reference:.3f} with the same budget and "
                 f"data (needed at least {need:.3f})", value)


# ----------------------------------------------------------------------------------------------
# q4.2 findLetters, q4.4 text
# ----------------------------------------------------------------------------------------------

def _boxes(boxes) -> np.ndarray:
    arr = np.asarray(list(boxes), dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes should be a list of [y1, x1, y2, x2]; found an array of shape {_shape(arr)}")
    return arr


def iou_matrix(a, b) -> np.ndarray:
    """IoU [len(a), len(b)] of boxes [y1, x1, y2, x2]."""
    a, b = _boxes(a), _boxes(b)
    y1 = np.maximum(a[:, None, 0], b[None, :, 0])
    x1 = np.maximum(a[:, None, 1], b[None, :, 1])
    y2 = np.minimum(a[:, None, 2], b[None, :, 2])
    x2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_boxes(found, truth, iou: float = 0.5) -> tuple[float, float, int]:
    """(recall, precision, matches): one-to-one greedy matching, highest IoU first, at >= iou."""
    f, t = _boxes(found), _boxes(truth)
    if len(t) == 0 or len(f) == 0:
        # nothing to find: perfect recall; nothing found: no precision to speak of
        return (1.0 if len(t) == 0 else 0.0), (1.0 if len(t) == 0 and len(f) == 0 else 0.0), 0
    m = iou_matrix(f, t)
    pairs = sorted(((m[i, j], i, j) for i, j in zip(*np.nonzero(m >= iou))), reverse=True)
    used_f, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    k = len(used_t)
    return k / len(t), k / len(f), k


def match_pages(found_pages, truth_pages, iou: float = 0.5) -> tuple[float, float, list[tuple[float, float]]]:
    """(recall, precision, per page): one-to-one matching on each page, the rates pooled over all
    pages' characters and boxes (as a detection test set is scored: a page of 40 characters weighs
    twice one of 20, and no page is the whole verdict)."""
    matched = n_found = n_truth = 0
    per_page = []
    for found, truth in zip(found_pages, truth_pages):
        f, t = _boxes(found), _boxes(truth)
        r, p, k = match_boxes(f, t, iou)
        per_page.append((r, p))
        matched, n_found, n_truth = matched + k, n_found + len(f), n_truth + len(t)
    recall = matched / n_truth if n_truth else 1.0
    precision = matched / n_found if n_found else (1.0 if not n_truth else 0.0)
    return recall, precision, per_page


def boxes_check(found, truth, min_recall: float, min_precision: float, iou: float = 0.5) -> Verdict:
    return pages_check([found], [truth], min_recall, min_precision, iou)


def pages_check(found_pages, truth_pages, min_recall: float, min_precision: float, iou: float = 0.5) -> Verdict:
    """Pooled recall and precision over the pages (match_pages) against the minimums."""
    try:
        found_pages = [_boxes(f) for f in found_pages]
        recall, precision, per_page = match_pages(found_pages, truth_pages, iou)
    except ValueError as exc:
        return _fail(str(exc))
    n_found, n_truth = sum(map(len, found_pages)), sum(len(_boxes(t)) for t in truth_pages)
    pages = f" on {len(per_page)} pages" if len(per_page) > 1 else ""
    if recall >= min_recall and precision >= min_precision:
        return _pass(recall, f"recall {recall:.2f}, precision {precision:.2f} at IoU {iou}{pages}")
    hint = ""
    swapped = [f[:, [1, 0, 3, 2]] for f in found_pages]
    if n_found and match_pages(swapped, truth_pages, iou)[0] >= max(min_recall, recall + 0.3):
        hint = " The boxes look like [x1, y1, x2, y2]; the handout asks for [y1, x1, y2, x2] (regionprops' bbox)."
    each = ""
    if len(per_page) > 1:
        each = " Page by page (recall/precision): " + ", ".join(
            f"{k + 1}: {r:.2f}/{p:.2f}" for k, (r, p) in enumerate(per_page)) + "."
    return _fail(f"{n_found} boxes found for {n_truth} characters{pages}: recall {recall:.2f} "
                 f"(needed {min_recall:.2f}), precision {precision:.2f} (needed {min_precision:.2f}) at IoU {iou}."
                 + each + hint, recall)


def bw_check(bw, image_shape, truth_boxes) -> Verdict:
    """bw: a float image [H, W] in [0, 1], characters black on white (paper outside the boxes
    mostly 1, the boxes darker than the paper)."""
    arr, bad = _finite_array(bw, "bw")
    if bad is not None:
        return bad
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3].mean(axis=2)
    if arr.shape != tuple(image_shape[:2]):
        return _fail(f"bw has shape {_shape(arr)}; expected the image's {image_shape[0]}x{image_shape[1]}")
    if arr.min() < 0 or arr.max() > 1:
        return _fail(f"bw takes values in [{arr.min():.3g}, {arr.max():.3g}]; expected a float image in [0, 1]")
    inside = np.zeros(arr.shape, dtype=bool)
    for y1, x1, y2, x2 in _boxes(truth_boxes).astype(int):
        inside[y1:y2, x1:x2] = True
    paper, ink = float(arr[~inside].mean()), float(arr[inside].mean()) if inside.any() else 1.0
    if paper < 0.5 or ink >= paper:
        return _fail("bw should show the characters black (0) on white (1); found the paper "
                     f"{'dark' if paper < 0.5 else 'no lighter than the characters'} (mean {paper:.2f} "
                     f"outside the characters, {ink:.2f} inside): inverted?", paper)
    return _pass(paper)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalise_text(lines) -> str:
    """Lines of text as one comparable string: upper case, no spaces, lines joined by newlines."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return "\n".join("".join(str(l).upper().split()) for l in lines if str(l).strip())


def text_score(found_lines, true_lines) -> Verdict:
    """The edit distance of the extracted text to the truth, and the character accuracy
    1 - distance / len(truth) as the value (for a TA's note on q4.4)."""
    f, t = normalise_text(found_lines), normalise_text(true_lines)
    d = edit_distance(f, t)
    acc = max(0.0, 1.0 - d / max(1, len(t)))
    return Verdict(True, f"edit distance {d} over {len(t)} characters (character accuracy {acc:.2f})", acc)


# ----------------------------------------------------------------------------------------------
# q5.1 the autoencoder and its momentum
# ----------------------------------------------------------------------------------------------

AE_LAYERS = ("layer1", "layer2", "layer3", "output")
AE_ACTS = ("relu", "relu", "relu", "sigmoid")


def autoencoder_structure_check(params: dict, hidden: int = 32, dim: int = 1024, part: str = "both") -> Verdict:
    """1024 -> 32 ReLU -> 32 ReLU -> 32 ReLU -> 1024 sigmoid. part="layers": the layer shapes;
    part="activations": each layer's activation, read from the caches of the last forward pass
    (layers found by the handout's names, or chained by shape)."""
    try:
        chain = layer_chain(params, dim, dim, AE_LAYERS)
    except ValueError as exc:
        return _fail(f"the autoencoder's layers: {exc}") if part != "activations" else \
            _fail("the activations cannot be read: the layers are not the handout's")
    dims = [np.shape(params["W" + chain[0]])[0]] + [np.shape(params["W" + n])[1] for n in chain]
    if part != "activations" and dims != [dim, hidden, hidden, hidden, dim]:
        return _fail(f"the autoencoder maps {' -> '.join(map(str, dims))}; expected "
                     f"{dim} -> {hidden} -> {hidden} -> {hidden} -> {dim}")
    if part == "layers":
        return _pass()
    acts = AE_ACTS if len(chain) == 4 else ("relu",) * (len(chain) - 1) + ("sigmoid",)
    for name, act in zip(chain, acts):
        cache = params.get("cache_" + name)
        if not isinstance(cache, (tuple, list)) or len(cache) != 3:
            return _fail(f"no cache of layer {name}: its activation cannot be read")
        pre, post = np.asarray(cache[1], np.float64), np.asarray(cache[2], np.float64)
        if pre.shape != post.shape or not np.allclose(post, activation(act, pre), rtol=1e-6, atol=1e-9):
            used = next((a for a in ACTIVATIONS if pre.shape == post.shape and
                         np.allclose(post, activation(a, pre), rtol=1e-6, atol=1e-9)), None)
            return _fail(f"layer {name} should use {act}; its last forward pass "
                         f"{'used ' + used if used else 'matches no activation of util.py'}")
    return _pass()


def _accumulator(params: dict, k: str):
    """The momentum accumulator of parameter k: 'm_'+k as the starter suggests, else any other
    array of k's shape whose name contains k (e.g. 'v_'+k, 'mom_'+k)."""
    if "m_" + k in params:
        return params["m_" + k]
    shape = np.shape(params[k])
    for name, v in params.items():
        if (isinstance(name, str) and name != k and k in name and not name.startswith(("grad_", "cache_"))
                and np.shape(v) == shape):
            return v
    return None


def momentum_check(params: dict, learning_rate: float | None = None) -> Verdict:
    """M = 0.9 M - lr grad; W = W + M: an accumulator per W and b, kept across steps.

    Accumulators that are all the same negative multiple of their last gradient (M = -c grad, c
    the learning rate of the last step, whatever the decay schedule made it) carry nothing from
    earlier steps: plain SGD. `learning_rate` is unused (kept for the checks' signature)."""
    keys = [k for k in params if isinstance(k, str) and k[:1] in "Wb" and "_" not in k and np.ndim(params[k]) >= 1]
    if not keys:
        return _fail("no W/b parameters were returned")
    ratios = []
    for k in keys:
        m = _accumulator(params, k)
        if m is None or np.ndim(m) == 0:
            return _fail(f"no momentum accumulator for {k} (the starter suggests params['m_{k}'])")
        m = np.asarray(m, np.float64)
        if m.shape != np.shape(params[k]):
            return _fail(f"the accumulator of {k} has shape {_shape(m)}; expected {_shape(params[k])}")
        if not np.any(m):
            return _fail(f"the accumulator of {k} is all zeros: momentum never updated")
        g = params.get("grad_" + k)
        if g is None or np.shape(g) != m.shape or not np.any(g):
            ratios.append(None)
            continue
        g = np.asarray(g, np.float64).reshape(m.shape)
        c = -float(np.sum(m * g) / np.sum(g * g))            # least-squares M ~ -c grad
        ratios.append(c if c > 0 and np.allclose(m, -c * g, rtol=1e-7, atol=1e-15) else None)
    if all(r is not None for r in ratios) and np.allclose(ratios, ratios[0], rtol=1e-7):
        return _fail("every accumulator is -learning_rate times its last gradient: the previous M is "
                     "not carried over (M = 0.9 M - lr grad)")
    return _pass()


def autoencoder_forward(params: dict, x) -> np.ndarray:
    """The reconstruction [N, 1024] of x by the handout's autoencoder built from params."""
    chain = layer_chain(params, np.shape(x)[1], np.shape(x)[1], AE_LAYERS)
    return _chain_forward(params, chain, x, ["relu"] * (len(chain) - 1) + ["sigmoid"])


def psnr(x, recon, data_range: float = 1.0) -> float:
    """The mean over images (rows) of each image's PSNR, 10 log10(range^2 / MSE), as
    skimage.metrics.peak_signal_noise_ratio computes it per image."""
    x, r = np.asarray(x, np.float64), np.asarray(recon, np.float64)
    mse = np.mean((x - r) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(data_range ** 2 / mse)))
