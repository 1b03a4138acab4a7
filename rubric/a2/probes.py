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
import re

from dataclasses import dataclass

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
    chars = list(args["chars"])
    _inject(mod, arrays, chars)
    return mod, chars


def _inject(obj, arrays, chars):
    for name in ("Wxh", "Whh", "Why", "bh", "by"):
        setattr(obj, name, arrays[name].astype(np.float64).copy())
    obj.chars = chars
    obj.char_to_ix = {c: i for i, c in enumerate(chars)}
    obj.ix_to_char = {i: c for i, c in enumerate(chars)}
    obj.vocab_size = len(chars)
    obj.hidden_size = int(arrays["Whh"].shape[0])
    if isinstance(obj, type(np)) and not hasattr(obj, "xrange"):
        obj.xrange = range                     # Python 2 scripts (min-char-rnn is one) loop with xrange


# What the parameters of a sampler or a completion are, by their names (older offerings' too).
_H_PARAM = re.compile(r"^(h|hprev|h_?prev\w*|h0|h_?init\w*|hidden\w*|state|h_?state|memory|mem)$", re.I)
_SEED_PARAM = re.compile(r"^(seed\w*|ix|idx|x|x0|start_?ix|first\w*|init\w*|inp|input|c|ch|char\w*|letter)$", re.I)
_CHAR_SEED = re.compile(r"^(c|ch|char\w*|letter|seed_?char\w*)$", re.I)
_N_PARAM = re.compile(r"^(n|k|m|num\w*|n_\w+|\w*len\w*|\w*lenght\w*|size|steps?|count|limit|max\w*|min\w*|"
                      r"how_many|chars?_?count)$", re.I)
_MULTIPLIES = re.compile(r"^(alpha|beta|a|b|inv_?temp\w*|inverse_?temp\w*|scale)$", re.I)
_DIVIDES = re.compile(r"^(temperature|temp|t|tau|temper\w*)$", re.I)
_STRING_PARAM = re.compile(r"^(start\w*|s|string|str\w*|\w*_?str(ing)?|text|txt|phrase|prefix|prime\w*|"
                           r"context|sentence|word\w*|begin\w*|inputs?_?str\w*|given\w*)$", re.I)


@dataclass
class _Found:
    qualname: str
    fn: object                       # the function (unbound for a method)
    owner: type | None               # the class a method belongs to
    params: list                     # inspect.Parameter, without `self`

    @property
    def signature(self) -> str:
        return f"{self.qualname}({', '.join(p.name for p in self.params)})"


def _functions(mod) -> list[_Found]:
    """The student's functions: module-level ones and the methods of module-level classes, from the
    student's own files (the workspace) only."""
    home = os.path.dirname(os.path.abspath(getattr(mod, "__file__", "") or "."))

    def theirs(obj):
        try:
            src = inspect.getsourcefile(obj)
        except (TypeError, OSError):
            return False
        return bool(src) and os.path.dirname(os.path.abspath(src)) == home

    found = []
    for name, obj in list(vars(mod).items()):
        if inspect.isfunction(obj) and theirs(obj):
            found.append(_Found(name, obj, None, _params(obj)))
        elif inspect.isclass(obj) and theirs(obj):
            for mname, m in vars(obj).items():
                if inspect.isfunction(m) and not mname.startswith("__"):
                    found.append(_Found(f"{name}.{mname}", m, obj, _params(m)[1:]))
    return found


def _params(fn) -> list:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def _listing(found: list[_Found]) -> str:
    shown = [f.signature for f in found[:12]]
    return ", ".join(shown) + (f" and {len(found) - 12} more" if len(found) > 12 else "") if shown else "none"


def _name_rank(qualname: str, names, patterns) -> int | None:
    """0.. for the rubric's names in order, then the aliases' patterns; None when the name fits neither."""
    name = qualname.rsplit(".", 1)[-1]
    if name in names:
        return list(names).index(name)
    if any(re.fullmatch(p, name, re.I) for p in patterns):
        return len(names)
    return None


