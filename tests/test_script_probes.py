"""Script probes against what real student scripts do, through the real sandbox (grader/worker/
script.py, grader/worker/compat.py): a constant assigned twice or under `__main__`, a pickle of
another name written into a folder that does not exist, data read next to the script, removed
numpy/scikit-image APIs, `plt.show()`, models that are locals of a function, momentum kept in a dict
of its own, a loop that never ends. Each behaviour is also a note the report shows.

The scripts run in one worker per `run_plan` call (a cold worker imports torch: seconds), so the
probes of a theme share a call; the scaffold's pack is the assignment (its worker module is empty:
script probes are the runtime's)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader import pack as packmod
from grader.probes.client import run_plan
from grader.sandbox.launcher import Limits, Sandbox
from grader.scaffold import new_pack
from grader.probes.scripts import script_spec
from grader.checks.kit import script_answer

PROJECT = Path(__file__).resolve().parent.parent
PACK = "sprobes"


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = new_pack(PACK, tmp_path_factory.mktemp("packs") / PACK)
    packmod.load(str(root))             # so the worker runtime carries its (empty) probe module
    return root


@pytest.fixture(scope="module")
def box():
    return Sandbox(Limits(probe_s=120, submission_s=900), quiet=True)


def _run(tmp_path, box, scripts: dict[str, str], specs, helpers: dict[str, str] | None = None):
    """Each script as its own role in one workspace, the specs run in one worker."""
    ws = tmp_path / "ws"
    ws.mkdir()
    modules = {}
    for role, source in scripts.items():
        (ws / f"{role}.py").write_text(textwrap.dedent(source))
        modules[role] = ws / f"{role}.py"
    for name, source in (helpers or {}).items():
        (ws / name).write_text(textwrap.dedent(source))
    return run_plan(specs, ws, modules, PACK, box)


def _ok(result):
    assert result.ok, result.error
    return script_answer(result)


def _num(v):
    return np.asarray(v).reshape(-1)[0].item()


X = np.arange(24.0).reshape(6, 4)


# ---------------------------------------------------------------------------------------------------

def test_constants_in_force_data_at_the_usual_places_and_outputs_of_other_names(pack, box, tmp_path):
    twice = """
        import numpy as np
        from scipy.io import loadmat
        max_iters = 50
        batch_size = None            # chosen below, as a real run_q3 does
        learning_rate, hidden_size = 0.1, 64
        batch_size = 32
        if __name__ == "__main__":
            max_iters = 5000
        data = loadmat("../data/train.mat")
        seen = {"max_iters": max_iters, "batch_size": batch_size, "hidden_size": hidden_size,
                "rows": data["train_data"].shape[0]}
    """
    beside = """
        import numpy as np, scipy.io, pickle, os
        d = scipy.io.loadmat("./train.mat")          # next to the script, not ../data
        params = {"W": d["train_data"][:2] * 2.0}
        with open(f"../out/weights_bs{8}.pickle", "wb") as fh:    # a folder of the student's machine
            pickle.dump(params, fh)
        with open("nn_weights.pickle", "wb") as fh:
            pickle.dump({"W1": np.ones((2, 3))}, fh)
        np.save("../out/deep/also.npy", np.zeros(2))
    """
    inputs = {"../data/train.mat": {"format": "mat", "arrays": {"train_data": "x"}}}
    specs = [script_spec("twice", "twice", inputs=inputs, arrays={"x": X}, timeout=120,
                         constants={"max_iters": 3, "batch_size": 8, "hidden_size": 16, "absent": 1},
                         globals=["seen"]),
             script_spec("beside", "beside", inputs=inputs, arrays={"x": X}, timeout=120,
                         outputs=["q3_weights.pickle"], output_patterns=["*.pickle", "*.npy"])]
    results = _run(tmp_path, box, {"twice": twice, "beside": beside}, specs)

    a = _ok(results["twice"])
    assert {k: _num(v) for k, v in a.globals["seen"].items()} == {"max_iters": 3, "batch_size": 8,
                                                                 "hidden_size": 16, "rows": 6}
    assert a.facts["constants"]["batch_size"] == {"found": True, "was": "32"}
    assert a.facts["assignments"] == {"max_iters": 2, "batch_size": 2, "hidden_size": 1, "absent": 0}
    assert not a.constant_found("absent")
    notes = a.facts["notes"]
    assert "twice.py: batch_size = 8 while grading (yours: 32), in each of its 2 assignments" in notes
    assert "twice.py: hidden_size = 16 while grading (yours: 64)" in notes
    assert not any("read" in n for n in notes)       # ../data/train.mat is where the handout puts it

    b = _ok(results["beside"])
    found = b.facts["outputs_found"]
    assert set(found) == {"../out/weights_bs8.pickle", "nn_weights.pickle", "../out/deep/also.npy"}
    assert b.facts["outputs_missing"] == ["q3_weights.pickle"]
    np.testing.assert_array_equal(b.files["../out/weights_bs8.pickle"]["W"], X[:2] * 2)
    np.testing.assert_array_equal(b.files["nn_weights.pickle"]["W1"], np.ones((2, 3)))
    notes = b.facts["notes"]
    assert ("beside.py read train.mat, not ../data/train.mat where the handout puts it: the grader "
            "placed the file there too") in notes
    assert "beside.py writes into ../out/, which did not exist: the grader made the folder" in notes
    assert "beside.py writes into ../out/deep/, which did not exist: the grader made the folder" in notes
    assert not any("train.mat" in w for w in b.facts["wrote"])     # the placed data is not an output


def test_removed_apis_plots_and_missing_modules_are_shimmed_with_a_note_each(pack, box, tmp_path):
    old = """
        import os, ctypes
        import numpy as np
        import matplotlib
        matplotlib.use("TkAgg")                         # an interactive backend: ignored
        import matplotlib.pyplot as plt
        import torch
        import torchvision                              # not installed in the grader
        import torchvision.transforms as transforms
        from skimage.measure import compare_psnr        # removed in scikit-image 0.19
        import skimage.color, skimage.filters, skimage.morphology, skimage.restoration
        from util import relu_deriv
        x = np.random.rand(16, 16, 3)
        kinds = [np.float(1.5), np.int(2), np.bool(1), np.object]
        mask = (x[..., 0] > 0.5).astype(np.float)
        grey = skimage.color.rgb2grey(x)
        smooth = skimage.filters.gaussian(x, sigma=1, multichannel=True)
        denoised = skimage.restoration.denoise_bilateral(x, multichannel=True)
        eroded = skimage.morphology.binary_erosion(grey > 0.5, selem=np.ones((3, 3), bool))
        psnr = float(compare_psnr(x, np.clip(x + 0.01, 0, 1)))
        plt.plot([1, 2, 3]); plt.show(); plt.pause(60)
        try:
            transforms.Compose([])
            used_torchvision = "no error"
        except ImportError as exc:
            used_torchvision = str(exc)
        deriv = relu_deriv(np.array([-1.0, 2.0]))
        blas = os.environ.get("OPENBLAS_NUM_THREADS")
        torch_threads = torch.get_num_threads()
        try:                                            # not an optional library: no stand-in,
            import google.colab                         # so the usual fallback is taken
            colab = "stand-in"
        except ImportError:
            colab = "fallback"
    """
    util = """
        import numpy as np
        def relu_deriv(x):
            return (x > 0).astype(np.float)             # the course's starter, as on numpy < 1.24
    """
    specs = [script_spec("old", "old", timeout=120, globals=["kinds", "psnr", "used_torchvision", "deriv",
                                                             "blas", "torch_threads", "grey", "eroded", "colab"])]
    [result] = _run(tmp_path, box, {"old": old}, specs, helpers={"util.py": util}).values()
    a = _ok(result)
    g = a.globals
    assert a.facts["seconds"] < 30                      # plt.pause(60) did not sleep
    assert _num(g["psnr"]) > 30 and g["grey"].shape == (16, 16) and g["eroded"].shape == (16, 16)
    np.testing.assert_array_equal(g["deriv"], [0.0, 1.0])
    said = a.facts["values"]["global/used_torchvision"]
    assert "torchvision.transforms" in said and "not available in the grader" in said
    assert a.facts["values"]["global/blas"] == "1" and _num(g["torch_threads"]) == 1
    assert a.facts["values"]["global/colab"] == "fallback"
    notes = result.meta["notes"]
    expected = ["np.float (removed in numpy 1.24) was read as the builtin float (in old.py, line 14)",
                "np.int (removed in numpy 1.24) was read as the builtin int (in old.py, line 14)",
                "np.object (removed in numpy 1.24) was read as the builtin object (in old.py, line 14)",
                "np.float (removed in numpy 1.24) was read as the builtin float (in util.py, line 4)",
                "skimage.measure.compare_psnr (removed in scikit-image 0.19) was "
                "skimage.metrics.peak_signal_noise_ratio (in old.py, line 10)",
                "skimage.color.rgb2grey (removed in scikit-image 0.19) was skimage.color.rgb2gray (in old.py, line 16)",
                "gaussian(multichannel=True) (removed in scikit-image 0.19) was called as "
                "gaussian(channel_axis=-1) (in old.py, line 17)",
                "denoise_bilateral(multichannel=True) (removed in scikit-image 0.19) was called as "
                "denoise_bilateral(channel_axis=-1) (in old.py, line 18)",
                "binary_erosion(selem=...) (removed in scikit-image 0.23) was called as "
                "binary_erosion(footprint=...) (in old.py, line 19)",
                "matplotlib.use('TkAgg') was ignored: the grader draws with the non-interactive Agg "
                "backend (in old.py, line 5)",
                "plt.show() returned at once: figures are drawn off screen (matplotlib's Agg backend) "
                "while grading (in old.py, line 21)",
                "`import torchvision`: torchvision is not installed in the grader; it was given a stand-in "
                "that fails only where it is used (in old.py, line 8)"]
    for note in expected:
        assert note in notes, (note, notes)
    assert not any(n.startswith("np.bool ") for n in notes)     # numpy 2 has np.bool again
    assert sum(n.startswith("np.float ") for n in notes) == 2       # once per file that used it


def test_every_dict_of_arrays_and_models_in_function_frames_come_back(pack, box, tmp_path):
    script = """
        import numpy as np
        import torch
        from collections import Counter
        torch.manual_seed(0)
        params = Counter()
        params["Wlayer1"] = np.ones((4, 3))
        params["m_Wlayer1"] = np.zeros((4, 3))
        M_params = {"Wlayer1": np.full((4, 3), 0.5)}    # momentum kept in a dict of its own
        data = {"__header__": b"MATLAB", "train_data": np.zeros((5, 4))}   # a loadmat result: not returned

        class AutoEncoder:
            def __init__(self):
                self.params = {"Wenc": np.eye(4)}
        ae = AutoEncoder()

        class FC(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 3)
            def forward(self, x):
                return self.fc(x)

        class CNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 2, 2)
                self.fc = torch.nn.Linear(2, 5)
            def forward(self, x):                          # [N, 1, 2, 2] only
                return self.fc(self.conv(x).flatten(1))

        def q6_1_1(n_epochs=3):
            "trains the network, returns nothing"
            net = FC()
            history = {"loss": np.arange(3.0)}
            return None

        def q6_1_2():
            cnn = CNN()
            raise RuntimeError("CIFAR-10 needs torchvision")

        if __name__ == "__main__":
            q6_1_1()
            try:
                q6_1_2()
            except RuntimeError:
                pass
        model = FC()
    """
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    specs = [script_spec("models", "models", arrays={"holdout": x}, timeout=120, globals=["params"],
                         all_dicts=True, models={"array": "holdout", "shapes": [[-1, 4], [-1, 1, 2, 2]]})]
    [result] = _run(tmp_path, box, {"models": script}, specs).values()
    a = _ok(result)
    g = a.globals
    assert sorted(a.facts["dicts"]) == ["M_params", "ae.params", "q6_1_1.history"]
    np.testing.assert_array_equal(g["M_params"]["Wlayer1"], np.full((4, 3), 0.5))
    np.testing.assert_array_equal(g["ae.params"]["Wenc"], np.eye(4))
    np.testing.assert_array_equal(g["params"]["m_Wlayer1"], np.zeros((4, 3)))
    assert "data" not in g
    by_where = {m["where"]: m for m in a.facts["models"]}
    assert set(by_where) == {"model", "q6_1_1.net", "q6_1_2.cnn"}
    assert by_where["q6_1_1.net"]["class"] == "FC" and by_where["q6_1_1.net"]["input_shape"] == [-1, 4]
    assert by_where["q6_1_2.cnn"]["input_shape"] == [-1, 1, 2, 2]     # the second shape tried
    outs = {k: v for k, v in result.arrays.items() if k.startswith("model/")}
    assert outs["model/q6_1_1.net/out"].shape == (7, 3) and outs["model/q6_1_2.cnn/out"].shape == (7, 5)


def test_a_loop_that_never_ends_is_stopped_and_the_next_probe_still_runs(pack, box, tmp_path):
    forever = """
        import numpy as np
        params = {"W": np.zeros(3)}
        step = 0
        while True:                                      # a slow per-example loop, at any budget
            try:
                params["W"] = params["W"] + 1
                step += 1
            except Exception:                            # swallowing errors does not keep it alive
                pass
    """
    crash = """
        import numpy as np
        params = {"W": np.ones(2)}
        from skimage.measure import compare_ssim_that_never_existed
    """
    quick = "v = 42\n"
    parts = """
        import sys
        part = 0
        def main():
            global part
            if sys.argv[1] == "7.1.1":                   # a handout's part number, a TA types it
                part = 1
            if sys.argv[1] == "7.1.2":
                part = 2
        if __name__ == "__main__":
            main()
    """
    snap = """
        import numpy as np
        params = {"W": np.zeros(2)}
        total_error = 0
        for k in range(3):                               # a checker's last statement on total_error
            params["W"] = params["W"] + 1
            total_error += 1
        params["W"] = params["W"] * 0 - 5                # a training loop after the checker
    """
    deep = "def plot(n):\n    raise ValueError(n)\n\nv = 1\nplot(v)\n"     # fails in a function called at line 5
    specs = [script_spec("forever", "forever", timeout=60, time_limit=3, partial=True, globals=["params", "step"]),
             script_spec("forever_strict", "forever", timeout=60, time_limit=3, globals=["params"]),
             script_spec("crash", "crash", timeout=60, partial=True, globals=["params"]),
             script_spec("quick", "quick", timeout=60, globals=["v"]),
             script_spec("deep", "deep", timeout=60, partial=True, globals=["v"]),
             script_spec("parts", "parts", timeout=60, globals=["part"], argv_choices=["6.1.1", "7.1.1"]),
             script_spec("no_part", "parts", timeout=60, partial=True, globals=["part"], argv_choices=["9.9"]),
             script_spec("snap", "snap", timeout=60, globals=["params"], snapshots={"total_error": ["params"]})]
    results = _run(tmp_path, box, {"forever": forever, "crash": crash, "quick": quick, "deep": deep,
                                   "parts": parts, "snap": snap}, specs)
    a = _ok(results["forever"])
    assert a.facts["status"] == "stopped" and 2.5 < a.facts["seconds"] < 20
    assert _num(a.globals["step"]) > 0 and a.globals["params"]["W"][0] == _num(a.globals["step"])
    assert "forever.py did not finish within 3 s, the time limit for this script" in a.facts["error"]
    assert any("slow loop" in n and "what it had computed by then was graded" in n for n in a.facts["notes"])
    strict = results["forever_strict"]
    assert not strict.ok and "did not finish within 3 s" in strict.error and "timed out" not in strict.error
    c = _ok(results["crash"])
    assert c.facts["status"] == "failed" and "ImportError" in c.facts["error"] and "crash.py, line 4" in c.facts["error"]
    np.testing.assert_array_equal(c.globals["params"]["W"], np.ones(2))
    assert _num(_ok(results["quick"]).globals["v"]) == 42
    # how far a failed run got, by the top-level line it failed at (the same on every run, unlike
    # its seconds): what a pack compares to pick the further of two failed runs
    assert c.facts["failed_line"] == 4
    d = _ok(results["deep"])
    assert d.facts["status"] == "failed" and d.facts["failed_line"] == 5
    # a script that picks its part from sys.argv[1] runs the part graded, and says so
    part = _ok(results["parts"])
    assert _num(part.globals["part"]) == 1
    assert any("it was run as `python parts.py 7.1.1`" in n for n in part.facts["notes"])
    none = _ok(results["no_part"])
    assert none.facts["status"] == "failed" and "IndexError" in none.facts["error"]
    # a snapshot of globals right after the last top-level statement that assigns a name, for a
    # part that later code overwrites
    sn = _ok(results["snap"])
    np.testing.assert_array_equal(sn.globals["params@total_error"]["W"], [3.0, 3.0])
    np.testing.assert_array_equal(sn.globals["params"]["W"], [-5.0, -5.0])
    assert sn.facts["snapshots"] == {"total_error": {"line": 5, "taken": True}}


def test_the_report_shows_what_the_grader_did(pack, tmp_path):
    """The scaffold's reference, rewritten the way real scripts are (np.float, plt.show, steps
    assigned twice, the pickle written into ../out/): full marks, and each thing done is a note."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GRADER_CACHE=str(tmp_path / "cache"))
    sub = tmp_path / "student"
    sub.mkdir()
    (sub / "solution.py").write_text((pack / "reference" / "solution.py").read_text())
    fit = (pack / "reference" / "run_fit.py").read_text()
    fit = fit.replace("steps = 500            # the grader sets this to its budget",
                      "steps = None\nsteps = 400\nimport matplotlib.pyplot as plt")
    fit = fit.replace('params = {"w": np.zeros(x.shape[1]), "b": 0.0}',
                      'params = {"w": np.zeros(x.shape[1], dtype=np.float), "b": 0.0}')
    fit = fit.replace('with open("weights.pickle", "wb")', 'plt.plot([0, 1]); plt.show()\nwith open("../out/weights.pickle", "wb")')
    (sub / "run_fit.py").write_text(fit)
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(sub), "--assignment", str(pack),
                           "--out", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["auto_score"] == doc["auto_max"]
    notes = doc["notes"]
    for want in ("run_fit.py: steps = 60 while grading (yours: 400), in each of its 2 assignments",
                 "np.float (removed in numpy 1.24) was read as the builtin float (in run_fit.py",
                 "plt.show() returned at once",
                 "run_fit.py writes into ../out/, which did not exist: the grader made the folder"):
        assert any(want in n for n in notes), (want, notes)
    feedback = (tmp_path / "out" / "feedback.md").read_text() if (tmp_path / "out" / "feedback.md").exists() else ""
    assert not feedback or "steps = 60 while grading" in feedback
