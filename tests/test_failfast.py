"""A hanging part fails fast: after one probe of a part (the CNN's constructor or forward) has run
past its timeout, the part's other probes fail at once with the same message, and the other parts
(the UNet here) are graded as usual. Both paths: a cold sandbox, and workers forked from the warm
zygote that `grader batch` uses."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from grader.sandbox.engine import ForkServer, WarmSandbox
from grader.probes.client import run_plan
from grader.sandbox.launcher import Limits, Sandbox
from rubric.a2 import plan

TIMEOUT = 20.0    # a cold worker under load needs some seconds to import the submission
REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "a2" / "colourization.py"
HANG = ("        self.finalconv = MyConv2d(nc, nc, kernel)              # -> [B, NC, 32, 32] logits\n")


def hanging_cnn(workspace: Path) -> dict[str, Path]:
    text = REFERENCE.read_text()
    assert text.count(HANG) == 1
    text = text.replace(HANG, HANG + "        while True:\n            time.sleep(0.05)\n")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "colourization.py").write_text(text)
    return {"colourization": workspace / "colourization.py"}


def specs():
    profile = {"probe_timeout": TIMEOUT}
    return plan.GROUPS["cnn_forward"](profile, None) + plan.GROUPS["unet_forward"](profile, None)


def check(results, seconds):
    cnn = [r for k, r in results.items() if k.startswith("cnn_fwd/")]
    unet = [r for k, r in results.items() if k.startswith("unet_fwd/")]
    assert len(cnn) == len(unet) == len(plan.ARCH_CONFIGS)
    first, rest = cnn[0], cnn[1:]
    assert not first.ok and f"timed out after {TIMEOUT:g} s" in first.error
    assert "CNN never finished" in first.error
    for r in rest:                                   # not run: the same message, no time spent
        assert not r.ok and r.error == first.error and r.seconds == 0.0
    assert all(r.ok for r in unet), [r.error for r in unet]
    # one timeout, plus starting workers; far from one timeout per CNN probe
    assert seconds < TIMEOUT * 3 + 60, seconds


def test_hanging_constructor_fails_fast_in_a_cold_sandbox(tmp_path):
    modules = hanging_cnn(tmp_path / "ws")
    box = Sandbox(Limits(probe_s=TIMEOUT, submission_s=600), quiet=True)
    started = time.monotonic()
    results = run_plan(specs(), tmp_path / "ws", modules, "a2", box)
    check(results, time.monotonic() - started)


@pytest.fixture(scope="module")
def server():
    fs = ForkServer(Sandbox(quiet=True), ("a2",)).start()
    yield fs
    fs.close()


def test_hanging_constructor_fails_fast_with_warm_forked_workers(server):
    ws = Path(tempfile.mkdtemp(dir=server.ws_root)) / "ws"
    modules = hanging_cnn(ws)
    box = WarmSandbox(Sandbox(Limits(probe_s=TIMEOUT, submission_s=600), quiet=True), server)
    before = server.launches
    started = time.monotonic()
    results = run_plan(specs(), ws, modules, "a2", box)
    check(results, time.monotonic() - started)
    assert server.launches > before                  # the workers really came from the zygote


def test_a_file_that_cannot_be_used_says_why_not_that_it_is_missing(tmp_path):
    why = "SyntaxError in colourization.ipynb, cell 10, line 4: invalid syntax"
    results = run_plan(specs()[:1], tmp_path, {}, "a2", Sandbox(quiet=True),
                       unusable={"colourization": why})
    (result,) = results.values()
    assert not result.ok and result.error == f"the colourization file could not be used: {why}"
    results = run_plan(specs()[:1], tmp_path, {}, "a2", Sandbox(quiet=True))
    assert next(iter(results.values())).error == "no colourization file was found"


HANG_AT_K5 = ("    def forward(self, x):                                      # x [B, Cin, 32, 32]\n")


def unet_hanging_at_kernel_5(workspace: Path) -> dict[str, Path]:
    text = REFERENCE.read_text()
    cls = text.index("class UNet")
    at = text.index(HANG_AT_K5, cls)
    init = text.index("        super().__init__()\n", cls)
    assert init < at
    text = (text[:init] + "        super().__init__()\n        self._k = kernel\n"
            + text[init + len("        super().__init__()\n"):at] + HANG_AT_K5
            + "        while self._k == 5:\n            time.sleep(0.05)\n" + text[at + len(HANG_AT_K5):])
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "colourization.py").write_text(text)
    return {"colourization": workspace / "colourization.py"}


def test_a_part_that_hangs_on_one_input_keeps_its_other_probes_when_graded_again_from_the_cache(tmp_path):
    """The soak found it: graded again, the part's first probes came from the probe cache and did
    not count as "answered", so the one hang at kernel 5 then failed the part's later probes (a
    training item lost): the verdict depended on the cache. Both gradings must agree."""
    from grader.probes.cache import ProbeCache

    modules = unet_hanging_at_kernel_5(tmp_path / "ws")
    box = Sandbox(Limits(probe_s=TIMEOUT, submission_s=600), quiet=True)
    profile = {"probe_timeout": TIMEOUT}
    unet = plan.GROUPS["unet_forward"](profile, None)
    cache = ProbeCache(tmp_path / "cache")
    first = run_plan(unet, tmp_path / "ws", modules, "a2", box, cache=cache)
    again = run_plan(unet, tmp_path / "ws", modules, "a2", box, cache=cache)
    assert cache.hits >= 1                              # the first probe came from the cache
    keys = list(first)
    assert not first[keys[1]].ok and "timed out" in first[keys[1]].error
    assert "never finished" not in first[keys[1]].error
    for runs in (first, again):
        assert [runs[k].ok for k in keys] == [True, False, True, True], {k: runs[k].error for k in keys}
