"""The char-RNN's next-character distributions, computed on the trusted side for gold.

These are the model's definition (h = tanh(Wxh x + Whh h + bh), p = softmax(alpha (Why h + by))),
used to choose telling test contexts and to state what a correct sampler's draws must follow.
"""
from __future__ import annotations

import numpy as np


def step(w, h, ix):
    return np.tanh(w["Wxh"][:, [ix]] + w["Whh"] @ h + w["bh"])


def probs(w, h, ix, alpha=1.0):
    """Distribution of the character after `ix` from state h, at inverse temperature alpha."""
    z = alpha * (w["Why"] @ step(w, h, ix) + w["by"]).ravel()
    e = np.exp(z - z.max())
    return e / e.sum()


def hidden_after(w, chars, text):
    index = {c: i for i, c in enumerate(chars)}
    h = np.zeros((w["Whh"].shape[0], 1))
    for c in text:
        if c in index:
            h = step(w, h, index[c])
    return h


def completion_probs(w, chars, starter, alpha=1.0):
    """p(next | the whole starter): h over starter[:-1], then one step on its last character."""
    h = hidden_after(w, chars, starter[:-1])
    return probs(w, h, chars.index(starter[-1]), alpha)


def _tv(p, q):
    return 0.5 * float(np.abs(p - q).sum())


def _entropy(p):
    return float(-(p * np.log(p + 1e-30)).sum())


def most_telling_seed(w, h, alpha):
    """The seed character whose next-character distribution best separates softmax(alpha z) from
    the common mistake softmax(z / alpha), among those that are not nearly deterministic."""
    best, best_tv = 0, -1.0
    for ix in range(w["Why"].shape[0]):
        right, wrong = probs(w, h, ix, alpha), probs(w, h, ix, 1.0 / alpha)
        if _entropy(right) > 0.3 and _tv(right, wrong) > best_tv:
            best, best_tv = ix, _tv(right, wrong)
    return best


def telling_starters(w, chars, text, count=2):
    """Starters (taken from the corpus) after which the next-character distribution depends most on
    the whole string rather than on its last character alone."""
    scored = []
    for start in range(0, min(len(text), 20000) - 40, 157):
        starter = text[start:start + 24].split("\n")[-1]
        if len(starter) < 8 or any(c not in chars for c in starter):
            continue
        whole = completion_probs(w, chars, starter)
        last_only = probs(w, np.zeros((w["Whh"].shape[0], 1)), chars.index(starter[-1]))
        if _entropy(whole) > 0.3:
            scored.append((_tv(whole, last_only), starter))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [s for _, s in scored[:count]]


# ------------------------------------------------------------------ every step of a generated sequence

def _softmax_columns(z, beta):
    z = beta * z
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def path_probs(w, h0, seed_ix, draws, beta=1.0, feed_input=True, carry_h=True):
    """[R, S, V]: for each of R generated sequences (`draws` [R, S] of character indices, -1 where a
    sequence ended), the distribution each drawn character had given the ones drawn before it.

    The correct generator starts from state `h0` ([H, 1]) and input `seed_ix`, and after each draw
    feeds the drawn character back as the next input and carries h on. The two common mistakes are
    the same recursion with `feed_input=False` (the input stays the seed character) or
    `carry_h=False` (every step starts again from h0)."""
    draws = np.asarray(draws, dtype=np.int64)
    reps, steps = draws.shape
    h0 = np.asarray(h0, dtype=np.float64).reshape(-1, 1)
    h = np.repeat(h0, reps, axis=1)                                   # [H, R]
    x = np.full(reps, int(seed_ix))
    out = np.empty((reps, steps, w["Why"].shape[0]))
    for t in range(steps):
        prev = h if carry_h else np.repeat(h0, reps, axis=1)
        h = np.tanh(w["Wxh"][:, x] + w["Whh"] @ prev + w["bh"])      # [H, R]
        out[:, t, :] = _softmax_columns(w["Why"] @ h + w["by"], beta).T
        if feed_input:
            x = np.where(draws[:, t] >= 0, draws[:, t], x)
    return out


def sequential_fit(draws, probs, alpha_test, first_step=1):
    """(ok, p-value, detail): do steps `first_step`.. of `draws` [R, S] follow `probs` [R, S, V], each
    draw its own conditional distribution? Pearson's statistic on the per-step counts against the
    summed expected counts (pooled to >= 5 expected per bin), summed over the steps. With draws
    independent given the past, each category's count has variance sum p(1-p) <= its expectation, so
    the statistic is at most chi-square and the false-alarm rate for a right generator is at most
    `alpha_test`. A draw of a character with (almost) zero probability fails outright."""
    from grader.checks.compare import chi2_sf, pool_bins

    draws = np.asarray(draws, dtype=np.int64)
    stat, df, judged = 0.0, 0, 0
    for t in range(first_step, draws.shape[1]):
        live = draws[:, t] >= 0
        if live.sum() < 20:
            continue
        d, p = draws[live, t], probs[live, t, :]
        if (p[np.arange(d.size), d] < 1e-12).any():
            return False, 0.0, f"drew characters that have (almost) zero probability at step {t + 1}"
        observed = np.bincount(d, minlength=p.shape[1]).astype(np.float64)
        expected = p.sum(axis=0)
        ob, eb = pool_bins(observed, expected)
        if len(eb) < 2:
            continue
        stat += float(((ob - eb) ** 2 / eb).sum())
        df += len(eb) - 1
        judged += int(live.sum())
    if df == 0:
        return True, 1.0, "no later steps to judge"
    p_value = chi2_sf(stat, df)
    return (p_value >= alpha_test, p_value,
            f"the {judged} characters drawn after the first do not follow the model's distribution "
            f"given the characters before them (chi-square p = {p_value:.2g})")
