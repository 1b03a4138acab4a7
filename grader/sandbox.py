"""Launch the worker as an isolated process: its own session, rlimits, a scrubbed environment, and
only the worker runtime plus the student's workspace to run from.

`Sandbox.launch` returns a `WorkerProcess` with the request pipe (its stdin), the answer pipe (a
file descriptor only the trusted side reads), and capped stdout/stderr. Killing it kills its whole
process group.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

RUNTIME_PACKAGE = "graderworker"


@dataclass
class Limits:
    probe_s: float = 120.0              # wall clock per probe (a plan may ask for more per probe)
    submission_s: float = 900.0         # wall clock for all of a submission's probes
    cpu_s: int = 1800
    memory_bytes: int = 6 << 30         # address space: torch maps a lot, so keep this generous
    processes: int = 256
    open_files: int = 512
    file_bytes: int = 512 << 20
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
    def __init__(self, popen: subprocess.Popen, answers, output: CappedOutput):
        self.popen, self.answers, self.output = popen, answers, output

    @property
    def stdin(self):
        return self.popen.stdin

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started (its own process group)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.popen.stdin, self.answers):
            try:
                stream.close()
            except OSError:
                pass


def runtime_dir() -> Path:
    """A private copy of the worker runtime (grader/worker), the only grader code the worker sees."""
    global _RUNTIME
    if _RUNTIME is None or not _RUNTIME.exists():
        root = Path(tempfile.mkdtemp(prefix="grader-runtime-"))
        src = Path(__file__).resolve().parent / "worker"
        shutil.copytree(src, root / RUNTIME_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(root, 0o755)
        _RUNTIME = root
    return _RUNTIME


_RUNTIME: Path | None = None


class Sandbox:
    """The process launcher. This basic one gives: own session, rlimits, scrubbed env, `python -I`."""

    description = "separate process: own session, rlimits, scrubbed environment"

    def __init__(self, limits: Limits | None = None, threads: int = 1):
        self.limits = limits or Limits()
        self.threads = threads

    def env(self, workspace: Path) -> dict[str, str]:
        # Nothing of the grader's environment leaks: no tokens, no paths to gold or to the course.
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workspace),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "CUDA_VISIBLE_DEVICES": os.environ.get("GRADER_WORKER_GPU", ""),
        }

    def _rlimits(self):
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_s, lim.cpu_s))
        resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def argv(self, answer_fd: int) -> list[str]:
        boot = (f"import sys; sys.path.insert(0, {str(runtime_dir())!r}); "
                f"from {RUNTIME_PACKAGE}.main import main; sys.exit(main())")
        return [sys.executable, "-I", "-c", boot, str(answer_fd)]

    def launch(self, workspace: Path) -> WorkerProcess:
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                self.argv(write_fd), cwd=workspace, env=self.env(workspace),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True, preexec_fn=self._rlimits)
        finally:
            os.close(write_fd)
        output = CappedOutput(popen.stdout, self.limits.output_bytes)
        return WorkerProcess(popen, os.fdopen(read_fd, "rb", buffering=0), output)
