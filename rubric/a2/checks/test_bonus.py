"""Bonus (2018): MyDilatedConv2d is a dilation-2 convolution built from `weight` without dilation=."""
from __future__ import annotations

import ast

import numpy as np
from conftest import expect, require

from grader.checks.compare import allclose
from rubric.a2.sourcecheck import parse


def test_dilated_equals_dilation_2(run):
    """Output and input gradient equal a dilation-2 convolution that keeps 32x32."""
    answer = run.answer("dilated")
    require(answer)
    gold = run.expected("dilated")
    p = run.params("bonus.dilated")
    for name, what in (("out", "output"), ("grad", "gradient with respect to the input")):
        same = allclose(answer.arrays[name], gold.arrays[name], p["rtol"], p["atol"])
        expect(same.ok, f"MyDilatedConv2d(4, 6, 3, dilation=1): the {what} differs from a convolution "
                        f"with one gap between taps (torch dilation 2) that keeps 32x32: {same.detail}")


def _forward_right(run, answer) -> bool:
    gold = run.expected("dilated")
    p = run.params("bonus.dilated")
    return all(allclose(answer.arrays[n], gold.arrays[n], p["rtol"], p["atol"]).ok for n in ("out", "grad"))


def test_dilated_grad_reaches_weight(run):
    """A gradient reaches `weight`; when the forward is right, it is the right gradient (a wrong
    forward is charged by test_dilated_equals_dilation_2, not again here)."""
    answer = run.answer("dilated")
    require(answer)
    wgrad = answer.arrays.get("wgrad")
    expect(wgrad is not None and bool(np.abs(wgrad).sum() > 0),
           "no gradient reaches MyDilatedConv2d.weight: build the dilated kernel from self.weight "
           "with tensor operations (not a new tensor filled from .data), so backprop trains it")
    if not _forward_right(run, answer):
        return
    same = allclose(wgrad, run.expected("dilated").arrays["wgrad"], 1e-4, 1e-4)
    expect(same.ok, f"the gradient reaching MyDilatedConv2d.weight is wrong: {same.detail}")


CONV_FUNCTIONS = {"conv2d", "conv1d", "conv3d", "_conv_forward", "convolution", "Conv2d"}


def _dilation_keywords(source: str) -> list[int]:
    """Lines inside class MyDilatedConv2d where a call passes dilation=... (the handout forbids it)."""
    lines = []
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "MyDilatedConv2d":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and any(k.arg == "dilation" for k in call.keywords):
                    name = getattr(call.func, "attr", getattr(call.func, "id", ""))
                    # torch's convolutions, not the student's own layers (MyDilatedConv2d(..., dilation=1)
                    # is the starter's way to build one)
                    if name in CONV_FUNCTIONS:
                        lines.append(call.lineno)
    return lines


def test_dilated_no_dilation_argument(run):
    """The dilated filter is built by hand: no dilation= reaches torch's convolution."""
    answer = run.answer("dilated")
    require(answer)
    run.trust_facts()
    used = [d for d in answer.meta.get("dilations", []) if d not in (1, [1, 1])]
    expect(not used, "MyDilatedConv2d passes dilation= to the convolution; the bonus asks you to build "
                     "the dilated filter yourself")
    source = run.source("colourization") or ""
    lines = _dilation_keywords(source)
    expect(not lines, f"MyDilatedConv2d passes dilation= to a convolution (line {lines[0] if lines else ''}); "
                      f"the bonus asks you to build the dilated filter yourself")
