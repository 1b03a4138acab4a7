"""The grader's notes on manual items (the pack hook `manual_notes`, grader/report/notes.py): made on
the trusted side from the probe answers, shown to the TA (result.json, manual.csv's grader_note)
and, the part meant for the student, in feedback.md; a manual item's own probe groups run only for
the note (last, with gold's derived arrays); a hook that raises costs the student nothing."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.scaffold import new_pack

PROJECT = Path(__file__).resolve().parent.parent

HOOKS = '''
import numpy as np

def notes(results, gold):
    out = results["predict/basic"].arrays.get("y")
    ran = [k for k, r in results.items() if k.startswith("note/") and r.ok]
    return {"q3.writeup": {"ta": f"TA only: predict gave {np.size(out)} outputs",
                           "student": "For you: predict ran"},
            "q3.other": f"note group: {ran}",
            "q1.predict": "dropped: an automatic item speaks through its checks"}
'''
BROKEN = '''
def notes(results, gold):
    raise RuntimeError("the hook broke")
'''
# A group only a manual item names: it is built with gold's derived arrays (derived/<name>).
PLAN = '''

@group("notegroup")
def notegroup(profile, inputs, for_gold=False):
    had = ",".join(sorted(k for k in inputs.arrays if k.startswith("derived/")))
    a = inputs.arrays
    return [ProbeSpec(f"note/{had}", "predict", "solution", {},
                      arrays={"w": a["probe_w"], "b": a["probe_b"], "x": a["probe_x"]},
                      timeout=profile["probe_timeout"])]
'''


def _pack(tmp_path: Path, hooks: str) -> Path:
    root = new_pack("notespk", tmp_path / "notespk")
    (root / "hooks.py").write_text(hooks)
    with (root / "pack.toml").open("a") as fh:
        fh.write('\n[hooks]\nmanual_notes = "hooks.py:notes"\n')
    with (root / "plan.py").open("a") as fh:
        fh.write(PLAN)
    rubric = (root / "rubric.toml").read_text()
    old = '{ id = "q3.writeup", title = "Why does the loss decrease?", points = 1 },'
    assert old in rubric
    (root / "rubric.toml").write_text(rubric.replace(old, old + '\n    { id = "q3.other", title = "Other", '
                                                     'points = 1, probes = ["notegroup"] },'))
    derive = (root / "derive.py").read_text()
    old = '    return {}, {"test_loss"'
    assert old in derive
    (root / "derive.py").write_text(derive.replace(old, '    return {"ref_w": np.asarray(params["w"])}, {"test_loss"'))
    return root


def _batch(tmp_path: Path, pack: Path) -> Path:
    klass = tmp_path / "class"
    klass.mkdir()
    ref = pack / "reference"
    with zipfile.ZipFile(klass / "1001.zip", "w") as zf:
        for name in ("solution.py", "run_fit.py"):
            zf.write(ref / name, name)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "batch", str(klass), "--assignment", str(pack),
                           "--out", str(out), "--workers", "1"], cwd=PROJECT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _items(out: Path) -> dict:
    return {i["id"]: i for i in json.loads((out / "1001" / "result.json").read_text())["items"]}


def _sheet(out: Path) -> dict:
    with open(out / "manual.csv", newline="") as fh:
        return {r["item"]: r for r in csv.DictReader(fh)}


def test_notes_reach_the_ta_and_the_students_part_reaches_the_student(tmp_path):
    pack = _pack(tmp_path, HOOKS)
    out = _batch(tmp_path, pack)
    items = _items(out)
    assert items["q3.writeup"]["note"].startswith("TA only: predict gave ")
    assert items["q3.writeup"]["student_note"] == "For you: predict ran"
    assert items["q1.predict"]["note"] == "" and items["q1.predict"]["status"] == "passed"
    # the note group ran (after the scored probes) with gold's derived array in its inputs
    assert items["q3.other"]["note"] == "note group: ['note/derived/ref_w']"
    sheet = _sheet(out)
    assert sheet["q3.writeup"]["grader_note"] == items["q3.writeup"]["note"]
    assert sheet["q3.writeup"]["points"] == ""                      # still the TA's to mark
    feedback = (out / "1001" / "feedback.md").read_text()
    assert "For you: predict ran" in feedback and "TA only" not in feedback
    assert "note group: ['note/derived/ref_w']" in feedback
    # the scores are the pack's own: the notes add nothing
    assert {i: items[i]["points"] for i in ("q1.predict", "q2.fit")} == {"q1.predict": 2, "q2.fit": 3}


def test_a_hook_that_raises_costs_the_student_nothing(tmp_path):
    pack = _pack(tmp_path, BROKEN)
    out = _batch(tmp_path, pack)
    items = _items(out)
    assert {i: items[i]["points"] for i in ("q1.predict", "q2.fit")} == {"q1.predict": 2, "q2.fit": 3}
    # the item whose probes feed the hook says the note could not be made; the student sees nothing of it
    assert "could not be made" in items["q3.other"]["note"] and "the hook broke" in items["q3.other"]["note"]
    assert items["q3.other"]["student_note"] == "" and items["q3.other"]["status"] == "manual"
    assert "could not be made" not in (out / "1001" / "feedback.md").read_text()
    assert "could not be made" in _sheet(out)["q3.other"]["grader_note"]


def test_a_note_that_is_not_text_is_the_packs_error_said_in_the_note():
    from grader.report import notes

    assert notes._parse("x") == ("x", "x")
    assert notes._parse({"ta": "t"}) == ("t", "")
    with pytest.raises(TypeError):
        notes._parse(3)
    assert len(notes._clip("a" * 10000)) <= notes.MAX_NOTE


def test_a_multiline_note_stays_whole_under_its_item_in_feedback():
    from grader.report import feedback

    item = {"id": "w1", "title": "Text", "points": 0.0, "max_points": 2.0, "status": "manual",
            "visibility": "visible", "feedback": "", "manual": True, "note": "TA: all of it",
            "student_note": "Extracted: AB\nTruth:     AC\nedit distance 1"}
    doc = {"assignment": "x", "student": "s", "items": [item], "auto_score": 0, "auto_max": 0,
           "max_score": 2, "status": "graded", "manual_pending": 2}
    text = feedback.render(doc, None, {"final_score": 0}, False, {"w1"})
    block = text[text.index("- `w1`"):]
    assert "    Extracted: AB\n    Truth:     AC\n    edit distance 1\n    ```" in block
    assert "TA: all of it" not in text
