"""q2.4 / q2.5: run_q2.py run to completion (script probe): the training loop's result and the gradient checker.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.script_verdicts(run, "run_q2")[f"test_run_q2.py::{name}"]
    expect(v.ok, v.message)


def test_q2_training(run):
    _check(run, "test_q2_training")


def test_q2_gradcheck_every_parameter(run):
    _check(run, "test_q2_gradcheck_every_parameter")


def test_q2_gradcheck_accuracy(run):
    _check(run, "test_q2_gradcheck_accuracy")
