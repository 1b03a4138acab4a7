"""Probe results that cannot change are not recomputed: a cache on the trusted side, keyed by content.

**The rule.** A worker's answer to a request depends on: the files in the submission's workspace
(the student's code can import or read any of them), which file plays which role, the assignment,
the worker runtime's code, the torch/numpy versions and the machine type, the sandbox's limits,
threads and GPU, and, because a worker serves a submission's requests one after another in one
process, *every request that worker was sent before* (a student's code can keep state between
probes, or write files into its workspace). So the key of a request is a hash chain:

    base = sha256(workspace contents, roles, assignment, runtime, versions, sandbox settings)
    key_1 = sha256(base, request_1),  key_i = sha256(key_{i-1}, request_i)

where a request is the probe name, its role, its arguments, its timeout and the sha256 of every
input array. The workspace is hashed before any worker starts (student code can change it later).
Only answers that are a pure function of that chain are stored: a well-formed answer (ok, or an
error the student's code raised) from a worker that was not stopped. A timeout, a crash, a killed
or replaced worker, a malformed answer, a memory error or a grader fault is never stored, and the
chain stops there: nothing after it in that submission is stored or looked up.

On a lookup hit the request is not sent. At the first miss after hits, the hit requests are
replayed to the worker (answers discarded) so it is in the state the chain describes; a re-grade of
an unchanged submission, or a byte-identical copy of one, runs no worker at all. The time a cached
answer took originally still counts against the submission's time limit.

Nothing finer is used: a probe that needs only `process()` still depends on everything the module
runs at import (monkey-patching numpy, reading its own source, state shared with other
functions), so "the same function source" is not enough to prove the same answer. Entries live
under `$GRADER_CACHE/probes` (hidden from every worker like the rest of the cache), are read back
as hostile data (no pickle, numeric dtypes only), and are pruned to a size bound, oldest first.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..records import ProbeResult
from ..pack import worker_digest
from ..worker.protocol import ALLOWED_KINDS

VERSION = "1"
DEFAULT_MAX_BYTES = 2 << 30
_RUNTIME: str | None = None


def default_root() -> Path:
    env = os.environ.get("GRADER_PROBE_CACHE")
    if env:
        return Path(env)
    cache = os.environ.get("GRADER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dl-grader")
    return Path(cache) / "probes"


def runtime_digest() -> str:
    global _RUNTIME
    if _RUNTIME is None:
        h = hashlib.sha256()
        for path in sorted((Path(__file__).resolve().parent.parent / "worker").glob("*.py")):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _RUNTIME = h.hexdigest()
    return _RUNTIME


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def workspace_digest(workspace: Path) -> str:
    """Names, kinds and contents of everything in the workspace (symlinks are not followed)."""
    h = hashlib.sha256()
    root = Path(workspace)
    for top, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        rel = os.path.relpath(top, root)
        h.update(f"d {rel}\0".encode("utf-8", "surrogateescape"))
        for name in sorted(files):
            path = os.path.join(top, name)
            h.update(f"f {os.path.join(rel, name)}\0".encode("utf-8", "surrogateescape"))
            if os.path.islink(path):
                h.update(b"link " + os.fsencode(os.readlink(path)) + b"\0")
                continue
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


def request_digest(spec) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"probe": spec.probe, "role": spec.role, "args": spec.args,
                         "timeout": spec.timeout}, sort_keys=True, default=str).encode())
    for name in sorted(spec.arrays):
        arr = np.ascontiguousarray(spec.arrays[name])
        h.update(f"\0{name}:{arr.dtype.str}:{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class ProbeCache:
    def __init__(self, root: Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root else default_root()
        env_max = os.environ.get("GRADER_PROBE_CACHE_MAX")
        self.max_bytes = max_bytes or (int(env_max) if env_max else DEFAULT_MAX_BYTES)
        self.hits = self.misses = self.stored = 0

    def chain(self, workspace: Path, modules: dict[str, str], assignment: str, sandbox) -> "Chain":
        limits = asdict(sandbox.limits) if hasattr(sandbox, "limits") else {}
        base = {"v": VERSION, "workspace": workspace_digest(workspace), "modules": modules,
                "assignment": assignment, "runtime": runtime_digest(), "torch": _version("torch"),
                "pack_probes": worker_digest(assignment),
                "numpy": _version("numpy"), "machine": platform.machine(), "limits": limits,
                "threads": getattr(sandbox, "threads", None), "gpu": getattr(sandbox, "gpu", None),
                "mode": getattr(sandbox, "mode", None)}
        key = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()
        return Chain(self, key)

    # -- storage -----------------------------------------------------------------------------------
    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.npz"

    def load(self, key: str) -> ProbeResult | None:
        head_path, arrays_path = self._paths(key)
        try:
            head = json.loads(head_path.read_text())
            arrays = {}
            if head.get("arrays"):
                with np.load(arrays_path, allow_pickle=False) as npz:
                    arrays = {name: npz[name] for name in npz.files}
                if sorted(arrays) != sorted(head["arrays"]) or any(
                        type(a) is not np.ndarray or a.dtype.kind not in ALLOWED_KINDS for a in arrays.values()):
                    return None
            result = ProbeResult(head["key"], bool(head["ok"]), arrays, dict(head.get("meta") or {}),
                                 head.get("error"), "student", float(head.get("seconds", 0.0)), cached=True)
            os.utime(head_path)                       # recently used: pruned last
            return result
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, result: ProbeResult) -> None:
        head_path, arrays_path = self._paths(key)
        try:
            head_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if result.arrays:
                from .store import save_arrays

                fd, tmp_name = tempfile.mkstemp(dir=head_path.parent, suffix=".tmp")
                os.close(fd)                          # save_arrays writes by name: keep no descriptor
                tmp = Path(tmp_name)                  # (the 1000-student soak found one leaked per entry)
                save_arrays(tmp, result.arrays)
                os.replace(tmp, arrays_path)
            head = {"key": result.key, "ok": result.ok, "meta": result.meta, "error": result.error,
                    "seconds": round(float(result.seconds or 0.0), 3), "arrays": sorted(result.arrays)}
            fd, tmp_name = tempfile.mkstemp(dir=head_path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(head, fh)
            os.replace(tmp_name, head_path)
            self.stored += 1
        except (OSError, TypeError, ValueError):
            pass                                      # a cache that cannot write is only slower

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0

    def prune(self) -> int:
        """Delete the least recently used entries until the cache is under 80% of its bound."""
        if not self.root.exists():
            return 0
        entries, total = [], 0
        for head in self.root.glob("*/*.json"):
            try:
                size = head.stat().st_size
                npz = head.with_suffix(".npz")
                size += npz.stat().st_size if npz.exists() else 0
                entries.append((head.stat().st_mtime, head, size))
                total += size
            except OSError:
                continue
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, head, size in sorted(entries):
            if total <= 0.8 * self.max_bytes:
                break
            for path in (head, head.with_suffix(".npz")):
                try:
                    path.unlink()
                except OSError:
                    pass
            total -= size
            removed += 1
        return removed


class Chain:
    """The hash chain of one submission's requests (see the module docstring)."""

    def __init__(self, cache: ProbeCache, base: str):
        self.cache, self.key, self.live = cache, base, True

    def next_key(self, spec) -> str:
        return hashlib.sha256(f"{self.key}\0{request_digest(spec)}".encode()).hexdigest()

    def lookup(self, spec) -> ProbeResult | None:
        if not self.live:
            return None
        key = self.next_key(spec)
        result = self.cache.load(key)
        if result is None or result.key != spec.key:
            self.cache.misses += 1
            return None
        self.cache.hits += 1
        self.key = key
        return result

    def record(self, spec, result: ProbeResult, clean: bool) -> None:
        """After a request really ran: store a clean answer and move on, or stop the chain."""
        if not self.live:
            return
        if not clean or result.fault != "student":
            self.live = False
            return
        self.key = self.next_key(spec)
        self.cache.store(self.key, result)
