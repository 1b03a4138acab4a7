"""The whole path for one submission: intake -> worker -> checks -> rubric -> JSON -> CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader import gold as goldmod
from grader import rubric as rubricmod
from grader.pipeline import Options, grade
from grader.report.results import validate_result

PROJECT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT / "submissions" / "a2" / "reference"


@pytest.fixture(scope="module")
def reference_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(REFERENCE), "--assignment", "a2",
                           "--profile", "ci", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_reference_gets_every_automatic_mark(reference_result):
    out, stdout = reference_result
    result = json.loads((out / "result.json").read_text())
    assert validate_result(result) == []
    assert result["status"] == "graded"
    not_full = {i["id"]: i["feedback"] for i in result["items"]
                if i["status"] != "manual" and i["points"] != i["max_points"]}
    assert not_full == {}
    assert result["auto_score"] == 16 and result["auto_max"] == 15   # the bonus counts, above the max
    assert result["score"] == 16 and result["max_score"] == 40 and result["manual_pending"] == 25
    assert "q2a.cnn" in stdout and "passed" in stdout


def test_gradescope_results_json(reference_result):
    out, _ = reference_result
    gs = json.loads((out / "results.json").read_text())
    assert gs["score"] == 16
    names = {t["name"].split(":")[0] for t in gs["tests"]}
    assert "q2a.cnn" in names and "q1a" not in names          # manual items are not autograder tests
    for t in gs["tests"]:
        assert set(t) == {"name", "number", "score", "max_score", "status", "output", "visibility"}
        assert t["visibility"] in ("visible", "after_published")


def test_grading_twice_gives_identical_results(reference_result, tmp_path):
    out, _ = reference_result
    again = grade(REFERENCE, Options("a2", student="reference"), tmp_path)
    first = json.loads((out / "result.json").read_text())
    second = json.loads((tmp_path / "result.json").read_text())
    for doc in (first, second):
        doc.pop("execution_time")
    assert first == second
    assert again.status == "graded"


def test_gold_manifest_is_reproducible(tmp_path):
    """A second build on the same machine gives an identical manifest (hashes of every file)."""
    rubric = rubricmod.load("a2")
    profile = rubric.profile("ci")
    cached = goldmod.ensure(rubric, profile, None)
    goldmod.build(rubric, profile, None, tmp_path / "g2")
    m1 = json.loads((cached.root / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "g2" / "manifest.json").read_text())
    assert m1 == m2
    assert all(len(h) == 64 for h in m1["files"].values())
    assert not list((tmp_path / "g1").rglob("*.pkl"))


def test_missing_submission_file_is_the_students_error(tmp_path):
    empty = tmp_path / "empty_sub"
    empty.mkdir()
    (empty / "notes.txt").write_text("I did not finish")
    report = grade(empty, Options("a2", student="s1"), tmp_path / "out")
    assert report.status == "error"
    assert report.errors and "notes.txt" in report.errors[0] and ".py" in report.errors[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert validate_result(result) == []


def test_a_file_that_does_not_compile_is_named_with_what_happened_not_called_missing(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    sub = tmp_path / "sub"
    sub.mkdir()
    nb = new_notebook(cells=[new_code_cell("class CNN(nn.Module:\n    pass")])
    (sub / "colourization.ipynb").write_text(nbformat.writes(nb))
    (sub / "min_char_rnn.py").write_text("def sample(h, seed_ix, n, alpha)\n    return []\n")
    report = grade(sub, Options("a2", student="s2"), tmp_path / "out", log=lambda m: None)
    items = {i.id: i for i in report.items}
    assert report.status == "graded"
    q2a = items["q2a.cnn"].feedback
    assert "no colourization file was found" not in q2a
    assert "the colourization file could not be used: SyntaxError in colourization.ipynb, cell 1, line 1" in q2a
    assert "the rnn file could not be used: SyntaxError in min_char_rnn.py line 1" in items["r1.sample"].feedback
    # no answers.toml: the written answers go to a TA, they are not failed
    assert items["r3.colon_weights"].status == "manual" and report.auto_max == 11


def test_warm_check_server_uses_this_checkout_even_with_a_stale_grader_on_the_path(
        reference_result, tmp_path, monkeypatch):
    """The checks import `grader`; another install (an editable one of an old checkout, say) on
    PYTHONPATH must not be the one they get, in the warm check server as in a cold run."""
    from types import SimpleNamespace

    from grader.sandbox.engine import CheckServer

    stale = tmp_path / "stale" / "grader"
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("raise ImportError('a stale grader was imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(stale.parent))
    server = CheckServer(rubricmod.load("a2").checks_dir).start()
    try:
        grade(REFERENCE, Options("a2", student="reference"), tmp_path / "out",
              engine=SimpleNamespace(cache=None, checks=server))
    finally:
        server.close()
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["auto_score"] == 16, [i["feedback"] for i in result["items"] if i["status"] == "error"][:1]


def test_gold_is_read_once_per_process_and_cannot_be_changed_by_its_users(tmp_path):
    import shutil

    import numpy as np

    rubric = rubricmod.load("a2")
    gold = goldmod.ensure(rubric, rubric.profile("ci"), None)
    again = goldmod.load(gold.root)
    assert again is gold
    arr = gold.inputs.arrays["valid_y"]
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = 1
    # answers are looked up by file name; listing still lists every one
    key = "cnn_fwd/k3-f16-c24-i1"
    assert key in gold.outputs and gold.outputs.get(key).ok and gold.outputs[key].key == key
    assert "no_such_probe" not in gold.outputs and gold.outputs.get("no_such_probe") is None
    with pytest.raises(KeyError):
        gold.outputs["no_such_probe"]
    assert key in gold.outputs.keys() and len(gold.outputs.keys()) == len(list((gold.root / "outputs").glob("*.json")))
    # another folder (a copy) is another gold
    copy = tmp_path / "gold-copy"
    shutil.copytree(gold.root, copy)
    other = goldmod.load(copy)
    assert other is not gold and np.array_equal(other.inputs.arrays["valid_y"], arr)


def _run_folder(root: Path, answer: bytes) -> Path:
    run = root / "run"
    (run / "answers").mkdir(parents=True)
    (run / "answers" / "cnn_fwd.json").write_text('{"key": "cnn_fwd", "seconds": 0.25}')
    (run / "answers" / "cnn_fwd.npz").write_bytes(answer)
    (run / "sources").mkdir()
    (run / "sources" / "colourization.py").write_text("class CNN: pass\n")
    (run / "context.json").write_text(json.dumps({"gold": "/g", "sources": {
        "colourization": str(run / "sources" / "colourization.py")}, "answers_file": None}))
    (run / "checks.log").write_text(f"a log that names {run}")
    return run


def test_check_memo_key_is_the_run_folders_contents_not_its_place(tmp_path):
    from grader.checks.runner import CheckMemo

    memo = CheckMemo()
    checks = rubricmod.load("a2").checks_dir
    names = ["test_architecture.py::test_cnn_function"]
    a = _run_folder(tmp_path / "a", b"\x01\x02")
    b = _run_folder(tmp_path / "b", b"\x01\x02")
    c = _run_folder(tmp_path / "c", b"\x01\x03")
    assert memo.key(checks, a, names) == memo.key(checks, b, names)
    assert memo.key(checks, a, names) != memo.key(checks, c, names)
    assert memo.key(checks, a, names) != memo.key(checks, a, names + ["test_rnn.py::test_sample_hot"])
    (b / "sources" / "colourization.py").write_text("class CNN:  pass\n")
    assert memo.key(checks, a, names) != memo.key(checks, b, names)


def test_a_copy_is_answered_by_the_probe_cache_and_the_check_memo_with_the_same_result(tmp_path):
    """A second student whose files differ only in comments runs no worker and no checks, and gets
    exactly the first one's result."""
    import shutil
    from types import SimpleNamespace

    from grader.checks.runner import CheckMemo
    from grader.probes.cache import ProbeCache

    orig, copy = tmp_path / "orig", tmp_path / "copy"
    for dest in (orig, copy):
        shutil.copytree(REFERENCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for f in copy.glob("*.py"):                     # a margin note on a line of code: other bytes
        f.write_text(f.read_text().replace("\nimport numpy as np\n", "\nimport numpy as np  # CS17B002\n", 1))
    for name in ("colourization.py", "min_char_rnn.py"):
        assert (copy / name).read_bytes() != (REFERENCE / name).read_bytes()
    engine = SimpleNamespace(cache=ProbeCache(tmp_path / "probes"), checks=None, check_memo=CheckMemo())
    first = grade(orig, Options("a2", student="s1"), tmp_path / "o1", engine=engine)
    assert engine.check_memo.hits == 0 and engine.cache.hits == 0
    ran = engine.cache.misses
    second = grade(copy, Options("a2", student="s1"), tmp_path / "o2", engine=engine)
    assert engine.check_memo.hits == 1 and engine.cache.misses == ran and engine.cache.hits > 0
    docs = [json.loads((tmp_path / o / "result.json").read_text()) for o in ("o1", "o2")]
    for doc in docs:
        doc.pop("execution_time")
    assert docs[0] == docs[1] and first.status == second.status == "graded"


def test_training_thresholds_come_from_the_references_spread_over_init_seeds():
    """Gold trains the reference from the profile's reference_seeds initial weights and the threshold
    is the lowest run: a correct model that draws its weights in its own order is one more draw
    from that spread (at ci the reference's UNet ranges over 15 points), not the seed-0 run."""
    from rubric.a2 import plan

    rubric = rubricmod.load("a2")
    profile = rubric.profile("ci")
    seeds = profile["reference_seeds"]
    assert seeds >= 4
    gold = goldmod.ensure(rubric, profile, None)
    runs = gold.derived_meta["accuracy_runs"]
    assert set(runs) == {"cnn_train", "unet_train", "sr_cnn_train", "sr_unet_train"}
    for key, accs in runs.items():
        assert len(accs) == seeds and gold.derived_meta["accuracy"][key] == min(accs), (key, accs)
        assert all(f"{key}/{plan.INIT_PREFIX}{s}" in gold.outputs for s in range(1, seeds))
        assert len(set(accs)) > 1, (key, accs)            # the init seed reached the model
    # a student's model is trained once: the other seeds are gold's alone
    for group in ("cnn_train", "unet_train", "sr_train"):
        student = plan.GROUPS[group](profile, gold.inputs)
        assert not [s for s in student if plan.INIT_PREFIX in s.key]
        extra = [s for s in plan.GROUPS[group](profile, gold.inputs, for_gold=True) if plan.INIT_PREFIX in s.key]
        assert len(extra) == (seeds - 1) * sum(s.probe == "model_train" for s in student)
