"""`grader export gradescope --assignment A --out autograder.zip`: our checks in Gradescope's runner.

The zip holds, at its root (Gradescope unpacks it into /autograder/source):
- `setup.sh`: run once when Gradescope builds the image: Python 3.11, a CPU torch, and this
  project (`pip install .`) with its dependencies, in /autograder/venv;
- `run_autograder`: run per submission: grades /autograder/submission with `grader grade` against
  the bundled gold and copies Gradescope's `results.json` to /autograder/results/results.json (a
  grader failure still writes a results.json that says so, with score 0);
- the project: `grader/`, `rubric/` (every check, hidden ones included), `pyproject.toml`;
- `gold/<assignment>/<profile>/`: the hidden gold, prebuilt, so the reference solution itself is not
  shipped.

`AUTOGRADER_ROOT` (default /autograder) and `GRADER_PYTHON` (default the venv's python) let the
same script run elsewhere, e.g. a test that unpacks the zip into a temporary folder.

Isolation inside Gradescope: its container runs as root but usually without the privileges
bubblewrap needs (mount namespaces), so the sandbox may fall back to `basic` (NOT isolated: the
student's code could read /autograder/source, gold included). `run_autograder` prints the sandbox's
description to the log, and `GRADER_SANDBOX=isolated` in run_autograder makes it refuse to grade
instead. See docs/throughput.md.
"""
from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from .. import gold as goldmod
from .. import rubric as rubricmod

PROJECT = Path(__file__).resolve().parent.parent.parent
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, when it builds the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install --index-url {torch_index} "torch>=2.1"
/autograder/venv/bin/pip install /autograder/source
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (files in $ROOT/submission); it must leave
# $ROOT/results/results.json. AUTOGRADER_ROOT and GRADER_PYTHON override the defaults (tests).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{GRADER_PYTHON:-$ROOT/venv/bin/python}}"
[ -x "$PY" ] || PY=python3
cd "$ROOT/source" || exit 1
mkdir -p "$ROOT/results"
OUT="$(mktemp -d)"
export GRADER_CACHE="$OUT/cache"
"$PY" -c "from grader.sandbox.launcher import Sandbox; print('sandbox:', Sandbox().description)" || true
"$PY" -m grader.cli grade "$ROOT/submission" --assignment {assignment} --profile {profile} \\
    --gold "$ROOT/source/gold/{assignment}/{profile}" --student submission --out "$OUT/graded" --no-cache
status=$?
if [ -f "$OUT/graded/results.json" ]; then
    cp "$OUT/graded/results.json" "$ROOT/results/results.json"
else
    "$PY" -c "import json, sys; json.dump({{'score': 0, 'output': 'The autograder failed (status ' + sys.argv[1] + '); course staff have been told. Your submission was not graded.', 'tests': []}}, open(sys.argv[2], 'w'))" "$status" "$ROOT/results/results.json"
fi
rm -rf "$OUT"
exit 0
"""


def export_gradescope(out: Path, assignment: str, profile_name: str,
                      data: Path | None = None, gold_dir: Path | None = None) -> Path:
    """Write the autograder zip to `out`; returns its path."""
    rubric = rubricmod.load(assignment)
    assignment = rubric.assignment              # a pack given by its path ships as a built-in one
    profile = rubric.profile(profile_name)
    gold = goldmod.load(gold_dir) if gold_dir else goldmod.ensure(rubric, profile, data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory(prefix="grader-export-") as tmp:
        root = Path(tmp)
        shutil.copytree(PROJECT / "grader", root / "grader", ignore=ignore)
        (root / "rubric").mkdir()
        (root / "rubric" / "__init__.py").write_text("")
        pack = rubric.pack
        # the pack without its reference and examples (gold is shipped built)
        leave = {p for p in (pack.reference, pack.submissions) if p is not None}
        shutil.copytree(pack.root, root / "rubric" / assignment, ignore=lambda d, names: set(ignore(d, names)) | {
            n for n in names if (Path(d) / n).resolve() in leave})
        shutil.copyfile(PROJECT / "pyproject.toml", root / "pyproject.toml")
        shutil.copyfile(PROJECT / "README.md", root / "README.md")
        shutil.copytree(gold.root, root / "gold" / assignment / profile_name)
        _script(root / "setup.sh", SETUP_SH.format(torch_index=TORCH_CPU_INDEX))
        _script(root / "run_autograder", RUN_AUTOGRADER.format(assignment=assignment, profile=profile_name))
        tmp_zip = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = (path.stat().st_mode & 0o777) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
        tmp_zip.replace(out)
    return out


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def unpack(zip_path: Path, root: Path) -> Path:
    """Lay the zip out as Gradescope does: contents in ROOT/source, run_autograder copied to ROOT."""
    source = Path(root) / "source"
    source.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = source / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    shutil.copy2(source / "run_autograder", Path(root) / "run_autograder")
    return Path(root)
