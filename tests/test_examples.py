"""Every example submission scores exactly what its expected.json says (CI's promise: the reference
gets full marks, each seeded bug loses exactly the marks it deserves)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.examples import ExampleError, examples_root, expected, list_examples, materialize
from grader.pipeline import Options, grade
from grader.report.results import validate_result

EXAMPLES = list_examples("a2")


def test_there_are_enough_examples():
    mutants = [e for e in EXAMPLES if e.parent.name == "mutants"]
    assert len(mutants) >= 12
    assert all(expected(e) is not None for e in EXAMPLES), "every example states its expected points"


# The reference in the default run; every other example under `heavy` (CI runs them all).
@pytest.mark.parametrize("example", [e if e.name == "reference" else pytest.param(e, marks=pytest.mark.heavy)
                                     for e in EXAMPLES], ids=[e.name for e in EXAMPLES])
def test_example_scores_as_expected(example, tmp_path):
    want = expected(example)
    path = materialize(example, tmp_path / "subs")
    report = grade(path, Options("a2", student=example.name), tmp_path / "out", log=lambda m: None)
    assert validate_result(json.loads((tmp_path / "out" / "result.json").read_text())) == []
    got = {i.id: i.points for i in report.items if i.status != "manual"}
    diff = {k: (got.get(k), v) for k, v in want.items() if k != "_status" and abs(got.get(k, -1) - v) > 1e-9}
    feedback = {i.id: i.feedback for i in report.items if i.id in diff}
    assert not diff, f"points (got, expected) differ: {diff}\nfeedback: {feedback}"
    assert report.status == want.get("_status", "graded")


def test_mutation_edits_must_match_exactly(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mutation.toml").write_text('base = "reference"\n[[edits]]\nfile = "colourization.py"\n'
                                       'find = "this text is not in the reference"\nreplace = "x"\n')
    with pytest.raises(ExampleError, match="0 occurrences"):
        materialize(bad, tmp_path / "out", "a2")      # outside any pack's examples: name the pack
