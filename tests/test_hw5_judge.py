"""HW5's trusted-side judging (rubric/hw5/judge.py): each function on correct inputs (the reference's
maths) and on the wrong inputs a student's bug would produce. Pure numpy, no student code."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rubric.hw5 import judge


def xavier(in_size, out_size, seed):
    a = math.sqrt(6 / (in_size + out_size))
    return np.random.RandomState(seed).uniform(-a, a, (in_size, out_size)), np.zeros(out_size)


# ------------------------------------------------------------------ q2.1.2 initialize_weights

@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("size", [(1024, 64), (64, 36), (300, 200), (2, 25)])
def test_xavier_accepts_the_handouts_initialisation(size, seed):
    W, b = xavier(*size, seed)
    assert judge.xavier_check(W, b, *size), judge.xavier_check(W, b, *size).message


def test_xavier_rejects_wrong_initialisations():
    i, o = 1024, 64
    rng = np.random.RandomState(0)
    var = 2 / (i + o)
    W, b = xavier(i, o, 0)
    cases = {
        "normal of the same variance": (rng.normal(0, math.sqrt(var), (i, o)), b, "bound"),
        "He bound sqrt(6/in)": (rng.uniform(-math.sqrt(6 / i), math.sqrt(6 / i), (i, o)), b, "bound"),
        "half the bound": (W / 2, b, "narrow"),
        "not centred": (np.abs(W), b, "mean"),
        "transposed": (W.T, b, "shape"),
        "2-D b": (W, np.zeros((1, o)), "1-D"),
        "b not zero": (W, np.full(o, 0.1), "zeros"),
        "None": (None, b, "not implemented"),
    }
    for name, (w, bb, word) in cases.items():
        v = judge.xavier_check(w, bb, i, o)
        assert not v, name
        assert word in v.message, (name, v.message)


def test_xavier_variance_test_catches_a_subtle_scale():
    # 0.9 x the bound stays inside it and still reaches 0.9 a: only the variance test can tell
    i, o = 1024, 64
    W, b = xavier(i, o, 1)
    v = judge.xavier_check(W * 0.9, b, i, o)
    assert not v and ("variance" in v.message or "narrow" in v.message)


def test_xavier_false_alarm_rate_is_small():
    fails = sum(not judge.xavier_check(*xavier(200, 100, s), 200, 100, alpha=1e-3) for s in range(300))
    assert fails <= 6          # 3 tests at 1e-3 each: about 1 expected in 300


# ------------------------------------------------------------------ q2.2

def test_sigmoid_check():
    x = np.array([-1000.0, 1000.0, 0.0, 3.0])
    assert judge.sigmoid_check(x, 1 / (1 + np.exp(-np.clip(x, -500, 500))))
    assert not judge.sigmoid_check(x, np.tanh(x))
    with np.errstate(all="ignore"):
        naive = 1 / (1 + np.exp(-x))           # overflows to inf for -1000 but gives 0: correct
    assert judge.sigmoid_check(x, naive)
    with np.errstate(all="ignore"):
        nan_at_1000 = np.exp(x) / (1 + np.exp(x))
    assert not judge.sigmoid_check(x, nan_at_1000)


def test_forward_and_cache_checks():
    rng = np.random.RandomState(0)
    X, W, b = rng.randn(7, 5), rng.randn(5, 4), rng.randn(4)
    pre, post = judge.forward_gold(X, W, b, "sigmoid")
    assert judge.forward_check(X, W, b, "sigmoid", post, (X, pre, post))
    assert not judge.forward_check(X, W, b, "sigmoid", judge.sigmoid(X @ W), (X, X @ W, judge.sigmoid(X @ W)))
    assert "cache" in judge.forward_check(X, W, b, "sigmoid", post, None).message
    assert judge.cache_check(X, post, (X, pre, post))
    assert not judge.cache_check(X, post, None)
    assert not judge.cache_check(X, post, (X, pre, post * 0))
    assert not judge.cache_check(X, post, (X, pre[:, :2], post))
    _, lin = judge.forward_gold(X, W, b, "linear")
    assert np.allclose(lin, pre)


def test_softmax_check():
    rng = np.random.RandomState(1)
    x = rng.randn(6, 5) * 3 + np.array([[1000.0], [-1000.0], [0], [500], [-3], [700]])
    good = judge.softmax(x)
    assert np.allclose(good.sum(1), 1) and np.all(np.isfinite(good))
    assert judge.softmax_check(x, good, x.copy())
    with np.errstate(all="ignore"):
        unstable = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    assert not judge.softmax_check(x, unstable)
    small = rng.randn(6, 5)
    cols = np.exp(small - small.max(0)) / np.exp(small - small.max(0)).sum(0)
    v = judge.softmax_check(small, cols)
    assert not v and "column" in v.message
    assert not judge.softmax_check(small, judge.softmax(small), small * 0)      # argument changed


def test_loss_acc_check():
    rng = np.random.RandomState(2)
    y = np.eye(4)[rng.randint(0, 4, 10)]
    probs = judge.softmax(rng.randn(10, 4))
    loss = -np.sum(y * np.log(probs))
    acc = np.mean(y.argmax(1) == probs.argmax(1))
    assert judge.loss_acc_check(y, probs, loss, acc)
    assert "mean" in judge.loss_acc_check(y, probs, loss / 10, acc).message
    assert "sign" in judge.loss_acc_check(y, probs, -loss, acc).message
    assert not judge.loss_acc_check(y, probs, -np.sum(y * np.log10(probs)), acc)
    wrong_acc = acc + 0.1
    assert not judge.loss_acc_check(y, probs, loss, wrong_acc)
    assert not judge.loss_acc_check(y, probs, loss, None)


# ------------------------------------------------------------------ q2.3.1 / q2.5 gradients

def numerical(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        fp = f()
        a[idx] = old - eps
        fm = f()
        a[idx] = old
        g[idx] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("act", ["sigmoid", "linear", "tanh", "relu"])
def test_backwards_gold_matches_finite_differences(act):
    rng = np.random.RandomState(3)
    X, W, b, delta = rng.randn(6, 5), rng.randn(5, 4), rng.randn(4), rng.randn(6, 4)
    # the scalar whose gradient backwards computes: sum(delta * act(XW + b))
    f = lambda: float(np.sum(delta * judge.forward_gold(X, W, b, act)[1]))
    _, post = judge.forward_gold(X, W, b, act)
    gW, gb, gX = judge.backwards_gold(delta, X, W, post, act)
    for got, arr in ((gW, W), (gb, b), (gX, X)):
        assert np.allclose(got, numerical(f, arr), rtol=1e-5, atol=1e-7)


def test_q2_gradients_and_gradcheck_error():
    rng = np.random.RandomState(4)
    x, y = rng.randn(40, 2), np.eye(4)[rng.randint(0, 4, 40)]
    p = {"Wlayer1": rng.randn(2, 25) * 0.5, "blayer1": np.zeros(25), "Woutput": rng.randn(25, 4) * 0.5, "boutput": np.zeros(4)}
    loss, exact = judge.q2_loss_and_gradients(p, x, y)
    assert loss > 0
    central = {}
    for k in ("Wlayer1", "blayer1", "Woutput", "boutput"):
        central["grad_" + k] = numerical(lambda: judge.q2_loss_and_gradients(p, x, y)[0], p[k])
    err = judge.gradcheck_error(central, exact).value
    assert err < 1e-4
    one_sided = {}
    for k in ("Wlayer1", "blayer1", "Woutput", "boutput"):
        f0 = judge.q2_loss_and_gradients(p, x, y)[0]
        g = np.zeros_like(p[k])
        for idx in np.ndindex(g.shape):
            old = p[k][idx]
            p[k][idx] = old + 1e-6
            g[idx] = (judge.q2_loss_and_gradients(p, x, y)[0] - f0) / 1e-6
            p[k][idx] = old
        one_sided["grad_" + k] = g
    # one-sided differences are off by ~eps f''/2: orders of magnitude more than central ones (on
    # run_q2's trained network, 1.7e-2 against 1.2e-5: tests/test_reference_hw5.py)
    assert judge.gradcheck_error(one_sided, exact).value > 30 * err
    assert not judge.gradcheck_error({"grad_Wlayer1": np.zeros(3)}, {"grad_Wlayer1": exact["grad_Wlayer1"]})
    assert not judge.gradcheck_error({}, exact)


# ------------------------------------------------------------------ q2.4 batches

def make_xy(n=47):
    x = np.arange(n * 3, dtype=float).reshape(n, 3) + 0.5
    y = np.eye(4)[np.random.RandomState(2).randint(0, 4, n)]
    return x, y


def batches_of(order, x, y, bs):
    return [(x[order[i:i + bs]], y[order[i:i + bs]]) for i in range(0, len(order), bs)]


def test_batches_check_accepts_partitions():
    x, y = make_xy()
    order = np.random.RandomState(0).permutation(47)
    assert judge.batches_check(x, y, 5, batches_of(order, x, y, 5), x.copy(), y.copy())
    # the remainder dropped is allowed too
    assert judge.batches_check(x, y, 5, batches_of(order[:45], x, y, 5))


def test_batches_check_rejects_wrong_batches():
    x, y = make_xy()
    rng = np.random.RandomState(0)
    order = rng.permutation(47)
    cases = {
        "repeats": (batches_of(rng.randint(0, 47, 47), x, y, 5), "more than one batch"),
        "misses a batch": (batches_of(order[5:], x, y, 5), "in no batch"),
        "not shuffled": (batches_of(np.arange(47), x, y, 5), "not shuffled"),
        "labels shuffled separately": ([(x[order[i:i + 5]], y[rng.permutation(47)[i:i + 5]]) for i in range(0, 47, 5)], "label"),
        "wrong size": (batches_of(order, x, y, 4), "batch sizes"),
        "empty": ([], "list"),
        "tuple with None": ((batches_of(order, x, y, 5), None), "pair"),
    }
    for name, (batches, word) in cases.items():
        v = judge.batches_check(x, y, 5, batches)
        assert not v, name
        assert word in v.message, (name, v.message)
    shuffled = x.copy()
    np.random.RandomState(1).shuffle(shuffled)
    v = judge.batches_check(x, y, 5, batches_of(order, x, y, 5), shuffled, y)
    assert not v and "caller" in v.message


# ------------------------------------------------------------------ q3.1 / q6 weights

def test_params_accuracy_and_layer_chain():
    rng = np.random.RandomState(5)
    x = rng.rand(100, 1024)
    p = {"Wlayer1": rng.randn(1024, 64) * 0.05, "blayer1": np.zeros(64), "Woutput": rng.randn(64, 36), "boutput": np.zeros(36)}
    y = np.eye(36)[judge.network_probs(p, x).argmax(1)]
    assert judge.params_accuracy(p, x, y).value == 1.0
    # other names, 2-D b: chained by shape, same answer
    q = {"Wout": p["Woutput"], "bout": p["boutput"][None, :], "Whidden": p["Wlayer1"], "bhidden": p["blayer1"]}
    assert judge.layer_chain(q, 1024, 36) == ["hidden", "out"]
    assert judge.params_accuracy(q, x, y).value == 1.0
    assert not judge.params_accuracy({"Wlayer1": p["Wlayer1"], "blayer1": p["blayer1"]}, x, y)
    assert judge.params_accuracy(p, x, np.roll(y, 1, axis=1)).value < 0.2



def test_layers_of_one_shape_are_chained_by_the_caches_of_the_last_forward_pass():
    # a real autoencoder's names (navarrs_f20): elyr1 1024->32, eout 32->32, dlyr1 32->32,
    # dout 32->1024; "dlyr1" sorts before "eout", so shapes alone would put the decoder first
    rng = np.random.RandomState(1)
    shapes = {"elyr1": (1024, 32), "eout": (32, 32), "dlyr1": (32, 32), "dout": (32, 1024)}
    p = {}
    for name, shape in shapes.items():
        p["W" + name], p["b" + name] = rng.randn(*shape) * 0.1, np.zeros(shape[1])
    h = rng.rand(3, 1024)
    for name in shapes:                             # the forward pass, in network order
        pre = h @ p["W" + name]
        post = np.maximum(pre, 0)
        p["cache_" + name] = (h, pre, post)
        h = post
    arrived = {k: p[k] for k in sorted(p)}          # as a dict comes back from the worker: sorted
    assert judge.layer_chain(arrived, 1024, 1024) == ["elyr1", "eout", "dlyr1", "dout"]
    no_caches = {k: v for k, v in arrived.items() if not k.startswith("cache_")}
    assert judge.layer_chain(no_caches, 1024, 1024) == ["elyr1", "dlyr1", "eout", "dout"]   # the dict's order

def test_relative_threshold():
    assert judge.relative_threshold(0.66, 0.70, 0.08, "accuracy")
    v = judge.relative_threshold(0.5, 0.70, 0.08, "accuracy")
    assert not v and "0.620" in v.message
    assert not judge.relative_threshold(0.70, 0.70, 0.08, "accuracy", floor=0.75)


# ------------------------------------------------------------------ q4.2 / q4.4

def test_match_boxes():
    truth = [[10, 10, 50, 40], [10, 60, 50, 90], [70, 10, 110, 40]]
    assert judge.match_boxes(truth, truth) == (1.0, 1.0, 3)
    shifted = [[12, 11, 52, 41], [10, 60, 50, 90]]
    r, p, k = judge.match_boxes(shifted, truth)
    assert (k, p) == (2, 1.0) and abs(r - 2 / 3) < 1e-12
    # one big box over two letters matches neither (IoU < 0.5)
    r, p, _ = judge.match_boxes([[10, 10, 50, 90]], truth[:2])
    assert r == 0 and p == 0
    # duplicates count once
    r, p, _ = judge.match_boxes(truth + truth, truth)
    assert r == 1.0 and p == 0.5
    assert judge.match_boxes([], truth)[:2] == (0.0, 0.0)
    with pytest.raises(ValueError):
        judge.match_boxes([[1, 2, 3]], truth)


def test_boxes_check_names_swapped_coordinates():
    truth = [[10, 100, 50, 130], [10, 200, 60, 240], [80, 100, 120, 130]]
    swapped = [[b[1], b[0], b[3], b[2]] for b in truth]
    v = judge.boxes_check(swapped, truth, 0.85, 0.85)
    assert not v and "[x1, y1, x2, y2]" in v.message
    assert judge.boxes_check(truth, truth, 0.85, 0.85)


def test_pages_are_pooled_not_each_the_whole_verdict():
    """Recall and precision over all pages' characters: a page of 2 characters missed on a set of
    20 costs 2/20 of recall, where judging each page alone failed the item on it."""
    big = [[10, 10 + 40 * i, 50, 40 + 40 * i] for i in range(18)]
    small = [[10, 10, 50, 40], [10, 60, 50, 90]]
    merged = [[10, 10, 50, 90]]                                    # one box over both letters
    r, p, per_page = judge.match_pages([big, merged], [big, small])
    assert (r, p) == (18 / 20, 18 / 19) and per_page == [(1.0, 1.0), (0.0, 0.0)]
    assert judge.pages_check([big, merged], [big, small], 0.85, 0.85)
    v = judge.pages_check([big, merged], [big, small], 0.95, 0.85)
    assert not v and "on 2 pages" in v.message and "Page by page (recall/precision): 1: 1.00/1.00, 2: 0.00/0.00" in v.message
    assert not judge.pages_check([[[1, 2, 3]]], [small], 0.5, 0.5)       # malformed: a message, no crash
    assert judge.match_pages([[], []], [[], []])[:2] == (1.0, 1.0)


def test_bw_check():
    truth = [[10, 10, 30, 30]]
    bw = np.ones((50, 60))
    bw[12:28, 15:20] = 0
    assert judge.bw_check(bw, (50, 60, 3), truth)
    assert "inverted" in judge.bw_check(1 - bw, (50, 60, 3), truth).message
    assert not judge.bw_check(bw * 255, (50, 60, 3), truth)
    assert not judge.bw_check(bw[:40], (50, 60, 3), truth)
    assert judge.bw_check(bw.astype(bool), (50, 60), truth)
    assert not judge.bw_check(None, (50, 60), truth)


def test_edit_distance_and_text_score():
    assert judge.edit_distance("kitten", "sitting") == 3
    assert judge.edit_distance("", "abc") == 3
    assert judge.edit_distance("TODO", "TODO") == 0
    v = judge.text_score(["TO DO LIST", "1 MAKE"], ["TODOLIST", "1MAKE"])
    assert v.value == 1.0
    v = judge.text_score(["T0 D0 LIST"], ["TO DO LIST"])
    assert "edit distance 2" in v.message and abs(v.value - (1 - 2 / 8)) < 1e-12


# ------------------------------------------------------------------ q5.1 autoencoder

def autoencoder(rng, hidden=32):
    p = {}
    for name, (i, o) in zip(judge.AE_LAYERS, [(1024, hidden), (hidden, hidden), (hidden, hidden), (hidden, 1024)]):
        a = math.sqrt(6 / (i + o))
        p["W" + name], p["b" + name] = rng.uniform(-a, a, (i, o)), np.zeros(o)
    x = rng.rand(8, 1024)
    h = x
    for name, act in zip(judge.AE_LAYERS, judge.AE_ACTS):
        pre, post = judge.forward_gold(h, p["W" + name], p["b" + name], act)
        p["cache_" + name] = (h, pre, post)
        h = post
    return p


def test_autoencoder_checks():
    rng = np.random.RandomState(6)
    p = autoencoder(rng)
    assert judge.autoencoder_structure_check(p)
    assert judge.autoencoder_structure_check(p, part="layers")
    bad = dict(p)
    h, pre, _ = bad["cache_layer2"]
    bad["cache_layer2"] = (h, pre, judge.sigmoid(pre))
    v = judge.autoencoder_structure_check(bad, part="activations")
    assert not v and "layer2 should use relu" in v.message and "sigmoid" in v.message
    assert judge.autoencoder_structure_check(bad, part="layers")
    assert not judge.autoencoder_structure_check(autoencoder(rng, hidden=64), part="layers")
    x = rng.rand(5, 1024)
    recon = judge.autoencoder_forward(p, x)
    assert recon.shape == (5, 1024) and recon.min() >= 0 and recon.max() <= 1


def test_momentum_check():
    rng = np.random.RandomState(7)
    p = {"Wlayer1": rng.randn(4, 3), "blayer1": np.zeros(3)}
    lr = 1e-3
    for k in ("Wlayer1", "blayer1"):
        p["grad_" + k] = rng.randn(*p[k].shape)
        p["m_" + k] = 0.9 * rng.randn(*p[k].shape) * lr - lr * p["grad_" + k]
    assert judge.momentum_check(p, lr)
    plain = dict(p, **{"m_" + k: -lr * p["grad_" + k] for k in ("Wlayer1", "blayer1")})
    assert "not carried" in judge.momentum_check(plain, lr).message
    # the rate of the last step may differ from the returned one (run_q5 decays it after the epoch)
    decayed = dict(p, **{"m_" + k: -0.9 * lr * p["grad_" + k] for k in ("Wlayer1", "blayer1")})
    assert not judge.momentum_check(decayed, lr)
    assert "no momentum accumulator" in judge.momentum_check({k: v for k, v in p.items() if not k.startswith("m_")}, lr).message
    assert "all zeros" in judge.momentum_check(dict(p, m_Wlayer1=np.zeros((4, 3))), lr).message
    # another naming (bocksong's W<name>_m, vccheng's MW<name>) is found by shape
    other = {k: v for k, v in p.items() if not k.startswith("m_")}
    other["Wlayer1_m"], other["MWblayer1"] = p["m_Wlayer1"], p["m_blayer1"]
    assert judge.momentum_check(other, lr)


def test_psnr():
    x = np.random.RandomState(8).rand(4, 1024)
    assert abs(judge.psnr(x, x + 0.1) - 20.0) < 1e-9
    assert judge.psnr(x, x + 0.01) > judge.psnr(x, x + 0.1)
    # skimage.metrics.peak_signal_noise_ratio per image (data_range=1), averaged: 10 log10(1 / MSE)
    r = np.clip(x + np.random.RandomState(9).normal(0, 0.1, x.shape), 0, 1)
    per_image = [10 * np.log10(1.0 / np.mean((x[i] - r[i]) ** 2)) for i in range(4)]
    assert abs(judge.psnr(x, r) - np.mean(per_image)) < 1e-9
