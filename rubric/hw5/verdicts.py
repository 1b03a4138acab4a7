"""The verdict of every HW5 check, computed once per graded submission from the worker's answers
and the gold (trusted side; pure numpy through judge.py). The pytest checks of checks/ are thin
wrappers: each asserts its own verdict, so the logic of an item (one bug, one deduction across its
checks) reads in one place.

    function_verdicts(run) -> {check name: judge.Verdict}    q2.1.2 .. q2.4 (batches), q4.2
    script_verdicts(run, script) -> {check name: Verdict}    run_q2, run_q3, run_q5, run_q6_1

The inputs the judge compares against are the trusted side's own (gold inputs); nothing the worker
echoes is used as an input.
"""
from __future__ import annotations

import re

import numpy as np

from grader.checks.kit import script_answer

from . import judge, measure

V = judge.Verdict


def fail(msg: str) -> V:
    return V(False, msg)


# which probe answered which function calls
FUNCTION_PROBES = {"nn/initialize": ("initialize_weights",), "nn/sigmoid": ("sigmoid",),
                   "nn/forward": ("forward/sigmoid", "forward/linear", "forward/tanh", "forward/relu"),
                   "nn/softmax": ("softmax",), "nn/loss": ("compute_loss_and_acc",),
                   "nn/backwards": ("backwards/sigmoid", "backwards/linear", "backwards/tanh"),
                   "nn/batches": ("get_random_batches",), "q4/pages": ()}


def _answers(run) -> tuple[dict, dict, dict]:
    """(arrays, status, facts) of every function probe answer, merged; a probe that failed as a
    whole (nn.py does not import) sets its error as the status of each call it would have made."""
    arrays, status, facts = {}, {}, {}
    for key, calls in FUNCTION_PROBES.items():
        try:
            result = run.answer(key)
        except BaseException:  # noqa: BLE001 - pytest.fail of a probe that was not run
            continue
        if not result.ok:
            for call in calls:
                status[call] = result.error or "the probe failed"
            if key == "q4/pages":
                status["import q4"] = result.error or "the probe failed"
            continue
        arrays.update(result.arrays)
        meta = dict(result.meta)
        status.update(meta.pop("status", {}))
        facts.update(meta)
    return arrays, status, facts


def _missing(status: dict, name: str) -> str | None:
    s = status.get(name, "not run")
    return None if s == "ok" else s


def _inputs(run, name: str):
    return run.gold.inputs.arrays[f"fn/{name}"]


def function_verdicts(run) -> dict[str, V]:
    cached = getattr(run, "_hw5_function_verdicts", None)
    if cached is None:
        cached = run._hw5_function_verdicts = _function_verdicts(run)
    return cached


