"""The first thing a sandboxed worker runs, before any student code: give up every privilege.

Under the root sandbox (bubblewrap started by root, no user namespace) the worker starts as uid 0
holding only CAP_SETUID, CAP_SETGID and CAP_SETPCAP, inside its own mount/pid/net namespaces. `enter`
empties the capability bounding set, switches to the dedicated unprivileged uid/gid the launcher
chose (no supplementary groups), which clears every remaining capability, and sets no_new_privs so
no setuid binary or file capability can give any back. It then checks that this is so, and exits
with status 70 if not: a worker that could not drop its privileges never runs student code.

In the other modes (a user namespace, or the basic fallback) there is no uid to switch to; `enter`
only sets no_new_privs.

Last, `enter` installs the seccomp filter the trusted side compiled (grader/sandbox/seccomp.py; classic
BPF bytes in a file of the runtime copy): from then on this process and everything it starts get
EPERM for namespaces, mounts, ptrace, key rings, BPF, perf, userfaultfd, modules, kexec, io_uring
and personality changes. Under `strict` a filter that cannot be installed, or a process with more
than one thread (the others would stay unfiltered), refuses to run student code.
Standard library only: this file is part of the copied worker runtime.
"""
from __future__ import annotations

import ctypes
import os
import sys

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
FAILED = 70


def _fail(why: str) -> None:
    sys.stderr.write(f"grader sandbox: refusing to run student code: {why}\n")
    sys.stderr.flush()
    os._exit(FAILED)


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _status(field: str) -> str:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _clear_inheritable(libc) -> None:
    """Empty the inheritable set (bubblewrap puts the caps it was asked to keep there too)."""
    capget, capset = getattr(libc, "capget", None), getattr(libc, "capset", None)
    if capget is None or capset is None:
        return
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()   # _LINUX_CAPABILITY_VERSION_3
    if capget(ctypes.byref(header), data) == 0:
        for half in data:
            half.inheritable = 0
        capset(ctypes.byref(header), data)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter(libc, program: bytes) -> str | None:
    """Install a classic BPF seccomp program (8 bytes per instruction); None, or why it failed."""
    if libc is None or getattr(libc, "prctl", None) is None:
        return "prctl is unavailable"
    if not program or len(program) % 8:
        return f"the filter is {len(program)} bytes, not a BPF program"
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return f"prctl(PR_SET_SECCOMP): {os.strerror(ctypes.get_errno())}"
    return None


def _seccomp(libc, path: str, strict: bool) -> None:
    try:
        with open(path, "rb") as fh:
            program = fh.read()
    except OSError as exc:
        program, why = b"", f"cannot read the seccomp filter: {exc}"
    else:
        threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
        why = (f"{threads} threads (the others would run unfiltered)" if threads != 1 else
               install_filter(libc, program))
    if why is None and strict and _status("Seccomp") != "2":
        why = f"Seccomp is {_status('Seccomp') or 'unknown'} after installing, expected 2 (filter)"
    if why is not None and strict:
        _fail(f"seccomp: {why}")


def enter(uid: int | None = None, gid: int | None = None, strict: bool = False,
          cwd: str | None = None, seccomp: str | None = None) -> None:
    """Drop to uid/gid (when given), set no_new_privs, enter `cwd` (which may be readable by the
    worker's uid alone), then install the seccomp filter in the file `seccomp` (when given); with
    strict, fail closed on any doubt."""
    libc = _libc()
    prctl = getattr(libc, "prctl", None) if libc is not None else None
    if uid is not None:
        if prctl is None:
            _fail("prctl is unavailable")
        for cap in range(64):          # empty the bounding set (EINVAL past the kernel's last cap)
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        _clear_inheritable(libc)
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        except OSError as exc:
            _fail(f"could not switch to uid {uid}: {exc}")
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
            _fail("the uid/gid switch did not take")
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)   # own /proc/self files, as any normal process does
    if prctl is not None and prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 and strict:
        _fail("could not set no_new_privs")
    if strict:
        if prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
            _fail("no_new_privs is not set")
        for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            value = _status(field)
            if not value or int(value, 16) != 0:
                _fail(f"{field} is {value or 'unknown'}, expected no capabilities")
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            _fail(f"cannot enter the workspace: {exc}")
    if seccomp is not None:
        _seccomp(libc, seccomp, strict)
