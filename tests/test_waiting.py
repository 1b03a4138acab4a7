"""A loaded machine does not change a verdict: probe timeouts count idle-machine time.

grader/sandbox/waiting.py: a probe's clock is wall time minus the time the worker waited for a CPU
that other work held (Linux's per-task run_delay), up to WALL_FACTOR times the timeout; the script
probe's own time limit (grader/worker/script.py) does the same inside the worker. Here the load is
real: the worker is pinned to one CPU with two busy processes pinned beside it, so it gets half
of that CPU or less (half where the kernel shares a CPU between sessions first: the worker has its
own; less where other tests run beside these). Work that spins for 3.5 s of wall time on that share
uses 1.75 s of CPU or less, so under a 3 s timeout it must still pass however crowded the CPU is
(work sized in CPU seconds would, on a crowded CPU, run into the 3x wall backstop); a sleep is still
stopped at its timeout; endless work at the wall backstop.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from grader.probes.client import run_plan
from grader.probes.scripts import script_spec
from grader.sandbox.launcher import Limits, Sandbox
from grader.sandbox.waiting import WALL_FACTOR, WaitClock, run_delay
from test_sandbox import spec, student

pytestmark = pytest.mark.skipif(not (sys.platform.startswith("linux") and os.path.exists("/proc/self/schedstat")),
                                reason="needs Linux's /proc/<pid>/schedstat")

HOG = "while True:\n    pass\n"


@contextmanager
def one_busy_cpu(hogs: int = 2, also=()):
    """This thread (and what it launches), the processes `also` (a zygote: its forks inherit it) and
    `hogs` spinning processes share one CPU."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    saved = os.sched_getaffinity(0)
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    pinned = {pid: os.sched_getaffinity(pid) for pid in also}
    try:
        for pid in [p.pid for p in procs] + list(pinned):
            os.sched_setaffinity(pid, {cpu})
        os.sched_setaffinity(0, {cpu})
        yield
    finally:
        os.sched_setaffinity(0, saved)
        for pid, cpus in pinned.items():
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError:
                pass
        for p in procs:
            p.kill()
            p.wait()


def test_run_delay_is_the_time_a_process_waited_for_a_cpu():
    with one_busy_cpu():
        proc = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
        clock = WaitClock(type("P", (), {"popen": proc, "uid": None})()).start()
        proc_wait_start = run_delay(proc.pid)
        time.sleep(2.0)
        waited = clock.waited()
        direct = run_delay(proc.pid) - proc_wait_start
        proc.kill()
        proc.wait()
    # three processes on one CPU: each waits about two thirds of the time
    assert 0.8 < waited <= 2.1 and abs(direct - waited) < 0.3, (waited, direct)
    assert run_delay(2 ** 22 + 12345) is None


# ----------------------------------------------------------------------------- function probes

# the attack file of tests/test_sandbox.py: an honest CNN whose forward calls on_forward(kernel)
WORK = """
def on_forward(kernel):
    if kernel == 3:                       # 3.5 s of wall time, on half a CPU or less
        t = time.monotonic()
        while time.monotonic() - t < 3.5:
            pass
    elif kernel == 5:
        while True:
            pass
    elif kernel == 7:
        time.sleep(600)
"""


@pytest.fixture(scope="module")
def zygote():
    from grader.sandbox.engine import ForkServer

    box = Sandbox(quiet=True)
    if box.mode != "isolated":
        pytest.skip("forked workers need the isolated sandbox (root and bubblewrap)")
    server = ForkServer(box, ("a2",)).start()
    yield server
    server.close()


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "forked"])
def test_a_probe_starved_of_cpu_gets_its_idle_machine_time(tmp_path, warm, request):
    box, also = Sandbox(Limits(probe_s=60, submission_s=600), quiet=True), []
    ws = tmp_path / "ws"
    if warm:                      # `grader batch`'s workers: forks of a zygote, pids unknown, own uid
        from grader.sandbox.engine import WarmSandbox
        from grader.sandbox.waiting import worker_pids

        server = request.getfixturevalue("zygote")
        ws = Path(tempfile.mkdtemp(dir=server.ws_root)) / "ws"
        box, also = WarmSandbox(box, server), worker_pids(server.proc.pid, None)
    student(ws, WORK)
    specs = [spec("warm", 9, 60), spec("cpu", 3, 3), spec("warm2", 9, 60), spec("sleep", 7, 2),
             spec("warm3", 9, 60), spec("forever", 5, 2)]
    with one_busy_cpu(also=also):
        results = run_plan(specs, ws, {"colourization": ws / "colourization.py"}, "a2", box)
    cpu, sleep, forever = results["cpu"], results["sleep"], results["forever"]
    # 3.5 s of wall time at half a CPU or less: past the 3 s timeout, and still answered
    assert cpu.ok, cpu.error
    assert cpu.seconds > 3.5, cpu.seconds
    # a sleeping worker waits for no CPU: stopped at its timeout, as on an idle machine
    assert not sleep.ok and sleep.error == "probe sleep timed out after 2 s"
    assert sleep.seconds < 3.5, sleep.seconds
    # work that never ends gets at most WALL_FACTOR x its timeout of wall time
    assert not forever.ok and forever.error == "probe forever timed out after 2 s"
    assert 2.5 < forever.seconds < WALL_FACTOR * 2 + 1.5, forever.seconds


# ----------------------------------------------------------------------------- a script's own limit

SCRIPT = """
import time
import numpy as np
steps = 0
t = time.monotonic()
while time.monotonic() - t < 3.5:        # 3.5 s of wall time, on half a CPU or less
    steps += 1
params = {"steps": np.array([steps])}
"""


def test_a_script_starved_of_cpu_is_not_stopped_by_its_time_limit(tmp_path):
    from grader import pack as packmod
    from grader.scaffold import new_pack

    root = new_pack("waitpack", tmp_path / "packs" / "waitpack")
    packmod.load(str(root))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "slow.py").write_text(textwrap.dedent(SCRIPT))
    box = Sandbox(Limits(probe_s=60, submission_s=600), quiet=True)
    specs = [script_spec("slow", "slow", timeout=60, time_limit=3, partial=True, globals=["params"])]
    with one_busy_cpu():
        started = time.monotonic()
        result = run_plan(specs, ws, {"slow": ws / "slow.py"}, "waitpack", box)["slow"]
        wall = time.monotonic() - started
    assert result.ok, result.error
    assert result.meta["status"] == "completed", result.meta
    assert result.meta["seconds"] > 3.5, result.meta          # ran past its 3 s of wall time
    assert wall < 60
    assert np.asarray(result.arrays["global/params/steps"]).item() > 0
