"""How long a task has waited for a CPU (Linux's run_delay), read on both sides of the sandbox.

The trusted side's probe clock (grader/sandbox/waiting.py) and the worker's own script time limit
(grader/worker/script.py) both leave out the time the worker spent runnable but not running on a
loaded machine, up to WALL_FACTOR times their limit of wall time. This module is part of the worker
runtime (grader/worker is all the worker sees), so the two clocks share one reading and one bound.
"""
from __future__ import annotations

WALL_FACTOR = 3.0     # the wait given back stops at this many times the limit of wall time


def run_delay(pid: int | str = "self") -> float | None:
    """Seconds the task `pid` (a process's main thread; "self": this process's) has waited on a run
    queue (`/proc/<pid>/schedstat`, second field), or None if the kernel does not say (no
    schedstat, the process gone)."""
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            fields = fh.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