def _function_verdicts(run) -> dict[str, V]:
    arrays, status, facts = _answers(run)
    out: dict[str, V] = {}
    P = run.params
    # ---------------------------------------------------------------- q2.1.2 initialize_weights
    shape_ok, xav_ok = V(True), V(True)
    for k, (i, o) in enumerate(P("q2.1.2")["sizes"]):
        W, b = arrays.get(f"init/{k}/W"), arrays.get(f"init/{k}/b")
        err = _missing(status, "initialize_weights")
        if err or W is None:
            shape_ok = xav_ok = fail(f"initialize_weights: {err or 'params[W + name] was not set: not implemented?'}")
            break
        if shape_ok:
            shape_ok = judge.init_shapes_check(W, b, i, o)
        if xav_ok:
            # the distribution of W alone (a 2-D b is charged by the shapes check)
            xav_ok = judge.xavier_check(W, np.zeros(o), i, o, alpha=P("q2.1.2")["alpha"])
    out["test_nn.py::test_initialize_shapes"] = shape_ok
    out["test_nn.py::test_initialize_xavier"] = xav_ok
    # ---------------------------------------------------------------- q2.2.1 sigmoid, forward
    err = _missing(status, "sigmoid")
    out["test_nn.py::test_sigmoid"] = fail(f"sigmoid: {err}") if err else judge.sigmoid_check(
        _inputs(run, "sigmoid_x"), arrays.get("sigmoid/out"))
    X, W, b = _inputs(run, "forward_X"), _inputs(run, "forward_W"), _inputs(run, "forward_b")
    err = _missing(status, "forward/sigmoid")
    if not err and arrays.get("forward/sigmoid/out") is None:
        err = "returned None: not implemented?"
    if err:
        for c in ("values", "cache", "activation_argument"):
            out[f"test_nn.py::test_forward_{c}"] = fail(f"forward: {err}")
    else:
        post = arrays.get("forward/sigmoid/out")
        out["test_nn.py::test_forward_values"] = judge.compare_arrays(
            post, judge.forward_gold(X, W, b, "sigmoid")[1], "forward(X, params) with a sigmoid")
        cache = [arrays.get(f"forward/sigmoid/cache{i}") for i in range(3)]
        out["test_nn.py::test_forward_cache"] = judge.cache_check(X, post, cache if cache[0] is not None else None)
        # the activation passed in is applied to the layer's own pre-activation (judged against the
        # student's pre-activation, so an affine bug is not charged twice)
        pre = cache[1]
        if pre is None and post is not None and np.all((post > 1e-9) & (post < 1 - 1e-9)):
            pre = np.log(post / (1 - post))
        v = V(True) if pre is not None else fail("forward returned nothing: not implemented?")
        for act in P("q2.2.1")["activations"]:
            if act == "sigmoid" or pre is None:
                continue
            e = _missing(status, "forward/" + act)
            got = arrays.get(f"forward/{act}/out")
            v = fail(f"forward(..., activation={act}): {e}") if e else judge.compare_arrays(
                got, judge.activation(act, pre), f"forward(..., activation={act}) (the activation passed in)")
            if not v:
                break
        out["test_nn.py::test_forward_activation_argument"] = v
    # ---------------------------------------------------------------- q2.2.2 softmax
    err = _missing(status, "softmax")
    xs = {k: _inputs(run, f"softmax_{k}") for k in ("small", "large")}
    if not err and any(np.shape(arrays.get(f"softmax/{k}/out")) != np.shape(xs[k]) for k in xs):
        err = "returned None or an array of the wrong shape: not implemented?"
    if err:
        for c in ("rows", "stable", "argument_untouched"):
            out[f"test_nn.py::test_softmax_{c}"] = fail(f"softmax: {err}")
    else:
        small = judge.softmax_check(xs["small"], arrays.get("softmax/small/out"))
        large = judge.softmax_check(xs["large"], arrays.get("softmax/large/out"))
        out["test_nn.py::test_softmax_rows"] = small
        out["test_nn.py::test_softmax_stable"] = large if small else V(True)
        untouched = all(np.array_equal(xs[k], arrays.get(f"softmax/{k}/after")) for k in xs)
        out["test_nn.py::test_softmax_argument_untouched"] = V(True) if untouched else \
            fail("softmax modified its argument in place")
    # ---------------------------------------------------------------- q2.2.3 loss and accuracy
    err = _missing(status, "compute_loss_and_acc")
    if err or "loss/loss" not in arrays or "loss/acc" not in arrays:
        msg = f"compute_loss_and_acc: {err or 'returned None: not implemented?'}"
        out["test_nn.py::test_loss_total"] = out["test_nn.py::test_accuracy"] = fail(msg)
    else:
        y, probs = _inputs(run, "loss_y"), _inputs(run, "loss_probs")
        # each check judges one of the two numbers, the other taken from the gold
        out["test_nn.py::test_loss_total"] = judge.loss_acc_check(y, probs, arrays["loss/loss"],
                                                                 judge.accuracy(y, probs))
        out["test_nn.py::test_accuracy"] = judge.loss_acc_check(y, probs, judge.cross_entropy(y, probs),
                                                               arrays["loss/acc"])
    # ---------------------------------------------------------------- q2.3.1 backwards
    out.update(_backwards(run, arrays, status))
    # ---------------------------------------------------------------- q2.4 get_random_batches
    out.update(_batches(run, arrays, status, facts))
    # ---------------------------------------------------------------- q4.2 findLetters
    out.update(_findletters(run, arrays, status, facts))
    return out


