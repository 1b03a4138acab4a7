"""docs/authoring.md's commands, extracted from its ```sh blocks and run in order in a folder
outside the project: the tutorial works as written (as .ci/run does with the README)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DOC = PROJECT / "docs" / "authoring.md"


def commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_tutorial_commands_run_as_written(tmp_path):
    cmds = commands()
    assert cmds[0] == "grader new hw1 --out hw1" and len(cmds) >= 8
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GRADER_CACHE=str(tmp_path / "cache"))
    work = tmp_path / "course"
    work.mkdir()
    for cmd in cmds:
        # `grader` is the installed entry point; here, this checkout's (python -m puts the current
        # folder first, so inside the bundle the bundle's own grader runs)
        shell = re.sub(r"(^|&& )(grader|python3 -m grader\.cli) ", lambda m: f"{m[1]}{sys.executable} -m grader.cli ", cmd)
        proc = subprocess.run(shell, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if cmd.startswith("grader grade"):
            doc = json.loads((work / "out/reference/result.json").read_text())
            assert doc["auto_score"] == doc["auto_max"] == 5, doc
        if cmd.startswith("grader demo"):
            assert "2 of the 2 with an expected.json scored as it says" in proc.stdout, proc.stdout[-2000:]
        if cmd.startswith("cd bundle"):
            assert "q1.predict" in proc.stdout and "q2.fit" not in proc.stdout, proc.stdout
    bundle = work / "bundle"
    assert not (bundle / "rubric/hw1/reference").exists() and not (bundle / "rubric/hw1/inputs.py").exists()
    gold = next((bundle / "bundled_gold/hw1").iterdir())
    import numpy as np

    with np.load(gold / "inputs.npz") as npz:
        assert "test_x" not in npz.files and "train_x" in npz.files     # the held-out split stays behind
    assert json.loads((gold / "derived.json").read_text()) == {}
    with zipfile.ZipFile(work / "autograder.zip") as zf:
        names = zf.namelist()
    assert "rubric/hw1/pack.toml" in names and not any(n.startswith("rubric/hw1/reference/") for n in names)
