"""The worker's seccomp filter (trusted side): what system calls student code may not make.

A grading worker imports torch and numpy, trains small models, starts threads and a few
subprocesses (a DataLoader's workers, `subprocess.run`), and writes files. It never needs to
create namespaces, mount anything, trace or read another process's memory, use the kernel's key
rings, load BPF programs or kernel modules, open perf counters, hand page faults to user space,
change its execution domain, or drive io_uring. Those calls are most of the kernel surface that
container escapes of recent years went through (a user namespace first, then a bug reachable
only with the capabilities it gives), so the filter refuses them.

Refused calls fail with EPERM: the student's code sees `PermissionError` (or a -1/errno from C), as
on any locked-down host, and code that probes for a feature carries on; nothing is killed.
`clone3` passes its flags in memory, where a filter cannot read them, so it fails with ENOSYS:
glibc (threads, `posix_spawn`) then falls back to `clone`, whose flags the filter does check.
Other architectures' system calls (i386 `int 0x80`, x32) kill the thread (libseccomp's default
for a foreign architecture): no honest Python program makes them.

The program is compiled once per grader process by libseccomp (through `pyseccomp`, a ctypes
binding of the system's libseccomp.so.2) and exported as classic BPF bytes; the worker runtime
installs those bytes with `prctl(PR_SET_SECCOMP)` after its own setup (`boot.enter`), before any
student code runs. No BPF is written by hand here.
"""
from __future__ import annotations

import errno
import io
import os
import threading

# Namespace flags shared by clone(2) and unshare(2).
CLONE_NEW = {"CLONE_NEWTIME": 0x00000080, "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000,
             "CLONE_NEWUTS": 0x04000000, "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000,
             "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000}

# Refused outright with EPERM, grouped by why a grading worker never needs them.
DENIED = {
    "namespaces": ["setns"],
    "mounts": ["mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
               "fsmount", "fspick", "mount_setattr", "chroot"],
    "other processes": ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"],
    "key rings": ["keyctl", "add_key", "request_key"],
    "kernel programs": ["bpf", "perf_event_open", "userfaultfd", "init_module", "finit_module",
                        "delete_module", "kexec_load", "kexec_file_load"],
    "io_uring": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
    "host administration": ["reboot", "swapon", "swapoff", "syslog", "acct", "quotactl",
                            "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
                            "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
                            "sethostname", "setdomainname", "vhangup", "lookup_dcookie",
                            "fanotify_init", "nfsservctl", "uselib"],
}
# personality(2): querying (0xffffffff) and asking for plain Linux (0) are allowed (some runtimes
# do that at start); any other execution domain or flag (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE) is not.


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python binding) is missing: no filter can be built here."""


_LOCK = threading.Lock()
_BUILT: dict = {}


def _compile() -> bytes:
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:    # OSError: the binding found no libseccomp.so.2
        raise SeccompUnavailable(f"pyseccomp / libseccomp is not usable: {exc}") from None
    eperm = sc.ERRNO(errno.EPERM)
    filt = sc.SyscallFilter(defaction=sc.ALLOW)
    names = [name for group in DENIED.values() for name in group]
    for name in names:
        try:
            filt.add_rule(eperm, name)
        except (ValueError, OSError, RuntimeError):
            continue            # a call this architecture (or this libseccomp) does not know
    for flag in CLONE_NEW.values():   # any namespace flag set: one rule per bit (masked equality)
        filt.add_rule(eperm, "unshare", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        filt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # personality: refuse unless the (32-bit) argument is all zeros or all ones. A rule holds one
    # condition per argument, so say "not all bits alike" as "some two neighbouring bits differ"
    # (32 pairs, each order); the kernel reads only the low 32 bits, and so does each mask.
    for k in range(32):
        a, b = 1 << k, 1 << ((k + 1) % 32)
        for datum in (a, b):
            filt.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, a | b, datum))
    # export_bpf writes to a file descriptor: a pipe would do, a memory file is simplest
    fd = os.memfd_create("grader-seccomp", os.MFD_CLOEXEC)
    with io.FileIO(fd, "r+") as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        program = fh.read()
    if not program or len(program) % 8:
        raise SeccompUnavailable(f"libseccomp exported {len(program)} bytes, not a BPF program")
    return program


def program() -> bytes:
    """The filter as classic BPF (8 bytes per instruction), compiled once per process."""
    with _LOCK:
        if "bpf" not in _BUILT:
            try:
                _BUILT["bpf"] = _compile()
            except SeccompUnavailable as exc:
                _BUILT["bpf"], _BUILT["why"] = None, str(exc)
        if _BUILT["bpf"] is None:
            raise SeccompUnavailable(_BUILT["why"])
        return _BUILT["bpf"]


def available() -> tuple[bool, str]:
    try:
        program()
        return True, ""
    except SeccompUnavailable as exc:
        return False, str(exc)


def describe() -> str:
    """One line for the sandbox's description."""
    ok, why = available()
    if not ok:
        return f"no seccomp filter ({why})"
    groups = ", ".join(["creating namespaces (unshare/clone with CLONE_NEW*, setns)"] + list(DENIED)[1:]
                       + ["personality changes"])
    return f"seccomp filter: EPERM for {groups}; ENOSYS for clone3"
