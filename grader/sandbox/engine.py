"""The warm engine of `grader batch`: start-up costs paid once per batch, not once per student.

A cold submission pays for three process starts: the sandboxed worker (a fresh Python importing
torch, ~2 s of CPU), the trusted checks (a fresh pytest loading its plugins and numpy, ~1.5 s of
CPU) and, when graded one by one, the grader itself. The engine keeps two servers instead:

- **ForkServer** (workers, untrusted side): one bubblewrap sandbox per view (one per GPU setting)
  holds a zygote (`grader/worker/zygote.py`) that has imported torch, numpy and the probes. Each
  worker is a fork of it that gets, before any student code runs, everything a cold worker gets:
  its own pid, mount, network (loopback only), IPC and UTS namespaces, a fresh /proc, /tmp,
  /dev/shm and devpts, only its own workspace (all others covered), its dedicated pooled uid with
  no capabilities and no_new_privs, the rlimits, the scrubbed environment, a new session, and it
  dies with the grader. `WarmSandbox` puts this behind `Sandbox.launch`, so the probe client is
  unchanged; if the zygote cannot start or a fork fails its setup, the worker is launched cold
  (bubblewrap as before) and the batch says so once.
- **CheckServer** (trusted side, grader/checks/server.py): a process that has imported pytest, its
  plugins, numpy and the rubric's helpers; each submission's checks run in a fresh fork of it
  (`pytest.main` with exactly the arguments, working folder and environment of the cold path), so
  no state passes between students.

Only the isolated mode (root + bubblewrap) has a zygote: in the userns and basic modes workers are
launched cold. See docs/throughput.md for the measurements and the rules.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

from ..checks.runner import CheckMemo
from .launcher import RUNTIME_PACKAGE, CappedOutput, Sandbox, _identity, _UidSlot, runtime_dir, sweep_uid

# CAP_CHOWN: the monitor gives the worker's copy of its workspace (worker/space.py) to the worker's uid
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_CHOWN")
STARTUP_S = 120.0           # the zygote imports torch once; on a loaded machine that can take a while
READY_S = 30.0              # a fork's namespace and view setup takes milliseconds
REQUEST_S = 30.0
# "?": imported if it can be (torch._dynamo is what torch.optim imports on first use: seconds)
PRELOAD = ["numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "?torch._dynamo",
           f"{RUNTIME_PACKAGE}.protocol", f"{RUNTIME_PACKAGE}.loader", f"{RUNTIME_PACKAGE}.boot",
           f"{RUNTIME_PACKAGE}.main"]


class EngineUnavailable(RuntimeError):
    """The zygote could not start or a fork could not be set up; the caller launches cold."""


# --------------------------------------------------------------------------------------------------
# Workers forked from a zygote
# --------------------------------------------------------------------------------------------------

class _StatusPopen:
    """What the probe client reads of a worker process (`poll`, `wait`), from the monitor's
    status pipe: {"exit": N} (N = 128+signal when killed by a signal), or EOF when it was killed."""

    def __init__(self, fd: int):
        self.fd, self.returncode, self.pid = fd, None, None
        self._buf = b""

    def _read(self, timeout: float | None) -> bool:
        while self.returncode is None:
            if self.fd is None:
                self.returncode = -9
                break
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return False
            data = os.read(self.fd, 4096)
            if data:
                self._buf += data
                try:
                    self.returncode = int(json.loads(self._buf)["exit"])
                except (ValueError, KeyError, TypeError):
                    pass
                continue
            self.returncode = -9                  # the monitor died without a word: killed
        return True

    def poll(self):
        self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None):
        if not self._read(timeout):
            raise subprocess.TimeoutExpired("worker", timeout)
        return self.returncode

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ZygoteWorker:
    """A worker forked from the zygote, with the interface of `sandbox.WorkerProcess`."""

    def __init__(self, server: "ForkServer", wid: int, stdin_w: int, answers_r: int, out_r: int,
                 status_r: int, uid: int, slot: _UidSlot, output_bytes: int):
        self.server, self.wid, self.uid, self._slot, self.mode = server, wid, uid, slot, "isolated"
        self.popen = _StatusPopen(status_r)
        self._stdin = os.fdopen(stdin_w, "wb")
        self.answers = os.fdopen(answers_r, "rb", buffering=0)
        self.output = CappedOutput(os.fdopen(out_r, "rb", buffering=0), output_bytes)
        self._finalizer = weakref.finalize(self, _reap_zygote_worker, server, wid, uid, slot)

    @property
    def stdin(self):
        return self._stdin

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Kill the monitor (its init and the whole pid namespace go with it), wait, then kill
        every process still running as the worker's uid before the uid goes back to the pool."""
        self.server.kill(self.wid)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        sweep_uid(self.uid)
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        self._finalizer.detach()
        for stream in (self._stdin, self.answers):
            try:
                stream.close()
            except OSError:
                pass
        self.popen.close()


