"""The student bundle: the grader with the visible checks and their gold only.

`grader bundle --student --out DIR` copies the `grader` package and the assignment's pack (as a
built-in pack of the bundle) with its hidden items, checks, gold inputs and reference removed,
plus a gold folder holding only what the visible items need and the pack's [student_gold] lets
students see, so `grader check` runs on a student's laptop without the reference solution or any
hidden value.
"""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

from .. import gold as goldmod
from .. import pack as packmod
from .. import rubric as rubricmod
from ..probes import store

PROJECT = Path(__file__).resolve().parent.parent.parent
BUNDLE_GOLD = "bundled_gold"


def bundled_gold(assignment: str, profile: str) -> Path | None:
    """Inside a student bundle, the gold shipped with it (None in a full installation)."""
    path = PROJECT / BUNDLE_GOLD / assignment / profile
    return path if (path / "manifest.json").exists() else None


def build_student_bundle(out: Path, assignment: str, profile_name: str, data: Path | None) -> Path:
    rubric = rubricmod.load(assignment)
    profile = rubric.profile(profile_name)
    gold = goldmod.ensure(rubric, profile, data)
    visible = rubric.auto_items(visible_only=True)
    if out.exists():
        shutil.rmtree(out)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT / "grader", out / "grader", ignore=ignore)
    name = rubric.assignment
    _copy_rubric(rubric, visible, out / "rubric" / name)
    (out / "rubric" / "__init__.py").write_text("")
    _copy_gold(rubric, profile, gold, visible, out / BUNDLE_GOLD / name / profile_name)
    (out / "README.md").write_text(
        f"# Self-check for {rubric.title}\n\nFrom this folder: `python -m grader.cli check PATH "
        f"--assignment {name} --profile {profile_name}` where PATH is your folder, zip or notebook.\n"
        f"Only the visible tests run here; hidden tests and written answers are graded later.\n")
    return out


def _copy_rubric(rubric, visible, dest: Path) -> None:
    """The pack folder without what builds gold (inputs, derive), the reference and the examples,
    the rubric reduced to its visible items and the checks to the visible items' test functions."""
    pack = rubric.pack
    leave_out = {p for p in (pack.inputs_file, pack.derive_file, pack.reference, pack.submissions) if p}
    checks_rel = pack.checks_dir.relative_to(pack.root)

    def ignore(folder, names):
        here = Path(folder)
        return {n for n in names if n == "__pycache__" or n.endswith(".pyc") or (here / n).resolve() in leave_out
                or ((here / n).parent == pack.checks_dir and n.startswith("test_") and n.endswith(".py"))
                or (here / n) == pack.rubric_file}

    shutil.copytree(pack.root, dest, ignore=ignore)
    (dest / checks_rel).mkdir(parents=True, exist_ok=True)
    wanted = {c.name.split("::")[0] for item in visible for c in item.checks}
    for name in sorted(wanted):
        shutil.copyfile(pack.checks_dir / name, dest / checks_rel / name)
    # Strip hidden checks out of shared modules: keep only the visible items' test functions.
    keep = {c.name for item in visible for c in item.checks}
    for path in (dest / checks_rel).glob("test_*.py"):
        tree = ast.parse(path.read_text())
        tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
                                                  and f"{path.name}::{n.name}" not in keep)]
        path.write_text(ast.unparse(tree) + "\n")
    raw = pack.rubric_file.read_text()
    ids = {i.id for i in visible}
    (dest / "rubric.json").write_text(json.dumps({"items": sorted(ids)}))
    (dest / pack.rubric_file.relative_to(pack.root)).write_text(_visible_toml(raw, ids))


def _visible_toml(raw: str, ids: set[str]) -> str:
    """The rubric text with hidden and manual items removed (kept textually, comments and all)."""
    blocks = raw.split("\n[[")
    out = [blocks[0]]
    for block in blocks[1:]:
        if block.startswith("manual]]"):
            continue
        if block.startswith("items]]"):
            item_id = block.split('id = "', 1)[1].split('"', 1)[0]
            if item_id not in ids:
                continue
        out.append(block)
    return "\n[[".join(out)


def _copy_gold(rubric, profile, gold, visible, dest: Path) -> None:
    """Only the reference's answers to the visible items' probes, and the inputs and derived values
    the pack's [student_gold] lets students see given the visible items' probe groups (anything it
    does not list stays behind: hidden answers, validation labels)."""
    pack = rubric.pack
    plan = rubric.plan_module()
    visible_groups = {g for item in visible for g in item.probes}
    inputs = {k: v for k, v in gold.inputs.arrays.items() if pack.student_visible("inputs", k, visible_groups)}
    keys = set()
    for group in sorted(visible_groups):
        keys |= {s.key for s in plan.GROUPS[group](profile, gold.inputs, for_gold=True)}
    _check_inputs_suffice(pack, plan, profile, gold, visible_groups, inputs)
    dest.mkdir(parents=True)
    store.save_results(dest / "outputs", {k: v for k, v in gold.outputs.items() if k in keys}, timings=False)
    store.save_arrays(dest / "inputs.npz", inputs)
    (dest / "inputs.json").write_text(json.dumps(gold.inputs.meta, indent=1))
    derived = {k: v for k, v in gold.derived.items() if pack.student_visible("derived", k, visible_groups)}
    store.save_arrays(dest / "derived.npz", derived)
    meta = {k: v for k, v in gold.derived_meta.items() if pack.student_visible("derived_meta", k, visible_groups)}
    (dest / "derived.json").write_text(json.dumps(meta, indent=1))
    (dest / "manifest.json").write_text(json.dumps({"assignment": rubric.assignment, "profile": profile,
                                                    "student_bundle": True}, indent=1))


def _check_inputs_suffice(pack, plan, profile, gold, groups, inputs) -> None:
    """The visible probes must be buildable from what ships: a pack that hides an input they
    send is an error now, not a KeyError on a student's laptop."""
    shipped = goldmod.Inputs(inputs, gold.inputs.meta)
    for group in sorted(groups):
        try:
            plan.GROUPS[group](profile, shipped)
        except KeyError as exc:
            raise packmod.PackError(
                f"{pack.name}: the visible probe group {group} needs gold input {exc} that [student_gold] "
                f"keeps from students; list it there, or make the item hidden") from None