def _backwards(run, arrays, status) -> dict[str, V]:
    P = run.params("q2.3.1")
    names = {"grad_W": "test_backwards_grad_W", "grad_b": "test_backwards_grad_b", "grad_X": "test_backwards_grad_X"}

    def judge_layer(act):
        err = _missing(status, "backwards/" + act)
        if err:
            return {n: fail(f"backwards ({act} layer): {err}") for n in names.values()}, fail(f"backwards: {err}")
        g = lambda k: _inputs(run, f"bwd_{act}_{k}")
        gold = judge.backwards_gold(g("delta"), g("X"), g("W"), g("post"), act)
        res, shapes = {}, V(True)
        for (key, check), want in zip(names.items(), gold):
            got = arrays.get(f"backwards/{act}/{key}")
            if got is None and shapes:
                shapes = fail(f"backwards did not {'return' if key == 'grad_X' else 'store'} {key}: not implemented?")
            if got is not None and got.size == want.size and got.shape != want.shape:
                if shapes and not (key == "grad_b" and got.shape == (1,) + want.shape):
                    shapes = fail(f"{key} has shape {list(got.shape)}; expected {list(want.shape)} "
                                  f"(the shape of its parameter)")
                got = got.reshape(want.shape)
            res[check] = judge.compare_arrays(got, want, f"{key} ({act} layer)", rtol=P["rtol"], atol=P["atol"])
        return res, shapes

    res = {n: V(True) for n in names.values()}
    shapes = V(True)
    for act in P["activations"]:
        r, sh = judge_layer(act)
        res = {k: res[k] if not res[k] else r[k] for k in res}
        shapes = shapes if not shapes else sh
    out = {f"test_nn.py::{check}": v for check, v in res.items()}
    out["test_nn.py::test_backwards_shapes"] = shapes
    other = P["other_activation"]
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
    return out


def _batches(run, arrays, status, facts) -> dict[str, V]:
    sizes = run.params("q2.4")["batch_sizes"]
    err = _missing(status, "get_random_batches")
    checks = ("partition", "sizes", "shuffled", "arguments_untouched")
    if not err and any(int(facts.get(f"batches/{bs}/count", 0) or 0) == 0 for bs in sizes):
        err = "returned no batches: not implemented?"
    if not err and any(str(facts.get(f"batches/{bs}/kind", "list")) != "list" for bs in sizes):
        err = (f"returned {facts.get(f'batches/{sizes[0]}/kind')}; the handout's get_random_batches "
               "returns a list of (batch_x, batch_y) tuples")
    if err:
        return {f"test_batches.py::test_batches_{c}": fail(f"get_random_batches: {err}") for c in checks}
    x, y = _inputs(run, "batches_x"), _inputs(run, "batches_y")
    found = {c: V(True) for c in checks}
    for bs in sizes:
        count = int(facts.get(f"batches/{bs}/count", 0))
        bl = [(arrays[f"batches/{bs}/{k}/x"], arrays[f"batches/{bs}/{k}/y"]) for k in range(count)
              if f"batches/{bs}/{k}/x" in arrays and f"batches/{bs}/{k}/y" in arrays]
        if len(bl) != count:
            v = fail(f"get_random_batches({x.shape[0]} examples, batch_size={bs}): some batches are not "
                     "pairs of numeric arrays")
        else:
            v = judge.batches_check(x, y, bs, bl, arrays.get(f"batches/{bs}/x_after"), arrays.get(f"batches/{bs}/y_after"))
        if not v:
            m = v.message
            which = ("sizes" if m.startswith("batch sizes") else "shuffled" if "original order" in m else
                     "arguments_untouched" if "caller's" in m else "partition")
            if found[which]:
                found[which] = v
    return {f"test_batches.py::test_batches_{c}": found[c] for c in checks}


def _page_boxes(arrays) -> dict[int, np.ndarray]:
    return {int(k.split("/")[1]): v for k, v in arrays.items()
            if k.startswith("q4/") and k.endswith("/boxes") and k.split("/")[1].isdigit()}


