"""q2.1.2 .. q2.3.1: nn.py's functions, called by the function probes on the trusted side's inputs.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.function_verdicts(run)[f"test_nn.py::{name}"]
    expect(v.ok, v.message)


def test_initialize_shapes(run):
    _check(run, "test_initialize_shapes")


def test_initialize_xavier(run):
    _check(run, "test_initialize_xavier")


def test_sigmoid(run):
    _check(run, "test_sigmoid")


def test_forward_values(run):
    _check(run, "test_forward_values")


def test_forward_cache(run):
    _check(run, "test_forward_cache")


def test_forward_activation_argument(run):
    _check(run, "test_forward_activation_argument")


def test_softmax_rows(run):
    _check(run, "test_softmax_rows")


def test_softmax_stable(run):
    _check(run, "test_softmax_stable")


def test_softmax_argument_untouched(run):
    _check(run, "test_softmax_argument_untouched")


def test_loss_total(run):
    _check(run, "test_loss_total")


def test_accuracy(run):
    _check(run, "test_accuracy")


def test_backwards_grad_W(run):
    _check(run, "test_backwards_grad_W")


def test_backwards_grad_b(run):
    _check(run, "test_backwards_grad_b")


def test_backwards_grad_X(run):
    _check(run, "test_backwards_grad_X")


def test_backwards_shapes(run):
    _check(run, "test_backwards_shapes")


def test_backwards_any_activation(run):
    _check(run, "test_backwards_any_activation")
