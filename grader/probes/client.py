"""Run a plan of probe requests against one submission in a sandboxed worker (trusted side).

The trusted side owns the channel: it sends one request at a time with a fresh nonce, waits with a
deadline, accepts only a well-formed answer carrying that nonce, and ignores anything printed. A
probe that hangs or crashes the worker becomes that probe's error; a fresh worker takes the next.
"""
from __future__ import annotations

import math
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..records import ProbeResult
from ..sandbox.launcher import Limits, Sandbox, WorkerProcess
from ..sandbox.slots import SlotPool
from ..sandbox.waiting import WALL_FACTOR, WaitClock
from ..worker import protocol

STARTUP_S = 120.0   # importing torch in a cold worker can take a while on a loaded machine


@dataclass
class ProbeSpec:
    key: str                       # stable name of this request, e.g. "model_fwd/k3-f16"
    probe: str                     # a name in the worker's PROBES registry
    role: str                      # the submission file it needs: one of the pack's roles
    args: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)   # inputs sent to the worker (never gold outputs)
    timeout: float = 60.0
    reuse_if: str | None = None    # a probe whose match with gold lets the reference's answer stand
    # The part of the student's code this probe runs (e.g. "Model": its constructor and forward).
    # When a probe of a part runs past its timeout before any probe of that part has finished, the
    # part hangs whatever its inputs (a constructor that never returns): its other probes fail at
    # once with the same message instead of each waiting out its own timeout. A part that has
    # already answered once hangs only on some inputs (e.g. one larger size): its other probes still run.
    # `hang_marks_part=False` for probes whose timeout may be the budget's (training), not the part's.
    part: str | None = None
    hang_marks_part: bool = True


class _Reader:
    """Reads frames from the worker's answer pipe in a thread, so waits can have deadlines."""

    def __init__(self, stream, max_bytes: int):
        self.frames: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, args=(stream, max_bytes), daemon=True).start()

    def _run(self, stream, max_bytes):
        try:
            while True:
                self.frames.put(protocol.read_frame(stream, max_bytes))
        except EOFError:
            self.frames.put(("eof", None))
        except (protocol.ProtocolError, OSError, ValueError) as exc:
            self.frames.put(("bad", str(exc)))


