"""The warm engine's check server (trusted side): pytest imported once, a fresh fork per submission.

Started by `grader.sandbox.engine.CheckServer` as `python -c <this file>` in the checks folder, with the
environment a cold `python -m pytest` run would get, so that `sys.path` and every import resolve
exactly as in the cold path. It imports pytest, its plugins and the checks' dependencies, collects
the checks once (importing them as pytest does, nothing run), then for
each request (JSON + one pipe, over a socket only the grader holds) forks a child that sets
GRADER_RUN, sends its output to the run's `checks.log`, arms an alarm for the time limit, runs
`pytest.main(args)` with the cold path's arguments, writes its exit status to the pipe and exits.
Nothing persists from one submission to the next: every child starts from the server's state.

Standard library only at import; this file is run, not imported, by the server process.
"""
import importlib
import json
import os
import select
import signal
import socket
import sys


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(msg: dict, done: int, control: int, server: int) -> None:
    code = 3
    try:
        os.close(control)
        # a grader killed outright (SIGKILL) closes the server's socket, the server exits, and
        # this check run goes with it rather than finishing for nobody
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)     # PR_SET_PDEATHSIG
        if os.getppid() != server:
            os._exit(code)
        fd = os.open(msg["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, int(msg["timeout"])))
        os.environ.update(msg["env"])
        os.chdir(msg["cwd"])
        sys.path.insert(0, msg["cwd"])            # as `python -m pytest` run in cwd does
        import pytest

        code = int(pytest.main(msg["args"]))
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(done, json.dumps({"exit": code}).encode())
        except Exception:  # noqa: BLE001
            pass
        os._exit(code)


def serve(fd: int, preload: list, collect: list) -> int:
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional plugin is imported by no one
            pass
    if collect:
        # Collect every check once, so the check modules (assertion-rewritten by pytest, exactly
        # as a cold run imports them) are in memory; each child's own pytest run reuses them.
        # Nothing runs: no fixture, no test, no GRADER_RUN.
        import pytest

        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *collect])
        except BaseException:  # noqa: BLE001 - then each child imports them itself
            pass
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(devnull)
    sock = socket.socket(fileno=fd)
    sock.send(json.dumps({"event": "ready", "pid": os.getpid()}).encode())
    while True:
        readable, _, _ = select.select([sock], [], [], 0.5)
        _reap()
        if not readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
        except OSError:
            return 0
        if not data:
            return 0
        msg = json.loads(data)
        if len(fds) != 1:
            for extra in fds:
                os.close(extra)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(msg, fds[0], sock.fileno(), server)
        os.close(fds[0])
        sock.send(json.dumps({"pid": pid}).encode())


if __name__ == "__checkserver__":
    sys.exit(serve(int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])))
