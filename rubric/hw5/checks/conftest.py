"""The `run` fixture and the check helpers, shared by every pack: see grader/checkkit.py."""
from __future__ import annotations

from grader.checks.kit import Run, expect, require, run  # noqa: F401 - the fixture and the helpers
