"""Deployment: the Dockerfiles (parsed and checked; no Docker engine runs here) and the Gradescope
autograder zip, unpacked into a temporary /autograder-like folder and run on real submissions."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from classkit import PROJECT, run_cli
from grader.examples import examples_root, expected, materialize
from grader.pack import load as load_pack
from grader.report.export import unpack

DOCKERFILES = [PROJECT / "docker" / "Dockerfile", PROJECT / "docker" / "Dockerfile.cpu"]
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        buf += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word, rest.strip()))
            buf = ""
    assert not buf, f"{path.name}: a continuation line runs off the end"
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_refers_to_real_files(path):
    steps = instructions(path)
    assert steps[0][0] == "FROM"
    unknown = [w for w, _ in steps if w.upper() not in INSTRUCTIONS or w != w.upper()]
    assert not unknown, unknown
    args = {}
    for word, rest in steps:
        if word == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    for word, rest in steps:
        if word == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            name, _, tag = image.rpartition(":")
            assert name and tag and tag != "latest" and "$" not in tag, f"{path.name}: unpinned base {image}"
        if word in ("COPY", "ADD"):
            parts = [p for p in rest.split() if not p.startswith("--")]
            assert not any(p.startswith("--from") for p in rest.split())
            for source in parts[:-1]:
                assert (PROJECT / source).exists(), f"{path.name}: {source} is not in the build context"
                assert not (PROJECT / ".dockerignore").exists() or source not in \
                    (PROJECT / ".dockerignore").read_text().split()
        if word == "RUN":
            assert "pip install" not in rest or "latest" not in rest
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert any(w == "ENTRYPOINT" and "grader" in rest for w, rest in steps)
    assert any(w == "RUN" and 'pip install ".[ray]"' in rest for w, rest in steps)


def test_docker_run_lines_are_documented():
    doc = (PROJECT / "docs" / "throughput.md").read_text()
    runs = [l for l in doc.splitlines() if "docker run" in l]
    assert runs
    text = doc[doc.index("## Docker"):]
    assert "--gpus" in text and "--network none" in text and "--cap-add SYS_ADMIN" in text
    assert "docker/Dockerfile.cpu" in text and "docker build" in text


# ----------------------------------------------------------------------------- Gradescope

@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gradescope")
    zpath = root / "autograder.zip"
    proc = run_cli("export", "gradescope", "--assignment", "a2", "--out", zpath, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return zpath


def run_autograder(zpath: Path, root: Path, submission: Path) -> tuple[dict, subprocess.CompletedProcess]:
    unpack(zpath, root)
    shutil.copytree(submission, root / "submission")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), GRADER_PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=600)
    return json.loads((root / "results" / "results.json").read_text()), proc


def test_autograder_zip_has_the_scripts_the_checks_and_the_gold_but_no_solution(autograder):
    with zipfile.ZipFile(autograder) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert {"setup.sh", "run_autograder", "pyproject.toml"} <= names
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert "rubric/a2/checks/test_training.py" in names and "rubric/a2/rubric.toml" in names
    assert "gold/a2/ci/manifest.json" in names and "grader/worker/zygote.py" in names
    assert not [n for n in names if n.startswith(("reference/", "submissions/", "tests/"))]
    with zipfile.ZipFile(autograder) as zf:
        setup = zf.read("setup.sh").decode()
    assert "pip install /autograder/source" in setup
    check = subprocess.run(["bash", "-n", "-c", setup], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("example", ["reference", "mutants/complete_ignores_starter"])
def test_run_autograder_grades_a_submission_into_results_json(autograder, tmp_path, example):
    source = materialize(examples_root("a2") / example, tmp_path / "m")
    if example == "reference":                       # the link to the package: only the handout's files
        (tmp_path / "ref").mkdir()
        for name in load_pack("a2").reference_files:
            shutil.copyfile(source / name, tmp_path / "ref" / name)
        source = tmp_path / "ref"
    doc, proc = run_autograder(autograder, tmp_path / "autograder", source)
    want = expected(examples_root("a2") / example)
    assert doc["score"] == pytest.approx(sum(want.values())), (doc, proc.stdout[-2000:], proc.stderr[-2000:])
    by_id = {t["name"].split(":")[0]: t for t in doc["tests"]}
    for item_id, points in want.items():
        assert by_id[item_id]["score"] == pytest.approx(points), item_id
    assert "sandbox:" in proc.stdout                    # the isolation in use is in the log


def test_run_autograder_still_writes_results_when_grading_fails(autograder, tmp_path):
    root = tmp_path / "autograder"
    unpack(autograder, root)
    (root / "source" / "gold" / "a2" / "ci" / "manifest.json").unlink()   # a broken installation
    (root / "submission").mkdir()
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), GRADER_PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300)
    doc = json.loads((root / "results" / "results.json").read_text())
    assert proc.returncode == 0 and doc["score"] == 0 and "autograder failed" in doc["output"]
