"""How long a worker waited for a CPU that other work held: what a probe's clock leaves out.

A probe's timeout is wall time, and on an idle machine it stays exactly that. On a loaded one (a
batch grading two students per core pair, CI running other suites beside it) a student's training
loop may spend half its wall time runnable but not running, and a wall clock would then stop a
script that an idle machine finishes: the same submission would get a different score on a busy
afternoon. Linux keeps, per task, the time it spent waiting on a run queue
(`/proc/<pid>/schedstat`, second field, "run_delay"). The probe's clock is wall time minus the
longest such wait among the worker's processes since the probe started; it still counts the time
the worker sleeps or blocks, so `time.sleep(3600)` is stopped at the timeout as before.

A student cannot buy time with this beyond a bound: their own threads competing with their main
thread also make it wait, so the clock stops being stretched at `WALL_FACTOR` times the timeout.
"""
from __future__ import annotations

import os

from ..worker.runqueue import WALL_FACTOR, run_delay

__all__ = ["WALL_FACTOR", "WaitClock", "processes", "run_delay", "worker_pids"]


def processes() -> dict[int, tuple[int, tuple[str, ...]]]:
    """Every live process: pid -> (parent pid, its real/effective/saved uids)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        ppid, uids, state = -1, (), ""
        for line in status.splitlines():
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("Uid:"):
                uids = tuple(line.split()[1:4])
            elif line.startswith("State:"):
                state = line.split()[1]
        if state not in ("Z", "X"):
            found[int(entry.name)] = (ppid, uids)
    return found


def worker_pids(root: int | None, uid: int | None) -> list[int]:
    """The worker's processes: `root` (the launched process) and its descendants, and every process
    of the worker's own uid (isolated mode, where forked workers have no known pid)."""
    table = processes()
    pids = {p for p, (_, uids) in table.items() if uid is not None and str(uid) in uids}
    if root is not None and root in table:
        children: dict[int, list[int]] = {}
        for p, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(p)
        todo = [root]
        while todo:
            p = todo.pop()
            if p not in pids:
                pids.add(p)
                todo.extend(children.get(p, []))
    return sorted(pids)


class WaitClock:
    """The longest time any of one worker's processes has waited for a CPU since `start()`."""

    def __init__(self, proc):
        self.root = getattr(getattr(proc, "popen", None), "pid", None)
        self.uid = getattr(proc, "uid", None)
        self.base: dict[int, float] = {}

    def _delays(self) -> dict[int, float]:
        delays = {}
        for pid in worker_pids(self.root, self.uid):
            delay = run_delay(pid)
            if delay is not None:
                delays[pid] = delay
        return delays

    def start(self) -> "WaitClock":
        self.base = self._delays()
        return self

    def waited(self) -> float:
        """A process started since `start()` counts from 0; one that has exited no longer counts."""
        return max((d - self.base.get(p, 0.0) for p, d in self._delays().items()), default=0.0)
