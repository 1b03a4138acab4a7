"""The student bundle: `grader check` runs from it, and it holds no reference and no hidden gold."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader import rubric as rubricmod
from grader.report.bundle import build_student_bundle
from grader.examples import materialize

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return build_student_bundle(tmp_path_factory.mktemp("b") / "bundle", "a2", "ci", None)


def test_bundle_has_no_reference_source(bundle):
    assert not (bundle / "reference").exists()
    markers = [line.strip() for line in (PROJECT / "reference/a2/colourization.py").read_text().splitlines()
               if "spread[:, :, ::step, ::step]" in line or "def dilated_weight" in line]
    assert markers
    for path in bundle.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml", ".json", ".md", ".txt"):
            text = path.read_text(errors="replace")
            assert not any(m in text for m in markers), f"{path} contains reference source"


def test_bundle_has_no_hidden_item_checks_or_gold(bundle):
    rubric = rubricmod.load("a2")
    hidden = [i for i in rubric.auto_items() if i.visibility == "hidden"]
    toml_text = (bundle / "rubric/a2/rubric.toml").read_text()
    for item in hidden:
        assert f'id = "{item.id}"' not in toml_text
        for check in item.checks:
            path = bundle / "rubric/a2/checks" / check.name.split("::")[0]
            assert not path.exists() or check.name.split("::")[1] not in path.read_text()
    gold = bundle / "bundled_gold/a2/ci"
    derived = json.loads((gold / "derived.json").read_text())
    assert "colon" not in derived and "accuracy" not in derived and "sr_resolution" not in derived
    assert "accuracy_runs" not in derived
    with np.load(gold / "inputs.npz") as npz:
        assert "valid_y" not in npz.files            # validation labels of hidden training checks
    keys = {json.loads(p.read_text())["key"] for p in (gold / "outputs").glob("*.json")}
    assert keys and not any("train" in k or k in ("dilated", "sr_process") for k in keys)


def test_check_runs_from_the_bundle_on_visible_items_only(bundle, tmp_path):
    sub = materialize(PROJECT / "submissions/a2/mutants/temperature_divided", tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["GRADER_CACHE"] = str(tmp_path / "empty-cache")   # nothing to fall back on but the bundle
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "check", str(sub)], cwd=bundle, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "fix   r1.sample" in out and "softmax(z / alpha)" in out
    assert "ok    q2a.cnn" in out and "ok    r2.complete" in out
    for hidden in ("q2b.cnn_trains", "r3.colon_weights", "bonus.dilated", "q1a"):
        assert hidden not in out
    assert not (tmp_path / "empty-cache" / "gold").exists()     # no gold was (or could be) built
