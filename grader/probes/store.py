"""Probe results on disk: one `<key>.npz` (arrays, no pickle) and one `<key>.json` (the rest)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..records import ProbeResult


def filename(key: str) -> str:
    return key.replace("/", "__")


def save_results(folder: Path, results: dict[str, ProbeResult], timings: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, r in sorted(results.items()):
        base = folder / filename(key)
        head = {"key": key, "ok": r.ok, "meta": r.meta, "error": r.error, "fault": r.fault,
                "arrays": sorted(r.arrays)}
        if timings:
            head["seconds"] = round(r.seconds, 3)
        base.with_suffix(".json").write_text(json.dumps(head, indent=1, sort_keys=True))
        if r.arrays:
            save_arrays(base.with_suffix(".npz"), r.arrays)


def save_arrays(path: Path, arrays: dict) -> None:
    # np.savez stores a zip with timestamps of "now"; a fixed layout keeps gold byte-identical.
    import zipfile
    import io

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())


def load_arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


class LazyArrays(dict):
    """The arrays of one .npz, each read on first use: a checks run needs one array of the 9 MB
    of gold inputs. Listing or iterating reads them all."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as npz:
            self._names = list(npz.files)

    def __missing__(self, name):
        if name not in self._names:
            raise KeyError(name)
        with np.load(self.path, allow_pickle=False) as npz:
            self[name] = npz[name]
        return dict.__getitem__(self, name)

    def __contains__(self, name):
        return name in self._names

    def get(self, name, default=None):
        return self[name] if name in self._names else default

    def _all(self) -> dict:
        for name in self._names:
            self[name]
        return dict(dict.items(self))

    def keys(self):
        return self._all().keys()

    def items(self):
        return self._all().items()

    def values(self):
        return self._all().values()

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._names)


def load_result(folder: Path, key: str) -> ProbeResult | None:
    base = folder / filename(key)
    if not base.with_suffix(".json").exists():
        return None
    head = json.loads(base.with_suffix(".json").read_text())
    arrays = load_arrays(base.with_suffix(".npz")) if head.get("arrays") else {}
    return ProbeResult(key, head["ok"], arrays, head.get("meta", {}), head.get("error"),
                       head.get("fault", "student"), head.get("seconds", 0.0))


def load_results(folder: Path) -> dict[str, ProbeResult]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        key = json.loads(path.read_text())["key"]
        out[key] = load_result(folder, key)
    return out
