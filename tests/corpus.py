"""What the real-corpus tests (test_real_a2.py, test_real_hw5.py) share: one parameter per corpus
folder (slow ones marked), the folders a session selected (so one batch grades exactly those), and
zipping a folder as a student would hand it in, and grading the class once per session."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest


def params(folders: list[str], slow: set[str]) -> list:
    return [pytest.param(f, id=f, marks=[pytest.mark.slow] if f in slow else []) for f in folders]


def selected_folders(session, module: str, folders: list[str], slow: set[str]) -> list[str]:
    """The corpus folders whose tests this session runs in `module`; all the fast ones if none."""
    chosen = set()
    for item in session.items:
        if item.module.__name__ == module and hasattr(item, "callspec"):
            folder = item.callspec.params.get("folder")
            if folder:
                chosen.add(folder)
    return sorted(chosen) or [f for f in folders if f not in slow]


def zip_folder(folder: Path, target: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())


def grade_once(tmp_path_factory, name: str, folders: list[str], grade) -> tuple[Path, dict]:
    """`grade(root, folders)` once per session for these folders, its run record kept in
    root/done.json: under pytest-xdist the workers share one batch (the first to take the lock
    grades the class, the others read its output), not one per worker. Returns (root, run)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    key = hashlib.sha256("\n".join(folders).encode()).hexdigest()[:12]
    root = shared / f"{name}-{key}"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "done.json"
        if not done.exists():
            done.write_text(json.dumps(grade(root, folders)))
        return root, json.loads(done.read_text())