def _reap_zygote_worker(server, wid, uid, slot) -> None:
    try:
        server.kill(wid)
    except Exception:  # noqa: BLE001 - best effort at garbage collection
        pass
    sweep_uid(uid, timeout=2)
    slot.release()


class ForkServer:
    """The trusted side of one zygote: starts it, asks it for workers, kills them, stops it."""

    def __init__(self, sandbox: Sandbox, assignments, ws_root: Path | None = None):
        """assignments: the packs whose probe modules the zygote imports (`graderworker.<name>`).
        ws_root: the folder for the workspaces (made here if not given, and then removed by
        close(); a given one belongs to the caller)."""
        from .. import pack as packmod

        if sandbox.mode != "isolated":
            raise EngineUnavailable(f"the warm engine needs the isolated sandbox (this one is {sandbox.mode})")
        if isinstance(assignments, str):
            assignments = (assignments,)
        for assignment in assignments:       # loaded packs are what runtime_dir() installs
            packmod.load(assignment)
        self.sandbox = sandbox
        self.preload = PRELOAD + [f"{RUNTIME_PACKAGE}.{a}" for a in assignments]
        self.freeze = True
        self.own_root = ws_root is None
        self.ws_root = Path(ws_root) if ws_root else Path(tempfile.mkdtemp(prefix="grader-ws-"))
        os.chmod(self.ws_root, 0o700)
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.output: CappedOutput | None = None
        self.broken: str | None = None
        self._ids = 0
        self.launches = 0
        self._closing = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.started_s = 0.0

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> "ForkServer":
        """Start the zygote from a thread that lives as long as this server (bubblewrap's
        --die-with-parent follows the launching thread) and wait until it has imported torch."""
        began = time.monotonic()
        threading.Thread(target=self._keeper, name="grader-zygote", daemon=True).start()
        self._started.wait()
        if self._start_error is not None:
            self.broken = str(self._start_error)
            raise EngineUnavailable(f"the zygote did not start: {self._start_error}")
        self.sock.settimeout(STARTUP_S)
        try:
            hello = json.loads(self.sock.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            hello = {"error": str(exc)}
        if hello.get("event") != "ready":
            self.broken = f"the zygote did not start ({hello}): {self._output_tail()}"
            self.close()
            raise EngineUnavailable(self.broken)
        if hello.get("threads") != 1:
            self.broken = f"the zygote has {hello.get('threads')} threads after its imports"
            self.close()
            raise EngineUnavailable(self.broken)
        self.sock.settimeout(REQUEST_S)
        self.started_s = time.monotonic() - began
        return self

    def _keeper(self) -> None:
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            config = json.dumps({"preload": self.preload, "freeze": self.freeze})
            boot = (f"import sys; sys.path.insert(0, {str(runtime_dir())!r}); "
                    f"from {RUNTIME_PACKAGE}.boot import enter; enter(None, None, False, None); "
                    f"from {RUNTIME_PACKAGE}.zygote import serve; "
                    f"sys.exit(serve({theirs.fileno()}, {config!r}))")
            argv = (self.sandbox._bwrap_args(self.ws_root, None, extra_caps=ZYGOTE_CAPS)
                    + ["--", sys.executable, "-I", "-u", "-c", boot])
            self.proc = subprocess.Popen(
                argv, cwd="/", env=self.sandbox.env(self.ws_root), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(theirs.fileno(),),
                start_new_session=True, preexec_fn=self.sandbox._rlimits(None))
            theirs.close()
            self.sock = ours
            self.output = CappedOutput(self.proc.stdout, 64 << 10)
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        self._closing.wait()
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        self.proc.wait()

    def _output_tail(self) -> str:
        return self.output.text()[-2000:] if self.output else ""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()                 # the zygote sees EOF and exits
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._closing.set()
        if self.own_root:
            shutil.rmtree(self.ws_root, ignore_errors=True)

    # -- requests ------------------------------------------------------------------------------
    def _request(self, msg: dict, fds=()) -> dict:
        with self.lock:
            if self.sock is None or self.broken:
                raise EngineUnavailable(self.broken or "the zygote is not running")
            try:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], list(fds))
                data = self.sock.recv(1 << 16)
            except OSError as exc:
                self.broken = f"the zygote stopped answering ({exc}): {self._output_tail()}"
                raise EngineUnavailable(self.broken) from None
            if not data:
                self.broken = f"the zygote exited: {self._output_tail()}"
                raise EngineUnavailable(self.broken)
            return json.loads(data)

    def kill(self, wid: int) -> None:
        try:
            self._request({"op": "kill", "id": wid})
        except EngineUnavailable:
            pass          # a dead zygote took its pid namespace, and every worker, with it

    def launch(self, workspace: Path, sandbox: Sandbox | None = None) -> ZygoteWorker:
        """A worker for `workspace` (which must be under `ws_root`), with `sandbox`'s limits and
        environment (its view must be this server's: see Engine.sandbox)."""
        sandbox = sandbox or self.sandbox
        workspace = Path(os.path.abspath(workspace))
        if self.ws_root not in workspace.parents:
            raise EngineUnavailable(f"{workspace} is not under the engine's workspace folder")
        slot = _UidSlot(sandbox.uid_base, sandbox.uid_slots)
        uid = slot.uid
        host_ends, child_ends = [], []
        try:
            sandbox._prepare(workspace, uid)
            pipes = [os.pipe() for _ in range(5)]   # stdin, answers, output, status, ready
            stdin, answers, out, status, ready = pipes
            child_ends = [stdin[0], answers[1], out[1], status[1], ready[1]]
            host_ends = [stdin[1], answers[0], out[0], status[0], ready[0]]
            with self.lock:
                self._ids += 1
                wid = self._ids
            limits = sandbox.limits
            msg = {"op": "spawn", "id": wid, "workspace_root": str(self.ws_root),
                   "workspace": str(workspace), "uid": uid, "gid": uid, "strict": True,
                   "space_bytes": limits.space_bytes, "seccomp": sandbox.seccomp,
                   "rlimits": sandbox.rlimit_list(limits.processes),
                   "env": sandbox.env(workspace), "identity": _identity(uid)}
            reply = self._request(msg, child_ends)
            for fd in child_ends:
                os.close(fd)
            child_ends = []
            if not reply.get("ok"):
                raise EngineUnavailable(f"the zygote could not fork a worker: {reply.get('error')}")
        except BaseException:
            for fd in child_ends + host_ends:
                try:
                    os.close(fd)
                except OSError:
                    pass
            slot.release()
            raise
        worker = ZygoteWorker(self, wid, stdin[1], answers[0], out[0], status[0], uid, slot,
                              limits.output_bytes)
        ok = select.select([ready[0]], [], [], READY_S)[0] and os.read(ready[0], 1) == b"k"
        os.close(ready[0])
        if not ok:
            worker.kill()
            why = worker.output.text().strip()[-1000:] or f"status {worker.popen.returncode}"
            raise EngineUnavailable(f"a worker forked from the zygote failed its setup: {why}")
        self.launches += 1
        return worker