def _findletters(run, arrays, status, facts) -> dict[str, V]:
    P = run.params("q4.2")
    pages = run.gold.inputs.meta["pages"]
    meta = run.gold.derived_meta
    need_r = meta.get("q4_recall", 1.0) - P["margin"]
    need_p = meta.get("q4_precision", 1.0) - P["margin"]
    rec, prec, bw = V(True), V(True), V(True)
    boxes_by_page = _page_boxes(arrays)
    found = [boxes_by_page.get(k, np.zeros((0, 4))) for k in range(len(pages))]
    for k, page in enumerate(pages):
        err = status.get("import q4") or _missing(status, f"findLetters/{k}")
        if err:
            rec = prec = bw = fail(f"findLetters: {err}")
            break
        if not len(found[k]) and rec:
            rec = prec = fail(f"findLetters found no boxes on a page of {len(page['boxes'])} characters: "
                              "not implemented?")
        if bw:
            bw = judge.bw_check(arrays.get(f"q4/{k}/bw"), page["shape"], page["boxes"])
    if rec and pages:
        # pooled over the pages, as a TA looks at the set of photos: one weak page costs what its
        # characters weigh, not the whole item
        truth = [page["boxes"] for page in pages]
        rec = judge.pages_check(found, truth, need_r, 0.0, P["iou"])
        prec = judge.pages_check(found, truth, 0.0, need_p, P["iou"])
    out = {"test_q4.py::test_findletters_recall": rec, "test_q4.py::test_findletters_precision": prec,
           "test_q4.py::test_findletters_bw": bw}
    photo = arrays.get("q4/photo/boxes")
    if pages and photo is not None and len(photo):
        # judged in the box convention the student used on the pages ([x1, y1, x2, y2] is charged
        # there), so that this check only asks: does it work at phone-photo size?
        s = P["photo_scale"]
        big_truth = (np.asarray(pages[0]["boxes"]) * s).tolist()
        page0 = boxes_by_page.get(0, np.zeros((0, 4)))
        if len(page0) and judge.match_boxes(page0[:, [1, 0, 3, 2]], pages[0]["boxes"])[0] > \
                judge.match_boxes(page0, pages[0]["boxes"])[0]:
            photo = photo[:, [1, 0, 3, 2]]
        out["test_q4.py::test_findletters_photo_scale"] = judge.boxes_check(photo, big_truth, need_r, need_p, P["iou"])
    elif not pages:
        out["test_q4.py::test_findletters_photo_scale"] = V(True)
    else:
        out["test_q4.py::test_findletters_photo_scale"] = fail(
            "findLetters found no boxes on a page enlarged to phone-photo size "
            f"({status.get('findLetters/0', 'not run')})")
    out["test_q4.py::test_findletters_course_photos"] = _course_photos(run, P)
    return out


def _course_photos(run, P) -> V:
    """The course's photos (when the data has them) against the reference's boxes on them: there
    are no true boxes for the photos, so this is the reference's reading, shown for a TA."""
    photos = run.gold.inputs.meta.get("photos", [])
    notes, ok = [], True
    for k, name in enumerate(photos):
        key = f"q4/photo/{k}"
        try:
            got = run.answer(key)
        except BaseException:  # noqa: BLE001
            continue
        want = run.expected(key).arrays.get("q4/0/boxes", np.zeros((0, 4)))
        if not got.ok or "q4/0/boxes" not in got.arrays:
            notes.append(f"{name}: {got.error or 'no boxes'}")
            ok = False
            continue
        r, p, _ = judge.match_boxes(got.arrays["q4/0/boxes"], want, P["iou"])
        notes.append(f"{name}: {len(got.arrays['q4/0/boxes'])} boxes; recall {r:.2f}, precision {p:.2f} "
                     f"against the reference's")
        ok = ok and r >= 1 - P["margin"] and p >= 1 - P["margin"]
    return V(ok, "course photos: " + "; ".join(notes) if notes else "")


# ====================================================================================== scripts

def _crash(answer_or_error) -> str:
    return f" ({answer_or_error})" if answer_or_error else ""


def script_verdicts(run, script: str) -> dict[str, V]:
    cache = run.__dict__.setdefault("_hw5_script_verdicts", {})
    if script not in cache:
        cache[script] = {"run_q2": _q2, "run_q3": _q3, "run_q5": _q5, "run_q6_1": _q6}[script](run)
    return cache[script]


def _result(run, script):
    result = run.answer(f"script/{script}")
    if not result.ok:
        return None, result.error or f"{script}.py failed"
    return script_answer(result), ""


