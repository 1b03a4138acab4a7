"""Example submissions: the reference, seeded-bug mutants, notebooks, broken and hostile ones.

An example folder under `submissions/<a>/` is either a plain submission, or holds a
`mutation.toml` describing how to derive it from the reference solution (exact text edits, files
of its own that replace the reference's, or a conversion to a notebook with training cells), so a
mutant states its one bug instead of copying the whole solution. Each may hold `expected.json`:
the points per item it must get, which the tests assert.
"""
from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import nbformat

from . import pack as packmod

PROJECT = Path(__file__).resolve().parent.parent


class ExampleError(Exception):
    pass


def examples_root(assignment: str) -> Path:
    pack = packmod.load(assignment)
    if pack.submissions is None:
        raise ExampleError(f"the {pack.name} pack has no examples folder")
    return pack.submissions


ADVERSARIAL = "adversarial"


def list_examples(assignment: str, adversarial: bool = False) -> list[Path]:
    """Every example folder (one with a mutation.toml or expected.json, or the reference link).

    The hostile submissions under `adversarial/` (fork bombs, loops, disk fills) are left out unless
    asked for: tests/test_adversarial.py grades them with small limits and checks what they did."""
    root = examples_root(assignment)
    found = [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink() and
             ((p / "mutation.toml").exists() or (p / "expected.json").exists()) and
             (adversarial or ADVERSARIAL not in p.relative_to(root).parts)]
    # The reference is a link to the reference package; its expectation sits beside the link.
    found += [p for p in root.iterdir() if p.is_symlink() and _expected_path(p).exists()]
    return sorted(found)


def _expected_path(example: Path) -> Path:
    inside = example / "expected.json"
    return inside if inside.exists() or not example.is_symlink() else example.parent / f"{example.name}.expected.json"


def expected(example: Path) -> dict | None:
    path = _expected_path(example)
    return json.loads(path.read_text()) if path.exists() else None


SHARED = PROJECT.parent / "shared"      # the course's material (../shared from the project's root)


def shared_submission(example: Path) -> Path:
    """The course folder a `submission.toml` names (`shared = "<course starter>/python"`, under
    ../shared): read there, never copied into the project. ExampleError where it is absent."""
    with (example / "submission.toml").open("rb") as fh:
        spec = tomllib.load(fh)
    src = SHARED / str(spec.get("shared", ""))
    if not spec.get("shared") or not src.exists():
        raise ExampleError(f"{example.name}: its submission is the course's {spec.get('shared')!r} under "
                           f"{SHARED}, which is absent here (course data)")
    return src


def materialize(example: Path, dest: Path, assignment: str | None = None) -> Path:
    """The submission an example stands for, as a real folder (or file) under `dest`.

    A `submission.toml` names course files under ../shared (see `shared_submission`). A
    `mutation.toml` derives the example from the reference: the pack's `reference_files` (paths
    relative to the submission's root, e.g. `python/nn.py`), then the example's own files at any
    depth replacing them, then `remove` and exact-text `edits` (paths relative to the root too)."""
    if (example / "submission.toml").exists():
        return shared_submission(example)
    spec_path = example / "mutation.toml"
    if not spec_path.exists():
        return example
    with spec_path.open("rb") as fh:
        spec = tomllib.load(fh)
    pack = packmod.load(assignment or _pack_of(example))
    out = dest / example.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if spec.get("base") == "reference":
        for name in pack.reference_files:
            src = pack.reference / name
            if src.exists():
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out / name)
    for path in sorted(example.rglob("*")):
        rel = path.relative_to(example)
        if path.is_file() and "__pycache__" not in rel.parts and \
                rel.as_posix() not in ("mutation.toml", "expected.json", "README.md"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / rel)
    for name in spec.get("remove", []):
        (out / name).unlink(missing_ok=True)
    for edit in spec.get("edits", []):
        target = out / edit["file"]
        text = target.read_text()
        count = text.count(edit["find"])
        if count != edit.get("count", 1):
            raise ExampleError(f"{example.name}: {edit['file']} has {count} occurrences of "
                               f"{edit['find']!r}, expected {edit.get('count', 1)}")
        target.write_text(text.replace(edit["find"], edit["replace"]))
    if spec.get("notebook"):
        module = out / pack.examples.get("notebook", "")
        if not module.is_file() or module.suffix != ".py":
            raise ExampleError(f"{example.name}: notebook = true, but the pack's [examples] notebook "
                               f"{pack.examples.get('notebook')!r} is not a file of the mutant")
        to_notebook(module, module.with_suffix(".ipynb"), pack.examples.get("training_cells", ()))
        module.unlink()
    if spec.get("zip"):
        archive = shutil.make_archive(str(dest / spec["zip"]), "zip", out)
        shutil.rmtree(out)
        return Path(archive)
    return out


