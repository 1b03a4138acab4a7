"""The real HW5 corpus (CMU 16-720 "Neural Networks for Recognition") graded as a careful TA would.

`../shared/real-hw5/` holds 9 real public submissions (the whole `python/` folder of each, Fall 2018
to Fall 2023; SOURCES.tsv says where each came from). They are never copied into the project: at
test time each folder is zipped into a class folder (`<folder>.zip`, holding `python/`) in a tmp
directory, the class is graded by the real `grader batch --assignment hw5 --profile ci`, and every
student's result is compared with `tests/real/hw5_expected.json`, the verdict written for it item by
item (see its `_doc`).

What real scripts do that the engine handles (each a note in the report): `plt.show()`, `np.float`
and the other removed numpy aliases, `skimage.measure.compare_psnr`, `multichannel=`, `selem=`,
`rgb2grey`, torchvision absent, constants assigned twice, pickles of other names and folders, data
read next to the script, models that are locals of a function, momentum in a dict of its own,
scripts that fail after training, slow loops stopped at the time limit.

The module is `heavy` (CI runs it). Which students are graded follows the tests selected (`-k
jmiller` grades one); all of them by default, as one class, about 2 minutes on an idle 2-core
machine. A folder listed in `_slow` would be graded only under `-m slow` (none is now). The corpus is read from `../shared/real-hw5` (relative to the project root) or from
`$GRADER_REAL_HW5`; the tests skip with a reason when it is absent. See docs/real-submissions.md.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

import corpus
from classkit import PROJECT, run_batch
from grader.report.results import validate_result

CORPUS = Path(os.environ.get("GRADER_REAL_HW5") or PROJECT.parent / "shared" / "real-hw5")
EXPECTED = json.loads((PROJECT / "tests" / "real" / "hw5_expected.json").read_text())
FOLDERS = sorted(k for k in EXPECTED if not k.startswith("_"))
# Submissions whose scripts spend minutes at the ci budget on 2 cores (see docs/real-submissions.md):
# PyTorch scripts that also train a CNN or run every part of Q6/Q7 in one file, per-example loops.
SLOW = set(EXPECTED.get("_slow", []))
TOLERANCE = 1e-6

pytestmark = [pytest.mark.course_data, pytest.mark.heavy]


PARAMS = corpus.params(FOLDERS, SLOW)


class Graded:
    """The batch's output, indexed by corpus folder."""

    def __init__(self, out: Path, run: dict, folders: list[str]):
        self.out, self.run, self.folders = out, run, folders
        self.results: dict[str, dict] = {}
        self.dirs: dict[str, Path] = {}
        for path in sorted(out.glob("*/result.json")):
            result = json.loads(path.read_text())
            source = (result.get("batch") or {}).get("source", "")
            folder = source[: -len(".zip")] if source.endswith(".zip") else None
            if folder in folders:
                self.results[folder] = result
                self.dirs[folder] = path.parent

    def result(self, folder: str) -> dict:
        assert folder in self.results, (f"no result.json for {folder}; batch exit {self.run['returncode']}\n"
                                        f"{self.run['stderr'][-3000:]}")
        return self.results[folder]


@pytest.fixture(scope="module")
def graded(request, tmp_path_factory) -> Graded:
    if not CORPUS.is_dir():
        pytest.skip(f"the real HW5 corpus is not at {CORPUS} (course material, never part of the "
                    f"project): these tests grade it when it is there")
    missing = [f for f in FOLDERS if not (CORPUS / f).is_dir()]
    assert not missing, f"tests/real/hw5_expected.json names folders that {CORPUS} lacks: {missing}"
    folders = corpus.selected_folders(request.session, __name__, FOLDERS, SLOW)
    root, run = corpus.grade_once(tmp_path_factory, "real_hw5", folders, _grade_class)
    print(f"\nreal HW5 corpus: {len(folders)} submissions graded as one class in {run['seconds']:.0f} s "
          f"({run['seconds'] / max(1, len(folders)):.0f} s per submission, 2 workers)")
    return Graded(root / "out", run, folders)


def _grade_class(root: Path, folders: list[str]) -> dict:
    cls = root / "class"
    shutil.rmtree(cls, ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)
    cls.mkdir()
    for folder in folders:
        corpus.zip_folder(CORPUS / folder, cls / f"{folder}.zip")
    started = time.monotonic()
    proc = run_batch(cls, "--assignment", "hw5", "--out", root / "out", "--profile", "ci", "--workers", "2",
                     timeout=5400)
    return {"returncode": proc.returncode, "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-4000:],
            "seconds": time.monotonic() - started}


def test_expected_file_is_complete_and_consistent():
    """Every folder has a verdict for every automatic item, within the item's maximum, and a
    reason for every deduction."""
    from grader.rubric import load

    rubric = load("hw5")
    automatic = {i.id: i.points for i in rubric.items if not i.manual}
    for folder in FOLDERS:
        points = EXPECTED[folder]["points"]
        assert set(points) == set(automatic), (folder, set(points) ^ set(automatic))
        for item_id, got in points.items():
            assert 0 <= got <= automatic[item_id], (folder, item_id)
            lost = automatic[item_id] - got
            reasons = EXPECTED[folder]["deductions"].get(item_id, [])
            if lost > TOLERANCE:
                assert reasons, f"{folder} {item_id}: a deduction without a reason"
                charged = sum(float(m.group(1)) for r in reasons for m in [re.match(r"-(\d+(?:\.\d+)?):", r)] if m)
                assert abs(charged - lost) < TOLERANCE, (folder, item_id, reasons, lost)
            else:
                assert not reasons, (folder, item_id, reasons)
        for item_id, gap in EXPECTED[folder].get("gaps", {}).items():
            assert item_id in automatic and 0 <= gap["grader"] <= automatic[item_id], (folder, item_id)
            assert gap["grader"] != points[item_id] and gap["why"].strip(), (folder, item_id)
        assert set(EXPECTED[folder].get("notes", [])) <= set(NOTES), folder
    assert SLOW <= set(FOLDERS)


