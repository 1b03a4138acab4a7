"""HW5's probes, run inside the worker (installed there as graderworker.hw5).

Function probes call nn.py's functions and q4.findLetters the harness's way on the arrays the
trusted side sent, and return the outputs as plain arrays, with a `status` fact per call ("ok" or
the error): one function that raises does not lose the others. They never echo their inputs: the
checks judge against the trusted side's own copies.

`hw5_script` runs a script through the runtime's script probe (grader/worker/script.py) with
stand-ins for nn.py's functions (sent by the trusted side) and, if that run fails, again with the
student's own functions; with `evaluate` it also runs the script's model on images it was sent
(q6.1.1: the labels stay on the trusted side); with `stdout` it returns what the script printed
(run_q4: the text it extracted, for the TA's note on q4.4).
"""
from __future__ import annotations

import io
import sys
import types
import warnings

import numpy as np

from .loader import StudentError
from .script import run_script

PROBES: dict = {}


def probe(name):
    def register(fn):
        PROBES[name] = fn
        return fn
    return register


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class _Calls:
    """Runs each call, recording "ok" or its error; collects the arrays it puts."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.status: dict[str, str] = {}
        self.facts: dict[str, object] = {}

    def attempt(self, name, fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
            self.status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - the student's function may raise anything
            self.status[name] = _error(exc)

    def put(self, key, value):
        if value is None:
            return
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001
            self.facts[key] = f"not an array ({type(value).__name__})"
            return
        if arr.dtype.kind not in "biuf":
            self.facts[key] = f"not a numeric array (dtype {arr.dtype})"
            return
        self.arrays[key] = np.ascontiguousarray(arr)

    def answer(self):
        return self.arrays, {"status": self.status, **self.facts}


def _nn(ctx):
    return ctx.module("nn")


def _fn(module, name):
    fn = getattr(module, name, None)
    if not callable(fn):
        raise StudentError(f"nn.py defines no function {name} (the handout's name)")
    return fn


@probe("nn_initialize")
def nn_initialize(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()

    def init():
        for k, (i, o) in enumerate(args["sizes"]):
            np.random.seed(int(args["seed"]) + k)
            p = {}
            _fn(nn, "initialize_weights")(i, o, p, "L")
            c.put(f"init/{k}/W", p.get("WL"))
            c.put(f"init/{k}/b", p.get("bL"))
    c.attempt("initialize_weights", init)
    return c.answer()


@probe("nn_sigmoid")
def nn_sigmoid(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()
    c.attempt("sigmoid", lambda: c.put("sigmoid/out", _fn(nn, "sigmoid")(arrays["sigmoid_x"].copy())))
    return c.answer()


def _harness_activation(name):
    """The activations the harness passes to forward (its own: a broken student sigmoid is charged
    by its own check, not again through forward). scipy's, not a sigmoid written here: this file
    ships in the student bundle, and a sigmoid of our own would be q2.2.1's answer."""
    from scipy.special import expit

    return {"sigmoid": lambda v: expit(np.asarray(v, dtype=np.float64)), "linear": lambda v: v, "tanh": np.tanh,
            "relu": lambda v: np.maximum(v, 0)}[name]


