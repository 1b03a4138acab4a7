"""Run the rubric's pytest checks for one submission (trusted side) and read pytest-json-report."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..records import CheckResult

CHECKS_TIMEOUT_S = 300
PROJECT = Path(__file__).resolve().parent.parent.parent
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


def run_checks(checks_dir: Path, run_dir: Path, names: list[str], runner=None,
               memo: "CheckMemo | None" = None) -> dict[str, CheckResult]:
    """Run the named checks ("file.py::test") with the run folder as context; every named check gets
    a result, and a check that pytest could not even run is an `error` (ours, not the student's).

    `runner(args, env, cwd, timeout) -> (output, finished)`, if given, runs pytest with these
    arguments instead of a fresh `python -m pytest` (the warm engine's check server).
    `memo` (a batch's CheckMemo) answers a run folder whose every input another student's run
    already had (a resubmission, a copy): the checks are a function of those inputs."""
    if not names:
        return {}
    key = memo.key(checks_dir, run_dir, names) if memo is not None else None
    known = memo.get(key) if key else None
    if known is not None:
        return known
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
    if key and finished and all(r.outcome != "error" for r in results.values()):
        memo.put(key, results)
    return results


class CheckMemo:
    """Check results of one batch, keyed by everything a checks run reads: the check files, the
    names run, and every file of the run folder (probe answers, kept sources, answers.toml, the
    context with the run folder's own path taken out; the gold folder named there is never
    changed once written). In memory only, for one batch: nothing a submission sends can reach
    another batch, and a run that errored or timed out is never kept."""

    SKIP = {"checks.json", "checks.log"}

    def __init__(self):
        self.lock = threading.Lock()
        self.results: dict[str, dict[str, CheckResult]] = {}
        self.hits = 0

    def key(self, checks_dir: Path, run_dir: Path, names: list[str]) -> str:
        h = hashlib.sha256(json.dumps(sorted(set(names))).encode())
        for root, skip in ((Path(checks_dir), ()), (Path(run_dir), self.SKIP)):
            h.update(b"\0root\0")
            for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                rel = path.relative_to(root).as_posix()
                if rel in skip:
                    continue
                data = path.read_bytes()
                if root == Path(run_dir) and rel == "context.json":
                    data = data.replace(json.dumps(str(run_dir))[1:-1].encode(), b"<run>")
                h.update(f"\0{rel}\0{len(data)}\0".encode() + data)
        return h.hexdigest()

    def get(self, key: str) -> dict[str, CheckResult] | None:
        with self.lock:
            known = self.results.get(key)
            if known is not None:
                self.hits += 1
        return {n: dataclasses.replace(r) for n, r in known.items()} if known is not None else None

    def put(self, key: str, results: dict[str, CheckResult]) -> None:
        with self.lock:
            self.results[key] = {n: dataclasses.replace(r) for n, r in results.items()}


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