class Pending:
    """Something started in the background (a server): `get()` waits for it; None if it failed."""

    def __init__(self, start, on_error=None):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(start, on_error), daemon=True)
        self._thread.start()

    def _run(self, start, on_error):
        try:
            self._value = start()
        except Exception as exc:  # noqa: BLE001 - reported, then the cold path is used
            self._error = exc
            if on_error:
                on_error(exc)

    def get(self):
        self._thread.join()
        return self._value


class WarmSandbox:
    """A `Sandbox` whose workers are forked from a zygote; everything else is the wrapped one's.

    Workspaces must be created under `workspace_parent` (the pipeline does so). A worker that
    cannot be forked is launched cold by the wrapped sandbox, and the zygote is not used again.
    `server` may be a ForkServer or a Pending one (started in the background; launch waits)."""

    def __init__(self, base: Sandbox, server, log=None, workspace_parent: Path | None = None):
        self.base, self._server, self.log = base, server, log
        self._parent = workspace_parent
        self.fallbacks = 0

    def __getattr__(self, name):
        return getattr(self.base, name)

    @property
    def server(self) -> ForkServer | None:
        return self._server.get() if isinstance(self._server, Pending) else self._server

    @property
    def workspace_parent(self) -> Path | None:
        if self._parent is not None:
            return self._parent
        server = self.server
        return server.ws_root if server is not None else None

    def launch(self, workspace: Path):
        server = self.server
        if server is not None and not server.broken:
            try:
                return server.launch(workspace, self.base)
            except EngineUnavailable as exc:
                server.broken = server.broken or str(exc)
                self.fallbacks += 1
                if self.log and self.fallbacks == 1:
                    self.log(f"warm engine: {exc}; workers are launched cold from now on")
        return self.base.launch(workspace)


