"""Comparators: plain functions registered by name, used by checks on the trusted side.

Each returns a `Comparison` whose `detail` describes what was found in terms a student can act on
(shapes, how far off, where) and never prints the expected (gold) values themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COMPARATORS: dict = {}


def comparator(name):
    def register(fn):
        COMPARATORS[name] = fn
        return fn
    return register


@dataclass
class Comparison:
    ok: bool
    detail: str = ""
    value: float | None = None


@comparator("shape")
def same_shape(found: np.ndarray, expected: np.ndarray) -> Comparison:
    if tuple(found.shape) == tuple(expected.shape):
        return Comparison(True)
    return Comparison(False, f"shape {list(found.shape)}, expected {list(expected.shape)}")


@comparator("allclose")
def allclose(found: np.ndarray, expected: np.ndarray, rtol: float = 1e-4, atol: float = 1e-4) -> Comparison:
    shape = same_shape(found, expected)
    if not shape.ok:
        return shape
    found = np.asarray(found, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not np.isfinite(found).all():
        return Comparison(False, f"{int((~np.isfinite(found)).sum())} values are NaN or infinite")
    err = np.abs(found - expected)
    bad = err > atol + rtol * np.abs(expected)
    if not bad.any():
        return Comparison(True, value=float(err.max(initial=0.0)))
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    return Comparison(False, f"{int(bad.sum())} of {bad.size} values differ (largest difference "
                             f"{err.max():.3g} at index {list(map(int, where))})", value=float(err.max()))


@comparator("accuracy")
def accuracy(pred: np.ndarray, labels: np.ndarray) -> Comparison:
    """Percentage of positions where the prediction equals the label (e.g. pixels, for a per-pixel classifier)."""
    if tuple(pred.shape) != tuple(labels.shape):
        return Comparison(False, f"predictions of shape {list(pred.shape)}, expected {list(labels.shape)}")
    return Comparison(True, value=float(100.0 * np.mean(pred.astype(np.int64) == labels.astype(np.int64))))


def pool_bins(observed: np.ndarray, expected: np.ndarray, least: float = 5.0):
    """(observed, expected) per bin, the rarest categories pooled until each bin expects >= `least`
    (what the chi-square approximation needs); what is left at the end joins the last bin."""
    obs_bins, exp_bins, o, e = [], [], 0.0, 0.0
    for i in np.argsort(expected):
        o, e = o + observed[i], e + expected[i]
        if e >= least:
            obs_bins.append(o)
            exp_bins.append(e)
            o = e = 0.0
    if e > 0 and exp_bins:
        obs_bins[-1] += o
        exp_bins[-1] += e
    return np.array(obs_bins), np.array(exp_bins)


@comparator("chi2")
def chi_square(draws: np.ndarray, probs: np.ndarray, alpha_test: float = 1e-3) -> Comparison:
    """Goodness of fit of integer draws to a distribution; fails with false-alarm rate alpha_test.

    Categories with small expected counts are pooled (expected >= 5 each) so the chi-square
    approximation holds; a draw of a category with probability ~0 fails outright.
    """
    draws = np.asarray(draws).ravel().astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64).ravel()
    n = draws.size
    if n == 0:
        return Comparison(False, "no draws")
    if draws.min() < 0 or draws.max() >= probs.size:
        return Comparison(False, f"draws outside 0..{probs.size - 1}")
    counts = np.bincount(draws, minlength=probs.size).astype(np.float64)
    expected = probs * n
    impossible = (expected < 1e-6) & (counts > 0)
    if impossible.any():
        return Comparison(False, f"drew {int(counts[impossible].sum())} characters that have "
                                 f"(almost) zero probability under softmax(alpha*z)", value=0.0)
    obs_arr, exp_arr = pool_bins(counts, expected)
    df = len(exp_arr) - 1
    if df < 1:
        return Comparison(True, value=1.0)
    stat = float(((obs_arr - exp_arr) ** 2 / exp_arr).sum())
    p = chi2_sf(stat, df)
    tv = 0.5 * float(np.abs(counts / n - probs).sum())
    return Comparison(p >= alpha_test, f"the {n} draws do not follow the expected distribution "
                                       f"(chi-square p = {p:.2g}, total variation {tv:.2f})", value=p)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with df degrees of freedom: Q(df/2, x/2)."""
    if x <= 0:
        return 1.0
    return _gamma_q(df / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma function (Numerical Recipes' series / continued fraction)."""
    gln = math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    b, c, d = x + 1.0 - a, 1.0 / 1e-300, 1.0 / (x + 1.0 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)
