"""The student bundle: the grader with the visible checks and their gold only.

`grader bundle --student --out DIR` copies the `grader` package and the rubric with its hidden
items, checks and gold removed, plus a gold folder holding only what the visible items need, so
`grader check` runs on a student's laptop without the reference solution or any hidden value.
"""
from __future__ import annotations

import ast
import json
import shutil
import tomllib
from pathlib import Path

from . import gold as goldmod
from . import rubric as rubricmod
from . import store

PROJECT = Path(__file__).resolve().parent.parent
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
    _copy_rubric(rubric, visible, out / "rubric" / assignment)
    (out / "rubric" / "__init__.py").write_text("")
    _copy_gold(rubric, profile, gold, visible, out / BUNDLE_GOLD / assignment / profile_name)
    (out / "README.md").write_text(
        f"# Self-check for {rubric.title}\n\nFrom this folder: `python -m grader.cli check PATH "
        f"--profile {profile_name}` where PATH is your folder, zip or notebook.\n"
        f"Only the visible tests run here; hidden tests and written answers are graded later.\n")
    return out


def _copy_rubric(rubric, visible, dest: Path) -> None:
    shutil.copytree(rubric.root, dest, ignore=shutil.ignore_patterns("__pycache__", "test_*.py",
                                                                      "derive.py", "inputs.py", "rubric.toml"))
    wanted = {c.name.split("::")[0] for item in visible for c in item.checks}
    for name in sorted(wanted):
        shutil.copyfile(rubric.checks_dir / name, dest / "checks" / name)
    # Strip hidden checks out of shared modules: keep only the visible items' test functions.
    keep = {c.name for item in visible for c in item.checks}
    for path in (dest / "checks").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
                                                  and f"{path.name}::{n.name}" not in keep)]
        path.write_text(ast.unparse(tree) + "\n")
    raw = (rubric.root / "rubric.toml").read_text()
    data = tomllib.loads(raw)
    ids = {i.id for i in visible}
    (dest / "rubric.json").write_text(json.dumps({"items": sorted(ids)}))
    (dest / "rubric.toml").write_text(_visible_toml(raw, ids))


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
    """Only the reference's answers to the visible items' probes, and the inputs/derived values they
    read; hidden answers (e.g. the r3 unit) and validation labels stay behind."""
    plan = rubric.plan_module()
    keys = set()
    for item in visible:
        for group in item.probes:
            keys |= {s.key for s in plan.GROUPS[group](profile, gold.inputs, for_gold=True)}
    dest.mkdir(parents=True)
    store.save_results(dest / "outputs", {k: v for k, v in gold.outputs.items() if k in keys}, timings=False)
    visible_groups = {g for item in visible for g in item.probes}
    inputs = dict(gold.inputs.arrays)
    if not visible_groups & {"cnn_train", "unet_train", "sr_train"}:
        inputs.pop("valid_y", None)
    store.save_arrays(dest / "inputs.npz", inputs)
    (dest / "inputs.json").write_text(json.dumps(gold.inputs.meta, indent=1))
    derived = {k: v for k, v in gold.derived.items()
               if ("rnn_sample" in visible_groups and k.startswith("sample_"))
               or ("rnn_complete" in visible_groups and k.startswith("complete_"))}
    store.save_arrays(dest / "derived.npz", derived)
    meta = {k: v for k, v in gold.derived_meta.items() if k == "accuracy"} if visible_groups & {
        "cnn_train", "unet_train", "sr_train"} else {}
    (dest / "derived.json").write_text(json.dumps(meta, indent=1))
    (dest / "manifest.json").write_text(json.dumps({"assignment": rubric.assignment, "profile": profile,
                                                    "student_bundle": True}, indent=1))
