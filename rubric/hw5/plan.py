"""Probe groups of HW5: what the worker is asked, with which inputs, for each rubric item.

Function probes (probes.py) call nn.py's functions and findLetters on the trusted side's inputs.
Script probes (probes.py's `hw5_script`, over the runtime's script probe) run run_q2/3/5/6_1 to
completion with the NIST36 splits placed at ../data/, the profile's constants, numpy seeded; the
held-out split is never placed (its images, never its labels, go to q6.1.1's model).

Stand-ins: a script runs with the reference's version of nn.py's functions (so that a bug in
`backwards` is charged by q2.3.1 once, not again by every script that trains with it); if the
script fails that way, it runs again with the student's own functions (their script may rely on an
API of their own). The stand-ins' source is the reference's (inputs.py keeps it in gold's inputs,
which a student bundle never ships): a self-check runs the scripts with the student's own functions.
"""
from __future__ import annotations

import numpy as np

from grader.probes.client import ProbeSpec
from grader.probes.scripts import script_spec

from .roles import NN_FUNCTIONS

GROUPS: dict = {}
SPLITS = ("train", "valid", "test")
INIT_SEED = 100
BATCH_SEED = 0
# the functions a script's stand-in nn module holds (sigmoid_deriv: the course's own)
STANDIN_FUNCTIONS = ("sigmoid", "sigmoid_deriv") + tuple(f for f in NN_FUNCTIONS if f != "sigmoid")


def group(name):
    def register(fn):
        GROUPS[name] = fn
        return fn
    return register


def _fn_arrays(inputs, *prefixes) -> dict:
    return {k[len("fn/"):]: v for k, v in inputs.arrays.items() if k.startswith(tuple("fn/" + p for p in prefixes))}


def _params(profile, item):
    from grader import rubric as rubricmod

    return rubricmod.load("hw5").item(item).params


@group("nn_initialize")
def nn_initialize(profile, inputs, for_gold=False):
    sizes = _params(profile, "q2.1.2")["sizes"]
    return [ProbeSpec("nn/initialize", "nn_initialize", "nn", {"sizes": sizes, "seed": INIT_SEED},
                      timeout=profile["probe_timeout"], part="nn")]


@group("nn_forward")
def nn_forward(profile, inputs, for_gold=False):
    acts = _params(profile, "q2.2.1")["activations"]
    return [ProbeSpec("nn/sigmoid", "nn_sigmoid", "nn", {}, _fn_arrays(inputs, "sigmoid_"),
                      timeout=profile["probe_timeout"], part="nn"),
            ProbeSpec("nn/forward", "nn_forward", "nn", {"activations": acts}, _fn_arrays(inputs, "forward_"),
                      timeout=profile["probe_timeout"], part="nn")]


@group("nn_softmax")
def nn_softmax(profile, inputs, for_gold=False):
    return [ProbeSpec("nn/softmax", "nn_softmax", "nn", {}, _fn_arrays(inputs, "softmax_"),
                      timeout=profile["probe_timeout"], part="nn")]


@group("nn_loss")
def nn_loss(profile, inputs, for_gold=False):
    return [ProbeSpec("nn/loss", "nn_loss", "nn", {}, _fn_arrays(inputs, "loss_"),
                      timeout=profile["probe_timeout"], part="nn")]


@group("nn_backwards")
def nn_backwards(profile, inputs, for_gold=False):
    p = _params(profile, "q2.3.1")
    acts = list(p["activations"]) + [p["other_activation"]]
    return [ProbeSpec("nn/backwards", "nn_backwards", "nn", {"activations": acts}, _fn_arrays(inputs, "bwd_"),
                      timeout=profile["probe_timeout"], part="nn")]


@group("nn_batches")
def nn_batches(profile, inputs, for_gold=False):
    sizes = _params(profile, "q2.4")["batch_sizes"]
    return [ProbeSpec("nn/batches", "nn_batches", "nn", {"batch_sizes": sizes, "seed": BATCH_SEED},
                      _fn_arrays(inputs, "batches_"), timeout=profile["probe_timeout"], part="nn")]


@group("q4_findletters")
def q4_findletters(profile, inputs, for_gold=False):
    """findLetters on each synthetic page, the first page enlarged to phone-photo size, and the
    course's photos when the data has them (each its own probe: a slow photo fails alone). The
    pages' probe does a phone photo's work: it gets the profile's `photo_timeout` if longer."""
    scale = _params(profile, "q4.2")["photo_scale"]
    pages = {k: v for k, v in inputs.arrays.items() if k.startswith("page/")}
    specs = [ProbeSpec("q4/pages", "findletters", "q4", {"photo_scale": scale, "kind": "pixels"}, pages,
                       timeout=max(profile["probe_timeout"], profile.get("photo_timeout", 0)),
                       part="findLetters")]
    for k in range(len(inputs.meta.get("photos", []))):
        specs.append(ProbeSpec(f"q4/photo/{k}", "findletters", "q4", {"kind": "encoded"},
                               {"photo/0": inputs.arrays[f"photo/{k}"]},
                               timeout=profile["probe_timeout"], part="findLetters", hang_marks_part=False))
    return specs


# ------------------------------------------------------------------ script probes

