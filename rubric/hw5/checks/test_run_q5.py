"""q5.1.1 / q5.1.2: run_q5.py's autoencoder and its momentum; PSNR on images the worker never saw.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.script_verdicts(run, "run_q5")[f"test_run_q5.py::{name}"]
    expect(v.ok, v.message)


def test_ae_layers(run):
    _check(run, "test_ae_layers")


def test_ae_activations(run):
    _check(run, "test_ae_activations")


def test_ae_reconstructs(run):
    _check(run, "test_ae_reconstructs")


def test_momentum_accumulators(run):
    _check(run, "test_momentum_accumulators")


def test_ae_psnr(run):
    _check(run, "test_ae_psnr")
