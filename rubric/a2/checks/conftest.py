"""The `run` fixture and the check helpers, shared by every pack: see grader/checks/kit.py.

Checks fail with `expect(...)`, whose message is the student's feedback: what was expected and
what was found, never a hidden gold value.
"""
from __future__ import annotations

from grader.checks.kit import Run, expect, require, run  # noqa: F401 - the fixture and the helpers
