"""Gold outputs: the reference solution graded through the same probes, in record mode.

A gold folder holds the probe inputs (`inputs.npz`/`inputs.json`), the reference's answers
(`outputs/`), values derived from them (`derived.npz`/`derived.json`) and a `manifest.json` of
sha256 hashes. It is cached under a key made of the reference source, the rubric's plan and
inputs code, the worker runtime, the profile, the data and the library versions, so a change to
any of them rebuilds it, and two builds on one machine give identical manifests.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .probes import store
from .probes.client import ProbeSpec, run_plan
from .records import ProbeResult
from .sandbox.launcher import Sandbox

PROJECT = Path(__file__).resolve().parent.parent


class GoldError(Exception):
    """The reference failed a probe or gold is inconsistent: a staff problem, never a student's."""


@dataclass
class Inputs:
    arrays: dict
    meta: dict


class LazyResults(dict):
    """Gold answers read from disk on first use (a check reads a handful of the hundred files).
    A key is looked up by its file name, so nothing is listed until keys() or items() is asked
    (listing reads every file, which every checks run and every student paid for before)."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder
        self._all: set[str] | None = None

    def _head_key(self, key) -> bool:
        path = self.folder / f"{store.filename(key)}.json" if isinstance(key, str) else None
        try:
            return path is not None and json.loads(path.read_text()).get("key") == key
        except (OSError, ValueError, AttributeError):
            return False

    def __missing__(self, key):
        if not self._head_key(key):
            raise KeyError(key)
        self[key] = store.load_result(self.folder, key)
        return self[key]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return dict.__contains__(self, key) or self._head_key(key)

    @property
    def _keys(self) -> set[str]:
        if self._all is None:
            self._all = ({json.loads(p.read_text())["key"] for p in self.folder.glob("*.json")}
                         if self.folder.exists() else set())
        return self._all

    def keys(self):
        return set(self._keys)

    def items(self):
        return [(k, self[k]) for k in sorted(self._keys)]

    def values(self):
        return [self[k] for k in sorted(self._keys)]

    def __iter__(self):
        return iter(sorted(self._keys))

    def __len__(self):
        return len(self._keys)


@dataclass
class Gold:
    root: Path
    inputs: Inputs
    outputs: dict[str, ProbeResult]
    derived: dict = field(default_factory=dict)
    derived_meta: dict = field(default_factory=dict)


def cache_root() -> Path:
    return Path(os.environ.get("GRADER_CACHE") or Path.home() / ".cache" / "dl-grader")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_files(data: Path | None) -> list[Path]:
    if data is None:
        return []
    # at any depth: a pack may read a folder of the data (e.g. images/)
    return sorted(p for p in data.rglob("*") if p.is_file())


def cache_key(rubric, profile: dict, data: Path | None) -> str:
    h = hashlib.sha256()
    pack = rubric.pack
    sources = pack.source_files()
    worker = Path(__file__).resolve().parent / "worker"
    sources += [(f"grader/worker/{p.name}", p) for p in sorted(worker.glob("*.py"))]
    for name, path in sources:
        h.update(f"{name}:{_sha(path)}\n".encode())
    h.update(json.dumps(profile, sort_keys=True).encode())
    for path in data_files(data):
        h.update(f"{path.relative_to(data).as_posix()}:{path.stat().st_size}:{int(path.stat().st_mtime)}\n".encode())
    h.update(f"torch {_torch_version()} numpy {np.__version__} {platform.machine()}".encode())
    return h.hexdigest()


def _torch_version() -> str:
    # From the installed distribution's metadata (the same string as torch.__version__ for the
    # wheels), so that neither the trusted checks nor the grader pay 1-2 s for importing torch.
    import importlib.metadata

    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        import torch

        return torch.__version__


def default_dir(rubric, profile: dict, data: Path | None) -> Path:
    key = cache_key(rubric, profile, data)
    return cache_root() / "gold" / rubric.assignment / f"{profile['name']}-{key[:16]}"


def gold_specs(rubric, profile: dict, inputs: Inputs, groups=None) -> list[ProbeSpec]:
    plan = rubric.plan_module()
    names = groups or sorted({g for item in rubric.auto_items() for g in item.probes})
    specs = []
    for name in names:
        specs += plan.GROUPS[name](profile, inputs, for_gold=True)
    return specs


def build(rubric, profile: dict, data: Path | None, out: Path, sandbox: Sandbox | None = None,
          replace: bool = True) -> Gold:
    """Run the reference through every probe and write a gold folder at `out` (atomically).

    With replace=False an `out` that appeared meanwhile (another process built the same gold
    into the cache) wins, and this build is discarded."""
    from .intake.unpack import load_submission

    pack = rubric.pack
    if pack.reference is None:
        raise GoldError(f"the {pack.name} pack has no reference solution to build gold from")
    arrays, meta = pack.inputs_module().make_inputs(rubric, profile, data)
    inputs = Inputs(arrays, meta)
    specs = gold_specs(rubric, profile, inputs)
    with tempfile.TemporaryDirectory(prefix="grader-gold-") as tmp:
        sub = load_submission(pack.reference, Path(tmp) / "ws", student="reference",
                              assignment=rubric.assignment)
        if sub.error:
            raise GoldError(f"the reference could not be taken in: {sub.error}")
        sandbox = sandbox or Sandbox(_limits(profile))
        outputs = run_plan(specs, sub.workspace, sub.modules, rubric.assignment, sandbox)
    failed = {k: r.error for k, r in outputs.items() if not r.ok}
    if failed:
        raise GoldError(f"the reference failed {len(failed)} probes: {failed}")
    derived, derived_meta = pack.derive(inputs, outputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gold-", dir=out.parent))
    store.save_arrays(staging / "inputs.npz", arrays)
    _write_json(staging / "inputs.json", meta)
    store.save_results(staging / "outputs", outputs, timings=False)
    store.save_arrays(staging / "derived.npz", derived)
    _write_json(staging / "derived.json", derived_meta)
    files = {str(p.relative_to(staging)): _sha(p) for p in sorted(staging.rglob("*")) if p.is_file()}
    manifest = {"assignment": rubric.assignment, "profile": profile, "key": cache_key(rubric, profile, data),
                "data": {k: meta.get(k) for k in pack.gold_manifest},
                "versions": {"torch": _torch_version(), "numpy": np.__version__}, "files": files}
    _write_json(staging / "manifest.json", manifest)
    if out.exists() and replace:
        shutil.rmtree(out)
    try:
        staging.rename(out)
    except OSError:
        if replace or not (out / "manifest.json").exists():
            raise
        shutil.rmtree(staging)
    return load(out)


def _limits(profile: dict):
    from .sandbox.launcher import Limits

    return Limits(probe_s=profile["probe_timeout"], submission_s=profile["submission_timeout"] * 4)


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False))


_LOADED: dict = {}            # (folder, manifest identity) -> Gold: loaded once per process
_LOADED_LOCK = threading.Lock()


def load(root: Path) -> Gold:
    """The gold in `root`, read once per process (a batch grades every student against it): a gold
    folder is written whole and renamed into place, never changed, so its manifest's identity
    (inode, time, size) names its contents. Input arrays are read on first use and read-only, so
    no caller can change what the next student is graded against."""
    manifest = Path(root) / "manifest.json"
    try:
        st = manifest.stat()
    except OSError:
        raise GoldError(f"no gold at {root} (run `grader gold`)") from None
    key = (str(Path(root).resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    with _LOADED_LOCK:
        gold = _LOADED.get(key)
    if gold is None:
        gold = _read(Path(root))
        with _LOADED_LOCK:
            if len(_LOADED) >= 4:
                _LOADED.pop(next(iter(_LOADED)))
            gold = _LOADED.setdefault(key, gold)
    return gold


def _read(root: Path) -> Gold:
    inputs = Inputs(_ReadOnly(root / "inputs.npz"), json.loads((root / "inputs.json").read_text()))
    derived = store.load_arrays(root / "derived.npz") if (root / "derived.npz").exists() else {}
    derived_meta = json.loads((root / "derived.json").read_text()) if (root / "derived.json").exists() else {}
    return Gold(root, inputs, LazyResults(root / "outputs"), derived, derived_meta)


class _ReadOnly(store.LazyArrays):
    def __missing__(self, name):
        arr = super().__missing__(name)
        arr.setflags(write=False)
        return arr


def ensure(rubric, profile: dict, data: Path | None, gold_dir: Path | None = None, log=print) -> Gold:
    """The gold for this profile and data: an explicit folder, the cache, or built now."""
    if gold_dir is not None:
        return load(gold_dir)
    if rubric.pack.reference is None:
        raise GoldError("this installation has no reference solution and no --gold folder was given")
    root = default_dir(rubric, profile, data)
    if (root / "manifest.json").exists():
        return load(root)
    # One build per cache entry: processes that need the same gold at once (a batch's workers, the
    # test suite's) wait for the first one's build instead of each training the reference again.
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "manifest.json").exists():
            return load(root)
        log(f"building gold for {rubric.assignment} ({profile['name']} profile) in {root} ...")
        return build(rubric, profile, data, root, replace=False)
