"""Probes for Assignment 2 (colourization CNNs + char-RNN), run inside the worker.

Each probe drives the student's code the way the harness chooses (construction, seeded weights,
inputs, training loop, random seeds) and returns plain arrays plus small JSON facts. The same probes
run on the reference to make gold, so a probe never needs to know the right answer.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .loader import StudentError, describe

PROBES: dict = {}


def probe(name):
    def register(fn):
        PROBES[name] = fn
        return fn
    return register


# ----------------------------------------------------------------------------- models

class StandInConv2d(nn.Module):
    """The handout's MyConv2d, used in place of the student's so CNN/UNet are graded on their own
    merit even when the provided convolution was altered or broken."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=None):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding = kernel_size // 2 if padding is None else padding
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


def _n_positional(fn) -> int:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 99
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _get(module, names, what):
    for name in names:
        if callable(getattr(module, name, None)):
            return name, getattr(module, name)
    raise StudentError(f"no {what} found: expected one of {', '.join(names)}")


# The handout's constructor arguments, in its order, and the names students give them.
CTOR_ARGS = ("kernel", "nf", "nc", "cin")
_CTOR_NAMES = {
    "kernel": {"kernel", "kernel_size", "k", "ksize", "kernel_sz", "filter_size", "kernel_dim"},
    "nf": {"num_filters", "nf", "filters", "n_filters", "num_filter", "nfilters", "num_filts",
           "n_filter", "number_of_filters"},
    "nc": {"num_colours", "num_colors", "nc", "colours", "colors", "n_colours", "n_colors",
           "num_colour", "num_color", "ncolours", "ncolors", "num_classes", "n_classes"},
    "cin": {"num_in_channels", "in_channels", "n_in_channels", "num_input_channels", "input_channels",
            "cin", "in_ch", "num_channels", "n_channels", "in_chans", "num_in_channel", "inchannels"},
}
_CTOR_SHOWN = {"kernel": "kernel", "nf": "num_filters", "nc": "num_colours", "cin": "num_in_channels"}


def _ctor_role(name: str) -> str | None:
    low = name.lower()
    return next((role for role, names in _CTOR_NAMES.items() if low in names), None)


def constructor_call(cls, values: dict, name: str) -> tuple[tuple, dict, str]:
    """(args, kwargs, shown) to build `cls` as its own signature asks, with the handout's values.

    The 2018 handout's models take (kernel, num_filters, num_colours), the 2019 notebook's
    (kernel, num_filters, num_colours, num_in_channels) with no default: a num_in_channels the
    signature has is always passed, required or not. Arguments are matched by name when the
    signature names them recognisably (in any order), else given in the handout's order."""
    cin = values["cin"]
    try:
        params = [p for p in inspect.signature(cls).parameters.values()]
    except (TypeError, ValueError):
        params = []
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    star = any(p.kind == p.VAR_POSITIONAL for p in params)
    roles = {p.name: _ctor_role(p.name) for p in named}
    found = [r for r in roles.values() if r]
    by_name = (len(set(found)) == len(found) and {"kernel", "nf", "nc"} <= set(found)
               and not any(p.kind == p.POSITIONAL_ONLY for p in named))
    if by_name:
        unknown = [p.name for p in named if not roles[p.name] and p.default is p.empty]
        if unknown:
            raise StudentError(f"{name}{inspect.signature(cls)} requires {', '.join(unknown)}, which the "
                               f"handout's {name}(kernel, num_filters, num_colours[, num_in_channels]) "
                               f"does not have")
        if "cin" not in found and cin != 1:
            raise StudentError(f"{name}{inspect.signature(cls)} takes no num_in_channels argument "
                               f"(2018 handout), so it cannot take {cin}-channel input")
        kwargs = {p.name: values[roles[p.name]] for p in named if roles[p.name]}
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        return (), kwargs, f"{name}({shown})"
    positional = [p for p in named if p.kind != p.KEYWORD_ONLY]
    takes_cin = star or len(positional) >= 4
    if cin != 1 and not takes_cin:
        raise StudentError(f"{name}(kernel, num_filters, num_colours) takes no num_in_channels "
                           f"argument (2018 handout), so it cannot take {cin}-channel input")
    # A fourth positional parameter is the handout's num_in_channels: always given, so that a
    # required one (the 2019 signature) is never missing (`*args` gets it only when it is not 1).
    order = CTOR_ARGS if len(positional) >= 4 or cin != 1 else CTOR_ARGS[:3]
    args = tuple(values[r] for r in order)
    return args, {}, f"{name}({', '.join(str(a) for a in args)})"


