"""The worker's writable places on one size-capped filesystem (trusted code, run as root).

A worker may write in three places: its workspace, /tmp and /dev/shm. All three are folders of ONE
tmpfs of `size` bytes made for that worker alone (`make`): `ws/` holds a copy of the student's
prepared files (the submission's own bytes count against the cap too), `tmp/` and `shm/` start
empty. The launcher binds them at the workspace's own path, /tmp and /dev/shm. So a worker can
write at most `size` bytes in all, gets ENOSPC ("No space left on device") past it, and never
writes to the host's disk; its writes vanish with its mount namespace, and the host's copy of the
workspace is never changed by student code.

Used two ways:
- cold workers: `python -I -S space.py CONFIG -- bwrap ...` (sandbox.py) unshares a private mount
  namespace, mounts the tmpfs on an empty folder of the launcher's state folder, fills it, and
  execs bubblewrap there (bubblewrap's binds then come from the new tmpfs);
- forked workers: the zygote's monitor (zygote.py) calls `make` and `copy_tree` in the worker's
  new mount namespace.
Standard library only: this file is part of the copied worker runtime.
"""
from __future__ import annotations

import ctypes
import json
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18
COPY_FAILED = 72

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda t: None if t is None else os.fsencode(t))
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def make(point: str, size: int, uid: int | None) -> None:
    """Mount the worker's tmpfs of `size` bytes at `point` and make its ws/, tmp/ and shm/
    (`copy_tree` gives ws/ to the worker's uid once it is filled)."""
    _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(size)},mode=0755")
    for name, mode in (("tmp", 0o1777), ("shm", 0o1777), ("ws", 0o700)):
        os.mkdir(os.path.join(point, name))
        os.chmod(os.path.join(point, name), mode)


def copy_tree(src_fd: int, dest: str, uid: int | None) -> int:
    """Copy the folder open at `src_fd` into `dest` (an existing folder), never following a link;
    everything, `dest` included, is then owned by `uid` (when given; folders last, deepest first,
    as the copier may hold no capability to write in a folder it no longer owns). Returns the
    bytes copied."""
    total, folders = 0, [dest]
    for top, dirs, files, top_fd in os.fwalk(".", dir_fd=src_fd, follow_symlinks=False):
        out_dir = os.path.normpath(os.path.join(dest, top))
        for name in dirs:
            st = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            target = os.path.join(out_dir, name)
            if stat.S_ISLNK(st.st_mode):       # fwalk lists links to folders among the folders
                os.symlink(os.readlink(name, dir_fd=top_fd), target)
            else:
                os.mkdir(target, stat.S_IMODE(st.st_mode) | 0o700)
                folders.append(target)
                continue
            _own(target, uid)
        for name in files:
            st = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            target = os.path.join(out_dir, name)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=top_fd), target)
            elif stat.S_ISREG(st.st_mode):
                total += _copy_file(name, top_fd, target, stat.S_IMODE(st.st_mode))
            else:
                continue                        # no devices, fifos or sockets in a workspace
            _own(target, uid)
    for folder in reversed(folders):
        _own(folder, uid)
    return total


def _copy_file(name: str, dir_fd: int, target: str, mode: int) -> int:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      mode | 0o600)
        try:
            copied = 0
            while True:
                chunk = os.read(src, 1 << 20)
                if not chunk:
                    return copied
                view = memoryview(chunk)
                while view:
                    n = os.write(dst, view)
                    view, copied = view[n:], copied + n
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _own(path: str, uid: int | None) -> None:
    if uid is not None:
        os.lchown(path, uid, uid)


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def main(argv: list[str]) -> None:
    """Cold launch: CONFIG -- COMMAND...; make the space in a private mount namespace, exec COMMAND."""
    cfg = json.loads(argv[0])
    command = argv[argv.index("--") + 1:]
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)   # nothing mounted here reaches the host
    point, size = cfg["point"], int(cfg["size"])
    make(point, size, cfg.get("uid"))
    src = os.open(cfg["workspace"], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        copy_tree(src, os.path.join(point, "ws"), cfg.get("uid"))
    except OSError as exc:
        sys.stderr.write(f"grader sandbox: cannot copy the submission into the worker's "
                         f"{_mib(size)} of space: {exc}\n")
        sys.stderr.flush()
        os._exit(COPY_FAILED)
    os.close(src)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