@probe("nn_forward")
def nn_forward(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()
    X, W, b = arrays["forward_X"], arrays["forward_W"], arrays["forward_b"]
    for act in args["activations"]:
        def fwd(act=act):
            p = {"WL": W.copy(), "bL": b.copy()}
            c.put(f"forward/{act}/out", _fn(nn, "forward")(X.copy(), p, "L", _harness_activation(act)))
            cache = p.get("cache_L")
            if isinstance(cache, (tuple, list)) and len(cache) == 3:
                for i, e in enumerate(cache):
                    c.put(f"forward/{act}/cache{i}", e)
            else:
                c.facts[f"forward/{act}/cache"] = ("absent" if cache is None else
                                                   f"a {type(cache).__name__}" + (f" of length {len(cache)}"
                                                                                  if hasattr(cache, "__len__") else ""))
        c.attempt("forward/" + act, fwd)
    return c.answer()


@probe("nn_softmax")
def nn_softmax(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()

    def smx():
        for key in ("small", "large"):
            arg = arrays[f"softmax_{key}"].copy()
            c.put(f"softmax/{key}/out", _fn(nn, "softmax")(arg))
            c.put(f"softmax/{key}/after", arg)
    c.attempt("softmax", smx)
    return c.answer()


@probe("nn_loss")
def nn_loss(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()

    def loss():
        out = _fn(nn, "compute_loss_and_acc")(arrays["loss_y"].copy(), arrays["loss_probs"].copy())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"compute_loss_and_acc returned {type(out).__name__}; expected (loss, acc)")
        c.put("loss/loss", out[0])
        c.put("loss/acc", out[1])
    c.attempt("compute_loss_and_acc", loss)
    return c.answer()


def _derivs(nn):
    util = sys.modules.get("util")
    if util is None:
        import util  # noqa: F401 - the course's util.py in the workspace
        util = sys.modules["util"]
    return {"sigmoid": getattr(nn, "sigmoid_deriv", lambda p: p * (1.0 - p)),
            "linear": util.linear_deriv, "tanh": util.tanh_deriv}


@probe("nn_backwards")
def nn_backwards(ctx, args, arrays):
    """backwards fed the trusted side's cache (X, pre, post): a broken forward is not charged twice."""
    nn, c = _nn(ctx), _Calls()
    derivs = _derivs(nn)
    for act in args["activations"]:
        def bwd(act=act):
            g = lambda k: arrays[f"bwd_{act}_{k}"].copy()
            p = {"WL": g("W"), "bL": g("b"), "cache_L": (g("X"), g("pre"), g("post"))}
            c.put(f"backwards/{act}/grad_X", _fn(nn, "backwards")(g("delta"), p, "L", derivs[act]))
            c.put(f"backwards/{act}/grad_W", p.get("grad_WL"))
            c.put(f"backwards/{act}/grad_b", p.get("grad_bL"))
        c.attempt("backwards/" + act, bwd)
    return c.answer()


@probe("nn_batches")
def nn_batches(ctx, args, arrays):
    nn, c = _nn(ctx), _Calls()
    x, y = arrays["batches_x"], arrays["batches_y"]

    def bat():
        for bs in args["batch_sizes"]:
            np.random.seed(int(args["seed"]) + bs)
            xa, ya = x.copy(), y.copy()
            got = _fn(nn, "get_random_batches")(xa, ya, bs)
            c.put(f"batches/{bs}/x_after", xa)
            c.put(f"batches/{bs}/y_after", ya)
            ok = isinstance(got, list) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in got)
            c.facts[f"batches/{bs}/count"] = len(got) if hasattr(got, "__len__") else 0
            c.facts[f"batches/{bs}/kind"] = "list" if ok else "%s of %s" % (
                type(got).__name__, ", ".join(sorted({type(p).__name__ for p in got})) if hasattr(got, "__iter__") else "?")
            if ok:
                for k, pair in enumerate(got[:1000]):
                    c.put(f"batches/{bs}/{k}/x", pair[0])
                    c.put(f"batches/{bs}/{k}/y", pair[1])
    c.attempt("get_random_batches", bat)
    return c.answer()


def _boxes(found) -> np.ndarray:
    return np.asarray([[float(v) for v in b] for b in found], dtype=np.float64).reshape(-1, 4)


@probe("findletters")
def findletters(ctx, args, arrays):
    """findLetters on each image sent: `pixels` arrays (uint8 RGB) or `encoded` files (JPEG bytes),
    each as skimage.img_as_float makes it (the handout's run_q4 reads images that way)."""
    q4, c = ctx.module("q4"), _Calls()
    fn = getattr(q4, "findLetters", None)
    if not callable(fn):
        raise StudentError("q4.py defines no function findLetters(image) (the handout's name)")
    import skimage

    for name in sorted(arrays, key=lambda n: int(n.split("/")[1])):
        k = name.split("/")[1]

        def find(name=name, k=k):
            if args.get("kind") == "encoded":
                from PIL import Image
                image = np.asarray(Image.open(io.BytesIO(arrays[name].tobytes())).convert("RGB"))
            else:
                image = arrays[name]
            im = skimage.img_as_float(image)
            boxes, bw = fn(im.copy())
            c.put(f"q4/{k}/boxes", _boxes(boxes))
            c.put(f"q4/{k}/bw", np.asarray(bw, dtype=np.float32) if bw is not None else None)
            c.facts[f"q4/{k}/shape"] = list(im.shape)
            if k == "0" and args.get("photo_scale"):
                s = int(args["photo_scale"])
                c.put("q4/photo/boxes", _boxes(fn(photo_size(im, s))[0]))
        c.attempt(f"findLetters/{k}", find)
    return c.answer()


PHOTO_NOISE_SEED = 7
PHOTO_NOISE = 0.005        # reference/hw5/data.py's PAGE_NOISE (this module runs in the worker)


def photo_size(im: np.ndarray, s: int) -> np.ndarray:
    """The page at phone-photo size, as a camera would see it: strokes s times thicker (bilinear,
    so every box scales by s) and sensor noise of the page's own level (PHOTO_NOISE) per
    pixel, seeded. Not np.kron: its s x s blocks of equal pixels are no photo's, and they failed
    honest code on its own terms (an even s leaves no finest-scale detail, so estimate_sigma is 0
    and a denoiser weighted by it divides by zero; at s = 3 each noise pixel is a 3x3 speck that a
    3x3 opening keeps, and one student's per-component loop took 82 s of CPU instead of 29)."""
    import scipy.ndimage

    big = scipy.ndimage.zoom(im, (s, s, 1), order=1)
    big += np.random.default_rng(PHOTO_NOISE_SEED).normal(0.0, PHOTO_NOISE, size=big.shape)
    return np.clip(big, 0.0, 1.0, out=big)


# ------------------------------------------------------------------ scripts with stand-ins

def _install_standins(ctx, module_name: str, sources: dict) -> tuple[types.ModuleType, dict, bool]:
    """The student's nn module with the stand-ins' functions in place (or a module of stand-ins
    alone when theirs does not import); returns (module, what it replaced, created)."""
    try:
        module, created = ctx.module(module_name), False
    except StudentError:
        module, created = types.ModuleType(module_name), True
        module.__dict__["np"] = np
        exec("from util import *", module.__dict__)  # noqa: S102 - the course's util.py
    saved = {name: module.__dict__.get(name, _ABSENT) for name in sources}
    module.__dict__.setdefault("np", np)
    for name, source in sources.items():
        exec(compile(source, f"<grader stand-in {name}>", "exec"), module.__dict__)  # noqa: S102
    sys.modules[module_name] = module
    return module, saved, created


_ABSENT = object()


def _restore(module, saved: dict, created: bool, module_name: str) -> None:
    for name, value in saved.items():
        if value is _ABSENT:
            module.__dict__.pop(name, None)
        else:
            module.__dict__[name] = value
    if created:
        sys.modules.pop(module_name, None)


def _evaluator(spec: dict, arrays: dict):
    """After the script: its global model (a torch module) predicts the images it was sent."""
    def after(scope):
        out, facts = {}, {}
        for global_name, array_name in spec.items():
            model = scope.get(global_name)
            torch = sys.modules.get("torch")
            if torch is None or not isinstance(model, torch.nn.Module):
                model = next((v for v in scope.values() if torch is not None and isinstance(v, torch.nn.Module)), None)
                facts[f"evaluate/{global_name}"] = ("no torch model in the script's globals" if model is None
                                                    else "the script's only torch model (not named model)")
            if model is None:
                continue
            x = torch.from_numpy(np.asarray(arrays[array_name], dtype=np.float32))
            param = next(model.parameters(), None)
            if param is not None:
                x = x.to(param.device)
            try:
                model.eval()
                with torch.no_grad():
                    pred = model(x)
                out[f"evaluate/{global_name}"] = pred.argmax(dim=1).cpu().numpy().astype(np.int64)
            except Exception as exc:  # noqa: BLE001 - the student's model may fail on [N, 1024] images
                facts[f"evaluate/{global_name}"] = (f"the model failed on a batch of [N, 1024] float32 images "
                                                    f"(the handout's input): {_error(exc)}")
        return out, facts
    return after


class _Printed(io.TextIOBase):
    """What a script prints, the first `limit` characters of it kept (run_q4 prints its text)."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.size, self.cut = limit, [], 0, False

    def writable(self):
        return True

    def write(self, text):
        text = text if isinstance(text, str) else str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.cut = self.cut or len(text) > room
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _run_script(ctx, role, args, arrays, after):
    """run_script, with what the script prints returned as the fact `stdout` when args["stdout"]
    asks for it (that many characters at most; `stdout_cut`: it printed more)."""
    limit = int(args.get("stdout") or 0)
    if not limit:
        return run_script(ctx, role, args, arrays, after=after)
    printed = _Printed(limit)
    saved = sys.stdout
    sys.stdout = printed
    try:
        out, facts = run_script(ctx, role, args, arrays, after=after)
    finally:
        sys.stdout = saved
    facts.update(stdout=printed.text(), stdout_cut=printed.cut)
    return out, facts


@probe("hw5_script")
def hw5_script(ctx, args, arrays):
    role, sources = args["role"], args.get("standins") or {}
    module_name = args.get("standin_module", "nn")
    after = _evaluator(args["evaluate"], arrays) if args.get("evaluate") else None
    # the models' images go to the engine's model search (grader/worker/script.py: `models`)
    script_arrays = arrays if args.get("models") else {k: v for k, v in arrays.items() if k != "holdout_x"}
    first_error, first = None, None
    if sources:
        module, saved, created = _install_standins(ctx, module_name, sources)
        try:
            out, facts = _run_script(ctx, role, args, script_arrays, after)
            facts["standins"] = "the course's nn.py functions"
            if facts.get("status") != "failed":       # completed, or stopped at its time limit
                return out, facts
            first, first_error = (out, facts), facts.get("error")
        except StudentError as exc:
            first_error = str(exc)
        finally:
            _restore(module, saved, created, module_name)
    try:
        out, facts = _run_script(ctx, role, args, script_arrays, after)
    except StudentError as exc:
        if first is not None:
            return first
        raise StudentError(first_error or str(exc)) from None
    if facts.get("status") == "failed" and first is not None and \
            (first[1].get("failed_line") or 0) >= (facts.get("failed_line") or 0):
        # both failed: the run that got further in the script (by the top-level line it failed at,
        # not by seconds, so the same submission gets the same run), the course's functions on a tie
        return first
    facts["standins"] = "your own nn.py functions" + (f" (with the course's: {first_error})" if first_error else "")
    return out, facts
