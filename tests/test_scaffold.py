"""`grader new`: the scaffold's pack grades at full marks from outside the project, and its seeded
bug loses exactly its marks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.scaffold import ScaffoldError, new_pack

PROJECT = Path(__file__).resolve().parent.parent


def _cli(*args, cwd, env):
    proc = subprocess.run([sys.executable, "-m", "grader.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_scaffold_grades_reference_full_and_the_mutant_loses_its_check(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GRADER_CACHE=str(tmp_path / "cache"))
    pack = tmp_path / "packs" / "tiny"
    _cli("new", "tiny", "--out", pack, cwd=tmp_path, env=env)
    _cli("gold", "--assignment", pack, cwd=tmp_path, env=env)
    _cli("grade", pack / "submissions" / "reference", "--assignment", pack, "--out", tmp_path / "ref",
         cwd=tmp_path, env=env)
    doc = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert doc["assignment"] == "tiny" and doc["auto_score"] == doc["auto_max"] == 5
    assert {i["id"]: i["status"] for i in doc["items"]} == {"q1.predict": "passed", "q2.fit": "passed",
                                                            "q3.writeup": "manual"}
    # found on $GRADER_PACKS by name, from the mutant materialized by the examples code
    env2 = dict(env, GRADER_PACKS=str(pack.parent))
    code = ("from pathlib import Path; from grader.examples import materialize, examples_root; "
            "print(materialize(examples_root('tiny') / 'mutants' / 'wrong_sign', Path('m')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env2, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    _cli("grade", out.stdout.strip(), "--assignment", "tiny", "--out", tmp_path / "mut", cwd=tmp_path, env=env2)
    got = json.loads((tmp_path / "mut" / "result.json").read_text())
    want = json.loads((pack / "submissions/mutants/wrong_sign/expected.json").read_text())
    assert {i["id"]: i["points"] for i in got["items"] if i["id"] in want} == want
    fit = next(i for i in got["items"] if i["id"] == "q2.fit")
    assert "kept back" in fit["feedback"] and "reference's under the same budget" in fit["feedback"]


def test_scaffold_refuses_bad_names_and_full_folders(tmp_path):
    with pytest.raises(ScaffoldError, match="identifier"):
        new_pack("my-hw", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(ScaffoldError, match="not empty"):
        new_pack("hw", tmp_path / "b")


def test_processes_that_need_the_same_gold_at_once_build_it_once(tmp_path):
    """gold.ensure holds a lock per cache entry: the second `grader grade` waits for the first's
    build and loads it (before, both trained the reference and one build was thrown away)."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GRADER_CACHE=str(tmp_path / "cache"))
    pack = tmp_path / "packs" / "tiny"
    _cli("new", "tiny", "--out", pack, cwd=tmp_path, env=env)
    procs = [subprocess.Popen([sys.executable, "-m", "grader.cli", "grade", str(pack / "submissions" / "reference"),
                               "--assignment", str(pack), "--out", str(tmp_path / f"out{i}")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("building gold" in out for out in outs) == 1, outs
    scores = [json.loads((tmp_path / f"out{i}" / "result.json").read_text())["auto_score"] for i in range(2)]
    assert scores == [5, 5]
    assert len(list((tmp_path / "cache" / "gold" / "tiny").iterdir())) == 2     # the gold folder and its lock
