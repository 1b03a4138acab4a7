"""The warm engine: workers forked from a zygote, the check server, the probe cache, GPU slots.

Real processes throughout: the sandbox attack suite of test_sandbox.py runs again against workers
forked from a real zygote (same attacks, same assertions), a small class is graded by the real
`grader batch` cold and warm and must give the same gradebook, and the probe cache is exercised
on real workers.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

import grader
import test_sandbox as ts
from classkit import example_files, grades, reference_files, run_batch, write_zip
from grader import devices
from grader.sandbox.engine import Engine, ForkServer, WarmSandbox
from grader.probes.cache import ProbeCache, workspace_digest
from grader.probes.client import run_plan
from grader.sandbox.launcher import Limits, Sandbox, processes_of_uid, project_paths
from grader.sandbox.slots import SlotPool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")
isolated = pytest.mark.skipif(not ts.ISOLATED, reason="the warm engine needs root and bubblewrap")


@pytest.fixture(scope="module")
def server():
    if not ts.ISOLATED:
        pytest.skip("the warm engine needs root and bubblewrap")
    fs = ForkServer(Sandbox(quiet=True), ("a2",)).start()
    yield fs
    fs.close()


def in_root(server: ForkServer, name: str = "ws") -> Path:
    """A fresh workspace path under the zygote's workspace folder."""
    return Path(tempfile.mkdtemp(dir=server.ws_root)) / name


# ----------------------------------------------------------------------------- the attack suite

@pytest.fixture
def warm(monkeypatch, server):
    """test_sandbox's helpers, redirected: workspaces under the zygote's folder, sandboxes that
    fork their workers from it. Returns a counter of the forked workers."""
    make = ts.student
    monkeypatch.setattr(ts, "student", lambda folder, attack="": make(in_root(server, folder.name), attack))
    boxes = []

    def sandbox(**limits):
        box = WarmSandbox(Sandbox(Limits(**limits), quiet=True), server)
        boxes.append(box)
        return box

    monkeypatch.setattr(ts, "sandbox", sandbox)
    before = server.launches
    yield lambda: (server.launches - before, sum(b.fallbacks for b in boxes))


ATTACKS = [ts.test_fork_bomb_is_bounded_and_leaves_nothing,
           ts.test_memory_bomb_is_a_clear_error_and_the_next_probe_gets_a_fresh_worker,
           ts.test_cpu_time_limit_is_named,
           ts.test_disk_fill_hits_the_file_size_limit_and_tmp_is_capped,
           ts.test_infinite_loop_at_import_times_out_once_for_the_file,
           ts.test_infinite_loop_and_sleep_in_forward_time_out,
           ts.test_background_processes_do_not_outlive_the_worker,
           ts.test_os_exit_during_a_probe_is_no_answer_and_the_next_probe_runs,
           ts.test_fake_answers_on_stdout_are_ignored,
           ts.test_garbage_on_the_answer_pipe_is_a_malformed_answer,
           ts.test_the_workspace_quota_is_one_total_and_a_copy_per_worker,
           ts.test_the_kernel_surface_is_refused_with_permission_error,
           ts.test_training_dataloader_matplotlib_and_skimage_run_under_the_filter]


@isolated
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__[5:])
def test_sandbox_attacks_fail_the_same_way_on_forked_workers(attack, warm, tmp_path):
    """Every resource, time and process attack of test_sandbox.py, against forked workers."""
    attack(tmp_path)
    forked, fallbacks = warm()
    assert forked >= 1 and fallbacks == 0          # it really ran on workers forked from the zygote