def build_model(ctx, args):
    """Construct the student's model class with the stand-in convolution; returns (model, facts)."""
    mod = ctx.module("colourization")
    name = args["model"]
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise StudentError(f"colourization has no class {name}")
    values = {"kernel": args["kernel"], "nf": args["nf"], "nc": args["nc"], "cin": args.get("cin", 1)}
    ctor, kwargs, shown = constructor_call(cls, values, name)
    facts = {"standin": True, "call": shown}
    original = getattr(mod, "MyConv2d", None)
    torch.manual_seed(args.get("init_seed", 0))
    try:
        mod.MyConv2d = StandInConv2d
        model = cls(*ctor, **kwargs)
    except TypeError:
        # The student changed MyConv2d's signature and their model relies on it: use theirs.
        if original is None:
            raise
        mod.MyConv2d = original
        torch.manual_seed(args.get("init_seed", 0))
        model = cls(*ctor, **kwargs)
        facts["standin"] = False
    finally:
        if original is not None:
            mod.MyConv2d = original
    if not isinstance(model, nn.Module):
        raise StudentError(f"{name}(...) did not return a torch.nn.Module")
    conv_cls = StandInConv2d if facts["standin"] else original
    facts["conv_modules"] = [
        {"name": n, "type": type(m).__name__,
         "myconv": isinstance(m, conv_cls) if conv_cls else False,
         "nn_conv": isinstance(m, nn.modules.conv._ConvNd)}
        for n, m in model.named_modules() if _own_weight_dim(m) == 4]
    facts["params"] = [[n, list(t.shape)] for n, t in _state(model)]
    # A digest of the initial tensors: equal digests mean equal initial parameters, bit for bit.
    digest = hashlib.sha256()
    for _, t in _state(model):
        digest.update(t.detach().contiguous().numpy().tobytes())
    facts["init_digest"] = digest.hexdigest()
    facts["n_params"] = int(sum(p.numel() for p in model.parameters()))
    return model, facts


def _own_weight_dim(m):
    w = m._parameters.get("weight") if hasattr(m, "_parameters") else None
    return w.dim() if isinstance(w, torch.Tensor) else 0


def _state(model):
    return [(n, t) for n, t in model.state_dict().items() if not n.endswith("num_batches_tracked")]


def seed_weights(model, seed, swaps=()):
    """Overwrite every parameter and buffer, in state-dict order, with values drawn from `seed`.

    Two models whose tensors have the same shapes in the same order get identical values whatever
    their attribute names, so the student's model and the reference compute comparable functions.
    BatchNorm scales and variances are positive so eval-mode BN is increasing, hence commutes with
    max-pooling (the handout's two layer orders then give equal outputs). `swaps` rotates the input
    channel blocks of the i-th 4-D weight: how gold is made for the other concatenation orders.
    """
    gen = torch.Generator().manual_seed(seed)
    state = _state(model)
    new = {}
    for name, t in state:
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        leaf = name.rsplit(".", 1)[-1]
        bn = isinstance(owner, nn.modules.batchnorm._BatchNorm)
        if bn and leaf in ("weight", "running_var"):
            v = 0.5 + torch.rand(t.shape, generator=gen)
        elif t.dim() > 1:
            v = torch.randn(t.shape, generator=gen) / math.sqrt(max(1, t[0].numel()))
        else:
            v = 0.1 * torch.randn(t.shape, generator=gen)
        new[name] = v.to(t.dtype)
    convs = [n for n, t in state if t.dim() == 4]
    for index, split in swaps:
        w = new[convs[index]]
        new[convs[index]] = torch.cat([w[:, split:], w[:, :split]], dim=1)
    missing = model.load_state_dict(new, strict=False)
    if missing.missing_keys:
        raise StudentError(f"could not set weights: {missing.missing_keys[:3]}")


def _logits(model, x):
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise StudentError(f"forward returned {type(out).__name__}; expected a tensor")
    return out