def _q2(run) -> dict[str, V]:
    names = ("test_run_q2.py::test_q2_training", "test_run_q2.py::test_q2_gradcheck_every_parameter",
             "test_run_q2.py::test_q2_gradcheck_accuracy")
    answer, err = _result(run, "run_q2")
    if answer is None:
        return {n: fail(err) for n in names}
    P4, P5 = run.params("q2.4"), run.params("q2.5")
    out = {}
    p = measure.params_of(answer.value("global", "params"))
    x, y = answer.value("global", "x"), answer.value("global", "y")
    exact = None
    try:
        if x is None or y is None:
            raise KeyError("run_q2 left no x and y (the toy data)")
        loss, exact = judge.q2_loss_and_gradients(p, x, y)
        acc = float(np.mean(np.argmax(judge.network_probs(p, x, in_dim=2, out_dim=4), 1) == np.argmax(y, 1)))
        ok = loss < P4["max_loss"] and acc > P4["min_acc"]
        out[names[0]] = V(ok, f"after training: loss {loss:.1f}, accuracy {acc:.2f}"
                          + ("" if ok else " (the handout: loss < 35 and accuracy > 75%)"))
    except (KeyError, ValueError, TypeError) as exc:
        out[names[0]] = fail(f"run_q2's params: {exc}")
    # the checker is judged on params as they were when it finished (a snapshot after its last
    # `total_error` statement), since a training loop after it overwrites params['grad_*']
    if answer.value("global", "params@total_error"):
        p = measure.params_of(answer.value("global", "params@total_error"))
        orig = measure.params_of(answer.value("global", "params_orig@total_error"))
    else:
        orig = measure.params_of(answer.value("global", "params_orig"))
    if exact is None or not orig:
        out[names[1]] = out[names[2]] = fail("run_q2 left no params_orig (the parameters the gradient checker "
                                             "started from)")
        return out
    try:
        _, exact = judge.q2_loss_and_gradients(orig, x, y)
    except (KeyError, ValueError, TypeError) as exc:
        out[names[1]] = out[names[2]] = fail(f"params_orig: {exc}")
        return out
    numerical = {k: p.get(k) for k in exact}
    changed = all(k in p and k in orig and np.shape(p[k]) == np.shape(orig[k]) and not np.array_equal(p[k], orig[k])
                  for k in exact)
    out[names[1]] = V(changed, "" if changed else
                      "the checker did not write a numerical gradient for every W and b into params['grad_' + name]")
    v = judge.gradcheck_error(numerical, exact) if changed else fail("no numerical gradients")
    if v and v.value is not None:
        ok = v.value < P5["max_total_error"]
        v = V(ok, f"total relative error {v.value:.2e} against the exact gradients"
              + ("" if ok else f" (should be below {P5['max_total_error']:g}: central differences?)"), v.value)
        if not ok:
            v = _q2_checker_subset(orig, x, y, numerical, exact, v, P5["max_total_error"])
    out[names[2]] = v
    return out


def _q2_checker_subset(orig, x, y, numerical, exact, whole: V, limit: float) -> V:
    """The starter lets a checker run on one batch or one example of the toy data: its numbers are
    then the gradient of the loss on those examples, not on all of them. Find the examples from
    the numbers (judge.checker_data: per-example exact gradients at params_orig) and judge them
    against the exact gradient of that loss, with the same threshold (judge.checker_error: entries
    below the rounding noise of central differences on that loss counted absolutely) and one-sided
    differences caught by their error along the Hessian's diagonal."""
    try:
        G, keys, losses = judge.q2_example_gradients(orig, x, y)
    except (KeyError, ValueError, TypeError, RuntimeError):
        return whole
    used = judge.checker_data(numerical, G, keys)
    n = int(np.shape(x)[0])
    if used is None or (len(used.examples) == n and used.kind == "sum"):
        return whole              # all the data, summed: the whole-data verdict stands
    rows = used.examples
    want = used.exact(G, keys, {k: np.shape(exact[k]) for k in keys})
    v = judge.checker_error(numerical, want, used.scale * float(losses[rows].sum()))
    if not v or v.value is None:
        return whole
    which = (f"example {rows[0]}" if len(rows) == 1 else
             f"all {n} examples" if len(rows) == n else
             f"{len(rows)} examples (rows {', '.join(map(str, rows))})")
    loss = "loss" if len(rows) == 1 else "summed loss" if used.kind == "sum" else "mean loss"
    said = (f"the checker's gradients are those of the {loss} on {which} of the toy data x: total relative "
            f"error {v.value:.2e} against the exact gradients of that loss")
    hess = used.scale * judge.q2_hessian_diagonal(orig, np.asarray(x)[rows], np.asarray(y)[rows])
    step = judge.one_sided_step(numerical, want, hess, keys)
    if step is not None:
        return V(False, said + f", and their error is (eps/2) d2L/dw2 with eps = {abs(step):.1g}: one-sided "
                 "differences (f(w + eps) - f(w)) / eps; central differences (f(w + eps) - f(w - eps)) / (2 eps) "
                 "are exact to O(eps^2)", v.value)
    if v.value < limit:
        return V(True, said + f" (on all {n} examples it would be {whole.value:.2e})", v.value)
    return V(False, said + f" (should be below {limit:g}: central differences?)", v.value)