@pytest.fixture(scope="module")
def warm_recon(tmp_path_factory):
    """test_sandbox's reconnaissance worker, forked from a zygote; "another student" is a sibling
    workspace in the zygote's own workspace folder, holding the secret token."""
    if not ts.ISOLATED:
        pytest.skip("the warm engine needs root and bubblewrap")
    tmp = tmp_path_factory.mktemp("warm-recon")
    token = "content-" + secrets.token_hex(8)
    gold = tmp / "gold"
    gold.mkdir()
    (gold / "planted_gold.npz").write_text(token)
    cache = tmp / "cache"
    cache.mkdir()
    (cache / "gold_cache.npz").write_text(token)
    course = tmp / "course"
    (course / "gold").mkdir(parents=True)
    (course / "data.txt").write_text("shared course data")
    (course / "gold" / "planted_gold.txt").write_text(token)
    out = tmp / "out"
    out.mkdir()
    (out / "results.json").write_text('{"score": 0}')
    site = next(p for p in sys.path if p.endswith("site-packages"))
    srv = ts._Server()
    old_env = {k: os.environ.get(k) for k in ("GRADER_SECRET_TOKEN", "GRADER_CACHE")}
    os.environ["GRADER_SECRET_TOKEN"] = token
    os.environ["GRADER_CACHE"] = str(cache)
    base = Sandbox(hide=[gold, out, course / "gold"], readonly=[course], quiet=True)
    fs = ForkServer(base, ("a2",)).start()
    try:
        other = ts.student(in_root(fs, "other_student"), f"SECRET = {token!r}\n")
        cfg = {"project_roots": [str(p) for p in project_paths() if (p / "reference").is_dir()]
               + [str(Path(grader.__file__).resolve().parents[1])],
               "site_entries": [str(p) for p in project_paths() if "site-packages" in str(p)],
               "gold_file": str(next(gold.iterdir())), "cache_file": str(cache / "gold_cache.npz"),
               "course_gold": str(next((course / "gold").iterdir())),
               "course_data": str(course / "data.txt"),
               "other_student": str(other / "colourization.py"), "out_dir": str(out),
               "grader_pid": os.getpid(), "port": srv.tcp.getsockname()[1],
               "abstract": srv.abstract, "marker": "wmark-" + secrets.token_hex(6), "site": site}
        ws = ts.student(in_root(fs), ts.RECON % json.dumps(cfg))
        box = WarmSandbox(base, fs)
        sess = ts.session(ws, box)
        [result] = ts.ask(sess, ts.spec())
        uid = sess.proc.uid
        forked = type(sess.proc).__name__
        sess.close()
        fs_root, launches = fs.ws_root, fs.launches
        kept = tmp / "ws-after"                   # the zygote's folder goes when it closes
        import shutil

        shutil.copytree(ws, kept)
    finally:
        fs.close()
        srv.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    line = next(l for l in sess.outputs[-1].splitlines() if l.startswith("RECON:"))
    return dict(seen=json.loads(line[len("RECON:"):]), result=result, token=token, cfg=cfg,
                tmp=tmp, ws=kept, uid=uid, server=srv, description=box.description, forked=forked,
                ws_root=fs_root, launches=launches)


RECON_TESTS = [ts.test_recon_worker_still_grades_honestly,
               ts.test_runs_as_a_dedicated_unprivileged_uid_without_capabilities,
               ts.test_reference_source_cannot_be_imported_or_read,
               ts.test_gold_other_students_and_output_are_hidden,
               ts.test_walking_root_finds_no_gold,
               ts.test_proc_shows_nothing_of_the_grader_and_env_is_scrubbed,
               ts.test_network_is_loopback_only,
               ts.test_writes_outside_the_workspace_fail_and_change_nothing,
               ts.test_cannot_signal_or_trace_the_grader]


@isolated
@pytest.mark.parametrize("check", RECON_TESTS, ids=lambda f: f.__name__[5:])
def test_forked_worker_sees_and_reaches_what_a_cold_one_does(check, warm_recon):
    """The reconnaissance worker's findings, checked by test_sandbox's own assertions; here the
    other student is a sibling in the zygote's workspace folder."""
    assert warm_recon["forked"] == "ZygoteWorker" and warm_recon["launches"] == 1
    check(warm_recon)


