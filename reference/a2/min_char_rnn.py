"""Reference solution: a character-level vanilla RNN in numpy (Assignment 2, Part 2).

Follows Andrej Karpathy's min-char-rnn, in the handout's style: the model lives in module globals
(Wxh, Whh, Why, bh, by, char_to_ix, ix_to_char, vocab_size, hidden_size) that the functions read.
The grader injects a snapshot's weights into these globals and then calls `sample`, `complete`, ...,
exactly as it does with a student's file. Nothing is loaded at import time.

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)       Wxh [H, V], Whh [H, H], bh [H, 1]
    y_t = Why h_t + by                           Why [V, H], by [V, 1]
    p_t = softmax(alpha * y_t)                   alpha = 1 / temperature

Functions that do not belong to the handout (`forward_backward`, `train`, `analyse_following`)
take their weights as arguments instead, so they never touch the globals.
"""
import numpy as np

# --- the handout's model globals (set by `set_model`, or injected by the grader) -------------------
Wxh = None            # [H, V] input -> hidden
Whh = None            # [H, H] hidden -> hidden
Why = None            # [V, H] hidden -> output logits
bh = None             # [H, 1]
by = None             # [V, 1]
char_to_ix = None     # {char: index}
ix_to_char = None     # {index: char}
vocab_size = None
hidden_size = 100
seq_length = 25       # characters per truncated back-propagation window
learning_rate = 0.1


def set_model(wxh, whh, why, b_h, b_y, chars):
    """Install weights and a vocabulary (list of characters, index order) as the module's model."""
    global Wxh, Whh, Why, bh, by, char_to_ix, ix_to_char, vocab_size, hidden_size
    Wxh, Whh, Why = np.asarray(wxh), np.asarray(whh), np.asarray(why)
    bh, by = np.asarray(b_h).reshape(-1, 1), np.asarray(b_y).reshape(-1, 1)
    chars = list(chars)
    char_to_ix = {c: i for i, c in enumerate(chars)}
    ix_to_char = {i: c for i, c in enumerate(chars)}
    vocab_size, hidden_size = len(chars), Wxh.shape[0]


