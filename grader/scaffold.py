"""`grader new NAME --out DIR`: a working pack for a tiny assignment, to start a new one from.

The pack (templates under grader/templates/pack/, `{{name}}` replaced) has a reference with one
function and one training script, a function probe and a script probe, two checks per item, a
rubric with profiles and a manual item, the reference as an example and one seeded bug with its
expected.json. `grader gold --assignment DIR` and `grader grade DIR/submissions/reference
--assignment DIR` work on it as written; docs/authoring.md walks through it.
"""
from __future__ import annotations

import keyword
import os
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates" / "pack"
SUFFIX = ".tmpl"


class ScaffoldError(Exception):
    pass


def new_pack(name: str, out: Path) -> Path:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ScaffoldError(f"the pack's name must be a Python identifier (e.g. hw1), not {name!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ScaffoldError(f"{out} exists and is not empty; choose a new folder")
    for template in sorted(TEMPLATES.rglob(f"*{SUFFIX}")):
        rel = template.relative_to(TEMPLATES)
        target = out / str(rel)[: -len(SUFFIX)]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.read_text().replace("{{name}}", name))
    # the reference graded as an example: a link to the reference folder, its expectation beside it
    os.symlink(os.path.join("..", "reference"), out / "submissions" / "reference")
    return out