@probe("model_forward")
def model_forward(ctx, args, arrays):
    """Seeded weights, eval mode: the output and the input gradient for a seeded batch."""
    model, facts = build_model(ctx, args)
    gen = torch.Generator().manual_seed(args["seed"])
    x = torch.randn(args["batch"], args.get("cin", 1), 32, 32, generator=gen)
    try:
        seed_weights(model, args["seed"] + 1, [tuple(s) for s in args.get("swaps", [])])
    except (RuntimeError, StudentError) as exc:
        facts["weights_error"] = str(exc)[:300]
        return {}, facts
    model.eval()
    x.requires_grad_(True)
    try:
        out = _logits(model, x)
        facts["out_shape"] = list(out.shape)
        r = torch.randn(out.shape, generator=gen) if out.dim() == 4 else torch.ones_like(out)
        (out * r).sum().backward()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the student's forward: construction facts still count
        # A model that builds but whose forward fails keeps what its construction showed (layer
        # types and shapes), so its structure is judged on its own; the function check fails.
        facts["forward_error"] = exc.args[0] if isinstance(exc, StudentError) else describe(exc, ctx.workspace)
        return {}, facts
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    result = {"out": out.detach().numpy(), "grad": grad.numpy()}
    if args.get("train_mode"):
        # Training behaviour (BatchNorm on batch statistics) as well as inference behaviour.
        model.train()
        with torch.no_grad():
            result["train_out"] = _logits(model, x.detach()).numpy()
    if args.get("grad_batch"):
        try:
            result["param_grad"] = _param_grad(model, args, gen)
        except (RuntimeError, StudentError) as exc:
            facts["param_grad_error"] = str(exc)[:300]
    return result, facts


def _param_grad(model, args, gen):
    """The gradient the harness's loss sends to every parameter, on a training-size batch in
    training mode: what training would change. Frozen or missing parameters, or a model that only
    works for the probe's small batch, show here (reuse.py compares it with the reference's)."""
    model.train()
    model.zero_grad(set_to_none=True)
    xb = torch.randn(args["grad_batch"], args.get("cin", 1), 32, 32, generator=gen)
    yb = torch.randint(0, args["nc"], (args["grad_batch"], 32, 32), generator=gen)
    F.cross_entropy(_logits(model, xb), yb).backward()
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in model.parameters()]
    return torch.cat(grads).detach().numpy() if grads else np.zeros(0, dtype=np.float32)


@probe("model_train")
def model_train(ctx, args, arrays):
    """Train with the harness's loop, data, seed and budget; return validation predictions only.

    On a worker given a GPU the training runs there (see grader/devices.py for the deterministic
    settings); a model that mixes devices (e.g. makes CPU tensors in forward) is trained on the
    CPU instead, and the facts say so."""
    model, facts = build_model(ctx, args)
    device = train_device()
    if device.type == "cpu":
        return _train(model, args, arrays, device), facts
    try:
        out = _train(model.to(device), args, arrays, device)
        facts["device"] = "cuda"
        return out, facts
    except RuntimeError as exc:
        if "device" not in str(exc):
            raise
        model, facts = build_model(ctx, args)
        facts["device"] = f"cpu (on cuda: {str(exc).splitlines()[0][:200]})"
        return _train(model, args, arrays, torch.device("cpu")), facts


