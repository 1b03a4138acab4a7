"""q3.1: run_q3.py trains on NIST36; q3_weights.pickle (read in the worker) judged on a split the worker never saw.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.script_verdicts(run, "run_q3")[f"test_run_q3.py::{name}"]
    expect(v.ok, v.message)


def test_q3_hidden_size(run):
    _check(run, "test_q3_hidden_size")


def test_q3_epochs(run):
    _check(run, "test_q3_epochs")


def test_q3_weights_accuracy(run):
    _check(run, "test_q3_weights_accuracy")
