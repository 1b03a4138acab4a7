"""The batch's order: longest expected first, estimated statically from intake (grader/batch/schedule.py)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from grader.batch.classrun import path_entry
from grader.examples import examples_root, materialize
from grader.intake.unpack import load_submission
from grader.batch.schedule import ROLE, TRAINS, CostModel, Planner

REFERENCE = examples_root("a2") / "reference"


def _copy(src: Path, dest: Path, header: str = "") -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if header:
        for f in dest.glob("*.py"):
            f.write_text(f.read_text().replace("\nimport numpy as np\n", f"\nimport numpy as np  # {header}\n", 1))
    return dest


def _cost(model: CostModel, folder: Path, tmp: Path) -> float:
    return model.cost(load_submission(folder, tmp / f"ws-{folder.name}", assignment="a2"))


def test_costs(tmp_path):
    model = CostModel("a2")
    ref = _cost(model, _copy(REFERENCE, tmp_path / "ref"), tmp_path)
    assert ref == ROLE * 3                                   # three roles, models the reference's
    # the same code with a margin note prepares to the same bytes: the probe cache answers it
    assert _cost(model, _copy(REFERENCE, tmp_path / "ref2", header="CS17B002"), tmp_path) == 0
    # a UNet that is not the reference's trains
    unet = materialize(examples_root("a2") / "mutants" / "unet_missing_skip", tmp_path / "unet")
    assert _cost(model, unet, tmp_path) == ROLE * 3 + TRAINS
    # the models' own classes unchanged, the MyConv2d they use changed: both train
    nn_conv = materialize(examples_root("a2") / "mutants" / "nn_conv2d", tmp_path / "nnconv")
    assert _cost(model, nn_conv, tmp_path) == ROLE * 3 + 2 * TRAINS
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing")
    assert _cost(model, empty, tmp_path) == 0


def test_planner_hands_out_the_longest_first_and_every_entry_once(tmp_path):
    cheap = _copy(REFERENCE, tmp_path / "A_cheap")
    copy = _copy(REFERENCE, tmp_path / "B_copy", header="B")
    long = materialize(examples_root("a2") / "mutants" / "unet_missing_skip", tmp_path / "C_long")
    broken = tmp_path / "D_broken"
    broken.mkdir()
    (broken / "colourization.py").write_text("def f(:\n")
    entries = [path_entry(p, name) for p, name in ((cheap, "A_cheap"), (copy, "B_copy"), (long, "C_long"),
                                                    (broken, "D_broken"))]
    planner = Planner(entries, lambda e, work: (e.path, None), tmp_path / "scratch", "a2", threading.Event())
    planner.join()
    order = []
    while (entry := planner.next()) is not None:
        order.append(entry.student)
    assert order == ["C_long", "A_cheap", "B_copy", "D_broken"]
    assert not (tmp_path / "scratch").exists()
    assert all((p / "colourization.py").exists() for p in (cheap, copy, long, broken))   # inputs untouched