def _temperature_param(params):
    """(parameter, convention) for the temperature argument, by name or (the handout) 4th position."""
    for p in params:
        if _MULTIPLIES.match(p.name):
            return p, "multiplies"
        if _DIVIDES.match(p.name):
            return p, "divides"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 4 and not (_H_PARAM.match(positional[3].name) or _SEED_PARAM.match(positional[3].name)
                                     or _N_PARAM.match(positional[3].name)):
        return positional[3], "multiplies"       # sample(h, seed_ix, n, <4th>): the handout's alpha
    return None, None


def _instance(found: _Found, arrays, chars, cache: dict):
    """An instance of the class that owns a sampler/completion method, with the snapshot injected."""
    if found.owner is None:
        return None
    if found.owner not in cache:
        hidden = int(arrays["Whh"].shape[0])
        kwargs = {}
        for p in _params(found.owner.__init__)[1:]:
            low = p.name.lower()
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if low in ("hidden_size", "hidden", "h_size", "hsize", "n_hidden", "num_hidden", "hidden_dim"):
                kwargs[p.name] = hidden
            elif low in ("vocab_size", "vocab_len", "v", "n_chars", "num_chars", "input_size", "output_size"):
                kwargs[p.name] = len(chars)
            elif low in ("chars", "vocab", "vocabulary", "alphabet", "characters", "char_list"):
                kwargs[p.name] = list(chars)
            elif low in ("data", "text", "corpus"):
                kwargs[p.name] = "".join(chars)
            elif _DIVIDES.match(p.name) or _MULTIPLIES.match(p.name):
                kwargs[p.name] = 1.0
            elif p.default is p.empty:
                raise StudentError(f"cannot construct {found.owner.__name__} to call {found.qualname}: "
                                   f"its constructor needs `{p.name}`, which the grader cannot supply")
        try:
            cache[found.owner] = found.owner(**kwargs)
        except StudentError:
            raise
        except Exception as exc:  # noqa: BLE001 - the student's constructor
            raise StudentError(f"{found.owner.__name__}({', '.join(kwargs)}) failed: "
                               f"{type(exc).__name__}: {exc}") from None
        _inject(cache[found.owner], arrays, chars)
    return cache[found.owner]


def _reset_state(obj, h):
    """Put hidden state h into an instance's own state attributes (`self.hprev`), for methods that
    keep the state on the object instead of taking it as an argument."""
    for name, value in list(vars(obj).items()):
        if isinstance(value, np.ndarray) and value.shape == h.shape and _H_PARAM.match(name):
            setattr(obj, name, h.copy())


