"""q2.4: get_random_batches, a shuffled partition of the examples.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.function_verdicts(run)[f"test_batches.py::{name}"]
    expect(v.ok, v.message)


def test_batches_partition(run):
    _check(run, "test_batches_partition")


def test_batches_sizes(run):
    _check(run, "test_batches_sizes")


def test_batches_shuffled(run):
    _check(run, "test_batches_shuffled")


def test_batches_arguments_untouched(run):
    _check(run, "test_batches_arguments_untouched")