@isolated
def test_forked_worker_sees_only_its_own_workspace_in_the_shared_folder(warm_recon):
    """The sibling workspace is not merely unreadable (another uid's 0700 folder): it is not
    there at all, since the zygote's folder of workspaces is covered in each worker's view."""
    seen = warm_recon["seen"]
    assert seen["other_student"][1].startswith("FileNotFoundError"), seen["other_student"]
    assert "other_student" not in seen["walk"][1]


# ----------------------------------------------------------------------------- zygote lifetime

@isolated
def test_a_dead_zygote_means_cold_workers_not_a_failed_batch(tmp_path):
    """If the zygote dies, its workers die with its pid namespace; the next launch is cold."""
    base = Sandbox(quiet=True)
    fs = ForkServer(base, ("a2",)).start()
    box = WarmSandbox(base, fs, log=lambda m: None)
    try:
        ws = ts.student(in_root(fs))
        [first] = run_plan([ts.spec()], ws, {"colourization": ws / "colourization.py"}, "a2", box).values()
        ts.assert_honest(first)
        os.killpg(fs.proc.pid, signal.SIGKILL)
        fs.proc.wait(timeout=10)
        ws2 = ts.student(in_root(fs, "ws2"))
        [second] = run_plan([ts.spec()], ws2, {"colourization": ws2 / "colourization.py"}, "a2", box).values()
        ts.assert_honest(second)
        assert box.fallbacks == 1 and fs.broken
    finally:
        fs.close()
    assert not fs.ws_root.exists()


@isolated
def test_worker_kill_takes_its_whole_namespace_and_frees_the_uid(server):
    ws = ts.student(in_root(server), """
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    """)
    sess = ts.session(ws, WarmSandbox(Sandbox(quiet=True), server))
    ts.assert_honest(ts.ask(sess, ts.spec())[0])
    uid = sess.proc.uid
    assert len(processes_of_uid(uid)) >= 2
    sess.close()
    assert processes_of_uid(uid) == []


# ----------------------------------------------------------------------------- probe cache

class Counting:
    """A sandbox that counts the workers it launches (and otherwise is the real one)."""

    def __init__(self, box):
        self.box, self.launched = box, 0

    def __getattr__(self, name):
        return getattr(self.box, name)

    def launch(self, workspace):
        self.launched += 1
        return self.box.launch(workspace)


def _plan(ws, specs, box, cache):
    return run_plan(specs, ws, {"colourization": ws / "colourization.py"}, "a2", box, cache=cache)


@isolated
def test_probe_cache_reuses_answers_for_the_same_content_only(server, tmp_path):
    cache = ProbeCache(tmp_path / "cache")
    specs = [ts.spec("a"), ts.spec("b", kernel=5)]
    box = Counting(WarmSandbox(Sandbox(quiet=True), server))
    ws = ts.student(in_root(server))
    first = _plan(ws, specs, box, cache)
    assert box.launched == 1 and cache.stored == 2
    copy = ts.student(in_root(server, "copy"))                        # byte-identical elsewhere
    again = _plan(copy, specs, box, cache)
    assert box.launched == 1 and cache.hits == 2                      # no worker at all
    for key in first:
        assert again[key].ok and (again[key].arrays["out"] == first[key].arrays["out"]).all()
    changed = ts.student(in_root(server, "changed"), "X = 1\n")       # one more line: another key
    _plan(changed, specs, box, cache)
    assert box.launched == 2
    partial = _plan(ts.student(in_root(server, "p")), [ts.spec("a"), ts.spec("c", kernel=7)], box, cache)
    assert box.launched == 3 and partial["c"].ok                      # a hit, then a miss: replayed