def softmax(z):
    """Numerically stable softmax of a logit vector (any shape; normalised over all entries)."""
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def forward_backward(params, inputs, targets, hprev):
    """Loss and gradients of one truncated window, Karpathy's lossFun with explicit weights.

    params: (Wxh, Whh, Why, bh, by); inputs, targets: lists of character indices; hprev [H, 1].
    Returns loss (summed cross-entropy), (dWxh, dWhh, dWhy, dbh, dby), last hidden state [H, 1].
    """
    wxh, whh, why, b_h, b_y = params
    hs, ps = {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t, ix in enumerate(inputs):
        # Wxh @ one_hot(ix) is column ix of Wxh
        hs[t] = np.tanh(wxh[:, ix:ix + 1] + whh @ hs[t - 1] + b_h)      # [H, 1]
        ps[t] = softmax(why @ hs[t] + b_y)                              # [V, 1]
        loss += -np.log(ps[t][targets[t], 0])
    dwxh, dwhh, dwhy = np.zeros_like(wxh), np.zeros_like(whh), np.zeros_like(why)
    dbh, dby = np.zeros_like(b_h), np.zeros_like(b_y)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1                                             # softmax + cross-entropy
        dwhy += dy @ hs[t].T
        dby += dy
        dh = why.T @ dy + dhnext                                        # [H, 1]
        dhraw = (1 - hs[t] * hs[t]) * dh                                # through tanh
        dbh += dhraw
        dwxh[:, inputs[t]:inputs[t] + 1] += dhraw
        dwhh += dhraw @ hs[t - 1].T
        dhnext = whh.T @ dhraw
    grads = (dwxh, dwhh, dwhy, dbh, dby)
    for g in grads:
        np.clip(g, -5, 5, out=g)                                        # against exploding gradients
    return loss, grads, hs[len(inputs) - 1]


def lossFun(inputs, targets, hprev):
    """The handout's lossFun on the module's model: loss, dWxh, dWhh, dWhy, dbh, dby, last h."""
    loss, grads, h = forward_backward((Wxh, Whh, Why, bh, by), inputs, targets, hprev)
    return (loss,) + grads + (h,)


def _step(h, ix):
    """One recurrence step from hidden state h [H, 1] on character index ix."""
    return np.tanh(Wxh[:, ix:ix + 1] + Whh @ h + bh)                    # [H, 1]


def sample(h, seed_ix, n, alpha=1.0):
    """Draw n character indices, starting from state h and input character seed_ix.

    alpha scales the logits (alpha = 1/temperature): large alpha -> nearly greedy, small -> uniform.
    The draw is numpy's `np.random.choice(range(vocab_size), p=...)`, as in min-char-rnn, so under
    the same `np.random.seed` this gives the same text as a student's sampler.
    """
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    ixes = []
    for _ in range(n):
        h = np.tanh(Wxh @ x + Whh @ h + bh)                             # [H, 1]
        y = Why @ h + by                                                # [V, 1]
        p = softmax(alpha * y)
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


def hidden_after(text, h=None):
    """Hidden state [H, 1] after reading `text` from h (zeros by default)."""
    h = np.zeros((Wxh.shape[0], 1)) if h is None else h
    for c in text:
        h = _step(h, char_to_ix[c])
    return h


def next_char_probs(h, text, alpha=1.0):
    """p(next character | text) [V], reading `text` (non-empty) from state h (None = zeros)."""
    h = hidden_after(text, h)
    return softmax(alpha * (Why @ h + by)).ravel()


def complete(start, n, alpha=1.0):
    """The n characters the model writes after the starter string `start` (start not included).

    The whole starter but its last character builds up h; the last character is the seed of
    `sample`, so the first new character is drawn from p(next | the whole starter).
    """
    h = hidden_after(start[:-1])
    ixes = sample(h, char_to_ix[start[-1]], n, alpha)
    return "".join(ix_to_char[ix] for ix in ixes)


def train(text, hidden_size=100, steps=10000, seed=0, seq_length=25, learning_rate=0.1,
          log_every=0):
    """Karpathy's Adagrad training loop, for a fixed number of windows; returns a snapshot dict.

    The vocabulary is sorted (not `list(set(data))`, whose order changes from run to run).
    Keys: Wxh, Whh, Why, bh, by, chars (list), smooth_loss.
    """
    rng = np.random.RandomState(seed)
    chars = sorted(set(text))
    ix = {c: i for i, c in enumerate(chars)}
    data = np.array([ix[c] for c in text])
    v, hs = len(chars), hidden_size
    params = [rng.randn(hs, v) * 0.01, rng.randn(hs, hs) * 0.01, rng.randn(v, hs) * 0.01,
              np.zeros((hs, 1)), np.zeros((v, 1))]
    memory = [np.zeros_like(p) for p in params]
    smooth_loss = -np.log(1.0 / v) * seq_length
    p, hprev = 0, np.zeros((hs, 1))
    for n in range(steps):
        if p + seq_length + 1 >= len(data):              # wrapped around: forget the state
            p, hprev = 0, np.zeros((hs, 1))
        inputs = data[p:p + seq_length].tolist()
        targets = data[p + 1:p + seq_length + 1].tolist()
        loss, grads, hprev = forward_backward(params, inputs, targets, hprev)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        for param, grad, mem in zip(params, grads, memory):
            mem += grad * grad
            param -= learning_rate * grad / np.sqrt(mem + 1e-8)         # Adagrad
        p += seq_length
        if log_every and n % log_every == 0:
            print("iter %d, loss %.3f" % (n, smooth_loss))
    names = ("Wxh", "Whh", "Why", "bh", "by")
    return dict(zip(names, params), chars=chars, smooth_loss=float(smooth_loss))


def analyse_following(Wxh, Whh, Why, bh, by, char_to_ix, ch=":", targets=("\n", " "), top=4):
    """Which hidden unit makes `targets` follow `ch`, and through which weights.

    From a zero state, reading `ch` gives h = tanh(Wxh[:, ix] + bh). Unit j adds h_j * Why[t, j] to
    the logit of target t. What matters is what `ch` changes, so h_j is measured against its mean
    over all input characters: a unit that sits at -1 after every character (there is one such
    unit in the course snapshot) says nothing about ':'. The unit with the largest summed
    contribution to the targets' logits is the answer; its weights are Wxh[unit, ix(ch)] (input
    -> unit) and Why[ix(t), unit] (unit -> each target).
    """
    ix = char_to_ix[ch]
    t_ix = [char_to_ix[t] for t in targets]
    h_all = np.tanh(Wxh + bh.reshape(-1, 1))                            # [H, V]: h after each char
    change = h_all[:, ix] - h_all.mean(axis=1)                          # [H]
    contribution = change * Why[t_ix].sum(axis=0)                       # [H]
    order = np.argsort(-contribution, kind="stable")
    unit = int(order[0])
    return {
        "char": ch,
        "index": int(ix),
        "unit": unit,
        "activation": float(h_all[unit, ix]),
        "contribution": float(contribution[unit]),
        "wxh": {"coord": [unit, int(ix)], "value": float(Wxh[unit, ix])},
        "why": {t: {"coord": [int(i), unit], "value": float(Why[i, unit])}
                for t, i in zip(targets, t_ix)},
        "others": [{"unit": int(j), "contribution": float(contribution[j]),
                    "wxh": float(Wxh[j, ix])} for j in order[1:top]],
    }