def standins(inputs) -> dict:
    """The reference's nn.py functions by name (source text), kept in gold's inputs as `standin/*`
    (inputs.py; never in a student bundle): so a Gradescope export, which holds gold but not the
    reference, runs the scripts as the staff's own grader does."""
    found = {k[len("standin/"):]: bytes(np.asarray(v, dtype=np.uint8)).decode("utf-8")
             for k, v in inputs.arrays.items() if k.startswith("standin/")}
    return {name: found[name] for name in STANDIN_FUNCTIONS if name in found}


def _nist_files(inputs, splits=SPLITS) -> tuple[dict, dict]:
    files, arrays = {}, {}
    for s in splits:
        files[f"../data/nist36_{s}.mat"] = {"format": "mat", "arrays": {f"{s}_data": f"{s}_x", f"{s}_labels": f"{s}_y"}}
        arrays[f"{s}_x"], arrays[f"{s}_y"] = inputs.arrays[f"nist/{s}_x"], inputs.arrays[f"nist/{s}_y"]
    return files, arrays


def _script(key, role, profile, inputs, globals_, outputs=(), data=True, evaluate=None, **found):
    """`found`: what the engine looks for beyond the handout's names (grader/scripts.py): pickles
    of other names and folders, every dict of arrays, models that are locals of a function. Real
    scripts often fail after training (a plot, a removed API): `partial` keeps what they computed."""
    files, arrays = _nist_files(inputs) if data else ({}, {})
    if evaluate:
        arrays["holdout_x"] = inputs.arrays["holdout_x"]          # images only: the labels stay here
    spec = script_spec(key, role=role, inputs=files, arrays=arrays,
                       constants=dict(profile.get(role, {})), seed=0, globals=list(globals_),
                       outputs=list(outputs), timeout=profile["script_timeout"], partial=True, **found)
    spec.probe = "hw5_script"
    spec.args["standins"] = standins(inputs) if not evaluate else {}   # PyTorch scripts: nn.py is not theirs
    spec.args["standin_module"] = "nn"
    if evaluate:
        spec.args["evaluate"] = evaluate
    spec.hang_marks_part = False
    return [spec]


@group("run_q2")
def run_q2(profile, inputs, for_gold=False):
    # the checker's numbers as they were when it finished (its last `total_error` statement): a
    # script that runs its training loop after the checker overwrites params['grad_*'] (jmiller_f20)
    return _script("script/run_q2", "run_q2", profile, inputs,
                   ["x", "y", "params", "params_orig", "total_error"], data=False,
                   snapshots={"total_error": ["params", "params_orig"]})


@group("run_q3")
def run_q3(profile, inputs, for_gold=False):
    return _script("script/run_q3", "run_q3", profile, inputs, ["params", "hidden_size", "max_iters"],
                   outputs=["q3_weights.pickle"], output_patterns=["*.pickle", "*.pkl"])


@group("run_q5")
def run_q5(profile, inputs, for_gold=False):
    return _script("script/run_q5", "run_q5", profile, inputs, ["params", "learning_rate"], all_dicts=True)


@group("run_q6_1")
def run_q6_1(profile, inputs, for_gold=False):
    # Q6.1.1 is 7.1.1 in the handouts up to Fall 2020 (PyTorch was Q7): a script that picks its
    # part from sys.argv[1] runs the fully connected network's part
    return _script("script/run_q6_1", "run_q6_1", profile, inputs, [], evaluate={"model": "holdout_x"},
                   models={"array": "holdout_x", "shapes": [[-1, 1024], [-1, 1, 32, 32]]},
                   argv_choices=["6.1.1", "7.1.1", "q6.1.1", "q7.1.1", "6.1", "7.1"])


@group("run_q4")
def run_q4(profile, inputs, for_gold=False):
    """run_q4.py on the first synthetic page (PNG at ../images/, where the handout's script lists
    it) with the reference's trained weights as q3_weights.pickle (ocr.py says why not the
    student's), what it prints returned: for the TA's note on q4.4 only (a manual item names this
    group: nothing scores it). One page and the probe timeout keep it cheap."""
    from grader.report.images import encode_png

    from . import ocr

    weights = ocr.weights_pickle(inputs)
    if weights is None or "page/0" not in inputs.arrays:
        return []                              # nothing to run it with: the note says it was not run
    page = np.frombuffer(encode_png(np.asarray(inputs.arrays["page/0"])), dtype=np.uint8).copy()
    files = {f"../images/{ocr.PAGE}": {"format": "bytes", "arrays": {"page": "q4_page"}, "alias": False},
             ocr.WEIGHTS: {"format": "bytes", "arrays": {"weights": "q4_weights"}, "alias": False}}
    spec = script_spec("script/run_q4", role="run_q4", inputs=files,
                       arrays={"q4_page": page, "q4_weights": weights}, seed=0,
                       timeout=profile["probe_timeout"], partial=True)
    spec.probe = "hw5_script"
    spec.args.update(standins=standins(inputs), standin_module="nn", stdout=ocr.STDOUT)
    # it runs findLetters: where that never finished in q4_findletters, this is not tried (no
    # second wait); its own time-out marks nothing
    spec.part, spec.hang_marks_part = "findLetters", False
    return [spec]
