"""Load an assignment's rubric (the `rubric` file of its pack, grader.pack) and validate it when loaded.

Everything the rubric names must exist: its probe groups in the pack's plan module, its checks
as test functions in the pack's checks folder, its comparators in grader.compare. A typo is an error
at load time, not a silent zero at grading time.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .checks import compare
from . import pack as packmod

RUBRIC_ROOT = packmod.BUILTIN_ROOT
VISIBILITIES = ("visible", "hidden")


class RubricError(Exception):
    """The rubric is inconsistent: staff must fix it before anything is graded."""


@dataclass
class Check:
    name: str                     # "test_architecture.py::test_model_function"
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
    pack: packmod.Pack | None = None

    @property
    def checks_dir(self) -> Path:
        return self.pack.checks_dir if self.pack is not None else self.root / "checks"

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def auto_items(self, visible_only: bool = False) -> list[Item]:
        return [i for i in self.items if not i.manual and (i.visibility == "visible" or not visible_only)]

    def note_groups(self) -> list[str]:
        """Probe groups that only manual items name (run to feed the pack's manual_notes hook, after
        the scored ones), in name order."""
        scored = {g for i in self.auto_items() for g in i.probes}
        return sorted({g for i in self.items if i.manual for g in i.probes} - scored)

    def profile(self, name: str) -> dict:
        if name not in self.profiles:
            raise RubricError(f"unknown profile {name!r}; this rubric has {', '.join(self.profiles)}")
        return dict(self.profiles[name], name=name)

    def plan_module(self):
        if self.pack is not None:
            return self.pack.plan
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
    """The rubric of the pack `assignment` names (a built-in name, a name on $GRADER_PACKS, or a
    pack folder's path: see grader.pack.find). `root`, for tests: a folder whose rubric.toml and
    checks/ replace the pack's."""
    try:
        pack = packmod.load(assignment)
    except packmod.PackError as exc:
        raise RubricError(str(exc)) from None
    if root is not None:
        pack = dataclasses.replace(pack, root=Path(root), rubric_file=Path(root) / "rubric.toml",
                                   checks_dir=Path(root) / "checks")
    root, path = pack.root, pack.rubric_file
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path}: not valid TOML: {exc}") from None
    if data.get("assignment", pack.name) != pack.name:
        raise RubricError(f"{path}: assignment = {data['assignment']!r}, but its pack is named {pack.name!r}")
    items = [_auto_item(raw, i) for i, raw in enumerate(data.get("items", []))]
    for group in data.get("manual", []):
        for raw in group.get("items", []):
            # `bonus` on the item or on its group: extra credit, which raises a score, never its maximum
            # `probes`: groups run only to feed the pack's manual_notes hook (a TA's note), never scored
            items.append(Item(id=raw["id"], title=raw["title"], points=float(raw["points"]),
                              visibility="visible", manual=True, probes=list(raw.get("probes", [])),
                              bonus=bool(raw.get("bonus", group.get("bonus", False)))))
    rubric = Rubric(assignment=pack.name, title=data.get("title", pack.name),
                    root=root, items=items, profiles=data.get("profiles", {}), pack=pack)
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
    for name, profile in rubric.profiles.items():
        missing = [k for k in ("probe_timeout", "submission_timeout") if k not in profile]
        if missing:
            _fail(f"profiles.{name}", f"missing {', '.join(missing)} (seconds: each probe, the whole submission)")