class WorkerSession:
    """One worker process serving requests for one submission; restarted after a kill."""

    def __init__(self, sandbox: Sandbox, workspace: Path, modules: dict[str, str], assignment: str):
        self.sandbox, self.workspace, self.modules, self.assignment = sandbox, workspace, modules, assignment
        # The worker runtime holds the probes of the packs loaded in this process: load this one
        # (once; a no-op after) so a session never depends on some earlier caller having done it.
        from ..pack import load as load_pack

        load_pack(assignment)
        # A SlotPool (a batch's shared compute slots): a slot is held from the first launch to close().
        self.pool = sandbox if isinstance(sandbox, SlotPool) else None
        self.slot = None
        self.proc: WorkerProcess | None = None
        self.reader: _Reader | None = None
        self.outputs: list[str] = []
        self.last_clean = False       # the last answer came whole from a worker that was kept

    def _start(self) -> str | None:
        if self.pool is None:
            self.proc = self.sandbox.launch(self.workspace)
        else:
            if self.slot is None:
                self.slot = self.pool.acquire()
            self.proc = self.slot.launch(self.workspace)
        self.reader = _Reader(self.proc.answers, self.sandbox.limits.answer_bytes)
        nonce = secrets.token_hex(8)
        hello = {"nonce": nonce, "assignment": self.assignment, "workspace": str(self.workspace),
                 "modules": self.modules, "threads": self.sandbox.threads}
        try:
            protocol.write_frame(self.proc.stdin, hello)
        except OSError:
            return self._stop("the worker could not be started")
        kind, frame = self._next(time.monotonic() + STARTUP_S)
        if kind != "frame" or frame[0].get("event") != "ready" or frame[0].get("nonce") != nonce:
            return self._stop(f"the worker did not start ({kind})")
        return None

    def _next(self, deadline: float):
        try:
            item = self.reader.frames.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return "timeout", None
        if item[0] == "eof":
            return "eof", None
        if item[0] == "bad":
            return "bad", item[1]
        return "frame", item

    def _stop(self, why: str) -> str:
        if self.proc:
            self.proc.kill()
            self.outputs.append(self.proc.output.text())
        self.proc = None
        return why

    def close(self) -> None:
        if self.proc:
            self._stop("done")
        if self.slot is not None:
            self.pool.release(self.slot)
            self.slot = None

    def request(self, spec: ProbeSpec, deadline: float) -> tuple[ProbeResult, bool]:
        """Run one probe. Returns the result and whether the failure happened while importing."""
        self.last_clean = False
        if self.proc is None or not self.proc.alive():
            why = self._start()
            if why:
                return ProbeResult(spec.key, False, error=why, fault="grader"), False
        # The probe's clock starts once its worker is up: waiting for a free slot or for the zygote
        # to start is the batch's time, not the student's (bench/soak.py found import timeouts so).
        started = time.monotonic()
        nonce = secrets.token_hex(8)
        header = {"nonce": nonce, "probe": spec.probe, "args": spec.args}
        try:
            protocol.write_frame(self.proc.stdin, header, spec.arrays)
        except OSError:
            self._stop("broken pipe")
            return ProbeResult(spec.key, False, error="the worker stopped reading requests"), False
        loaded = False
        clock = WaitClock(self.proc).start()
        until = min(started + spec.timeout, deadline)
        while True:
            kind, item = self._next(until)
            if kind == "timeout" and until < deadline:
                # The timeout is idle-machine time: the wait for a CPU that other work held is
                # given back (grader/sandbox/waiting.py), up to WALL_FACTOR times the timeout.
                waited = clock.waited()
                extended = min(started + spec.timeout + waited, started + WALL_FACTOR * spec.timeout, deadline)
                if extended > time.monotonic() + 0.05:
                    until = max(extended, time.monotonic() + 0.25)
                    continue
            if kind == "frame":
                head, arrays = item
                if head.get("nonce") != nonce:
                    continue                      # stale or forged: not an answer to this request
                if head.get("event") == "loaded":
                    loaded = True
                    continue
                result = self._answer(spec, head, arrays, started)
                if not result.ok and _MEMORY.search(str(head.get("error", ""))):
                    self._stop("memory limit")    # its state is suspect: the next probe gets a fresh one
                else:
                    self.last_clean = True
                return result, False
            code = self.proc.popen.poll() if self.proc else None
            if kind == "eof" and code is None:
                try:       # the pipe closes a moment before the exit status is there to read
                    code = self.proc.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if kind == "timeout":
                self._stop("timeout")
                what = f"probe {spec.key}" if loaded else "importing the submission"
                if until < deadline:
                    msg = f"{what} timed out after {spec.timeout:g} s"
                else:
                    msg = f"{what} ran past the submission's time limit"
                return ProbeResult(spec.key, False, error=msg, seconds=time.monotonic() - started,
                                   timed_out=loaded and until < deadline), not loaded
            self._stop(kind)
            if kind == "bad":
                msg = f"the worker sent a malformed answer ({item}); no credit for this probe"
            else:
                msg = (f"the worker exited (status {code}) during {spec.key}"
                       + _signal_hint(code, self.sandbox.limits))
            return ProbeResult(spec.key, False, error=msg, seconds=time.monotonic() - started), not loaded

    def _answer(self, spec, head, arrays, started) -> ProbeResult:
        meta = head.get("meta") if isinstance(head.get("meta"), dict) else {}
        for key, value in meta.items():      # a fact `*_error` is an error of the student's code
            if key.endswith("_error") and isinstance(value, str):
                meta[key] = limit_message(value[:2000], self.sandbox.limits)
        if head.get("ok") is not True:
            error = limit_message(str(head.get("error", "unknown error"))[:2000], self.sandbox.limits)
            return ProbeResult(spec.key, False, meta=meta, error=error, seconds=time.monotonic() - started)
        return ProbeResult(spec.key, True, arrays=arrays, meta=meta, seconds=time.monotonic() - started)


_MEMORY = re.compile(r"\bMemoryError\b|can't allocate memory|Cannot allocate memory|bad_alloc")
_LIMIT_ERRORS = [  # (pattern in the worker's error, what the student is told), most specific first
    (_MEMORY, "used more than {memory} of memory"),
    (re.compile(r"File too large|\[Errno 27\]"), "wrote a file larger than {file}, the limit"),
    (re.compile(r"No space left on device|\[Errno 28\]"),
     "ran out of space ({tmp} for the workspace, /tmp and /dev/shm together)"),
    (re.compile(r"Too many open files|\[Errno 24\]"), "opened more than {files} files at once"),
    (re.compile(r"can't start new thread|Resource temporarily unavailable|\[Errno 11\]"),
     "started more than {processes} processes or threads"),
]


def _sizes(limits: Limits) -> dict:
    def size(n):
        return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB"
    return {"memory": size(limits.memory_bytes), "file": size(limits.file_bytes),
            "tmp": size(limits.space_bytes), "files": limits.open_files,
            "processes": limits.processes, "cpu": limits.cpu_s}


def limit_message(error: str, limits: Limits) -> str:
    """Name the limit a worker's error comes from, e.g. 'used more than 6 GiB of memory (...)'."""
    for pattern, what in _LIMIT_ERRORS:
        if pattern.search(error):
            return f"{what.format(**_sizes(limits))} ({error})"
    return error


