"""Run the rubric's pytest checks for one submission (trusted side) and read pytest-json-report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .records import CheckResult

CHECKS_TIMEOUT_S = 300
PROJECT = Path(__file__).resolve().parent.parent
# The checks' pytest loads only the report plugin (see pytest_args) and writes no bytecode.
COLD_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


# pytest's own plugins that watch for exceptions in threads and destructors: each run ends with
# several gc.collect() passes (a quarter of a warm checks run) for warnings nobody reads here.
QUIET_PLUGINS = ["-p", "no:unraisableexception", "-p", "no:threadexception"]


def pytest_args(checks_dir: Path, report: Path, names: list[str]) -> list[str]:
    """The arguments of the one pytest run that scores a submission (after `python -m pytest`).
    Only the report plugin is loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD): whatever other pytest
    plugins the grading host has installed neither change the checks nor slow them down."""
    return ["-q", "-c", str(checks_dir / "pytest.ini"), "-p", "pytest_jsonreport.plugin",
            "--rootdir", str(checks_dir), "--json-report", f"--json-report-file={report}",
            "--json-report-omit", "collectors", "keywords", "streams", "log", "warnings",
            "-p", "no:randomly", *QUIET_PLUGINS, *[str(checks_dir / n) for n in sorted(set(names))]]


def run_checks(checks_dir: Path, run_dir: Path, names: list[str], runner=None) -> dict[str, CheckResult]:
    """Run the named checks ("file.py::test") with the run folder as context; every named check gets
    a result, and a check that pytest could not even run is an `error` (ours, not the student's).

    `runner(args, env, cwd, timeout) -> (output, finished)`, if given, runs pytest with these
    arguments instead of a fresh `python -m pytest` (the warm engine's check server)."""
    if not names:
        return {}
    report = run_dir / "checks.json"
    args = pytest_args(checks_dir, report, names)
    extra = dict(COLD_ENV, GRADER_RUN=str(run_dir))
    output, finished = (runner or cold_pytest)(args, extra, checks_dir, CHECKS_TIMEOUT_S)
    log = output if finished else f"the checks did not finish within {CHECKS_TIMEOUT_S} s"
    results = {}
    if report.exists():
        for test in json.loads(report.read_text()).get("tests", []):
            name = test["nodeid"].split("/")[-1]
            results[name] = CheckResult(name, test["outcome"], _message(test))
    for name in names:
        if name not in results:
            results[name] = CheckResult(name, "error", f"the check did not run: {log.strip()[-800:]}")
    return results


def checks_env(extra: dict | None = None) -> dict:
    """The environment of a checks run, cold or in the warm check server: this process's, with
    the cold settings, and `grader` pinned to this very checkout, not whatever `grader` another
    install or checkout (an editable install elsewhere, a stale one) would give."""
    path = os.pathsep.join([str(PROJECT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ)
    env.update(COLD_ENV)
    env.update(extra or {})
    env["PYTHONPATH"] = path
    return env


def cold_pytest(args: list[str], env: dict, cwd: Path, timeout: float) -> tuple[str, bool]:
    """A fresh `python -m pytest` in `cwd`: (the tail of its output, whether it finished in time)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=checks_env(env),
                              capture_output=True, text=True, timeout=timeout)
        return proc.stdout[-4000:] + proc.stderr[-4000:], True
    except subprocess.TimeoutExpired:
        return "", False


def _message(test: dict) -> str:
    for stage in ("setup", "call", "teardown"):
        part = test.get(stage) or {}
        if part.get("outcome") in ("failed", "error") or (stage == "setup" and part.get("outcome") == "skipped"):
            text = part.get("longrepr") or (part.get("crash") or {}).get("message") or ""
            if isinstance(text, list):
                text = " ".join(map(str, text))
            return str(text).strip()
    return ""
