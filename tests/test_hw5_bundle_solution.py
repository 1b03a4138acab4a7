"""The HW5 student bundle ships no solution: the visible items are judged on a student's laptop with
rubric/hw5/judge.py's gold maths, so nothing in what ships may be the reference's code (the
reference's functions, compared as syntax trees with their names normalised away), and `grader
check` of the reference from the bundle still gets every visible point."""
from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.examples import examples_root, materialize

PROJECT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT / "reference" / "hw5" / "python"
# the reference's own code; util.py is the course's (it ships, as the pack's provided file)
REFERENCE_FILES = ("nn.py", "q4.py", "run_q2.py", "run_q3.py", "run_q4.py", "run_q5.py", "run_q6_1.py")
WINDOW = 3      # statements: a run this long of a reference body, renamed, is a copy of it


class _Rename(ast.NodeTransformer):
    """Every variable and argument name as v0, v1, ... in order of first appearance: a body copied
    with its variables renamed normalises to the same tree."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self._new(node.id), ctx=node.ctx), node)

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        return node


def _body(fn) -> list[ast.stmt]:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]                                                    # the docstring
    return body


def _norm(stmts: list[ast.stmt]) -> str:
    module = ast.Module(body=copy.deepcopy(stmts), type_ignores=[])
    return ast.dump(_Rename().visit(module), annotate_fields=False)


def _functions(tree) -> list:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def reference_fingerprints() -> dict[str, str]:
    """{normalised statements: where}: every reference function's whole body, and each run of
    WINDOW statements of it (a copy pasted into a longer function)."""
    out = {}
    for name in REFERENCE_FILES:
        for fn in _functions(ast.parse((REFERENCE / name).read_text())):
            body = _body(fn)
            out[_norm(body)] = f"{name}:{fn.name}"
            for k in range(len(body) - WINDOW + 1):
                out.setdefault(_norm(body[k:k + WINDOW]), f"{name}:{fn.name} (statements {k + 1}-{k + WINDOW})")
    return out


def copies_in(source: str, fingerprints: dict[str, str]) -> list[str]:
    """The reference functions (or runs of their statements) that `source` holds."""
    found = []
    for fn in _functions(ast.parse(source)):
        body = _body(fn)
        spans = [body] + [body[k:k + n] for n in (WINDOW,) for k in range(len(body) - n + 1)]
        for stmts in spans:
            where = fingerprints.get(_norm(stmts))
            if where:
                found.append(f"{fn.name} copies {where}")
                break
    return found


def test_the_fingerprints_catch_a_renamed_copy():
    """A reference function with its variables renamed and a docstring added, or three of its
    statements inside a longer function, is found; code of the same purpose written otherwise is not."""
    fp = reference_fingerprints()
    sigmoid = next(f for f in _functions(ast.parse((REFERENCE / "nn.py").read_text())) if f.name == "sigmoid")
    renamed = ast.unparse(sigmoid).replace("res", "out").replace("pos", "keep").replace("(x)", "(z)") \
        .replace("x ", "z ").replace("x[", "z[").replace("x,", "z,")
    assert "res" not in renamed and "keep" in renamed
    assert copies_in(renamed.replace(":\n", ':\n    """sigmoid."""\n', 1), fp) == ["sigmoid copies nn.py:sigmoid"]
    backwards = next(f for f in _functions(ast.parse((REFERENCE / "nn.py").read_text())) if f.name == "backwards")
    inner = "\n".join("    " + ast.unparse(s) for s in _body(backwards)[3:6])
    assert copies_in(f"def gold(delta, X, W, post_act, activation_deriv):\n    W = W\n{inner}\n    return 0\n", fp)
    assert not copies_in("def sigmoid(x):\n    import torch\n    return torch.sigmoid(torch.as_tensor(x)).numpy()\n", fp)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from grader.report.bundle import build_student_bundle

    return build_student_bundle(tmp_path_factory.mktemp("hw5nosol") / "bundle", "hw5", "ci", None)


def test_no_reference_function_is_in_the_bundle(bundle):
    fp = reference_fingerprints()
    assert len(fp) > 40        # nn.py's functions, findLetters, the scripts' helpers, and their runs
    files = sorted(bundle.rglob("*.py"))
    assert (bundle / "rubric/hw5/judge.py") in files and (bundle / "rubric/hw5/probes.py") in files
    found = {p.relative_to(bundle).as_posix(): c for p in files if (c := copies_in(p.read_text(), fp))}
    assert not found, f"the student bundle ships the reference's code: {found}"


def test_the_bundle_judges_with_autograd_not_a_handwritten_backward(bundle):
    """judge.py's gold gradients come from torch.autograd: no transpose-matmul of a backward pass."""
    text = (bundle / "rubric/hw5/judge.py").read_text()
    assert "torch.autograd.grad" in text
    tree = ast.parse(text)
    gold = {f.name: f for f in _functions(tree)}
    for name in ("backwards_gold", "q2_loss_and_gradients", "q2_example_gradients"):
        src = ast.unparse(gold[name])
        assert ".T @" not in src and "@ W.T" not in src and "autograd" in src, name


def test_the_reference_from_the_bundle_gets_every_visible_point(bundle, tmp_path):
    src = materialize(examples_root("hw5") / "reference", tmp_path / "m", "hw5")
    sub = tmp_path / "reference"
    shutil.copytree(src / "python", sub / "python", ignore=shutil.ignore_patterns("__pycache__", "*.png", "*.pickle"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GRADER_CACHE"] = str(tmp_path / "empty-cache")
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "check", str(sub), "--assignment", "hw5",
                           "--out", str(tmp_path / "out")], cwd=bundle, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    items = {i["id"]: i for i in result["items"]}
    visible = json.loads((bundle / "rubric/hw5/rubric.json").read_text())["items"]
    assert set(items) >= set(visible) and {"q2.3.1", "q2.5"} <= set(visible)
    short = {i: f"{items[i]['points']}/{items[i]['max_points']}: {items[i]['feedback'][:200]}" for i in visible
             if items[i]["points"] < items[i]["max_points"]}
    assert not short, short