@isolated
def test_a_slot_is_held_only_while_a_worker_runs(server, tmp_path):
    """grader/sandbox/slots.py: a batch's grading threads share the worker slots; a submission answered
    entirely by the probe cache runs no worker, so it is graded even while every slot is busy."""
    import concurrent.futures

    cache = ProbeCache(tmp_path / "cache")
    pool = SlotPool([WarmSandbox(Sandbox(quiet=True), server)])
    first = _plan(ts.student(in_root(server)), [ts.spec("a")], pool, cache)
    assert first["a"].ok and not first["a"].cached
    held = pool.acquire()                                   # the only slot is back, and now busy
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            again = ex.submit(_plan, ts.student(in_root(server, "copy")), [ts.spec("a")], pool, cache)
            assert again.result(timeout=60)["a"].cached
            blocked = ex.submit(_plan, ts.student(in_root(server, "other"), "X = 2\n"), [ts.spec("a")], pool, cache)
            with pytest.raises(concurrent.futures.TimeoutError):
                blocked.result(timeout=2)                   # a real worker must wait for the slot
            pool.release(held)
            held = None
            assert blocked.result(timeout=60)["a"].ok
    finally:
        if held is not None:
            pool.release(held)


@isolated
def test_probe_cache_never_keeps_a_timeout_nor_what_follows_it(server, tmp_path):
    cache = ProbeCache(tmp_path / "cache")
    ws = ts.student(in_root(server), """
        def on_forward(kernel):
            if kernel == 5:
                time.sleep(60)
    """)
    box = WarmSandbox(Sandbox(quiet=True), server)
    results = _plan(ws, [ts.spec("a"), ts.spec("slow", 5, timeout=2), ts.spec("b")], box, cache)
    assert "timed out" in results["slow"].error and results["b"].ok
    assert cache.stored == 1                                          # only the answer before it


