"""A stand-in for the pack engine, for the project's OWN examples only: score a `python/` folder
item by item with rubric/hw5/judge.py, so that the examples' expected.json are tested before the
engine exists (issue 12). The engine replaces this: it runs the same probes in its isolated worker.

It is not a sandbox. It runs the example's code in subprocesses of this machine, so it is used on
the reference, the mutants and the untouched starters, never on a real student's files.

    score(python_dir, data_root, profile) -> Scored(points {item: points}, notes {check: message})

What it does, in the engine's terms:
  - course files: the course's util.py (reference/hw5/python/util.py) replaces the student's copy;
  - function probes (one subprocess): initialize_weights, sigmoid, forward, softmax,
    compute_loss_and_acc, backwards (fed the gold cache), get_random_batches, findLetters;
  - stand-ins: a function of nn.py that fails its own item is replaced by the reference's when the
    scripts run, so one bug costs its marks once (as A2's MyConv2d is replaced when grading CNN);
    a script that fails with the stand-ins runs again with the student's own functions;
  - script probes: run_q2, run_q3, run_q5, run_q6_1 with the profile's constants
    (reference/hw5/harness.py), the trusted side judging the returned globals;
  - thresholds relative to the reference graded by the same function under the same profile.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference.hw5 import data as hw5data
from reference.hw5 import harness
from . import judge

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
REFERENCE = PROJECT / "reference" / "hw5" / "python"
NN_FUNCTIONS = ("initialize_weights", "sigmoid", "forward", "softmax", "compute_loss_and_acc", "backwards",
                "get_random_batches")
# which function each function item judges (for the stand-ins)
ITEM_FUNCTIONS = {"q2.1.2": ["initialize_weights"], "q2.2.1": ["sigmoid", "forward"], "q2.2.2": ["softmax"],
                  "q2.2.3": ["compute_loss_and_acc"], "q2.3.1": ["backwards"], "q2.4": ["get_random_batches"]}


def rubric() -> dict:
    with (HERE / "rubric.toml").open("rb") as fh:
        return tomllib.load(fh)


def profile_constants(profile: str) -> dict[str, dict]:
    prof = rubric()["profiles"][profile]
    return {k: v for k, v in prof.items() if isinstance(v, dict)}


# ----------------------------------------------------------------------------------------------
# Function probes (run in one subprocess with the example's python/ folder as cwd)
# ----------------------------------------------------------------------------------------------

PROBE = r'''
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
out, status = {}, {}
spec = json.loads(sys.argv[1])

def attempt(name, fn):
    try:
        fn()
        status[name] = "ok"
    except Exception as exc:
        status[name] = "%s: %s" % (type(exc).__name__, str(exc)[:300])

try:
    import nn
except Exception as exc:
    status["import nn"] = "%s: %s" % (type(exc).__name__, exc)
    nn = None
import util

def put(key, value):
    if value is None:
        return
    out[key] = np.asarray(value)

if nn is not None:
    def init():
        for k, (i, o) in enumerate(spec["sizes"]):
            np.random.seed(100 + k)
            p = {}
            nn.initialize_weights(i, o, p, "L")
            put("init/%d/W" % k, p.get("WL")); put("init/%d/b" % k, p.get("bL"))
    attempt("initialize_weights", init)

    def sig():
        x = np.concatenate([[-1000.0, 1000.0, -50.0, 50.0, 0.0], np.linspace(-8, 8, 17)])
        put("sigmoid/x", x); put("sigmoid/out", nn.sigmoid(x))
    attempt("sigmoid", sig)

    rng = np.random.RandomState(1)
    X, W, b = rng.randn(7, 5), rng.randn(5, 4), rng.randn(4)
    put("forward/X", X); put("forward/W", W); put("forward/b", b)
    # the activations are the harness's own (a broken student sigmoid is charged by its own check)
    gold_sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))
    for act, fn in (("sigmoid", gold_sigmoid), ("linear", util.linear), ("tanh", util.tanh), ("relu", util.relu)):
        def fwd(act=act, fn=fn):
            p = {"WL": W.copy(), "bL": b.copy()}
            put("forward/%s/out" % act, nn.forward(X.copy(), p, "L", fn))
            c = p.get("cache_L")
            if isinstance(c, (tuple, list)) and len(c) == 3:
                for i, e in enumerate(c):
                    put("forward/%s/cache%d" % (act, i), e)
        attempt("forward/" + act, fwd)

    def smx():
        x = rng.randn(6, 5) * 3
        big = x + np.array([[1000.0], [-1000.0], [0], [500], [-3], [700]])
        for key, v in (("small", x), ("large", big)):
            arg = v.copy()
            put("softmax/%s/x" % key, v); put("softmax/%s/out" % key, nn.softmax(arg)); put("softmax/%s/after" % key, arg)
    attempt("softmax", smx)

    def loss():
        y = np.eye(4)[rng.randint(0, 4, 10)]
        z = rng.randn(10, 4)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        l, a = nn.compute_loss_and_acc(y, probs)
        put("loss/y", y); put("loss/probs", probs); put("loss/loss", l); put("loss/acc", a)
    attempt("compute_loss_and_acc", loss)

    derivs = {"sigmoid": getattr(nn, "sigmoid_deriv", lambda p: p * (1.0 - p)), "linear": util.linear_deriv,
              "tanh": util.tanh_deriv}
    for act in ("sigmoid", "linear", "tanh"):
        def bwd(act=act):
            Xb, Wb, bb = rng.randn(6, 5), rng.randn(5, 4), rng.randn(4)
            pre = Xb @ Wb + bb
            post = {"sigmoid": 1 / (1 + np.exp(-pre)), "linear": pre, "tanh": np.tanh(pre)}[act]
            delta = rng.randn(6, 4)
            p = {"WL": Wb.copy(), "bL": bb.copy(), "cache_L": (Xb.copy(), pre.copy(), post.copy())}
            gx = nn.backwards(delta.copy(), p, "L", derivs[act])
            for k, v in (("X", Xb), ("W", Wb), ("b", bb), ("post", post), ("delta", delta), ("grad_X", gx),
                         ("grad_W", p.get("grad_WL")), ("grad_b", p.get("grad_bL"))):
                put("backwards/%s/%s" % (act, k), v)
        attempt("backwards/" + act, bwd)

    def bat():
        n = spec["n"]
        x = np.arange(n * 3, dtype=np.float64).reshape(n, 3) + 0.5
        y = np.eye(4)[np.random.RandomState(2).randint(0, 4, n)]
        put("batches/x", x); put("batches/y", y)
        for bs in spec["batch_sizes"]:
            np.random.seed(bs)
            xa, ya = x.copy(), y.copy()
            bl = nn.get_random_batches(xa, ya, bs)
            put("batches/%d/x_after" % bs, xa); put("batches/%d/y_after" % bs, ya)
            put("batches/%d/count" % bs, len(bl))
            ok = isinstance(bl, list) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in bl)
            put("batches/%d/kind" % bs, "list" if ok else "%s of %s" % (type(bl).__name__, ", ".join(
                sorted({type(p).__name__ for p in bl})) if hasattr(bl, "__iter__") else "?"))
            if not ok:
                continue
            for k, pair in enumerate(bl):
                put("batches/%d/%d/x" % (bs, k), pair[0]); put("batches/%d/%d/y" % (bs, k), pair[1])
    attempt("get_random_batches", bat)

if spec.get("pages"):
    try:
        import q4, skimage, skimage.io, skimage.transform
        for k, path in enumerate(spec["pages"]):
            def find(k=k, path=path):
                im = skimage.img_as_float(skimage.io.imread(path))
                boxes, bw = q4.findLetters(im)
                put("q4/%d/boxes" % k, np.asarray([list(map(float, b)) for b in boxes]).reshape(-1, 4))
                put("q4/%d/bw" % k, bw); put("q4/%d/shape" % k, im.shape)
                if k == 0 and spec.get("photo_scale"):
                    s = spec["photo_scale"]
                    big = np.kron(im, np.ones((s, s, 1)))   # phone-photo size, pixel-exact boxes x s
                    put("q4/photo/boxes", np.asarray([list(map(float, b)) for b in q4.findLetters(big)[0]]).reshape(-1, 4))
            attempt("findLetters/%d" % k, find)
    except Exception as exc:
        status["import q4"] = "%s: %s" % (type(exc).__name__, exc)

np.savez(spec["out"], **out)
print(json.dumps(status))
'''


def _prepare(python_dir: Path, scratch: Path) -> Path:
    """A scratch copy of the example's python/ folder with the course's util.py."""
    work = scratch / "python"
    shutil.copytree(python_dir, work, ignore=shutil.ignore_patterns("*.pickle", "__pycache__", "*.png"))
    shutil.copyfile(REFERENCE / "util.py", work / "util.py")
    return work


def run_function_probes(work: Path, pages: list[Path], n: int, batch_sizes: list[int], sizes, photo_scale: int,
                        timeout: float = 300) -> tuple[dict, dict]:
    out = work.parent / "functions.npz"
    spec = {"out": str(out), "pages": [str(p) for p in pages], "n": n, "batch_sizes": batch_sizes,
            "sizes": sizes, "photo_scale": photo_scale}
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(spec)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"the function probe crashed: {proc.stderr[-2000:]}")
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, status


# ----------------------------------------------------------------------------------------------
# Stand-ins: the reference's nn function for each that failed its own item
# ----------------------------------------------------------------------------------------------

def function_source(path: Path, name: str) -> str | None:
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    return None


def install_standins(work: Path, functions: list[str]) -> None:
    if not functions:
        return
    ref = REFERENCE / "nn.py"
    extra = ["\n\n# ---- grader stand-ins: the reference's version of functions that failed their own item"]
    extra += [function_source(ref, f) for f in functions]
    nn = work / "nn.py"
    nn.write_text(nn.read_text() + "\n".join(extra) + "\n")


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------

@dataclass
class Scored:
    points: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


def _get(arrays: dict, key: str):
    return arrays.get(key)


def _missing(status: dict, name: str) -> str | None:
    s = status.get(name, "not run")
    return None if s == "ok" else s


def function_checks(arrays: dict, status: dict, params: dict, truth: list[dict]) -> dict[str, judge.Verdict]:
    """Every check of the function items, as {check name: verdict}."""
    V, out = judge.Verdict, {}
    fail = lambda msg: V(False, msg)
    imp = status.get("import nn")
    # q2.1.2
    sizes = params["q2.1.2"]["sizes"]
    shape_ok, xav_ok = V(True), V(True)
    for k, (i, o) in enumerate(sizes):
        W, b = _get(arrays, f"init/{k}/W"), _get(arrays, f"init/{k}/b")
        err = imp or _missing(status, "initialize_weights")
        if err or W is None:
            shape_ok = xav_ok = fail(f"initialize_weights: {err or 'W is None: not implemented?'}")
            break
        if shape_ok:
            shape_ok = judge.init_shapes_check(W, b, i, o)
        if xav_ok:
            # the distribution of W alone (a 2-D b is charged by the shapes check)
            xav_ok = judge.xavier_check(W, np.zeros(o), i, o, alpha=params["q2.1.2"]["alpha"])
    out["test_nn.py::test_initialize_shapes"] = shape_ok
    out["test_nn.py::test_initialize_xavier"] = xav_ok
    # q2.2.1
    err = imp or _missing(status, "sigmoid")
    out["test_nn.py::test_sigmoid"] = fail(f"sigmoid: {err}") if err else judge.sigmoid_check(
        arrays["sigmoid/x"], _get(arrays, "sigmoid/out"))
    X, W, b = arrays["forward/X"], arrays["forward/W"], arrays["forward/b"]
    err = imp or _missing(status, "forward/sigmoid")
    if err:
        for c in ("values", "cache", "activation_argument"):
            out[f"test_nn.py::test_forward_{c}"] = fail(f"forward: {err}")
    else:
        post = _get(arrays, "forward/sigmoid/out")
        out["test_nn.py::test_forward_values"] = judge.compare_arrays(
            post, judge.forward_gold(X, W, b, "sigmoid")[1], "forward(X, params) with a sigmoid")
        cache = [arrays.get(f"forward/sigmoid/cache{i}") for i in range(3)]
        out["test_nn.py::test_forward_cache"] = judge.cache_check(X, post, cache if cache[0] is not None else None)
        # the activation passed in is applied to the layer's own pre-activation (judged against
        # the student's pre-activation, so an affine bug is not charged twice)
        pre = cache[1] if cache[1] is not None else None
        if pre is None and post is not None and np.all((post > 1e-9) & (post < 1 - 1e-9)):
            pre = np.log(post / (1 - post))
        v = V(True) if pre is not None else fail("forward returned nothing: not implemented?")
        for act in params["q2.2.1"]["activations"]:
            if act == "sigmoid" or pre is None:
                continue
            e = _missing(status, "forward/" + act)
            got = _get(arrays, f"forward/{act}/out")
            v = fail(f"forward(..., activation={act}): {e}") if e else judge.compare_arrays(
                got, judge.activation(act, pre), f"forward(..., activation={act}) (the activation passed in)")
            if not v:
                break
        out["test_nn.py::test_forward_activation_argument"] = v
    # q2.2.2
    err = imp or _missing(status, "softmax")
    if not err and any(np.shape(arrays.get(f"softmax/{k}/out")) != np.shape(arrays[f"softmax/{k}/x"])
                       for k in ("small", "large")):
        err = "returned None or an array of the wrong shape: not implemented?"
    if err:
        for c in ("rows", "stable", "argument_untouched"):
            out[f"test_nn.py::test_softmax_{c}"] = fail(f"softmax: {err}")
    else:
        small = judge.softmax_check(arrays["softmax/small/x"], _get(arrays, "softmax/small/out"))
        large = judge.softmax_check(arrays["softmax/large/x"], _get(arrays, "softmax/large/out"))
        out["test_nn.py::test_softmax_rows"] = small
        out["test_nn.py::test_softmax_stable"] = large if small else V(True)
        untouched = all(np.array_equal(arrays[f"softmax/{k}/x"], arrays.get(f"softmax/{k}/after"))
                        for k in ("small", "large"))
        out["test_nn.py::test_softmax_argument_untouched"] = V(True) if untouched else \
            fail("softmax modified its argument in place")
    # q2.2.3
    err = imp or _missing(status, "compute_loss_and_acc")
    if err or "loss/loss" not in arrays or "loss/acc" not in arrays:
        msg = f"compute_loss_and_acc: {err or 'returned None: not implemented?'}"
        out["test_nn.py::test_loss_total"] = out["test_nn.py::test_accuracy"] = fail(msg)
    else:
        y, probs = arrays["loss/y"], arrays["loss/probs"]
        gold_acc = np.mean(np.argmax(y, 1) == np.argmax(probs, 1))
        v = judge.loss_acc_check(y, probs, arrays["loss/loss"], gold_acc)
        out["test_nn.py::test_loss_total"] = v
        a = judge.loss_acc_check(y, probs, -np.sum(y * np.log(probs)), arrays["loss/acc"])
        out["test_nn.py::test_accuracy"] = a
    # q2.3.1
    names = {"grad_W": "test_backwards_grad_W", "grad_b": "test_backwards_grad_b", "grad_X": "test_backwards_grad_X"}

    def judge_layer(act):
        """({check: verdict}, shapes verdict) of one layer type."""
        err = imp or _missing(status, "backwards/" + act)
        if err:
            return {n: fail(f"backwards ({act} layer): {err}") for n in names.values()}, fail(f"backwards: {err}")
        g = lambda k: arrays.get(f"backwards/{act}/{k}")
        gold = judge.backwards_gold(g("delta"), g("X"), g("W"), g("post"), act)
        res, shapes = {}, V(True)
        for (key, check), want in zip(names.items(), gold):
            got = g(key)
            if got is None and shapes:
                shapes = fail(f"backwards did not {'return' if key == 'grad_X' else 'store'} {key}: not implemented?")
            if got is not None and got.size == want.size and got.shape != want.shape:
                if shapes and not (key == "grad_b" and got.shape == (1,) + want.shape):
                    shapes = fail(f"{key} has shape {got.shape}; expected {want.shape} (the shape of its parameter)")
                got = got.reshape(want.shape)
            res[check] = judge.compare_arrays(got, want, f"{key} ({act} layer)", rtol=1e-6, atol=1e-9)
        return res, shapes

    res = {n: V(True) for n in names.values()}
    shapes = V(True)
    for act in params["q2.3.1"]["activations"]:
        r, sh = judge_layer(act)
        res = {k: res[k] if not res[k] else r[k] for k in res}
        shapes = shapes if not shapes else sh
    for check, v in res.items():
        out[f"test_nn.py::{check}"] = v
    out["test_nn.py::test_backwards_shapes"] = shapes
    other = params["q2.3.1"]["other_activation"]
    r, _ = judge_layer(other)
    bad = next((v for v in r.values() if not v), None)
    if bad is None:
        out["test_nn.py::test_backwards_any_activation"] = V(True)
    elif "not implemented" in bad.message or "Error" in bad.message or all(res.values()):
        out["test_nn.py::test_backwards_any_activation"] = fail(
            f"backwards does not handle a {other} layer (activation_deriv={other}_deriv): {bad.message}")
    else:
        # wrong for sigmoid and linear layers too: the same bug, charged by the gradient checks
        out["test_nn.py::test_backwards_any_activation"] = V(True)
    # q2.4 batches
    err = imp or _missing(status, "get_random_batches")
    checks = ("partition", "sizes", "shuffled", "arguments_untouched")
    if not err and any(int(arrays.get(f"batches/{bs}/count", 0)) == 0 for bs in params["q2.4"]["batch_sizes"]):
        err = "returned no batches: not implemented?"
    if not err and any(str(arrays.get(f"batches/{bs}/kind", "list")) != "list" for bs in params["q2.4"]["batch_sizes"]):
        err = ("returned " + str(arrays.get(f"batches/{params['q2.4']['batch_sizes'][0]}/kind")) +
               "; the handout's get_random_batches returns a list of (batch_x, batch_y) tuples")
    if err:
        for c in checks:
            out[f"test_batches.py::test_batches_{c}"] = fail(f"get_random_batches: {err}")
    else:
        x, y = arrays["batches/x"], arrays["batches/y"]
        found = {c: V(True) for c in checks}
        for bs in params["q2.4"]["batch_sizes"]:
            count = int(arrays.get(f"batches/{bs}/count", 0))
            bl = [(arrays[f"batches/{bs}/{k}/x"], arrays[f"batches/{bs}/{k}/y"]) for k in range(count)
                  if f"batches/{bs}/{k}/x" in arrays]
            v = judge.batches_check(x, y, bs, bl, arrays.get(f"batches/{bs}/x_after"), arrays.get(f"batches/{bs}/y_after"))
            if not v:
                m = v.message
                which = ("sizes" if m.startswith("batch sizes") else
                         "shuffled" if "original order" in m else
                         "arguments_untouched" if "caller's" in m else "partition")
                if found[which]:
                    found[which] = v
        for c in checks:
            out[f"test_batches.py::test_batches_{c}"] = found[c]
    # q4.2
    rec, prec, bw = V(True), V(True), V(True)
    for k, page in enumerate(truth):
        err = status.get("import q4") or _missing(status, f"findLetters/{k}")
        if err:
            rec = prec = bw = fail(f"findLetters: {err}")
            break
        boxes = arrays.get(f"q4/{k}/boxes", np.zeros((0, 4)))
        r, p, _ = judge.match_boxes(boxes, page["boxes"], params["q4.2"]["iou"])
        need = 1.0 - params["q4.2"]["margin"]       # relative to the reference's 1.00 (measured)
        if rec and r < need:
            rec = judge.boxes_check(boxes, page["boxes"], need, 0.0)
        if prec and p < need:
            prec = judge.boxes_check(boxes, page["boxes"], 0.0, need)
        if bw:
            bw = judge.bw_check(arrays.get(f"q4/{k}/bw"), arrays[f"q4/{k}/shape"], page["boxes"])
    out["test_q4.py::test_findletters_recall"] = rec
    out["test_q4.py::test_findletters_precision"] = prec
    out["test_q4.py::test_findletters_bw"] = bw
    if truth and "q4/photo/boxes" in arrays and len(arrays["q4/photo/boxes"]):
        # judged in the box convention the student used on the pages ([x1, y1, x2, y2] is
        # charged there), so that this check only asks: does it work at phone-photo size?
        s_ = params["q4.2"]["photo_scale"]
        big_truth = (np.asarray(truth[0]["boxes"]) * s_).tolist()
        boxes = arrays["q4/photo/boxes"]
        page0 = arrays.get("q4/0/boxes", np.zeros((0, 4)))
        if len(page0) and judge.match_boxes(page0[:, [1, 0, 3, 2]], truth[0]["boxes"])[0] > \
                judge.match_boxes(page0, truth[0]["boxes"])[0]:
            boxes = boxes[:, [1, 0, 3, 2]]
        need = 1 - params["q4.2"]["margin"]
        out["test_q4.py::test_findletters_photo_scale"] = judge.boxes_check(boxes, big_truth, need, need)
    else:
        out["test_q4.py::test_findletters_photo_scale"] = fail("findLetters found no boxes on a photo-sized page")
    out["test_q4.py::test_findletters_course_photos"] = V(True, "course photos: not part of this draft")
    return out


def item_points(verdicts: dict[str, judge.Verdict], items: list[dict]) -> dict[str, float]:
    return {item["id"]: float(sum(c["points"] for c in item["checks"] if verdicts.get(c["name"], judge.Verdict(False))))
            for item in items}


@dataclass
class Context:
    """The data an example is graded on: the data folder and its held-out split (labels trusted)."""
    root: Path
    profile: str
    truth: list[dict]
    holdout_x: np.ndarray
    holdout_y: np.ndarray


def make_context(root: Path, profile: str = "ci", seed: int = 0) -> Context:
    root = Path(root)
    if not (root / hw5data.TRUTH_FILE).exists():
        hw5data.write_data_folder(root, profile, seed)
    sizes = hw5data.PROFILE_SIZES[profile]
    hx, hy = hw5data.make_split(sizes.valid, 1000 * seed + 99)      # a split the worker never sees
    return Context(root, profile, hw5data.read_truth(root), hx, hy)


def score(python_dir: Path, ctx: Context, scripts: bool = True, reference: dict | None = None) -> Scored:
    """Points per automatic item of `python_dir` (a folder like the handout's python/)."""
    rub = rubric()
    items = rub["items"]
    params = {i["id"]: i.get("params", {}) for i in items}
    result = Scored()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "sub"
        scratch.mkdir()
        for name in ("data", "images"):
            os.symlink(ctx.root / name, scratch / name)
        work = _prepare(Path(python_dir), scratch)
        pages = [ctx.root / "images" / p["file"] for p in ctx.truth if p["boxes"] is not None]
        arrays, status = run_function_probes(work, pages, params["q2.4"]["n"], params["q2.4"]["batch_sizes"],
                                             params["q2.1.2"]["sizes"], params["q4.2"]["photo_scale"])
        verdicts = function_checks(arrays, status, params, [p for p in ctx.truth if p["boxes"] is not None])
        if scripts:
            failed = sorted({f for item, fns in ITEM_FUNCTIONS.items() for f in fns
                             if any(not verdicts[c["name"]] for c in next(i for i in items if i["id"] == item)["checks"]
                                    if c["name"].startswith(("test_nn.py", "test_batches.py")))})
            own = scratch / "python_own"          # the student's own functions, for scripts the
            shutil.copytree(work, own)            # stand-ins break (a different API of their own)
            install_standins(work, [f for f in failed if function_source(work / "nn.py", f) is not None
                                    or f in NN_FUNCTIONS])
            _OWN[str(work)] = own if failed else None
            verdicts.update(script_checks(work, ctx, params, reference, result))
        result.points = item_points(verdicts, items)
        result.notes = {k: v.message for k, v in verdicts.items() if not v or v.message}
    return result


_OWN: dict[str, Path | None] = {}


def _script(work: Path, script: str, ctx: Context, **kw) -> dict | str:
    """Run a script with the stand-ins; if that fails and the student's own functions differ, run
    it again with their own (their scripts may rely on their own API)."""
    failed = lambda r: isinstance(r, str) or r.get("_error")
    first = _script_once(work, script, ctx, **kw)
    own = _OWN.get(str(work))
    if failed(first) and own is not None:
        second = _script_once(own, script, ctx, **kw)
        return second if not failed(second) else first
    return first


def _crash(r) -> str:
    """The last line of a script's error, for a message ('' when it ran to completion)."""
    err = r.get("_error") if isinstance(r, dict) else None
    return f" ({err.strip().splitlines()[-1]})" if err else ""


def _script_once(work: Path, script: str, ctx: Context, **kw) -> dict | str:
    if not (work / script).exists():
        return f"{script} not found"
    try:
        consts = profile_constants(ctx.profile).get(script[:-3], {})
        source = (work / script).read_text()
        consts = {k: v for k, v in consts.items() if harness.re.search(rf"^{k}\s*=", source, harness.re.M)}
        return harness.run_script(work, script, consts, **kw)
    except (harness.ScriptError, subprocess.TimeoutExpired, SyntaxError) as exc:
        return f"{script} failed: {str(exc)[-500:]}"


def script_checks(work: Path, ctx: Context, params: dict, reference: dict | None, result: Scored) -> dict:
    V, out = judge.Verdict, {}
    fail = lambda msg: V(False, msg)
    ref = reference or {}
    # run_q2: training and the gradient checker
    r = _script(work, "run_q2.py", ctx, keep=["x", "y", "params", "params_orig", "total_error"])
    if isinstance(r, str):
        for c in ("test_q2_training", "test_q2_gradcheck_every_parameter", "test_q2_gradcheck_accuracy"):
            out[f"test_run_q2.py::{c}"] = fail(r)
    else:
        p = r.get("params", {})
        try:
            loss, exact = judge.q2_loss_and_gradients(p, r["x"], r["y"])
            acc = float(np.mean(np.argmax(judge.network_probs(p, r["x"], in_dim=2, out_dim=4), 1) == np.argmax(r["y"], 1)))
            ok = loss < params["q2.4"]["max_loss"] and acc > params["q2.4"]["min_acc"]
            out["test_run_q2.py::test_q2_training"] = V(ok, f"after training: loss {loss:.1f}, accuracy {acc:.2f}"
                                                          + ("" if ok else " (the handout: loss < 35 and accuracy > 75%)"))
        except (KeyError, ValueError) as exc:
            out["test_run_q2.py::test_q2_training"] = fail(f"run_q2's params: {exc}{_crash(r)}")
            exact = None
        orig = r.get("params_orig")
        if exact is None or not isinstance(orig, dict):
            out["test_run_q2.py::test_q2_gradcheck_every_parameter"] = fail(f"no params_orig after the checker{_crash(r)}")
            out["test_run_q2.py::test_q2_gradcheck_accuracy"] = fail(f"no params_orig after the checker{_crash(r)}")
        else:
            _, exact = judge.q2_loss_and_gradients(orig, r["x"], r["y"])
            numerical = {k: p.get(k) for k in exact}
            changed = all(k in p and k in orig and not np.array_equal(p[k], orig[k]) for k in exact)
            out["test_run_q2.py::test_q2_gradcheck_every_parameter"] = V(changed, "" if changed else
                "the checker did not write a numerical gradient for every W and b into params['grad_' + name]")
            v = judge.gradcheck_error(numerical, exact)
            if v and v.value is not None:
                ok = v.value < params["q2.5"]["max_total_error"]
                v = V(ok, f"total relative error {v.value:.2e} against the exact gradients"
                      + ("" if ok else " (should be below 1e-4: central differences?)"), v.value)
            out["test_run_q2.py::test_q2_gradcheck_accuracy"] = v if changed else fail("no numerical gradients")
    # run_q3: the pickled weights on the held-out split
    r = _script(work, "run_q3.py", ctx, keep=["hidden_size"], files=["q3_weights.pickle"])
    if isinstance(r, str):
        for c in ("test_q3_hidden_size", "test_q3_epochs", "test_q3_weights_accuracy"):
            out[f"test_run_q3.py::{c}"] = fail(r)
    else:
        w = r.get("file:q3_weights.pickle")
        if not w:
            for c in ("test_q3_hidden_size", "test_q3_weights_accuracy"):
                out[f"test_run_q3.py::{c}"] = fail(f"run_q3 wrote no q3_weights.pickle{_crash(r)}")
        else:
            hid = [np.shape(v)[1] for k, v in w.items() if k.startswith("W") and np.shape(v)[0] == 1024]
            out["test_run_q3.py::test_q3_hidden_size"] = V(hid == [64], f"hidden layer of {hid} units; expected 64")
            v = judge.params_accuracy(w, ctx.holdout_x, ctx.holdout_y)
            if v:
                result.values["q3.1.accuracy"] = v.value
                reference_acc = ref.get("q3.1.accuracy", v.value)
                if hid == [params["q3.1"]["hidden_size"]]:
                    v = judge.relative_threshold(v.value, reference_acc, params["q3.1"]["margin"], "held-out accuracy")
                else:      # the size is charged by test_q3_hidden_size; the training is judged on its own
                    need = params["q3.1"]["other_size_fraction"] * reference_acc
                    v = judge.relative_threshold(v.value, need, 0.0, f"held-out accuracy (a hidden layer of {hid})")
            out["test_run_q3.py::test_q3_weights_accuracy"] = v
    src = (work / "run_q3.py").read_text() if (work / "run_q3.py").exists() else ""
    m = harness.re.search(r"^max_iters\s*=\s*(\d+)", src, harness.re.M)
    trained = not isinstance(r, str) and bool(r.get("file:q3_weights.pickle"))
    out["test_run_q3.py::test_q3_epochs"] = V(trained and bool(m) and int(m.group(1)) >= params["q3.1"]["min_epochs"],
                                              "" if trained else "run_q3 trained nothing")
    if trained and not out["test_run_q3.py::test_q3_epochs"]:
        out["test_run_q3.py::test_q3_epochs"].message = "max_iters in run_q3.py should be at least 30 (the handout)"
    # run_q5: the autoencoder
    r = _script(work, "run_q5.py", ctx, keep=["params", "learning_rate"])
    ae = ("test_ae_layers", "test_ae_activations", "test_ae_reconstructs", "test_momentum_accumulators", "test_ae_psnr")
    if isinstance(r, str):
        for c in ae:
            out[f"test_run_q5.py::{c}"] = fail(r)
    else:
        p = r.get("params", {})
        p = {k: (tuple(v) if isinstance(v, list) else v) for k, v in p.items()}
        out["test_run_q5.py::test_ae_layers"] = judge.autoencoder_structure_check(p, part="layers")
        out["test_run_q5.py::test_ae_activations"] = judge.autoencoder_structure_check(p, part="activations")
        try:
            recon = judge.autoencoder_forward(p, ctx.holdout_x)
            value = judge.psnr(ctx.holdout_x, recon)
            result.values["q5.psnr"] = value
            out["test_run_q5.py::test_ae_reconstructs"] = V(bool(np.isfinite(value)) and recon.min() >= 0 and recon.max() <= 1,
                                                           f"validation PSNR {value:.2f} dB")
            out["test_run_q5.py::test_ae_psnr"] = judge.relative_threshold(
                value, ref.get("q5.psnr", value), params["q5.1.2"]["margin"], "validation PSNR (dB)")
        except (ValueError, KeyError) as exc:
            out["test_run_q5.py::test_ae_reconstructs"] = out["test_run_q5.py::test_ae_psnr"] = fail(f"{exc}{_crash(r)}")
        lr = float(np.asarray(r.get("learning_rate", 0.0)))
        out["test_run_q5.py::test_momentum_accumulators"] = judge.momentum_check(p, lr)
    # run_q6_1: PyTorch
    r = _script(work, "run_q6_1.py", ctx, keep=[], holdout_x=ctx.holdout_x)
    if isinstance(r, str) or "holdout_predictions" not in r:
        out["test_run_q6.py::test_q6_1_1_accuracy"] = fail(r if isinstance(r, str) else f"no global `model` to evaluate{_crash(r)}")
    else:
        acc = float(np.mean(r["holdout_predictions"] == np.argmax(ctx.holdout_y, 1)))
        result.values["q6.1.1.accuracy"] = acc
        out["test_run_q6.py::test_q6_1_1_accuracy"] = judge.relative_threshold(
            acc, ref.get("q6.1.1.accuracy", acc), params["q6.1.1"]["margin"], "held-out accuracy")
    return out


# ----------------------------------------------------------------------------------------------
# The examples under submissions/hw5/ (mutation.toml edits of the reference, files of their own)
# ----------------------------------------------------------------------------------------------

EXAMPLES = PROJECT / "submissions" / "hw5"
SHARED = next((p for p in (PROJECT.parent / "shared", PROJECT.parent.parent / "shared") if p.is_dir()),
              PROJECT.parent / "shared")


def materialize(example: Path, dest: Path) -> Path:
    """The submission folder (holding python/) an example stands for, under `dest`.

    mutation.toml: `base = "reference"` copies reference/hw5/python/; files of the example (at
    any depth, e.g. python/nn.py) replace the reference's; `edits` are exact text replacements
    (`count` occurrences, 1 by default). submission.toml: `shared = "hw5-starter/f20"` names a
    course folder under ../shared (read there, never copied into the project)."""
    example = Path(example)
    if (example / "submission.toml").exists():
        with (example / "submission.toml").open("rb") as fh:
            spec = tomllib.load(fh)
        src = SHARED / spec["shared"]
        if not src.is_dir():
            raise FileNotFoundError(f"{src} is absent (course files)")
        return src
    if not (example / "mutation.toml").exists():
        return example
    with (example / "mutation.toml").open("rb") as fh:
        spec = tomllib.load(fh)
    out = Path(dest) / example.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if spec.get("base") == "reference":
        shutil.copytree(REFERENCE, out / "python", ignore=shutil.ignore_patterns("__pycache__", "*.pickle", "*.png"))
    for path in sorted(example.rglob("*")):
        rel = path.relative_to(example)
        if path.is_file() and rel.name not in ("mutation.toml", "expected.json", "README.md"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / rel)
    for edit in spec.get("edits", []):
        target = out / edit["file"]
        text = target.read_text()
        count = text.count(edit["find"])
        if count != edit.get("count", 1):
            raise ValueError(f"{example.name}: {edit['file']} has {count} occurrences of {edit['find']!r}, "
                             f"expected {edit.get('count', 1)}")
        target.write_text(text.replace(edit["find"], edit["replace"]))
    return out


def examples() -> list[Path]:
    """Every example folder with an expected.json, and the reference (a link to reference/hw5,
    its expectation beside the link as reference.expected.json, as A2 does)."""
    found = [p.parent for p in EXAMPLES.rglob("expected.json") if "reference" not in p.relative_to(EXAMPLES).parts]
    found += [p for p in EXAMPLES.iterdir() if p.is_symlink() and expected_path(p).exists()]
    return sorted(found)


def expected_path(example: Path) -> Path:
    example = Path(example)
    return example.parent / f"{example.name}.expected.json" if example.is_symlink() else example / "expected.json"


def expected(example: Path) -> dict:
    return json.loads(expected_path(example).read_text())


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("examples", nargs="*", help="example folders (default: all under submissions/hw5)")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--data", default=None, help="data folder to write/reuse (default: a temporary one)")
    ap.add_argument("--functions-only", action="store_true")
    ap.add_argument("--reference-values", default=None,
                    help="JSON of the reference's measured values (skips grading the reference first)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(args.data or Path(tmp) / "data"), args.profile)
        ref = Scored(values=json.loads(args.reference_values)) if args.reference_values else \
            score(REFERENCE, ctx, scripts=not args.functions_only)
        print(json.dumps({"reference": ref.points, "values": ref.values}), flush=True)
        for ex in (map(Path, args.examples) if args.examples else examples()):
            sub = materialize(ex, Path(tmp) / "subs")
            got = score(sub / "python" if (sub / "python").is_dir() else sub, ctx,
                        scripts=not args.functions_only, reference=ref.values)
            print(json.dumps({"example": ex.name, "points": got.points,
                              "notes": {k: v for k, v in got.notes.items() if k in {
                                  c["name"] for i in rubric()["items"] for c in i["checks"]
                                  if not got.points.get(i["id"], 0) == i["points"]}}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
