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


def run_checks(checks_dir: Path, run_dir: Path, names: list[str]) -> dict[str, CheckResult]:
    """Run the named checks ("file.py::test") with the run folder as context; every named check gets
    a result, and a check that pytest could not even run is an `error` (ours, not the student's)."""
    if not names:
        return {}
    report = run_dir / "checks.json"
    argv = [sys.executable, "-m", "pytest", "-q", "-c", str(checks_dir / "pytest.ini"),
            "--rootdir", str(checks_dir), "--json-report", f"--json-report-file={report}",
            "--json-report-omit", "collectors", "keywords", "streams", "log", "warnings",
            "-p", "pytest_jsonreport.plugin", *[str(checks_dir / n) for n in sorted(set(names))]]
    # The checks import this very grader (not whatever `grader` another install or checkout would
    # give), and no third-party pytest plugin: only pytest-json-report, named above. Skipping the
    # plugin scan also saves a second or two per submission.
    path = os.pathsep.join([str(PROJECT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, GRADER_RUN=str(run_dir), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path,
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    try:
        proc = subprocess.run(argv, cwd=checks_dir, env=env, capture_output=True, text=True,
                              timeout=CHECKS_TIMEOUT_S)
        log = proc.stdout[-4000:] + proc.stderr[-4000:]
    except subprocess.TimeoutExpired:
        log = f"the checks did not finish within {CHECKS_TIMEOUT_S} s"
    results = {}
    if report.exists():
        for test in json.loads(report.read_text()).get("tests", []):
            name = test["nodeid"].split("/")[-1]
            results[name] = CheckResult(name, test["outcome"], _message(test))
    for name in names:
        if name not in results:
            results[name] = CheckResult(name, "error", f"the check did not run: {log.strip()[-800:]}")
    return results


def _message(test: dict) -> str:
    for stage in ("setup", "call", "teardown"):
        part = test.get(stage) or {}
        if part.get("outcome") in ("failed", "error") or (stage == "setup" and part.get("outcome") == "skipped"):
            text = part.get("longrepr") or (part.get("crash") or {}).get("message") or ""
            if isinstance(text, list):
                text = " ".join(map(str, text))
            return str(text).strip()
    return ""