def _q3(run) -> dict[str, V]:
    names = ("test_run_q3.py::test_q3_hidden_size", "test_run_q3.py::test_q3_epochs",
             "test_run_q3.py::test_q3_weights_accuracy")
    answer, err = _result(run, "run_q3")
    if answer is None:
        return {n: fail(err) for n in names}
    P = run.params("q3.1")
    out = {}
    stale = False
    trained = _q3_trained(answer, run, P)
    w, source = measure.q3_weights_and_source(answer)
    accuracy = measure.q3_accuracy(answer, run.gold.inputs) if w is not None else None
    if w is not None:
        # weights stand for the deliverable only when trained: an untouched starter saves the
        # stand-ins' initial weights (the handout's sizes, chance accuracy), which earn nothing
        # (a script that trained but pickled the weights it started from keeps its size and epochs
        # points: its final `params` are trained, and only the deliverable is wrong)
        chance = 1.0 / run.gold.inputs.arrays["holdout_y"].shape[1]
        stale = accuracy.value is None or accuracy.value < 2 * chance
        if stale and not trained:
            why = f" ({answer.facts['error']})" if answer.facts.get("error") else ""
            return {n: fail(f"run_q3 trained nothing: the weights it left are at chance accuracy on held-out "
                            f"images{why}") for n in names}
    if w is None:
        out[names[0]] = out[names[2]] = fail("run_q3 wrote no q3_weights.pickle (a dict of its W and b arrays)")
    else:
        hid = measure.q3_hidden(w)
        out[names[0]] = V(hid == [P["hidden_size"]], f"a hidden layer of {hid} units; expected {P['hidden_size']}")
        v = accuracy
        reference = run.gold.derived_meta.get("q3_accuracy") or (v.value or 0.0)
        if v:
            floor = P["full_floor"] if run.profile.get("name") == "full" else None
            if hid == [P["hidden_size"]]:
                v = judge.relative_threshold(v.value, reference, P["margin"], "held-out accuracy", floor)
            else:      # the size is charged by test_q3_hidden_size; the training is judged on its own
                need = P["other_size_fraction"] * reference
                v = judge.relative_threshold(v.value, need, 0.0, f"held-out accuracy (a hidden layer of {hid})")
        if source != measure.Q3_WEIGHTS:       # found elsewhere by the engine: say so (a TA may check)
            v.message += (f" (judged from {source}: no q3_weights.pickle was written)" if source != "params"
                          else " (judged from the trained `params` it left: it wrote no weights pickle; "
                               "flagged for a TA)")
        if stale and not v:
            v.message += (" (the pickled weights are at chance although the script's network trained: "
                          "were they saved before the training loop?)")
        out[names[2]] = v
    # A network that was never trained (the starter's own initialisation pickled, no training loop)
    # earns nothing for its size or epochs: its pickled weights and its final `params` both predict
    # the held-out split at chance.
    if w is not None and not trained:
        out[names[0]] = fail(f"run_q3 trained nothing: {trained.message}")
    # the epochs the student's own script asks for (the grader runs it at the profile's budget)
    was = answer.facts.get("constants", {}).get("max_iters", {}).get("was")
    m = re.fullmatch(r"\s*(\d+)\s*", str(was or ""))
    if w is None:
        out[names[1]] = fail("run_q3 trained nothing (no q3_weights.pickle)")
    elif not trained:
        out[names[1]] = fail(f"run_q3 trained nothing: {trained.message}")
    elif m is None:
        out[names[1]] = fail("run_q3.py has no top-level `max_iters = <number>` (the handout's; the grader sets "
                             "its budget through it)")
    else:
        ok = int(m.group(1)) >= P["min_epochs"]
        out[names[1]] = V(ok, "" if ok else f"max_iters = {m.group(1)} in run_q3.py; the handout asks for at "
                                            f"least {P['min_epochs']} epochs")
    return out


