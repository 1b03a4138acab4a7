"""Every HW5 example submission scores exactly what its expected.json says, graded by the engine (the
sandboxed worker, the function and script probes, the trusted-side checks): the reference gets every
automatic point, each seeded bug loses exactly the marks it deserves, the untouched starters get 0.

Each example runs every script at the ci budget (about 30 s on 2 idle cores), so the default run
grades the reference and the course's starters (whose scripts fail at once); `-m heavy` (run by CI)
grades every other example, and `-m slow` the reference on the cpu profile."""
from __future__ import annotations

import json

import pytest

from grader.examples import ExampleError, examples_root, expected, list_examples, materialize
from grader.pipeline import Options, grade
from grader.report.results import validate_result

EXAMPLES = list_examples("hw5")
ROOT = examples_root("hw5")
FAST = {"reference", "starters/f20", "starters/f23"}


def _name(example) -> str:
    return example.relative_to(ROOT).as_posix()


def _grade(example, tmp_path, profile="ci"):
    try:
        path = materialize(example, tmp_path / "subs", "hw5")
    except ExampleError as exc:
        pytest.skip(str(exc))
    report = grade(path, Options(assignment="hw5", profile=profile, student=example.name), tmp_path / "out",
                   log=lambda m: None)
    assert validate_result(json.loads((tmp_path / "out" / "result.json").read_text())) == []
    return report


def _assert_expected(report, example):
    want = expected(example)
    got = {i.id: i.points for i in report.items if i.status != "manual"}
    diff = {k: (got.get(k), v) for k, v in want.items() if k != "_status" and abs(got.get(k, -1) - v) > 1e-9}
    feedback = {i.id: i.feedback for i in report.items if i.id in diff}
    assert not diff, f"points (got, expected) differ: {diff}\nfeedback: {feedback}"
    assert report.status == want.get("_status", "graded")


def test_there_are_enough_examples():
    assert len([e for e in EXAMPLES if e.parent.name == "mutants"]) >= 12
    assert {"reference", "alternative", "starters/f20", "starters/f23"} <= {_name(e) for e in EXAMPLES}
    assert all(expected(e) is not None for e in EXAMPLES)


@pytest.mark.parametrize("example", [pytest.param(e, marks=() if _name(e) in FAST else pytest.mark.heavy)
                                     for e in EXAMPLES], ids=_name)
def test_example_scores_as_expected(example, tmp_path):
    report = _grade(example, tmp_path)
    _assert_expected(report, example)
    if _name(example).startswith("starters/"):
        auto = [i for i in report.items if i.status != "manual"]
        assert all(i.points == 0 for i in auto)
        nn_items = [i for i in auto if i.id.startswith("q2.")]
        assert all("not implemented" in i.feedback or "not" in i.feedback for i in nn_items)


@pytest.mark.slow
def test_reference_gets_every_point_on_the_cpu_profile(tmp_path):
    example = next(e for e in EXAMPLES if _name(e) == "reference")
    _assert_expected(_grade(example, tmp_path, profile="cpu"), example)
