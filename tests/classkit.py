"""Helpers for the batch tests: build real class folders and zips, run the real `grader batch`."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from grader.examples import examples_root, materialize

PROJECT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT / "reference" / "a2"
REF_FILES = ("colourization.py", "colour_regression.py", "min_char_rnn.py")

# A class body runs when the module is imported; intake keeps class statements whole.
LOOP_AT_IMPORT = "\n\nclass Forever:\n    while True:\n        pass\n"
# Slow to import without using a CPU (the kill tests; an orphaned worker would only sleep).
SLEEP_AT_IMPORT = "\n\nimport time\n\n\nclass Slow:\n    time.sleep(60)\n"


def write_zip(path: Path, files: dict, compression=zipfile.ZIP_DEFLATED, date_time=None) -> Path:
    """files: archive name -> str | bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=date_time or (2019, 3, 1, 12, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            zf.writestr(info, content)
    return path


def zip_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def folder_files(folder: Path, prefix: str = "") -> dict:
    return {prefix + p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def reference_files(names=REF_FILES) -> dict:
    return {n: (REFERENCE / n).read_bytes() for n in names}


def example_files(name: str, tmp: Path) -> dict:
    """The files of a bundled example (`mutants/version_2018`, `alternative`, ...)."""
    path = materialize(examples_root("a2") / name, tmp / "materialized")
    return folder_files(path)


def encrypted_zip(path: Path, files: dict) -> Path:
    data = bytearray(zip_bytes(files))
    data[6] |= 0x1                                           # general purpose flag, local header
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1                                 # and central directory
    path.write_bytes(bytes(data))
    return path


def run_batch(*args, timeout: float = 300, env=None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "grader.cli", "batch", *map(str, args)]
    return subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "grader.cli", *map(str, args)]
    return subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=timeout)


def grades(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def snapshot(root: Path, skip: Path | None = None) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if skip is None or not (p == skip or skip in p.parents)}
