"""The `run` fixture: one submission's probe answers, the gold, and the rubric's parameters.

Checks fail with `expect(...)`, whose message is the student's feedback: what was expected and
what was found, never a hidden gold value.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from grader import store
from grader.gold import load as load_gold


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
        (an output shape, layer types or sizes, a completion's length, the dilation it passed):
        student code runs in the worker, and code that reaches into the worker (grader.tamper) can
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


@pytest.fixture(scope="session")
def run() -> Run:
    return Run(Path(os.environ["GRADER_RUN"]))


def expect(ok: bool, message: str) -> None:
    if not ok:
        pytest.fail(message, pytrace=False)


def require(result) -> None:
    """A probe that errored fails the check with the error the worker reported."""
    expect(result.ok, result.error or "the probe failed")
