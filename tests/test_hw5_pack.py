"""The HW5 pack in the engine: it loads, its rubric is the handout's, its roles know the course's
starters, and the staff and student tools work for it: `grader batch` on a class of zips, the
student bundle with `grader check` (visible items only, no hidden label shipped), and the
Gradescope export."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader import pack as packmod
from grader import rubric as rubricmod
from grader.examples import SHARED, examples_root, materialize

PROJECT = Path(__file__).resolve().parent.parent
STARTERS = SHARED / "hw5-starter"


def _cli(*args, cwd=PROJECT, env=None, timeout=1800):
    proc = subprocess.run([sys.executable, "-m", "grader.cli", *map(str, args)], cwd=cwd,
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout)
    return proc


# ------------------------------------------------------------------ the pack and its rubric

def test_pack_loads_with_its_parts():
    pack = packmod.load("hw5")
    assert pack.name == "hw5" and pack.reference == (PROJECT / "reference" / "hw5").resolve()
    assert {r.name for r in pack.roles} == {"nn", "q4", "run_q2", "run_q3", "run_q4", "run_q5", "run_q6_1"}
    assert [p.name for p in pack.provided] == ["util.py"] and "np.float" in pack.provided[0].note
    # the course's util.py the pack provides is the reference's own
    assert pack.provided[0].source.read_text() == (PROJECT / "reference/hw5/python/util.py").read_text()
    assert not pack.student_visible("inputs", "holdout_y", set(pack.plan.GROUPS))
    assert pack.student_visible("inputs", "fn/forward_X", set())


def test_rubric_is_the_fall_2021_handout():
    rubric = rubricmod.load("hw5")
    regular = sum(i.points for i in rubric.items if not i.bonus)
    bonus = sum(i.points for i in rubric.items if i.bonus)
    assert (regular, bonus) == (128, 30)
    assert {i.id for i in rubric.items if i.bonus} == {"q6.1.1", "q6.1.2", "q6.1.3", "q6.1.4", "q6.2.1"}
    assert len(rubric.auto_items()) == 12
    ci = rubric.profile("ci")
    assert ci["run_q3"] == {"max_iters": 20, "batch_size": 16, "learning_rate": 0.01}   # nested tables
    full = rubric.profile("full")                    # the handout's epochs; batch size and rate the student's
    assert (full["run_q2"], full["run_q3"], full["run_q5"]) == ({"max_iters": 500}, {"max_iters": 50}, {"max_iters": 100})


def test_manual_bonus_items_load_from_the_item_or_its_group(tmp_path):
    (tmp_path / "checks").mkdir()
    shutil.copy(PROJECT / "rubric/hw5/checks/test_nn.py", tmp_path / "checks")
    (tmp_path / "rubric.toml").write_text(
        'assignment = "hw5"\n[profiles.ci]\nprobe_timeout = 1\nsubmission_timeout = 1\n'
        '[[manual]]\nbonus = true\nitems = [{ id = "a", title = "A", points = 2 }]\n'
        '[[manual]]\nitems = [{ id = "b", title = "B", points = 1 }, '
        '{ id = "c", title = "C", points = 1, bonus = true }]\n')
    rubric = rubricmod.load("hw5", root=tmp_path)
    assert {i.id: i.bonus for i in rubric.items} == {"a": True, "b": False, "c": True}


@pytest.mark.course_data
@pytest.mark.parametrize("generation", ["f20", "f23"])
def test_starter_fingerprints_are_the_course_starters(generation):
    from grader.intake.fingerprint import file_definitions
    from rubric.hw5 import roles

    folder = STARTERS / generation / "python"
    if not folder.is_dir():
        pytest.skip(f"the course's starter is not at {folder}")
    found = {}
    for name in ("nn.py", "q4.py"):
        found.update({d.qualname: d for d in file_definitions(folder / name)})
    assert {n: found[n].digest for n in roles.STARTER_PLACEHOLDERS} == roles.STARTER_PLACEHOLDERS
    assert all(found[n].placeholder for n in roles.STARTER_PLACEHOLDERS)
    assert {d.digest for d in found.values() if not d.placeholder} == set(roles.NN_STARTER.given)


# ------------------------------------------------------------------ staff and student tools

def _python_folder(example: str, dest: Path) -> Path:
    """The submission folder of an example holding only the handout's files (python/ + nothing else)."""
    src = materialize(examples_root("hw5") / example, dest / "m", "hw5")
    out = dest / example.replace("/", "_")
    shutil.copytree(src / "python", out / "python", ignore=shutil.ignore_patterns("__pycache__", "*.png", "*.pickle"))
    return out


