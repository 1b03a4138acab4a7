"""The warm engine's worker fork server (the "zygote"): part of the worker runtime.

It runs inside one bubblewrap sandbox, started by the trusted side (`grader.sandbox.engine.ForkServer`)
exactly like a worker (the same allowlisted view, the same hidden paths, no network), except that it
keeps CAP_SYS_ADMIN and CAP_NET_ADMIN besides the three capabilities every worker starts with, and
that the folder holding the workspaces (`workspace_root`) is bound into its view. It never runs
student code. It imports torch, numpy and the assignment's probes once, then waits for requests on
a socket only the trusted side holds. For each worker it forks three processes:

    zygote ── monitor ── init (pid 1 of a new pid namespace) ── worker (student code)

- **monitor** (trusted): closes everything inherited but the worker's own pipes, dies with the
  zygote, and makes new mount, pid, network, IPC, UTS (and cgroup) namespaces. In the new mount
  namespace it mounts ONE size-capped tmpfs for all the worker may write (worker/space.py: a copy
  of the workspace, /tmp and /dev/shm) and a new devpts instance, shows the
  read-only binds that sat in the zygote's /tmp (the worker runtime, ...) again, covers the folder
  of all workspaces with an empty read-only tmpfs and binds back only this worker's own workspace,
  binds a /etc/passwd and /etc/group naming this worker's uid, and brings the loopback up. It then
  waits for the init and reports its exit status on the status pipe.
- **init** (trusted, pid 1): dies with the monitor, mounts a fresh /proc for the new pid
  namespace (with /proc/sys, sysrq-trigger, irq and bus read-only, as bubblewrap does), forks the
  worker and exits with its status, which takes every other process of the namespace with it.
- **worker**: a new session, only its request pipe (0), output pipe (1, 2) and answer pipe (3),
  the rlimits, the scrubbed environment; then `boot.enter` drops to the dedicated uid with no
  capabilities and no_new_privs and checks it (as for a cold worker), a self-check confirms the
  namespaces and the view, and only then does `main` read the first request.

Killing a worker: the trusted side asks the zygote to SIGKILL the monitor (its own child, so the
pid cannot have been reused); the init's parent-death signal fires, and the kernel ends the whole
pid namespace. The trusted side then also kills every process left with the worker's uid.

Standard library only at import (torch and numpy are loaded by `serve` from the preload list).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import importlib
import io
import json
import os
import select
import signal
import socket
import struct
import sys

from . import space

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SETUP_FAILED = 71
ANSWER_FD = 3
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]


def _b(text):
    return None if text is None else os.fsencode(text)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


# ----------------------------------------------------------------------------- the server loop

def serve(control_fd: int, config_json: str) -> int:
    """Preload, say ready, then fork a worker per `spawn` request until the trusted side closes."""
    config = json.loads(config_json)
    for name in config.get("preload", []):
        try:
            importlib.import_module(name.lstrip("?"))
        except Exception:  # noqa: BLE001 - "?name": optional; anything else stops the zygote
            if not name.startswith("?"):
                raise
    if config.get("freeze", True):
        import gc

        gc.collect()
        gc.freeze()      # the preloaded objects: never scanned again, so forks share their pages
    sock = socket.socket(fileno=control_fd)
    children: dict[int, int] = {}
    threads = _threads()
    sock.send(json.dumps({"event": "ready", "pid": os.getpid(), "threads": threads}).encode())
    while True:
        readable, _, _ = select.select([sock], [], [], 0.5)
        _reap(children)
        if not readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
        except OSError:
            return 0
        if not data:
            return 0                                   # the trusted side closed the socket
        try:
            msg = json.loads(data)
            if msg.get("op") == "spawn":
                reply = _spawn(msg, fds, sock.fileno(), children)
            elif msg.get("op") == "kill":
                pid = children.get(msg.get("id"))
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                reply = {"id": msg.get("id"), "ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {msg.get('op')!r}"}
        except Exception as exc:  # noqa: BLE001 - a bad request must not end the server
            for fd in fds:
                _quiet_close(fd)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sock.send(json.dumps(reply).encode())


def _quiet_close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _reap(children: dict[int, int]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for key, value in list(children.items()):
            if value == pid:
                del children[key]


def _spawn(msg: dict, fds: list[int], control: int, children: dict[int, int]) -> dict:
    if len(fds) != 5:
        raise ValueError(f"spawn needs 5 file descriptors, got {len(fds)}")
    if _threads() != 1:     # fork copies one thread only: refuse rather than risk a held lock
        raise RuntimeError(f"the zygote has {_threads()} threads; it forks only when it has one")
    pid = os.fork()
    if pid == 0:
        code = SETUP_FAILED
        try:
            _monitor(msg, fds, os.getppid())
        except BaseException as exc:  # noqa: BLE001 - never return into the server loop
            try:
                os.write(2, f"grader zygote: worker setup failed: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    for fd in fds:
        _quiet_close(fd)
    children[msg["id"]] = pid
    return {"id": msg["id"], "ok": True}


# ----------------------------------------------------------------------------- monitor

def _monitor(msg: dict, fds: list[int], zygote: int) -> None:
    stdin_r, answers_w, out_w, status_w, ready_w = fds
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    _close_all_but({1, 2, stdin_r, answers_w, status_w, ready_w})
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:
        os._exit(SETUP_FAILED)                         # the zygote died before the line above
    try:
        _enter_namespaces(msg)
    except BaseException as exc:  # noqa: BLE001
        os.write(status_w, json.dumps({"exit": SETUP_FAILED, "error": str(exc)[:500]}).encode())
        raise
    lifeline_r, lifeline_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = SETUP_FAILED
        try:
            os.close(lifeline_w)
            os.close(status_w)
            code = _init(msg, lifeline_r, stdin_r, answers_w, ready_w)
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(2, f"grader zygote: worker setup failed: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    for fd in (lifeline_r, stdin_r, answers_w, ready_w):
        os.close(fd)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code           # killed by signal N: 128+N, as bubblewrap says
    os.write(status_w, json.dumps({"exit": code}).encode())
    os._exit(0)


def _enter_namespaces(msg: dict) -> None:
    """New namespaces and this worker's own view of the filesystem (see the module docstring)."""
    ws_root, workspace = msg["workspace_root"], msg["workspace"]
    if not (workspace.startswith(ws_root.rstrip("/") + "/") and ".." not in workspace.split("/")):
        raise ValueError("the workspace is not inside the workspace root")
    unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    try:
        unshare(CLONE_NEWCGROUP)                       # like bubblewrap's --unshare-cgroup-try
    except OSError:
        pass
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # What must stay visible inside the zygote's /tmp and /dev/shm, opened before they are covered.
    keep = []
    for point, readonly, is_dir in _mounts_inside(("/tmp", "/dev/shm")):
        if point == ws_root or point.startswith(ws_root.rstrip("/") + "/"):
            continue
        flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
        keep.append((point, os.open(point, flags), readonly, is_dir))
    src_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    # One size-capped tmpfs for all the worker may write (worker/space.py), made at /tmp first:
    # its ws/ gets a copy of the workspace, shm/ is bound at /dev/shm, then tmp/ over /tmp itself.
    space.make("/tmp", int(msg["space_bytes"]), msg.get("uid"))
    try:
        space.copy_tree(src_fd, "/tmp/ws", msg.get("uid"))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot copy the submission into the worker's "
                                 f"{int(msg['space_bytes']) / 2**20:g} MiB of space: {exc}") from None
    os.close(src_fd)
    ws_fd = os.open("/tmp/ws", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    mount("/tmp/shm", "/dev/shm", None, MS_BIND)
    mount("/tmp/tmp", "/tmp", None, MS_BIND)
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    for point, fd, readonly, is_dir in keep:
        _bind_fd(fd, point, readonly, is_dir)
    # Every workspace is under ws_root: cover it, then show this worker's own again.
    os.makedirs(ws_root, 0o755, exist_ok=True)
    mount("tmpfs", ws_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0755")
    _bind_fd(ws_fd, workspace, False, True)
    mount(None, ws_root, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for name, text in msg.get("identity", {}).items():
        staged = f"/tmp/.grader-{name}"
        with open(staged, "x") as fh:
            fh.write(text)
        os.chmod(staged, 0o644)
        fd = os.open(staged, os.O_PATH | os.O_CLOEXEC)
        _bind_fd(fd, f"/etc/{name}", True, False, create=False)
        os.unlink(staged)
    _loopback_up()


def _bind_fd(fd: int, target: str, readonly: bool, is_dir: bool, create: bool = True) -> None:
    if create:
        if is_dir:
            os.makedirs(target, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if not os.path.lexists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o444))
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if readonly else 0))
    os.close(fd)


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def _mounts_inside(tops) -> list[tuple[str, bool, bool]]:
    """Mounts directly on top of the topmost mount at each of `tops`: (point, readonly, is_dir)."""
    rows = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            rows.append((parts[0], parts[1], _unescape(parts[4]), parts[5].split(",")))
    top_ids = {}
    for mid, _, point, _ in rows:                      # later lines are mounted on top
        if point in tops:
            top_ids[point] = mid
    found = []
    for mid, parent, point, opts in rows:
        if parent in top_ids.values() and point not in tops:
            found.append((point, "ro" in opts, os.path.isdir(point) and not os.path.islink(point)))
    return found


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


