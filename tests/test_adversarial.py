"""The adversarial suite: hostile submissions graded end to end (`grader.pipeline.grade`).

Each folder under `submissions/a2/adversarial/` is the reference solution plus ONE attack (its
`mutation.toml` says which, where it runs, and the defence that stops it). Most attacks also carry a
small bug that the attack tries to hide or to buy its way past (a sampler that divides by the
temperature, a `process` that forgets to rescale, ...), so a successful attack would show as points
the bug does not deserve. For every case this test asserts:

- the per-item points of its `expected.json`: no credit for the attacked item beyond what the honest
  (buggy) code earns, full marks for every item it did not attack;
- the attack really ran (the worker printed the case's `evidence`), and no secret the test planted
  (a token in the grader's environment, the output folder, another student's files) reached it;
- the grade completed (status `graded`), result.json/results.json are the grader's own and agree
  with the report, and the same sandbox grades the next submission correctly (an honest probe on the
  reference right after; a full grade of the reference after the cases marked `canary = "full"`);
- nothing outside the worker's folder changed: the output folder (a planted file), the gold folder,
  the gold cache, a planted "other student" folder, the host's /tmp and /dev/shm (no new entry owned
  by one of the case's worker uids or named with its marker);
- no process of the worker survives: none of the worker uids has a process left, no command line
  holds the case's marker, and a TCP server on the host's loopback saw no connection.

The submission also gets a `grader_targets.py` naming the real paths (output folder, gold folder,
cache, other student), the grader's pid and the loopback port, so each attack aims at the real
targets rather than guesses: a student who knows the grader's layout.

Limits are the defaults except where a case asks for smaller ones (`[adversarial] limits`: 3 GiB
of memory, 64 processes, small file, /tmp and answer sizes; `probe_timeout` = 3 s for the probes
named in `timeout_probes`, the ones a loop or a sleep hangs), so the suite stays fast. A case's
`feedback` patterns must appear in the report (a hit limit is a clear item result). Needs the isolated sandbox (root + bubblewrap, as in CI); skipped elsewhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

import grader.pipeline as pipeline
from grader import gold as goldmod
from grader import rubric as rubricmod
from grader.examples import PROJECT, examples_root, expected, materialize
from grader.intake.unpack import load_submission
from grader.probes.client import ProbeSpec, run_plan
from grader.report.results import result_dict, validate_result
from grader.sandbox.launcher import Limits, Sandbox, processes_of_uid

ROOT = examples_root("a2") / "adversarial"
CASES = sorted(p.parent for p in ROOT.glob("*/mutation.toml"))
REFERENCE = examples_root("a2") / "reference"
ISOLATED = sys.platform.startswith("linux") and Sandbox(quiet=True).mode == "isolated"

pytestmark = pytest.mark.skipif(not ISOLATED, reason="the adversarial suite needs the isolated "
                                                     "sandbox (root and bubblewrap)")

LIMIT_FIELDS = {f.name for f in dataclasses.fields(Limits)}
CANARY_KEY = "cnn_fwd/k3-f16-c24-i1"


def spec_of(case: Path) -> dict:
    with (case / "mutation.toml").open("rb") as fh:
        return tomllib.load(fh)


# ----------------------------------------------------------------------------- the world around

class RecordingSandbox(Sandbox):
    """The real sandbox, remembering each worker it started (its uid, its output)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.workers = []

    def launch(self, workspace):
        worker = super().launch(workspace)
        self.workers.append(worker)
        return worker

    def outputs(self) -> str:
        return "\n".join(w.output.text() for w in self.workers)


class LoopbackServer:
    """A TCP server on the host's 127.0.0.1 that counts connections (none may arrive)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture(scope="module")
def server():
    srv = LoopbackServer()
    yield srv
    srv.sock.close()


@pytest.fixture(scope="module")
def gold():
    rubric = rubricmod.load("a2")
    return goldmod.ensure(rubric, rubric.profile("ci"), None, log=lambda m: None)


def tree(path: Path) -> dict:
    """Every entry under `path` (itself included): mode, owner, size and content hash."""
    out = {}
    for p in [path, *sorted(path.rglob("*"))]:
        st = os.lstat(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
        out[str(p.relative_to(path))] = (st.st_mode, st.st_uid, st.st_size, digest)
    return out


def top_entries(folder: str) -> dict[str, int]:
    out = {}
    for entry in os.scandir(folder):
        try:
            out[entry.name] = entry.stat(follow_symlinks=False).st_uid
        except OSError:
            continue
    return out


def cmdlines_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def plant_other_student(folder: Path, token: str) -> Path:
    """Another student's workspace-like folder: a correct solution and a secret."""
    folder.mkdir(parents=True)
    for name in ("colourization.py", "min_char_rnn.py", "answers.toml"):
        shutil.copyfile(REFERENCE / name, folder / name)
    (folder / "secret.txt").write_text(token)
    return folder