def _q3_trained(answer, run, P) -> V:
    """Does the pickled network, or the script's final `params`, predict the held-out split well
    above chance (`trained_above_chance` times 1/36)?"""
    x, y = run.gold.inputs.arrays["holdout_x"], run.gold.inputs.arrays["holdout_y"]
    chance = 1.0 / y.shape[1]
    best = 0.0
    for params in (measure.q3_weights(answer), measure.params_of(answer.value("global", "params"))):
        if params:
            v = judge.params_accuracy(params, x, y)
            if v.ok and v.value is not None:
                best = max(best, v.value)
    ok = best > P["trained_above_chance"] * chance
    return V(ok, "" if ok else f"its network predicts held-out images at chance (accuracy {best:.3f}; "
                               f"chance is {chance:.3f}): no training loop?")


def _q5(run) -> dict[str, V]:
    names = ("test_run_q5.py::test_ae_layers", "test_run_q5.py::test_ae_activations",
             "test_run_q5.py::test_ae_reconstructs", "test_run_q5.py::test_momentum_accumulators",
             "test_run_q5.py::test_ae_psnr")
    answer, err = _result(run, "run_q5")
    if answer is None:
        return {n: fail(err) for n in names}
    hidden = run.params("q5.1.1")["hidden_size"]
    p = measure.with_accumulators(measure.params_of(answer.value("global", "params")), answer)
    out = {names[0]: judge.autoencoder_structure_check(p, hidden=hidden, part="layers"),
           names[1]: judge.autoencoder_structure_check(p, hidden=hidden, part="activations")}
    value, problem = measure.q5_psnr(answer, run.gold.inputs)
    if value is None:
        out[names[2]] = out[names[4]] = fail(problem)
    else:
        out[names[2]] = V(bool(np.isfinite(value)), f"validation PSNR {value:.2f} dB")
        reference = run.gold.derived_meta.get("q5_psnr") or value
        out[names[4]] = judge.relative_threshold(value, reference, run.params("q5.1.2")["margin"],
                                                 "validation PSNR (dB)")
    out[names[3]] = judge.momentum_check(p)
    return out


def _q6(run) -> dict[str, V]:
    name = "test_run_q6.py::test_q6_1_1_accuracy"
    result = run.answer("script/run_q6_1")
    if not result.ok:
        return {name: fail(result.error or "run_q6_1.py failed")}
    value, problem = measure.q6_accuracy(result, run.gold.inputs)
    if value is None:
        return {name: fail(problem)}
    reference = run.gold.derived_meta.get("q6_accuracy") or value
    P = run.params("q6.1.1")
    v = judge.relative_threshold(value, reference, P["margin"], "held-out accuracy")
    if v:
        return {name: v}
    # The handout sets no accuracy for Q6.1.1: it asks for the network, trained, and its curves. The
    # script runs with the student's own optimiser, learning rate and epochs, often locals of a
    # function that the budget's constants do not reach, so under the ci budget a correct network
    # can stop well short of the reference. A network that learned (held-out accuracy several
    # times chance) gets the points; one that did not train stays at chance and gets none.
    chance = 1.0 / run.gold.inputs.arrays["holdout_y"].shape[1]
    need = P["over_chance"] * chance
    if value >= need:
        return {name: V(True, f"held-out accuracy {value:.3f}: it learned ({value / chance:.0f} times chance "
                              f"{chance:.3f}); below the reference's {reference:.3f} at this budget, with your "
                              f"own optimiser, learning rate and epochs, which is allowed (the handout sets no "
                              f"accuracy for Q6.1.1)", value)}
    return {name: V(False, f"held-out accuracy {value:.3f}: the network did not learn (chance is {chance:.3f}; "
                           f"a trained network reaches at least {need:.3f} here, the reference {reference:.3f})",
                    value)}