def train_device():
    """cuda when this worker was given a GPU and torch can use it, else cpu."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _train(model, args, arrays, device):
    x_train = torch.from_numpy(arrays["x_train"]).float().to(device)
    y_train = torch.from_numpy(arrays["y_train"]).long().to(device)
    x_valid = torch.from_numpy(arrays["x_valid"]).float().to(device)
    rng = np.random.RandomState(args["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=args["lr"])
    batch, steps = args["batch"], args["steps"]
    losses = []
    order = np.array([], dtype=int)
    model.train()
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(len(x_train))])
        idx, order = order[:batch], order[batch:]
        opt.zero_grad()
        loss = F.cross_entropy(_logits(model, x_train[idx]), y_train[idx])  # [B,NC,H,W] vs [B,H,W]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x_valid), 100):
            preds.append(_logits(model, x_valid[i:i + 100]).argmax(1).to(torch.uint8))
    pred = torch.cat(preds).cpu().numpy()
    return {"pred": pred, "loss": np.nan_to_num(np.array(losses, dtype=np.float32), nan=1e9)}


@probe("process")
def process(ctx, args, arrays):
    mod = ctx.module("colourization")
    fn = getattr(mod, "process", None)
    if not callable(fn):
        raise StudentError("colourization has no function process(xs, ys, max_pixel, downsize_input)")
    np.random.seed(args["seed"])
    if args.get("downsize"):
        if "downsize_input" not in inspect.signature(fn).parameters:
            raise StudentError("process() has no downsize_input argument (2018 handout): "
                               "super-resolution needs the 2019 version")
        out = fn(arrays["xs"], arrays["ys"], downsize_input=True)
    else:
        out = fn(arrays["xs"], arrays["ys"])
    out = [o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out]
    return {f"out{i}": o.astype(np.float32) for i, o in enumerate(out)}, {"n_out": len(out)}


@probe("dilated")
def dilated(ctx, args, arrays):
    """The 2018 bonus: MyDilatedConv2d(cin, cout, k, dilation=1) forward and backward."""
    mod = ctx.module("colourization")
    cls = getattr(mod, "MyDilatedConv2d", None)
    if not isinstance(cls, type):
        raise StudentError("colourization has no class MyDilatedConv2d (the 2018 bonus)")
    cin, cout, k = args["cin"], args["cout"], args["kernel"]
    torch.manual_seed(0)
    try:
        layer = cls(cin, cout, k, dilation=1)
    except TypeError:
        layer = cls(cin, cout, k, 1)
    seed_weights(layer, args["seed"] + 1)
    seen = []
    real = (F.conv2d, torch.conv2d)

    def spy(fn):
        def conv(*a, **kw):
            d = kw.get("dilation", a[5] if len(a) > 5 else 1)
            seen.append(d if isinstance(d, int) else list(d))
            return fn(*a, **kw)
        return conv

    gen = torch.Generator().manual_seed(args["seed"])
    x = torch.randn(args["batch"], cin, 32, 32, generator=gen, requires_grad=True)
    F.conv2d, torch.conv2d = spy(real[0]), spy(real[1])
    try:
        out = _logits(layer, x)
    finally:
        F.conv2d, torch.conv2d = real
    r = torch.randn(out.shape, generator=gen)
    (out * r).sum().backward()
    weight = getattr(layer, "weight", None)
    wgrad = weight.grad if isinstance(weight, torch.Tensor) else None
    facts = {"dilations": seen, "weight_grad": wgrad is not None, "out_shape": list(out.shape)}
    res = {"out": out.detach().numpy(), "grad": x.grad.numpy()}
    if wgrad is not None:
        res["wgrad"] = wgrad.numpy()
    return res, facts


# ----------------------------------------------------------------------------- char-RNN

def _inject_snapshot(ctx, args, arrays):
    """Give the student's module the snapshot's weights and its own character order (the one the
    snapshot was trained with, not list(set(data)) of the student's run)."""
    mod = ctx.module("rnn")
    for name in ("Wxh", "Whh", "Why", "bh", "by"):
        setattr(mod, name, arrays[name].astype(np.float64).copy())
    chars = list(args["chars"])
    mod.chars = chars
    mod.char_to_ix = {c: i for i, c in enumerate(chars)}
    mod.ix_to_char = {i: c for i, c in enumerate(chars)}
    mod.vocab_size = len(chars)
    mod.hidden_size = int(arrays["Whh"].shape[0])
    return mod, chars


def _as_indices(result, chars, what):
    if isinstance(result, str):
        index = {c: i for i, c in enumerate(chars)}
        if any(c not in index for c in result):
            raise StudentError(f"{what} returned characters outside the vocabulary")
        return [index[c] for c in result]
    try:
        return [int(i) for i in np.asarray(result).ravel()]
    except (TypeError, ValueError):
        raise StudentError(f"{what} returned {type(result).__name__}; expected a list of "
                           f"character indices or a string") from None


@probe("rnn_sample")
def rnn_sample(ctx, args, arrays):
    mod, chars = _inject_snapshot(ctx, args, arrays)
    name, fn = _get(mod, args["names"], "temperature sampling function")
    if _n_positional(fn) < 4:
        raise StudentError(f"{name}{inspect.signature(fn)} takes no temperature: expected "
                           f"{name}(h, seed_ix, n, alpha)")
    h = arrays["h"].astype(np.float64)
    np.random.seed(args["seed"])
    draws = []
    for _ in range(args["reps"]):
        ix = _as_indices(fn(h.copy(), args["seed_ix"], args["n"], args["alpha"]), chars, name)
        if len(ix) != args["n"]:
            raise StudentError(f"{name}(h, seed_ix, n={args['n']}, alpha) returned {len(ix)} "
                               f"characters; expected {args['n']}")
        draws.append(ix)
    return {"draws": np.array(draws, dtype=np.int32)}, {"function": name}


@probe("rnn_complete")
def rnn_complete(ctx, args, arrays):
    mod, chars = _inject_snapshot(ctx, args, arrays)
    name, fn = _get(mod, args["names"], "string completion function")
    starter, n = args["starter"], args["n"]
    call = (starter, n, 1.0) if _n_positional(fn) >= 3 and _required(fn) >= 3 else (starter, n)
    np.random.seed(args["seed"])
    first, lengths = [], []
    for _ in range(args["reps"]):
        out = fn(*call)
        if isinstance(out, str) and len(out) == len(starter) + n and out.startswith(starter):
            out = out[len(starter):]          # accept completions returned with their starter
        ix = _as_indices(out, chars, name)
        lengths.append(len(ix))
        first.append(ix[0] if ix else -1)
    return ({"first": np.array(first, dtype=np.int32), "lengths": np.array(lengths, dtype=np.int32)},
            {"function": name})


def _required(fn) -> int:
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
    return sum(p.default is p.empty for p in params)
