"""Load an assignment's rubric (rubric/<a>/rubric.toml) and validate it when loaded.

Everything the rubric names must exist: its probe groups in the assignment's plan module, its checks
as test functions in the checks folder, its comparators in grader.compare. A typo is an error at load
time, not a silent zero at grading time.
"""
from __future__ import annotations

import ast
import functools
import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import compare

RUBRIC_ROOT = Path(__file__).resolve().parent.parent / "rubric"
VISIBILITIES = ("visible", "hidden")


class RubricError(Exception):
    """The rubric is inconsistent: staff must fix it before anything is graded."""


@dataclass
class Check:
    name: str                     # "test_architecture.py::test_cnn_function"
    points: float


@dataclass
class Item:
    id: str
    title: str
    points: float
    visibility: str
    probes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    bonus: bool = False
    manual: bool = False
    # A role (e.g. "answers"): when the submission has no file for it, the item goes to a TA
    # (status manual) instead of scoring 0: the student answered in the write-up.
    manual_without: str | None = None


@dataclass
class Rubric:
    assignment: str
    title: str
    root: Path                    # rubric/<assignment>
    items: list[Item]
    profiles: dict[str, dict]

    @property
    def checks_dir(self) -> Path:
        return self.root / "checks"

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def auto_items(self, visible_only: bool = False) -> list[Item]:
        return [i for i in self.items if not i.manual and (i.visibility == "visible" or not visible_only)]

    def profile(self, name: str) -> dict:
        if name not in self.profiles:
            raise RubricError(f"unknown profile {name!r}; this rubric has {', '.join(self.profiles)}")
        return dict(self.profiles[name], name=name)

    def plan_module(self):
        return importlib.import_module(f"rubric.{self.assignment}.plan")


def _fail(where: str, msg: str):
    raise RubricError(f"{where}: {msg}")


def defined_checks(checks_dir: Path) -> set[str]:
    """Every `test_*` function of the checks folder, as "file.py::name", found without importing."""
    names = set()
    for path in sorted(checks_dir.glob("test_*.py")):
        st = path.stat()
        names |= _checks_in(str(path), st.st_mtime_ns, st.st_size)
    return names


@functools.lru_cache(maxsize=64)
def _checks_in(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    # parsed once per version of the file (every student's grade loads the rubric)
    name = Path(path).name
    return frozenset(f"{name}::{node.name}" for node in ast.parse(Path(path).read_text()).body
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def load(assignment: str, root: Path | None = None) -> Rubric:
    root = root or RUBRIC_ROOT / assignment
    path = root / "rubric.toml"
    if not path.is_file():
        raise RubricError(f"no rubric for assignment {assignment!r} at {path}")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    items = [_auto_item(raw, i) for i, raw in enumerate(data.get("items", []))]
    for group in data.get("manual", []):
        for raw in group.get("items", []):
            items.append(Item(id=raw["id"], title=raw["title"], points=float(raw["points"]),
                              visibility="visible", manual=True))
    rubric = Rubric(assignment=data.get("assignment", assignment), title=data.get("title", assignment),
                    root=root, items=items, profiles=data.get("profiles", {}))
    _validate(rubric)
    return rubric


def _auto_item(raw: dict, index: int) -> Item:
    where = f"items[{index}] ({raw.get('id', '?')})"
    for key in ("id", "title", "points", "visibility", "checks"):
        if key not in raw:
            _fail(where, f"missing {key!r}")
    if raw["visibility"] not in VISIBILITIES:
        _fail(where, f"visibility must be one of {VISIBILITIES}, not {raw['visibility']!r}")
    checks = [Check(c["name"], float(c["points"])) for c in raw["checks"]]
    total = sum(c.points for c in checks)
    if abs(total - float(raw["points"])) > 1e-9:
        _fail(where, f"its checks give {total} points but the item is worth {raw['points']}")
    return Item(id=raw["id"], title=raw["title"], points=float(raw["points"]),
                visibility=raw["visibility"], probes=list(raw.get("probes", [])), checks=checks,
                params=dict(raw.get("params", {})), bonus=bool(raw.get("bonus", False)),
                manual_without=raw.get("manual_without"))


def _validate(rubric: Rubric) -> None:
    ids = [i.id for i in rubric.items]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        _fail(rubric.assignment, f"duplicate item ids {sorted(dupes)}")
    groups = rubric.plan_module().GROUPS
    available = defined_checks(rubric.checks_dir)
    for item in rubric.items:
        for group in item.probes:
            if group not in groups:
                _fail(item.id, f"unknown probe group {group!r} (plan has {', '.join(sorted(groups))})")
        for check in item.checks:
            if check.name not in available:
                _fail(item.id, f"unknown check {check.name!r} (not a test function in {rubric.checks_dir})")
        name = item.params.get("comparator")
        if name is not None and name not in compare.COMPARATORS:
            _fail(item.id, f"unknown comparator {name!r}")
    if not rubric.profiles:
        _fail(rubric.assignment, "no [profiles] defined")