def _zip(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return path


def test_batch_grades_a_class_of_hw5_zips(tmp_path):
    """Two students' zips (the handout's python/ folder): the reference and a seeded bug."""
    klass = tmp_path / "class"
    klass.mkdir()
    _zip(_python_folder("reference", tmp_path), klass / "1001_hw5.zip")
    _zip(_python_folder("mutants/loss_averaged", tmp_path), klass / "1002_hw5.zip")
    proc = _cli("batch", klass, "--assignment", "hw5", "--out", tmp_path / "out", "--workers", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "out" / "grades.csv", newline="") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"1001", "1002"}
    assert float(rows["1001"]["auto_score"]) == 60 and float(rows["1001"]["auto_max"]) == 55
    assert float(rows["1002"]["auto_score"]) == 58                     # q2.2.3: the loss averaged (-2)
    doc = json.loads((tmp_path / "out" / "1002" / "result.json").read_text())
    q223 = next(i for i in doc["items"] if i["id"] == "q2.2.3")
    assert q223["points"] == 1 and "mean over the examples" in q223["feedback"]
    with open(tmp_path / "out" / "manual.csv", newline="") as fh:
        sheet = {(r["student"], r["item"]): r for r in csv.DictReader(fh)}
    assert {"q1.5", "q4.4", "q6.1.2"} <= {item for _, item in sheet}
    # the TA's notes (hooks.manual_notes): the reference's run_q4 reads the synthetic page nearly
    # right with the reference's weights; the PSNR the grader measured, for the TA only
    q44 = sheet[("1001", "q4.4")]["grader_note"]
    found = re.search(r"edit distance (\d+) over (\d+) characters", q44)
    assert found and int(found[1]) <= 0.2 * int(found[2]), q44
    assert "reference's trained network" in q44 and "Extracted: " in q44
    psnr = sheet[("1001", "q5.3.2")]["grader_note"]
    assert re.search(r"Validation PSNR measured by the grader: \d+\.\d\d dB", psnr), psnr
    assert "panel 2 of 4" in sheet[("1001", "q3.4")]["grader_note"]
    feedback = (tmp_path / "out" / "1001" / "feedback.md").read_text()
    assert "edit distance" in feedback and "Validation PSNR" not in feedback     # TA only
    ref = {i["id"]: i for i in json.loads((tmp_path / "out" / "1001" / "result.json").read_text())["items"]}
    assert ref["q4.4"]["note"] == q44 and ref["q5.3.2"]["student_note"] == ""


@pytest.mark.course_data
def test_an_untouched_starter_gets_notes_saying_why_nothing_was_measured():
    from grader.pipeline import Options, grade

    folder = STARTERS / "f20" / "python"
    if not folder.is_dir():
        pytest.skip(f"the course's starter is not at {folder}")
    report = grade(folder, Options("hw5"), log=lambda *a: None)
    notes = {i.id: i.note for i in report.items if i.manual}
    assert "does not parse" in notes["q5.3.2"] and notes["q5.3.2"].startswith("No PSNR measured")
    assert "run_q4.py" in notes["q4.4"] and "edit distance" not in notes["q4.4"]
    assert "failed" in notes["q4.4"] or "printed no line" in notes["q4.4"]
    assert notes["q3.3"].startswith("Not in the feedback picture") and "run_q3.py" in notes["q3.3"]
    assert "0 boxes" in notes["q4.3"]
    expected = json.loads((examples_root("hw5") / "starters/f20/expected.json").read_text())
    assert {i.id: i.points for i in report.items if not i.manual} == expected     # notes add no points


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from grader.report.bundle import build_student_bundle

    return build_student_bundle(tmp_path_factory.mktemp("hw5b") / "bundle", "hw5", "ci", None)