# ----------------------------------------------------------------------------- init (pid 1)

def _init(msg: dict, lifeline_r: int, stdin_r: int, answers_w: int, ready_w: int) -> int:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([lifeline_r], [], [], 0)[0]:     # EOF: the monitor died before the line above
        return SETUP_FAILED
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    pid = os.fork()
    if pid == 0:
        code = SETUP_FAILED
        try:
            os.close(lifeline_r)
            code = _worker(msg, stdin_r, answers_w, ready_w)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - as a python process would: traceback, status 1
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
            os._exit(code)
    for fd in (stdin_r, answers_w, ready_w):
        os.close(fd)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    while True:                                        # reap orphans until the worker itself exits
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return SETUP_FAILED
        if wpid == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


# ----------------------------------------------------------------------------- the worker

def _worker(msg: dict, stdin_r: int, answers_w: int, ready_w: int) -> int:
    os.setsid()
    # move the pipes above the standard numbers first, so no dup2 below overwrites another
    stdin_r, answers_w, ready = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (stdin_r, answers_w, ready_w))
    os.dup2(stdin_r, 0)
    os.dup2(answers_w, ANSWER_FD)
    _close_all_but({0, 1, 2, ANSWER_FD, ready})
    import resource

    for res, soft, hard in msg["rlimits"]:
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(res, (soft, hard))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(msg["env"])
    sys.argv = ["-c", str(ANSWER_FD)]
    from .boot import _fail, enter

    enter(msg.get("uid"), msg.get("gid"), bool(msg.get("strict")), msg["workspace"], msg.get("seccomp"))
    why = _self_check(msg)
    if why:
        _fail(why)
    if "numpy" in sys.modules:         # a fresh process draws a fresh seed; so does each worker
        sys.modules["numpy"].random.seed()
    # Unbuffered output, as `python -u` gives a cold worker: what the student's code prints reaches
    # the trusted side even when the worker is killed a moment later (a timeout, a limit).
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True,
                                  errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                  errors="backslashreplace")
    os.write(ready, b"k")
    os.close(ready)
    from .main import main

    return main([str(ANSWER_FD)])


def _self_check(msg: dict) -> str | None:
    """Fail closed unless the namespaces and the view are what `_enter_namespaces` made."""
    if os.getpid() != 2 or os.getppid() != 1:
        return f"not in its own pid namespace (pid {os.getpid()}, parent {os.getppid()})"
    pids = {p for p in os.listdir("/proc") if p.isdigit()}
    if not pids <= {"1", "2"}:
        return f"/proc shows other processes: {sorted(pids)[:5]}"
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        return f"network interfaces {names}, expected only lo"
    ws_root, workspace = msg["workspace_root"].rstrip("/"), msg["workspace"]
    first = workspace[len(ws_root) + 1:].split("/")[0]
    try:
        listing = os.listdir(ws_root)
    except OSError as exc:
        if exc.errno != errno.EACCES:
            return f"cannot list the workspace root: {exc}"
        listing = [first]
    if listing != [first]:
        return "other workspaces are visible"
    return None
