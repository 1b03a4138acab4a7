"""What every pack's checks use (trusted side): the `run` of one submission, `expect`, `require`,
`trust_facts`, script-probe answers and statistical tests.

A pack's `checks/conftest.py` is one line, `from grader.checks.kit import *  # noqa: F401,F403`, so
its check files can write `from conftest import expect, require` and use the `run` fixture.
Checks fail with `expect(...)`, whose message is the student's feedback: what was expected and what
was found, never a hidden gold value.
"""
from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from grader.probes import store
from grader.checks.compare import Comparison, accuracy, allclose, chi2_sf, chi_square  # noqa: F401 - for checks
from grader.gold import load as load_gold

__all__ = ["Run", "run", "expect", "require", "ScriptAnswer", "script_answer", "uniform_sample",
           "accuracy", "allclose", "chi_square", "Comparison"]


class Run:
    def __init__(self, folder: Path):
        self.folder = folder
        self.context = json.loads((folder / "context.json").read_text())
        self.gold = load_gold(Path(self.context["gold"]))
        self._answers: dict = {}

    def answer(self, key: str):
        # read once per run (several checks read the same answer); read-only, so that no check
        # can change what the next one sees
        if key not in self._answers:
            result = store.load_result(self.folder / "answers", key)
            for arr in (result.arrays.values() if result is not None else ()):
                arr.setflags(write=False)
            self._answers[key] = result
        result = self._answers[key]
        if result is None:
            pytest.fail(f"probe {key} was not run", pytrace=False)
        return result

    def expected(self, key: str):
        return self.gold.outputs[key]

    def params(self, item_id: str) -> dict:
        return self.context["params"].get(item_id, {})

    @property
    def profile(self) -> dict:
        return self.context["profile"]

    def source(self, role: str) -> str | None:
        path = self.context["sources"].get(role)
        return Path(path).read_text() if path else None

    def trust_facts(self) -> None:
        """Call before scoring a fact the worker reported rather than an answer compared with gold
        (an output shape, layer types or sizes, a completion's length, an argument it passed):
        student code runs in the worker, and code that reaches into the worker (grader.intake.tamper) can
        make it report anything, so such a submission earns nothing from those facts."""
        found = self.context.get("tampering") or []
        expect(not found, f"not graded from what your worker reported: your code reaches into the "
                          f"grader's worker ({found[0] if found else ''}"
                          f"{f' and {len(found) - 1} more' if len(found) > 1 else ''}); flagged for "
                          f"staff review")

    def answers_file(self) -> dict:
        path = self.context.get("answers_file")
        if not path:
            pytest.fail("no answers.toml found in the submission (run `grader answers-template` "
                        "for the expected format)", pytrace=False)
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"answers.toml is not valid TOML: {exc}", pytrace=False)

    def script(self, key: str) -> "ScriptAnswer":
        """The answer of a script probe (grader/worker/script.py), errors failing the check."""
        result = self.answer(key)
        require(result)
        return script_answer(result)


@pytest.fixture(scope="session")
def run() -> Run:
    return Run(Path(os.environ["GRADER_RUN"]))


def expect(ok: bool, message: str) -> None:
    if not ok:
        pytest.fail(message, pytrace=False)


def require(result) -> None:
    """A probe that errored fails the check with the error the worker reported."""
    expect(result.ok, result.error or "the probe failed")


# --------------------------------------------------------------------------------------------------
# Script probes
# --------------------------------------------------------------------------------------------------

@dataclass
class ScriptAnswer:
    """What a script probe returned: `globals["params"]["W1"]`, `files["q3_weights.pickle"]`, facts."""

    globals: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    def constant_found(self, name: str) -> bool:
        return bool(self.facts.get("constants", {}).get(name, {}).get("found"))

    def value(self, where: str, name: str, *keys: str):
        """A returned value (`value("global", "params", "W1")`), or None: a nested dict is
        rebuilt from the flat names the worker sent."""
        node = (self.globals if where == "global" else self.files).get(name)
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node


def script_answer(result) -> ScriptAnswer:
    answer = ScriptAnswer(facts=dict(result.meta))
    for flat, arr in result.arrays.items():
        where, _, rest = flat.partition("/")
        tree = answer.globals if where == "global" else answer.files
        if where == "file":
            # a file name may hold dots and slashes of its own: match the outputs that were read
            name = next((n for n in sorted(result.meta.get("outputs_read", []), key=len, reverse=True)
                         if rest == n or rest.startswith(n + "/")), rest)
            parts = [name] + [p for p in rest[len(name) + 1:].split("/") if p]
        else:
            parts = rest.split("/")
        node = tree
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[parts[-1]] = arr
    return answer


# --------------------------------------------------------------------------------------------------
# Statistical tests
# --------------------------------------------------------------------------------------------------

def uniform_sample(x: np.ndarray, low: float, high: float, alpha: float = 1e-3) -> Comparison:
    """Are the values of `x` draws from U(low, high)? Every value within the range, and the sample's
    mean and variance within what such draws give at significance `alpha` (normal approximations,
    fine for the hundreds of values of a weight matrix). The message says which and by how much."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 20:
        return Comparison(False, f"only {n} values: too few to test")
    width = high - low
    tol = 1e-9 * max(1.0, abs(low), abs(high))
    if x.min() < low - tol or x.max() > high + tol:
        return Comparison(False, f"values range over [{x.min():.4g}, {x.max():.4g}], outside [{low:.4g}, {high:.4g}]")
    z = z_two_sided(alpha)
    mean, var = (low + high) / 2, width ** 2 / 12
    # var of the sample variance of a uniform: (mu4 - var^2) / n with mu4 = width^4 / 80
    se_mean, se_var = math.sqrt(var / n), math.sqrt((width ** 4 / 80 - var ** 2) / n)
    if abs(x.mean() - mean) > z * se_mean:
        return Comparison(False, f"the values' mean is {x.mean():.4g}; draws from U({low:.4g}, {high:.4g}) "
                                 f"have mean {mean:.4g}")
    if abs(x.var() - var) > z * se_var:
        return Comparison(False, f"the values' variance is {x.var():.4g}; draws from U({low:.4g}, {high:.4g}) "
                                 f"have variance {var:.4g}")
    if x.max() - x.min() < width * (1 - 20 / n):
        return Comparison(False, f"the values span [{x.min():.4g}, {x.max():.4g}]; {n} draws from "
                                 f"U({low:.4g}, {high:.4g}) span nearly all of it")
    return Comparison(True, "")


def z_two_sided(alpha: float) -> float:
    """The standard normal quantile z with P(|Z| > z) = alpha (bisection on erfc)."""
    lo, hi = 0.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return hi
