"""The rubric loader: the real A2 rubric is consistent, and typos fail at load time."""
import shutil
from pathlib import Path

import pytest

from grader import rubric as rubricmod

A2 = Path(rubricmod.RUBRIC_ROOT) / "a2"


def test_a2_rubric_has_all_40_marks_and_the_bonus():
    r = rubricmod.load("a2")
    assert sum(i.points for i in r.items if not i.bonus) == 40
    auto = {i.id: i.points for i in r.auto_items()}
    assert auto == {"q2a.cnn": 2, "q2b.cnn_trains": 1, "q3a.unet": 2, "q3b.unet_trains": 1,
                    "q4a.sr_resolution": 1, "q4b.sr_trains": 1, "r1.sample": 2, "r2.complete": 2,
                    "r3.colon_weights": 3, "bonus.dilated": 1}
    assert r.item("bonus.dilated").bonus
    manual = [i for i in r.items if i.manual]
    assert sum(i.points for i in manual) == 25 and {"q1a", "r4.other_behaviour"} <= {i.id for i in manual}
    assert set(r.profiles) == {"ci", "cpu", "full"}


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "a2"
    shutil.copytree(A2, dest)
    return dest


def _edit(root: Path, old: str, new: str):
    path = root / "rubric.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old,new,message", [
    ("test_architecture.py::test_cnn_function", "test_architecture.py::test_cnn_functoin", "unknown check"),
    ('probes = ["cnn_forward"]', 'probes = ["cnn_forwrd"]', "unknown probe group"),
    ('params = { margin = 5.0 }', 'params = { margin = 5.0, comparator = "nope" }', "unknown comparator"),
    ('visibility = "visible"', 'visibility = "public"', "visibility must be"),
    ('{ name = "test_architecture.py::test_cnn_generality", points = 0.5 }',
     '{ name = "test_architecture.py::test_cnn_generality", points = 0.25 }', "checks give"),
])
def test_typos_fail_at_load(tmp_path, old, new, message):
    root = _copy(tmp_path)
    _edit(root, old, new)
    with pytest.raises(rubricmod.RubricError, match=message):
        rubricmod.load("a2", root=root)


def test_unknown_profile():
    with pytest.raises(rubricmod.RubricError, match="unknown profile"):
        rubricmod.load("a2").profile("gpu-cluster")
