"""The worker's loop: read a request, run the probe on the student's modules, write the answer.

Requests arrive on stdin; answers leave on the file descriptor named on the command line. Anything
the student's code prints goes to stdout/stderr, which the trusted side keeps (capped) but never
parses. The trusted side owns the timeouts: a probe that hangs is killed from outside.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from . import protocol
from .loader import StudentError, describe, load_module

MAX_REQUEST_BYTES = 1 << 31


class Context:
    """What a probe may use: the student's modules, loaded lazily and once."""

    def __init__(self, workspace: Path, modules: dict[str, str]):
        self.workspace = workspace
        self.paths = {role: workspace / name for role, name in modules.items()}
        self._loaded: dict = {}
        self.on_loaded = lambda: None

    def module(self, role: str):
        if role not in self._loaded:
            if role not in self.paths:
                raise StudentError(f"no {role} file was found in the submission")
            try:
                self._loaded[role] = load_module(role, self.paths[role])
            except StudentError as exc:
                self._loaded[role] = exc
        loaded = self._loaded[role]
        if isinstance(loaded, StudentError):
            raise loaded
        self.on_loaded()
        return loaded


def deterministic(torch) -> None:
    """Run-to-run determinism on a GPU (see grader/devices.py); the CPU needs only one thread and
    the probes' seeds. Must run before CUDA is first used."""
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    answer_fd = int(argv[0])
    answers = os.fdopen(answer_fd, "wb", buffering=0)
    requests = os.fdopen(0, "rb", buffering=0)
    hello, _ = protocol.read_frame(requests, MAX_REQUEST_BYTES)
    import torch  # imported before student code, so a student cannot shadow it from the workspace

    torch.set_num_threads(int(hello.get("threads", 1)))
    deterministic(torch)
    workspace = Path(hello["workspace"])
    sys.path.insert(0, str(workspace))
    from . import compat                        # removed library APIs restored, before student code
    compat.install([workspace], threads=int(hello.get("threads", 1)))
    from .script import PROBES as generic      # script probes, for every assignment
    probes = {**generic, **importlib.import_module(f"{__package__}.{hello['assignment']}").PROBES}
    ctx = Context(workspace, hello.get("modules", {}))
    protocol.write_frame(answers, {"event": "ready", "nonce": hello.get("nonce")})
    while True:
        try:
            header, arrays = protocol.read_frame(requests, MAX_REQUEST_BYTES)
        except EOFError:
            return 0
        nonce = header.get("nonce")
        ctx.on_loaded = lambda: protocol.write_frame(answers, {"event": "loaded", "nonce": nonce})
        started = time.perf_counter()
        try:
            out, meta = probes[header["probe"]](ctx, header.get("args", {}), arrays)
            reply = {"nonce": nonce, "ok": True, "meta": meta}
        except StudentError as exc:
            out, reply = None, {"nonce": nonce, "ok": False, "error": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from student code too
            out, reply = None, {"nonce": nonce, "ok": False, "error": describe(exc, workspace)}
        shims = compat.drain()
        if shims:                                   # what the grader did for this probe, for the feedback
            meta = reply.get("meta") if isinstance(reply.get("meta"), dict) else {}
            reply["meta"] = {**meta, "notes": list(meta.get("notes", [])) + shims}
        reply["seconds"] = round(time.perf_counter() - started, 4)
        protocol.write_frame(answers, reply, out)


if __name__ == "__main__":
    sys.exit(main())
