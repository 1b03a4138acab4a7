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
