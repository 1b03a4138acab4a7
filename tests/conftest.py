"""Shared fixtures: a private gold cache for the session, and the course data folder if present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def course_data() -> Path:
    if not (SHARED_DATA / "cifar10_horse.npz").exists():
        pytest.skip(f"course data not found at {SHARED_DATA} (tests that need it are skipped)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def gold_cache(tmp_path_factory):
    """Gold is built once per test session into a private cache (the user's cache is left alone)."""
    # Under pytest-xdist the workers share one cache (gold builds are atomic and race-safe).
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    cache = os.environ.get("GRADER_TEST_CACHE") or str(shared / "grader-cache")
    old = os.environ.get("GRADER_CACHE")
    os.environ["GRADER_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("GRADER_CACHE", None)
    else:
        os.environ["GRADER_CACHE"] = old
