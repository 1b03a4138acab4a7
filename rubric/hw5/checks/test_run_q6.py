"""q6.1.1 (extra credit): run_q6_1.py's PyTorch network, its predictions on images sent without labels.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.script_verdicts(run, "run_q6_1")[f"test_run_q6.py::{name}"]
    expect(v.ok, v.message)


def test_q6_1_1_accuracy(run):
    _check(run, "test_q6_1_1_accuracy")