def _signal_hint(code, limits: Limits | None = None) -> str:
    """What a worker's exit status says: -N (killed by signal N) or 128+N (bubblewrap's report)."""
    if not isinstance(code, int) or code == 0:
        return ""
    num = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else None
    if num is None:
        return ""
    sizes = _sizes(limits or Limits())
    hints = {
        signal.SIGXCPU: f": it used more than {sizes['cpu']} s of CPU time (SIGXCPU)",
        signal.SIGKILL: ": killed (SIGKILL): out of memory, or past the CPU time limit",
        signal.SIGXFSZ: f": it wrote a file larger than {sizes['file']} (SIGXFSZ)",
        signal.SIGSEGV: ": segmentation fault (SIGSEGV)",
        signal.SIGBUS: ": bus error (SIGBUS), e.g. a full /dev/shm",
        signal.SIGABRT: ": aborted (SIGABRT)",
    }
    try:
        name = signal.Signals(num).name
    except ValueError:
        return ""
    return hints.get(num, f": killed by {name}")


def run_plan(specs: list[ProbeSpec], workspace: Path, modules: dict[str, Path], assignment: str,
             sandbox: Sandbox | None = None, reuse=None, cache=None,
             unusable: dict[str, str] | None = None) -> dict[str, ProbeResult]:
    """Run every probe of the plan; failures are per-probe results, never exceptions.

    `unusable` (role -> why): roles whose file was found but could not be prepared (it does not
    compile, ...); their probes fail with that reason rather than "no file was found".

    `reuse(spec, results)` may return a result instead of running a spec (see pipeline).
    `cache` (a `probecache.ProbeCache`) answers requests whose answer is already known for this
    very workspace and request history; see probecache.py for the rule."""
    sandbox = sandbox or Sandbox()
    limits: Limits = sandbox.limits
    names = {role: path.name for role, path in modules.items()}
    chain = cache.chain(workspace, names, assignment, sandbox) if cache is not None else None
    session = WorkerSession(sandbox, workspace, names, assignment)
    deadline = time.monotonic() + limits.submission_s
    results: dict[str, ProbeResult] = {}
    hung: dict[str, str] = {}         # role -> why its import never finished
    stuck: dict[str, str] = {}        # part -> why its first probe to time out never finished
    worked: set[str] = set()          # parts that have answered a probe (a later hang is input-specific)
    unsent: list[ProbeSpec] = []      # answered from the cache, not yet run by the worker
    try:
        for spec in specs:
            if spec.role not in modules:
                why = (unusable or {}).get(spec.role)
                error = (f"the {spec.role} file could not be used: {why}" if why
                         else f"no {spec.role} file was found")
                results[spec.key] = ProbeResult(spec.key, False, error=error)
                continue
            reused = reuse(spec, results) if reuse and spec.reuse_if else None
            if reused is not None:
                results[spec.key] = reused
                continue
            if spec.role in hung:
                results[spec.key] = ProbeResult(spec.key, False, error=hung[spec.role])
                continue
            if spec.part in stuck:
                results[spec.key] = ProbeResult(spec.key, False, error=stuck[spec.part])
                continue
            if time.monotonic() >= deadline:
                results[spec.key] = ProbeResult(
                    spec.key, False, error=f"not run: the submission used its {limits.submission_s:.0f} s")
                continue
            cached = chain.lookup(spec) if chain is not None else None
            if cached is not None:
                deadline -= cached.seconds            # as if it had run: the same time limit applies
                results[spec.key] = cached
                unsent.append(spec)
                if cached.ok and spec.part:           # a part answered from the cache has answered:
                    worked.add(spec.part)             # the verdict must not depend on the cache
                continue
            for earlier in unsent:                    # bring the worker to the state the chain assumes
                session.request(earlier, deadline)
                if not session.last_clean:
                    chain.live = False
            unsent = []
            result, at_import = session.request(spec, deadline)
            if chain is not None:
                chain.record(spec, result, session.last_clean)
            if at_import and not result.ok:
                hung[spec.role] = result.error
            elif result.timed_out and spec.part and spec.hang_marks_part and spec.part not in worked:
                stuck[spec.part] = (f"{result.error}; {spec.part} never finished there, so its other "
                                    f"probes were not run")
                result.error = stuck[spec.part]
            if result.ok and spec.part:
                worked.add(spec.part)
            results[spec.key] = result
    finally:
        session.close()
    for result in results.values():
        _validate(result)
    return results


def _validate(result: ProbeResult) -> None:
    """Arrays from the worker are hostile: numbers only (the protocol checked), finite floats noted."""
    for name, arr in result.arrays.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            result.meta.setdefault("nonfinite", []).append(name)
    for key in ("seconds",):
        if not isinstance(result.seconds, float) or math.isnan(result.seconds):
            result.seconds = 0.0
