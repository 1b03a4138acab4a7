"""What the real-corpus tests (test_real_a2.py, test_real_hw5.py) share: one parameter per corpus
folder (slow ones marked), the folders a session selected (so one batch grades exactly those), and
zipping a folder as a student would hand it in."""
from __future__ import annotations

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
