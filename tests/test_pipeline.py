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
from grader.report import validate_result

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
    again = grade(REFERENCE, Options(student="reference"), tmp_path)
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
    report = grade(empty, Options(student="s1"), tmp_path / "out")
    assert report.status == "error"
    assert report.errors and "notes.txt" in report.errors[0] and ".py" in report.errors[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert validate_result(result) == []


def test_warm_check_server_uses_this_checkout_even_with_a_stale_grader_on_the_path(
        reference_result, tmp_path, monkeypatch):
    """The checks import `grader`; another install (an editable one of an old checkout, say) on
    PYTHONPATH must not be the one they get, in the warm check server as in a cold run."""
    from types import SimpleNamespace

    from grader.engine import CheckServer

    stale = tmp_path / "stale" / "grader"
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("raise ImportError('a stale grader was imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(stale.parent))
    server = CheckServer(rubricmod.load("a2").checks_dir).start()
    try:
        grade(REFERENCE, Options(student="reference"), tmp_path / "out",
              engine=SimpleNamespace(cache=None, checks=server))
    finally:
        server.close()
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["auto_score"] == 16, [i["feedback"] for i in result["items"] if i["status"] == "error"][:1]