def _pack_of(example: Path) -> str:
    """The pack whose examples folder holds `example` (a mutant named by its path alone)."""
    here = Path(example).resolve()
    for root in [packmod.BUILTIN_ROOT] + packmod.search_path():
        for manifest in sorted(Path(root).glob(f"*/{packmod.MANIFEST}")) + sorted(Path(root).glob(packmod.MANIFEST)):
            try:
                pack = packmod.load(manifest.parent)
            except packmod.PackError:
                continue
            if pack.submissions is not None and (pack.submissions == here or pack.submissions in here.parents):
                return pack.name
    raise ExampleError(f"{example} is in no pack's examples folder: pass the assignment")


def to_notebook(py: Path, ipynb: Path, training_cells=()) -> None:
    """A module as a Colab-style notebook: one cell per top-level block, then training cells."""
    text = py.read_text()
    cells = [c for c in text.split("\n\n\n") if c.strip()]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.strip("\n")) for c in cells]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in training_cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    ipynb.write_text(nbformat.writes(nb))


def answers_template(assignment: str) -> str:
    pack = packmod.load(assignment)
    if pack.answers_template is None:
        raise ExampleError(f"the {pack.name} pack has no answers template")
    return pack.answers_template.read_text()


def run_demo(out: Path, assignment: str, profile: str, data: Path | None, workers: int = 0) -> int:
    """Grade every bundled example with the batch engine (a gradebook in `out`), then check each
    against its expected.json."""
    from .batch.classrun import Settings, path_entry, run
    from .report.gradebook import load_result

    out.mkdir(parents=True, exist_ok=True)
    subs = out / "submissions"
    entries, examples = [], {}
    for example in list_examples(assignment):
        name = example.relative_to(examples_root(assignment)).as_posix().replace("/", "-")
        try:
            path = materialize(example, subs, assignment)
        except ExampleError as exc:
            if not (example / "submission.toml").exists():
                raise
            print(f"{name}: skipped: {exc}")          # course files absent here
            continue
        entries.append(path_entry(path, student=name))
        examples[name] = example
    code = run(Settings(subs, out, assignment, profile, data, workers=workers), entries)
    if code not in (0, 1):
        return code
    rows = []
    print()
    for name, example in sorted(examples.items()):
        doc = load_result(out / name) or {"status": "missing", "items": [], "auto_score": 0, "auto_max": 0}
        want = expected(example)
        points = {i["id"]: i["points"] for i in doc["items"]}
        agree = "" if want is None else (
            "as expected" if doc["status"] == want.get("_status", "graded") and all(
                abs(points.get(k, -1) - v) < 1e-9 for k, v in want.items() if k != "_status")
            else "UNEXPECTED")
        rows.append((name, agree))
        print(f"{name:<38} {doc['status']:<7} {doc['auto_score']:>5g}/{doc['auto_max']:g}  {agree}", flush=True)
    bad = [r for r in rows if r[1] == "UNEXPECTED"]
    checked = [r for r in rows if r[1]]
    print(f"\n{len(rows)} example submissions graded into {out} (gradebook {out / 'grades.csv'}); "
          f"{len(checked) - len(bad)} of the {len(checked)} with an expected.json scored as it says"
          + (f", {len(bad)} did not" if bad else ""))
    return 1 if bad or code else 0