def test_student_bundle_ships_no_hidden_label_and_no_reference(bundle):
    assert not (bundle / "reference").exists() and not (bundle / "submissions").exists()
    gold = bundle / "bundled_gold" / "hw5" / "ci"
    with np.load(gold / "inputs.npz") as npz:
        names = set(npz.files)
    assert "holdout_y" not in names and "holdout_x" not in names
    assert not [n for n in names if n.startswith(("nist/", "standin/"))]   # hidden data; the stand-ins
    assert {"fn/forward_X", "page/0"} <= names
    derived = json.loads((gold / "derived.json").read_text())
    assert set(derived) == {"q4_recall", "q4_precision"}            # q3/q5/q6's reference values stay
    keys = {json.loads(p.read_text())["key"] for p in (gold / "outputs").glob("*.json")}
    assert "script/run_q2" in keys and not {"script/run_q3", "script/run_q5", "script/run_q6_1"} & keys
    hidden_tests = ("test_run_q3.py", "test_run_q5.py", "test_run_q6.py")
    assert not any((bundle / "rubric/hw5/checks" / t).exists() for t in hidden_tests)
    text = (bundle / "rubric/hw5/rubric.toml").read_text()
    assert 'id = "q3.1"' not in text and 'id = "q2.4"' in text
    # the reference's nn.py is not in the bundle (the scripts' stand-ins are read from it)
    marker = "order = np.random.permutation(x.shape[0])"
    assert not [p for p in bundle.rglob("*.py") if marker in p.read_text(errors="replace")]


def test_check_from_the_bundle_runs_the_visible_items_only(bundle, tmp_path):
    sub = _python_folder("mutants/softmax_unstable", tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GRADER_CACHE"] = str(tmp_path / "empty-cache")
    proc = _cli("check", sub, "--assignment", "hw5", cwd=bundle, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "fix   q2.2.2" in out and "ok    q2.3.1" in out and "ok    q2.4" in out and "ok    q4.2" in out
    for hidden in ("q3.1", "q5.1.1", "q6.1.1", "q1.5"):
        assert hidden not in out
    assert not (tmp_path / "empty-cache" / "gold").exists()


def test_gradescope_export_for_hw5(tmp_path):
    from grader.report.export import unpack

    zpath = tmp_path / "autograder.zip"
    proc = _cli("export", "gradescope", "--assignment", "hw5", "--out", zpath)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
    assert {"setup.sh", "run_autograder", "rubric/hw5/pack.toml", "rubric/hw5/probes.py",
            "rubric/hw5/provided/util.py", "rubric/hw5/checks/test_run_q3.py", "gold/hw5/ci/manifest.json"} <= names
    assert not [n for n in names if n.startswith(("reference/", "submissions/", "tests/"))]
    # graded as Gradescope would: the student's zip unpacked into submission/
    root = tmp_path / "autograder"
    unpack(zpath, root)
    # forward without its cache: the scripts run with the stand-ins kept in the exported gold, so
    # the bug costs q2.2.1's cache check only, as when staff grade it
    shutil.copytree(_python_folder("mutants/forward_no_cache", tmp_path), root / "submission")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), GRADER_PYTHON=sys.executable)
    run = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True,
                         timeout=1800)
    doc = json.loads((root / "results" / "results.json").read_text())
    by_id = {t["name"].split(":")[0]: t for t in doc["tests"]}
    assert by_id["q2.2.1"]["score"] == pytest.approx(3), (run.stdout[-2000:], run.stderr[-2000:])
    for item in ("q2.3.1", "q2.4", "q2.5", "q3.1", "q5.1.1", "q5.1.2"):
        assert by_id[item]["score"] == pytest.approx(by_id[item]["max_score"]), (item, by_id[item])


PHOTOS = SHARED / "data" / "hw5-course" / "images"


@pytest.mark.slow
@pytest.mark.course_data
def test_findletters_on_the_course_photos_through_the_engine(tmp_path):
    """`--data` with the course's photos (images/): each photo is its own findLetters probe, judged
    against the reference's boxes on it (there are no true boxes for the photos)."""
    if not PHOTOS.is_dir():
        pytest.skip(f"the course photos are not at {PHOTOS}")
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for p in sorted(PHOTOS.glob("*.jpg"))[:2]:          # 01_list, 02_letters: 2-3 megapixels each
        (data / "images" / p.name).symlink_to(p)
    sub = _python_folder("reference", tmp_path)
    proc = _cli("grade", sub, "--assignment", "hw5", "--data", data, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    q42 = next(i for i in doc["items"] if i["id"] == "q4.2")
    assert q42["points"] == 10, q42
    from grader import gold as goldmod

    rubric = rubricmod.load("hw5")
    gold = goldmod.load(goldmod.default_dir(rubric, rubric.profile("ci"), data))
    assert gold.inputs.meta["photos"] == ["01_list.jpg", "02_letters.jpg"]
    boxes = [gold.outputs[f"q4/photo/{k}"].arrays["q4/0/boxes"] for k in range(2)]
    assert abs(len(boxes[0]) - 115) <= 3 and abs(len(boxes[1]) - 36) <= 3     # the characters they hold