# --------------------------------------------------------------------------------------------------
# Trusted checks in forks of a warm pytest
# --------------------------------------------------------------------------------------------------

CHECK_PRELOAD = ["pytest", "_pytest.config", "_pytest.main", "_pytest.python", "_pytest.fixtures",
                 "_pytest.assertion.rewrite", "_pytest.terminal", "_pytest.junitxml", "pytest_jsonreport.plugin",
                 "numpy", "tomllib",
                 "grader.probes.store", "grader.gold", "grader.checks.compare", "grader.probes.client", "grader.checks.kit"]


class CheckServer:
    """Runs one submission's `pytest.main(args)` in a fresh fork of a process that imported
    pytest, its plugins and the checks' dependencies once (grader/checks/server.py). Falls back to
    a fresh `python -m pytest` if the server is not running."""

    def __init__(self, checks_dir: Path):
        self.cwd = str(Path(checks_dir).resolve())
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.broken: str | None = None

    def start(self) -> "CheckServer":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = str(Path(__file__).resolve().parent.parent / "checks" / "server.py")
        code = (f"p = {path!r}; exec(compile(open(p).read(), p, 'exec'), "
                f"{{'__name__': '__checkserver__', '__file__': p}})")
        # cwd and environment as for a cold `python -m pytest` run in the checks folder
        from ..checks.runner import checks_env

        collect = ["-c", str(Path(self.cwd) / "pytest.ini"), "--rootdir", self.cwd,
                   *sorted(str(p) for p in Path(self.cwd).glob("test_*.py"))]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), json.dumps(CHECK_PRELOAD), json.dumps(collect)],
            cwd=self.cwd, env=checks_env(), pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(STARTUP_S)
        try:
            hello = json.loads(self.sock.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            hello = {"error": str(exc)}
        if hello.get("event") != "ready":
            self.close()
            raise EngineUnavailable(f"the check server did not start ({hello})")
        self.sock.settimeout(REQUEST_S)
        weakref.finalize(self, _kill_quietly, self.proc)
        return self

    def __call__(self, args: list[str], env: dict, cwd: Path, timeout: float) -> tuple[str, bool]:
        from ..checks.runner import cold_pytest

        if self.broken or self.sock is None or str(Path(cwd).resolve()) != self.cwd:
            return cold_pytest(args, env, cwd, timeout)
        log_path = Path(env["GRADER_RUN"]) / "checks.log"
        done_r, done_w = os.pipe()
        msg = {"args": args, "env": env, "cwd": self.cwd, "log": str(log_path), "timeout": timeout}
        try:
            with self.lock:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], [done_w])
                reply = json.loads(self.sock.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            self.broken = f"the check server stopped answering ({exc})"
            os.close(done_r)
            os.close(done_w)
            return cold_pytest(args, env, cwd, timeout)
        os.close(done_w)
        status, finished = b"", False
        deadline = time.monotonic() + timeout + 30     # the child's own alarm fires at `timeout`
        while True:
            ready, _, _ = select.select([done_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                try:
                    os.kill(int(reply.get("pid", 0)), 9) if reply.get("pid") else None
                except OSError:
                    pass
                break
            chunk = os.read(done_r, 4096)
            if not chunk:
                finished = b'"exit"' in status
                break
            status += chunk
        os.close(done_r)
        try:
            log = log_path.read_text(errors="replace")[-8000:]
        except OSError:
            log = ""
        return log, finished

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill_quietly(self.proc)


def _kill_quietly(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
        proc.wait(timeout=5)
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------

class Engine:
    """What a batch (or a Ray worker process) keeps warm: fork servers for workers (one per
    distinct sandbox view, i.e. per GPU setting), the check server, and the probe cache. The
    servers start in the background at once; the first worker launch or check run waits for them."""

    def __init__(self, assignment: str, warm: bool = True, cache=None, log=print):
        self.assignment, self.warm, self.cache, self.log = assignment, warm, cache, log
        self.servers: dict[tuple, tuple[Pending, Path]] = {}
        self.lock = threading.Lock()
        self.notes: list[str] = []
        self._checks: Pending | None = None
        self.check_memo = CheckMemo() if cache is not None else None   # with the probe cache only
        if warm:
            from .. import rubric as rubricmod

            checks_dir = rubricmod.load(assignment).checks_dir
            self._checks = Pending(lambda: CheckServer(checks_dir).start(), lambda exc: self.notes.append(
                f"checks run cold: the check server did not start ({exc})"))

    @property
    def checks(self) -> CheckServer | None:
        return self._checks.get() if self._checks is not None else None

    def sandbox(self, base: Sandbox):
        """`base`, or a WarmSandbox forking its workers from a zygote with `base`'s view."""
        if not self.warm:
            return base
        if base.mode != "isolated":
            with self.lock:
                note = f"workers are launched cold: the warm engine needs the isolated sandbox ({base.mode})"
                if note not in self.notes:
                    self.notes.append(note)
            return base
        key = (tuple(map(str, base.hidden)), tuple(map(str, base.readonly)), base.gpu, base.threads,
               base.mode)
        with self.lock:
            if key not in self.servers:
                root = Path(tempfile.mkdtemp(prefix="grader-ws-"))
                self.servers[key] = (Pending(lambda: ForkServer(base, (self.assignment,), root).start(),
                                             self._zygote_failed), root)
        pending, root = self.servers[key]
        return WarmSandbox(base, pending, self.log, workspace_parent=root)

    def _zygote_failed(self, exc) -> None:
        self.notes.append(f"workers are launched cold: {exc}")
        if self.log:
            self.log(f"warm engine: {exc}; workers are launched cold")

    def describe(self) -> str:
        if not self.warm:
            return "cold (--no-warm): a fresh sandboxed worker and a fresh pytest per submission"
        servers = [p.get() for p, _ in self.servers.values()]
        started = [s for s in servers if s is not None]
        workers = (f"workers forked from {len(started)} zygote(s)" if started else "workers launched cold")
        checks = "checks in forks of a warm pytest" if self.checks else "checks in a fresh pytest"
        return f"warm: {workers}; {checks}" + (f" ({'; '.join(self.notes)})" if self.notes else "")

    def close(self) -> None:
        for pending, root in self.servers.values():
            server = pending.get()
            if server is not None:
                server.close()
            shutil.rmtree(root, ignore_errors=True)
        self.servers.clear()
        if self.checks is not None:
            self.checks.close()
