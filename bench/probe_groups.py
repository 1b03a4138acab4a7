"""Where one submission's probe time goes: each probe group of the plan run alone in its own
sandboxed worker, with its wall seconds, the worker's CPU seconds and the machine's load.

    python3 bench/probe_groups.py PATH [PATH ...] [--assignment hw5] [--profile ci] [--groups a,b]

PATH: a submission (folder, zip, .py) as `grader grade` takes it. The probes run exactly as the
grader runs them (the same sandbox, limits, plan and stand-ins; no probe cache, no reuse of the
reference's training), one worker per group, so each group also pays a worker's start (the row
`(start)` measures one with an empty plan). CPU seconds are the workers' (user + system of the worker's
process tree, read from /proc just before the worker is killed), on a machine that may be
shared: the load average is printed with every row. Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import gold as goldmod  # noqa: E402
from grader import rubric as rubricmod  # noqa: E402
from grader.intake.unpack import load_submission  # noqa: E402
from grader.pipeline import sandbox_for  # noqa: E402
from grader.probes.client import run_plan  # noqa: E402
from grader.sandbox.launcher import WorkerProcess  # noqa: E402


_TICK = os.sysconf("SC_CLK_TCK")
_WORKER_CPU = [0.0]


def _tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every process under it, as /proc shows them now (the workers are
    SIGKILLed when done, so the kernel never adds them to this process's RUSAGE_CHILDREN)."""
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)] = int(fields[1])
            cpu[int(d.name)] = sum(int(x) for x in fields[11:15]) / _TICK   # utime stime cutime cstime
    total = 0.0
    for pid in cpu:
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += cpu[pid]
    return total


def _sampling_kill(kill):
    def wrapped(self):
        try:
            _WORKER_CPU[0] += _tree_cpu(self.popen.pid)
        except Exception:  # noqa: BLE001 - a measurement, never in the way of the kill
            pass
        return kill(self)
    return wrapped


WorkerProcess.kill = _sampling_kill(WorkerProcess.kill)


def _children_cpu() -> float:
    return _WORKER_CPU[0]


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def measure(path: Path, assignment: str, profile_name: str, only: list[str] | None) -> list[tuple]:
    rubric = rubricmod.load(assignment)
    profile = rubric.profile(profile_name)
    gold = goldmod.ensure(rubric, profile, None, None, log=lambda *a: None)
    plan = rubric.plan_module()
    groups = only or sorted({g for item in rubric.auto_items() for g in item.probes})
    rows = []
    with tempfile.TemporaryDirectory(prefix="probe-groups-") as tmp:
        sub = load_submission(path, Path(tmp) / "workspace", assignment=assignment)
        sandbox = sandbox_for(profile, hide=[gold.root])
        for group in ["(start)"] + groups:
            specs = [] if group == "(start)" else plan.GROUPS[group](profile, gold.inputs)
            if group == "(start)":     # an empty plan starts no worker: ask for the cheapest probe
                first = sorted(plan.GROUPS)[0]
                specs = plan.GROUPS[first](profile, gold.inputs)[:1]
            load, cpu0, t0 = _load(), _children_cpu(), time.monotonic()
            results = run_plan(specs, sub.workspace, sub.modules, assignment, sandbox)
            wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
            bad = [k for k, r in results.items() if not r.ok]
            rows.append((group, wall, cpu, load, sum(r.seconds for r in results.values()),
                         ", ".join(f"{k}: {results[k].error[:60]}" for k in bad)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--assignment", default="hw5")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--groups", help="comma-separated probe groups (default: every group of the rubric)")
    args = ap.parse_args(argv)
    only = args.groups.split(",") if args.groups else None
    for path in args.paths:
        print(f"== {path} ({args.assignment}, profile {args.profile})")
        print(f"{'group':<18} {'wall s':>7} {'cpu s':>7} {'probe s':>8}  load 1/5/15  failed")
        total = [0.0, 0.0]
        for group, wall, cpu, load, probe_s, bad in measure(path, args.assignment, args.profile, only):
            total[0] += wall
            total[1] += cpu
            print(f"{group:<18} {wall:7.1f} {cpu:7.1f} {probe_s:8.1f}  {load:<12} {bad}")
        print(f"{'total':<18} {total[0]:7.1f} {total[1]:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