def _bind(found: _Found, values: dict, what: str) -> tuple[dict, dict]:
    """(keyword arguments, parameter -> role) for `found` from `values` (role -> value); the roles
    are h, seed, n, temp and string."""
    kwargs, bound, positional_roles = {}, {}, ["h", "seed", "n", "temp"]
    for k, p in enumerate(found.params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        role = values.get("_roles", {}).get(p.name)
        if role is None:
            if "string" in values and _STRING_PARAM.match(p.name) and not _SEED_PARAM.match(p.name):
                role = "string"
            elif _H_PARAM.match(p.name):
                role = "h"
            elif _N_PARAM.match(p.name):
                role = "n"
            elif _SEED_PARAM.match(p.name):
                role = "seed"
            elif p.default is p.empty and "string" not in values and k < len(positional_roles):
                role = positional_roles[k]                  # the handout's order
        if role in values and values[role] is not None:
            kwargs[p.name] = values[role]
            bound[p.name] = role
        elif p.default is p.empty:
            raise StudentError(f"{found.signature}: the grader cannot tell what to pass as `{p.name}` "
                               f"(expected the handout's {what})")
    return kwargs, bound


def _as_indices(result, chars, what, starter=""):
    """A generated sequence as character indices: a string, a list/array of indices, or a tuple
    holding one of those (the first that fits); a copy of `starter` in front is removed."""
    if isinstance(result, tuple):
        for part in result:
            if isinstance(part, str) or (hasattr(part, "__len__") and not isinstance(part, dict)):
                result = part
                break
    index = {c: i for i, c in enumerate(chars)}
    if isinstance(result, str):
        if starter and result.startswith(starter):
            result = result[len(starter):]
        if any(c not in index for c in result):
            raise StudentError(f"{what} returned characters outside the vocabulary")
        return [index[c] for c in result]
    if result is None:
        raise StudentError(f"{what} returned None; expected the generated text (a string or a list "
                           f"of character indices)")
    try:
        ix = [int(i) for i in np.asarray(result).ravel()]
    except (TypeError, ValueError):
        raise StudentError(f"{what} returned {type(result).__name__}; expected a list of "
                           f"character indices or a string") from None
    prefix = [index[c] for c in starter] if starter and all(c in index for c in starter) else []
    if prefix and ix[:len(prefix)] == prefix:
        ix = ix[len(prefix):]
    return ix


def _call(found: _Found, owner, kwargs, retry_char_seed=None):
    """(result, the retry that was needed or None)."""
    fn = found.fn.__get__(owner) if owner is not None else found.fn
    try:
        return fn(**kwargs), None
    except (KeyError, IndexError, TypeError):
        if retry_char_seed is None:
            raise
        name, char = retry_char_seed                     # `seed` meant a character, not an index
        return fn(**dict(kwargs, **{name: char})), retry_char_seed


@probe("rnn_sample")
def rnn_sample(ctx, args, arrays):
    mod, chars = _inject_snapshot(ctx, args, arrays)
    found = _functions(mod)
    ranked = []
    for f in found:
        rank = _name_rank(f.qualname, args["names"], args.get("patterns", ()))
        if rank is None:
            continue
        param, convention = _temperature_param(f.params)
        ranked.append((param is None, f.owner is not None, rank, f.qualname, f, param, convention))
    ranked.sort(key=lambda r: r[:4])
    if not ranked:
        raise StudentError(f"no sampling function found: expected sample(h, seed_ix, n, alpha) "
                           f"(or another sampler name: {', '.join(args['names'][:4])}, sample_*, "
                           f"*_temperature); functions found: {_listing(found)}")
    *_, f, param, convention = ranked[0]
    if param is None:
        raise StudentError(f"{f.signature} takes no temperature: expected {f.qualname.rsplit('.', 1)[-1]}"
                           f"(h, seed_ix, n, alpha); samplers found: "
                           f"{_listing([r[4] for r in ranked])}")
    alpha = float(args["alpha"])
    value = alpha if convention == "multiplies" else 1.0 / alpha
    h = arrays["h"].astype(np.float64)
    seed_ix, n = int(args["seed_ix"]), int(args["n"])
    cache: dict = {}
    owner = _instance(f, arrays, chars, cache)
    values = {"h": h, "seed": seed_ix, "n": n, "temp": value, "_roles": {param.name: "temp"}}
    kwargs, bound = _bind(f, values, "sample(h, seed_ix, n, alpha)")
    seed_name = next((name for name, role in bound.items() if role == "seed"), None)
    retry = (seed_name, chars[seed_ix]) if seed_name else None
    if seed_name and _CHAR_SEED.match(seed_name):
        kwargs[seed_name], retry = chars[seed_ix], None
    np.random.seed(args["seed"])
    draws = []
    for _ in range(args["reps"]):
        if owner is not None:
            _reset_state(owner, h)
        call = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        out, used = _call(f, owner, call, retry)
        if used:
            kwargs[used[0]], retry = used[1], None
        ix = _as_indices(out, chars, f.qualname)
        if len(ix) != n:
            raise StudentError(f"{f.signature} with n={n} returned {len(ix)} characters; expected {n}")
        draws.append(ix)
    facts = {"function": f.qualname, "signature": f.signature, "temperature": param.name,
             "convention": convention, "value": value}
    return {"draws": np.array(draws, dtype=np.int32)}, facts


@probe("rnn_complete")
def rnn_complete(ctx, args, arrays):
    mod, chars = _inject_snapshot(ctx, args, arrays)
    starter, n = args["starter"], int(args["n"])
    found = _functions(mod)
    ranked = []
    for f in found:
        rank = _name_rank(f.qualname, args["names"], args.get("patterns", ()))
        takes_string = any(_STRING_PARAM.match(p.name) and not _SEED_PARAM.match(p.name) for p in f.params)
        takes_length = any(_N_PARAM.match(p.name) for p in f.params)
        primed = (not takes_string and any(_H_PARAM.match(p.name) for p in f.params)
                  and any(_SEED_PARAM.match(p.name) for p in f.params))
        if rank is None and not (takes_string and takes_length):
            continue                                   # e.g. part2(inputs_string, temp, n) is kept
        if rank is None and _name_rank(f.qualname, (), args.get("sampler_patterns", ())) is not None:
            continue                                   # a sampler, not a completion
        ranked.append((not (takes_string or primed), rank is None, rank or 0, f.owner is not None,
                       f.qualname, f, takes_string, primed))
    ranked.sort(key=lambda r: r[:5])
    expected = ("expected complete(start, n) taking the starter string (or complete(h, seed_ix, n) "
                "continuing from a primed hidden state)")
    if not ranked:
        raise StudentError(f"no completion function found: {expected}; functions found: {_listing(found)}")
    if ranked[0][0]:
        raise StudentError(f"{ranked[0][5].signature} takes neither a starter string nor a hidden "
                           f"state, so it cannot be asked to complete a given string: {expected}; "
                           f"functions found: {_listing(found)}")
    *_, f, takes_string, primed = ranked[0]
    hidden = int(arrays["Whh"].shape[0])
    index = {c: i for i, c in enumerate(chars)}
    if any(c not in index for c in starter):
        raise ValueError("starter outside the vocabulary")       # ours: gold inputs are wrong
    values = {"n": n, "temp": 1.0}
    if takes_string:
        values.update(string=starter, h=np.zeros((hidden, 1)))
    else:                                  # from a primed hidden state: the grader primes it
        h = np.zeros((hidden, 1))
        w = {k: arrays[k].astype(np.float64) for k in ("Wxh", "Whh", "bh")}
        for c in starter[:-1]:
            h = np.tanh(w["Wxh"][:, [index[c]]] + w["Whh"] @ h + w["bh"])
        values.update(h=h, seed=index[starter[-1]])
    param, convention = _temperature_param(f.params)
    if param is not None:
        values["_roles"] = {param.name: "temp"}
    cache: dict = {}
    owner = _instance(f, arrays, chars, cache)
    kwargs, bound = _bind(f, values, "complete(start, n)")
    # A length parameter named as a minimum (`minlength`: older offerings stopped at a sentence end
    # after at least n characters) promises at least n characters, not exactly n.
    length = next((name for name, role in bound.items() if role == "n"), None)
    at_least = bool(length and re.match(r"^min", length, re.I))
    np.random.seed(args["seed"])
    draws, lengths = [], []
    for _ in range(args["reps"]):
        if owner is not None:
            _reset_state(owner, np.zeros((hidden, 1)) if takes_string else values["h"])
        call = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        ix = _as_indices(_call(f, owner, call)[0], chars, f.qualname, starter if takes_string else "")
        lengths.append(len(ix))
        draws.append((ix + [-1] * n)[:n])
    facts = {"function": f.qualname, "signature": f.signature,
             "form": "string" if takes_string else "primed hidden state",
             "temperature": param.name if param is not None else None, "convention": convention,
             "length": "at least" if at_least else "exactly"}
    return ({"draws": np.array(draws, dtype=np.int32), "first": np.array([d[0] for d in draws], dtype=np.int32),
             "lengths": np.array(lengths, dtype=np.int32)}, facts)