def write_targets(sub: Path, targets: dict) -> None:
    lines = ['"""What a student who knows the grader\'s layout would aim at (written by the test)."""']
    lines += [f"{k} = {v!r}" for k, v in targets.items()]
    (sub / "grader_targets.py").write_text("\n".join(lines) + "\n")


def clamp_timeouts(monkeypatch, seconds: float | None, keys: list[str]) -> None:
    """A test-only cap on the wall clock of the probes the attack hangs (keys starting with one of
    `keys`); the profile asks for 60 s (180 s to train), and the others keep that."""
    if not seconds:
        return
    real = pipeline.run_plan

    def capped(specs, *args, **kwargs):
        specs = [dataclasses.replace(s, timeout=min(s.timeout, seconds))
                 if s.key.startswith(tuple(keys)) else s for s in specs]
        return real(specs, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_plan", capped)


def points(report) -> dict:
    return {i.id: i.points for i in report.items if i.status != "manual"}


def canary_probe(box: Sandbox, gold, tmp: Path) -> None:
    """The next submission is graded by the same sandbox: an honest probe on the reference."""
    sub = load_submission(REFERENCE, tmp / "canary_ws", student="canary", assignment="a2")
    ref = gold.outputs[CANARY_KEY]
    args = dict(model="CNN", kernel=3, nf=16, nc=24, cin=1, seed=0, batch=3)
    [result] = run_plan([ProbeSpec(CANARY_KEY, "model_forward", "colourization", args)],
                        sub.workspace, sub.modules, "a2", box).values()
    assert result.ok, result.error
    for name in ("out", "grad"):
        np.testing.assert_array_equal(result.arrays[name], ref.arrays[name])


def world(case, tmp_path, monkeypatch, server, gold):
    """The world around the worker: the submission (with grader_targets.py), planted secrets and
    the folders that must not change. Returns (submission, out, other student, marker, token)."""
    marker = "advmark" + secrets.token_hex(6)
    token = "advsecret" + secrets.token_hex(8)
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text(f"an earlier run's file {token}")
    other = plant_other_student(tmp_path / "batch" / "other_student", token)
    monkeypatch.setenv("GRADER_ADV_SECRET", token)
    monkeypatch.setenv("GRADER_GOLD_DIR", str(gold.root))
    sub = materialize(case, tmp_path / "subs")
    write_targets(sub, {"GRADER_PID": os.getpid(), "OUT": str(out), "GOLD": str(gold.root),
                        "CACHE": str(goldmod.cache_root()), "OTHER": str(other),
                        "PROJECT": str(PROJECT), "PORT": server.port, "MARKER": marker})
    return sub, out, other, marker, token


# ----------------------------------------------------------------------------- the suite

def test_the_suite_has_enough_cases():
    assert len(CASES) >= 25
    for case in CASES:
        spec = spec_of(case)
        assert spec.get("base") == "reference", case.name
        adv = spec.get("adversarial", {})
        assert adv.get("attack") and adv.get("defence") and adv.get("evidence"), case.name
        assert expected(case) is not None, case.name
        assert f"`{case.name}`" in (ROOT / "README.md").read_text(), f"{case.name} is not in the README"


# Three attacks in the default run (a hang, reading gold by path, patching builtins); the whole
# suite under `heavy`, which CI runs.
DEFAULT_ATTACKS = {"infinite_loop_in_forward", "read_gold_by_path", "patch_builtins"}


@pytest.mark.parametrize("case", [c if c.name in DEFAULT_ATTACKS else pytest.param(c, marks=pytest.mark.heavy)
                                  for c in CASES], ids=[c.name for c in CASES])
def test_attack(case, tmp_path, monkeypatch, server, gold):
    """One hostile submission, graded end to end: the attack its test id names, stopped by the
    defence its mutation.toml names (shown when an assertion fails)."""
    spec = spec_of(case)
    adv = spec["adversarial"]
    want = expected(case)
    sub, out, other, marker, token = world(case, tmp_path, monkeypatch, server, gold)
    accepted = server.accepted
    before = {"out": tree(out), "gold": tree(gold.root), "other": tree(other)}
    cache_before = set(os.listdir(goldmod.cache_root()))
    tmp_before = {d: top_entries(d) for d in ("/tmp", "/dev/shm")}

    limits = dict(adv.get("limits", {}))
    clamp_timeouts(monkeypatch, limits.pop("probe_timeout", None), adv.get("timeout_probes", []))
    assert set(limits) <= LIMIT_FIELDS, f"unknown limits {set(limits) - LIMIT_FIELDS}"
    box = RecordingSandbox(Limits(probe_s=60, submission_s=900, **limits), mode="isolated",
                           hide=[out, gold.root, other.parent], quiet=True)

    started = time.monotonic()
    report = pipeline.grade(sub, pipeline.Options("a2", student=case.name), out, sandbox=box,
                            log=lambda m: None)
    elapsed = time.monotonic() - started
    time.sleep(float(adv.get("settle_s", 0)))    # a background process would act now
    seen = box.outputs()

    # 1. points: nothing unearned, nothing lost on untouched items
    got = points(report)
    diff = {k: (got.get(k), v) for k, v in want.items() if not k.startswith("_")
            and abs(got.get(k, -1) - v) > 1e-9}
    feedback = {i.id: i.feedback[:600] for i in report.items if i.id in diff}
    assert not diff, (f"{case.name}: the defence ({adv['defence']}) did not hold: points (got, "
                      f"expected) differ: {diff}\nfeedback: {feedback}\nworker output: {seen[-3000:]}")
    assert report.status == want.get("_status", "graded")
    told = "\n".join([i.feedback for i in report.items] + report.notes)
    for pattern in adv.get("feedback", []):       # a hit limit is a clear message, not a crash
        assert re.search(pattern, told), f"no {pattern!r} in the feedback:\n{told[-3000:]}"

    # 2. the attack ran, and saw no secret
    for pattern in adv["evidence"]:
        assert re.search(pattern, seen), f"no evidence {pattern!r} in the worker output:\n{seen[-4000:]}"
    for pattern in adv.get("forbidden", []):
        assert not re.search(pattern, seen), f"{pattern!r} in the worker output:\n{seen[-4000:]}"
    assert token not in seen, "a planted secret reached the worker"

    # 3. the result files are the grader's own
    assert sorted(os.listdir(out)) == ["previous.txt", "result.json", "results.json"]
    result = json.loads((out / "result.json").read_text())
    assert validate_result(result) == []
    mine = result_dict(report)
    assert {i["id"]: i["points"] for i in result["items"]} == {i["id"]: i["points"] for i in mine["items"]}
    assert json.loads((out / "results.json").read_text())["score"] == report.auto_score

    # 4. nothing outside the worker's folder changed
    after_out = tree(out)
    assert {k: v for k, v in after_out.items() if k not in ("result.json", "results.json")} == \
        {k: v for k, v in before["out"].items()}
    assert tree(gold.root) == before["gold"], "the gold folder changed"
    assert tree(other) == before["other"], "another student's folder changed"
    new_cache = set(os.listdir(goldmod.cache_root())) - cache_before
    assert not [n for n in new_cache if marker in n], new_cache
    uids = {w.uid for w in box.workers}
    for folder, entries in tmp_before.items():     # (other graders on this host use /tmp too)
        new = {n: uid for n, uid in top_entries(folder).items() if n not in entries}
        assert not [n for n, uid in new.items() if uid in uids or marker in n], (folder, new)

    # 5. no process of the worker survives, nothing reached the host's loopback
    assert box.workers, "no worker was started"
    for worker in box.workers:
        assert not worker.alive()
        assert worker.uid is not None and processes_of_uid(worker.uid) == []
    assert cmdlines_with(marker) == []
    assert server.accepted == accepted, "a worker connected to the host's loopback"

    # 6. the batch goes on: the same sandbox grades the next submission
    canary_probe(box, gold, tmp_path)
    if adv.get("canary") == "full":
        ref = pipeline.grade(REFERENCE, pipeline.Options("a2", student="canary"), tmp_path / "canary_out",
                             sandbox=box, log=lambda m: None)
        assert points(ref) == {i.id: i.max_points for i in ref.items if i.status != "manual"}
    limit = float(adv.get("max_seconds", 120))
    assert elapsed < limit, f"grading took {elapsed:.0f} s (limit {limit:g} s)"


UNISOLATED = [c for c in CASES if "without_isolation" in spec_of(c)["adversarial"]]


@pytest.mark.slow
@pytest.mark.parametrize("case", UNISOLATED, ids=[c.name for c in UNISOLATED])
def test_attack_works_without_isolation(case, tmp_path, monkeypatch, server, gold):
    """The attack is real: graded with an unisolated worker (basic mode: the grader's own user and
    filesystem), it gets the points it aimed at (`without_isolation`), so it is the sandbox that
    stops it in the suite. Only cases that merely read files are run this way."""
    adv = spec_of(case)["adversarial"]
    sub, out, *_ = world(case, tmp_path, monkeypatch, server, gold)
    box = Sandbox(Limits(), mode="basic", netns=False, quiet=True)
    report = pipeline.grade(sub, pipeline.Options("a2", student=case.name), out, sandbox=box, log=lambda m: None)
    got = points(report)
    want = dict(expected(case), **adv["without_isolation"])
    assert {k: got.get(k) for k in want} == want