def test_the_class_grades_without_a_grader_error(graded):
    assert graded.run["returncode"] in (0, 1), graded.run["stderr"][-3000:] + graded.run["stdout"][-2000:]
    assert sorted(graded.results) == graded.folders, (sorted(graded.results), graded.folders)
    for folder in graded.folders:
        result = graded.result(folder)
        assert validate_result(result) == [], folder
        assert result["status"] == "graded", (folder, result["status"], result["errors"])
        assert not result["errors"], (folder, result["errors"])
        errors = [i for i in result["items"] if i["status"] == "error"]
        assert not errors, f"{folder}: items in error (ours, not the student's): " + \
            "; ".join(f"{i['id']}: {i['feedback'][:200]}" for i in errors)


def _target(folder: str) -> dict[str, float]:
    """What the grader must give: the TA's points, except on the known gaps (`gaps`: items where
    the grader is not yet the TA, each with the grader's points and why), pinned so that a change
    either way shows."""
    want = EXPECTED[folder]
    return {**want["points"], **{k: g["grader"] for k, g in want.get("gaps", {}).items()}}


def _mismatches(folder: str, graded: Graded) -> list[str]:
    result = graded.result(folder)
    got = {i["id"]: i for i in result["items"]}
    want = EXPECTED[folder]
    problems = []
    for item_id, points in _target(folder).items():
        item = got.get(item_id)
        if item is None:
            problems.append(f"{item_id}: missing from result.json")
            continue
        gap = want.get("gaps", {}).get(item_id, {})
        if gap.get("timing") and abs(item["points"] - want["points"][item_id]) <= TOLERANCE:
            continue      # a gap that is a time limit closes on a quicker machine: the TA's points
        if any(abs(item["points"] - a) <= TOLERANCE for a in gap.get("also", [])):
            continue      # points the grader may give instead on a slower machine (`also_why`)
        if abs(item["points"] - points) > TOLERANCE:
            why = "; ".join(want["deductions"].get(item_id, [])) or "full marks"
            problems.append(f"{item_id}: got {item['points']:g} ({item['status']}), expected {points:g} "
                            f"({why[:200]}); grader said {item['feedback'][:300]!r}")
    return problems


@pytest.mark.parametrize("folder", PARAMS)
def test_verdict_is_what_a_ta_gives(graded, folder):
    problems = _mismatches(folder, graded)
    assert not problems, f"{folder}:\n  " + "\n  ".join(problems)


# What the report must say the grader did, for what each real submission's code does.
NOTES = {
    "np.float": re.compile(r"np\.float \(removed in numpy 1\.24\) was read as"),
    "plt.show": re.compile(r"plt\.show\(\) returned at once"),
    "compare_psnr": re.compile(r"compare_psnr \(removed in scikit-image 0\.19\)"),
    "multichannel": re.compile(r"multichannel=True\) \(removed in scikit-image 0\.19\)"),
    "selem": re.compile(r"selem=\.\.\.\) \(removed in scikit-image 0\.23\)"),
    "rgb2grey": re.compile(r"rgb2grey \(removed in scikit-image 0\.19\)"),
    "../out": re.compile(r"writes into \.\./out/, which did not exist: the grader made the folder"),
    "./nist36": re.compile(r"read nist36_\w+\.mat, not \.\./data/"),
    "batch_size twice": re.compile(r"batch_size = \d+ while grading \(yours: 50\), in each of its 2 assignments"),
    "torchvision": re.compile(r"`import torchvision`: torchvision is not installed in the grader"),
    "cv2": re.compile(r"`import cv2`: cv2 is not installed in the grader"),
    "partial": re.compile(r"what it had computed by then was graded"),
    "time limit": re.compile(r"did not finish within [\d.]+ s, the time limit for this script"),
    "argv": re.compile(r"picks its part from the command line \(sys\.argv\[1\] == '7\.1\.1'\): it was run as"),
}


@pytest.mark.parametrize("folder", PARAMS)
def test_the_report_says_what_the_grader_did(graded, folder):
    """Each thing the grader did to run the student's code as they wrote it is a note (`notes` in
    hw5_expected.json: the ones on paths the ci run reaches)."""
    result = graded.result(folder)
    text = "\n".join(result["notes"]) + "\n" + "\n".join(i["feedback"] for i in result["items"])
    missing = [k for k in EXPECTED[folder].get("notes", []) if not NOTES[k].search(text)]
    assert not missing, f"{folder}: no note for {missing}; notes: {result['notes']}"


def test_the_feedback_has_hw5s_picture(graded):
    """rubric/hw5/hooks.py: the weights grid, confusion matrix, boxes and reconstructions, drawn
    from what came back (a submission without run_q5 still gets the other panels)."""
    for folder in graded.folders:
        student = graded.dirs[folder]
        feedback = (student / "feedback.md").read_text()
        if (student / "hw5.png").exists():
            assert "hw5.png" in feedback and "What your code did" in feedback, folder
            assert (student / "hw5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", folder
        else:
            assert "nothing to draw" in feedback, folder