def test_workspace_digest_covers_names_contents_and_links(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("x = 1\n")
    one = workspace_digest(ws)
    (ws / "a.py").write_text("x = 2\n")
    two = workspace_digest(ws)
    (ws / "b.py").symlink_to("a.py")
    three = workspace_digest(ws)
    (ws / "b.py").unlink()
    (ws / "c").mkdir()
    four = workspace_digest(ws)
    assert len({one, two, three, four}) == 4
    (ws / "c").rmdir()
    assert workspace_digest(ws) == two


def test_probe_cache_rejects_entries_that_are_not_plain_numbers(tmp_path):
    import numpy as np

    from grader.records import ProbeResult

    cache = ProbeCache(tmp_path)
    cache.store("k" * 64, ProbeResult("fwd", True, {"out": np.ones(3, dtype=np.float32)}, {"m": 1}))
    assert cache.load("k" * 64).arrays["out"].tolist() == [1, 1, 1]
    np.save(tmp_path / "kk" / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(tmp_path / "kk" / ("k" * 64 + ".npz"), "w") as zf:
        zf.write(tmp_path / "kk" / "evil.npy", "out.npy")
    assert cache.load("k" * 64) is None


def test_probe_cache_is_pruned_oldest_first(tmp_path):
    import numpy as np

    from grader.records import ProbeResult

    cache = ProbeCache(tmp_path, max_bytes=300_000)
    for i in range(6):
        cache.store(f"{i:064d}", ProbeResult("k", True, {"a": np.zeros(20_000, dtype=np.float32)}))
        os.utime(cache._paths(f"{i:064d}")[0], (1000 + i, 1000 + i))
    assert cache.prune() > 0
    assert cache.size() <= 300_000
    assert cache.load(f"{5:064d}") is not None and cache.load(f"{0:064d}") is None


# ----------------------------------------------------------------------------- devices

def test_gpu_assignment_round_robin_with_workers_per_gpu(monkeypatch):
    assert devices.parse_gpus("none") == [] and devices.parse_gpus("0,1") == ["0", "1"]
    with pytest.raises(ValueError):
        devices.parse_gpus("zero")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.parse_gpus(None) == devices.parse_gpus("auto") == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.detect_gpus() == []
    assert devices.worker_count(0, ["0", "1"], 3) == 6
    assert devices.assign(6, ["0", "1"]) == ["0", "1", "0", "1", "0", "1"]
    assert devices.assign(3, []) == ["", "", ""]
    assert devices.worker_count(5, ["0"], 2) == 5                      # --workers wins
    assert devices.worker_count(0, [], 2) == min(4, os.cpu_count() or 1)


def test_gpu_slots_become_the_workers_cuda_visible_devices(tmp_path):
    """Each slot's sandbox sets CUDA_VISIBLE_DEVICES to its one GPU (no GPU on this machine: the
    device nodes are bound only where they exist, which test_sandbox checks)."""
    from grader.pipeline import sandbox_for

    profile = {"probe_timeout": 60, "submission_timeout": 900}
    envs = [sandbox_for(profile, gpu=g).env(tmp_path)["CUDA_VISIBLE_DEVICES"] for g in devices.assign(4, ["0", "1"])]
    assert envs == ["0", "1", "0", "1"]
    assert sandbox_for(profile, gpu="").env(tmp_path)["CUDA_VISIBLE_DEVICES"] == ""
    engine = Engine("a2", warm=False)
    assert engine.sandbox(sandbox_for(profile, gpu="1")).gpu == "1"


def test_worker_runtime_sets_deterministic_flags_only_with_a_gpu(monkeypatch):
    import torch

    from grader.worker.main import deterministic

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    deterministic(torch)
    assert torch.are_deterministic_algorithms_enabled() == before


# ----------------------------------------------------------------------------- whole batches

def small_class(root: Path, tmp: Path) -> Path:
    cls = root / "class"
    write_zip(cls / "CS17B001_Assign2.zip", reference_files(("colourization.py", "colour_regression.py",
                                                             "min_char_rnn.py")))
    write_zip(cls / "CS17B002_Assign2.zip", example_files("mutants/complete_ignores_starter", tmp))
    write_zip(cls / "CS17B003_Assign2.zip", {"colourization.py": "import torch\n\ndef f(:\n    pass\n"})
    (cls / "CS17B004_Assign2.zip").write_bytes(b"PK\x03\x04 not a zip")
    return cls


def results(out: Path) -> dict:
    docs = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text())
        doc.pop("execution_time")
        doc.get("batch", {}).pop("probes", None)     # where answers came from: the cache's business
        docs[path.parent.name] = doc
    return docs


@pytest.mark.heavy
def test_warm_batch_gives_the_cold_gradebook_and_a_regrade_reuses_every_answer(tmp_path):
    """One class through the real `grader batch`: cold (--no-warm --no-cache), warm (the default,
    an empty probe cache), and warm again with --force (every answer from the cache)."""
    cls = small_class(tmp_path, tmp_path / "tmp")
    env = {"GRADER_PROBE_CACHE": str(tmp_path / "probe-cache")}
    started = time.monotonic()
    cold = run_batch(cls, "--out", tmp_path / "cold", "--workers", "2", "--no-warm", "--no-cache", env=env)
    cold_s = time.monotonic() - started
    started = time.monotonic()
    warm = run_batch(cls, "--out", tmp_path / "warm", "--workers", "2", env=env)
    warm_s = time.monotonic() - started
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert grades(tmp_path / "warm") == grades(tmp_path / "cold")
    assert results(tmp_path / "warm") == results(tmp_path / "cold")
    assert (tmp_path / "warm" / "CS17B001" / "colourization.png").read_bytes() == \
        (tmp_path / "cold" / "CS17B001" / "colourization.png").read_bytes()
    engine = json.loads((tmp_path / "warm" / "batch.json").read_text())["engine"]
    if ts.ISOLATED:
        assert "workers forked from 1 zygote" in engine["description"], engine
    assert "checks in forks of a warm pytest" in engine["description"], engine
    assert "cold (--no-warm)" in json.loads((tmp_path / "cold" / "batch.json").read_text())["engine"]["description"]

    again = run_batch(cls, "--out", tmp_path / "warm", "--workers", "2", "--force", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    cache = json.loads((tmp_path / "warm" / "batch.json").read_text())["engine"]["probe_cache"]
    reused, stored = (int(n) for n in re.findall(r"\d+", cache))
    assert reused >= 20 and stored == 0, cache                        # no worker ran at all
    assert grades(tmp_path / "warm") == grades(tmp_path / "cold")
    assert results(tmp_path / "warm") == results(tmp_path / "cold")
    print(f"cold {cold_s:.1f} s, warm {warm_s:.1f} s")
