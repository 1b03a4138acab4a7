"""The worker sandbox against hostile submissions: real workers, real attacks, no mocks.

Each student file here is an honest attempt at one attack, run through the real `Sandbox` and the
probe client (`WorkerSession` / `run_plan`). The attacks live in a small `colourization.py` whose
import, `CNN.__init__` or `CNN.forward` misbehaves; the probe is the A2 `model_forward` probe.
Every test names the attack and the defence that stops it.

The isolation tests need the isolated mode (root + bubblewrap, as on the CI machines); elsewhere
they are skipped with the reason, and the basic fallback is still tested.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import grader
from grader.probes.client import ProbeSpec, WorkerSession, run_plan
from grader.sandbox.launcher import (Limits, Sandbox, SandboxUnavailable, _python_dirs, default_hidden,
                                     gpu_device_nodes, processes_of_uid, project_paths)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")

ISOLATED = sys.platform.startswith("linux") and Sandbox(quiet=True).mode == "isolated"
isolated = pytest.mark.skipif(not ISOLATED, reason="isolated mode needs root and bubblewrap")

HEADER = """\
import json, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

def on_init(kernel):
    pass

def on_forward(kernel):
    pass
"""

CNN = """
class MyConv2d(nn.Module):
    def __init__(self, i, o, k, padding=None):
        super().__init__()
        self.padding = k // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.randn(o, i, k, k))
        self.bias = nn.Parameter(torch.randn(o))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class CNN(nn.Module):
    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super().__init__()
        self.kernel = kernel
        on_init(kernel)
        self.down = nn.Sequential(MyConv2d(num_in_channels, num_filters, kernel), nn.MaxPool2d(2),
                                  nn.BatchNorm2d(num_filters), nn.ReLU())
        self.final = nn.Sequential(MyConv2d(num_filters, num_colours, kernel),
                                   nn.Upsample(scale_factor=2))

    def forward(self, x):
        on_forward(self.kernel)
        return self.final(self.down(x))
"""


def student(folder: Path, attack: str = "") -> Path:
    """A workspace holding a colourization.py: honest CNN + `attack` (module code that may
    redefine on_init/on_forward, which get the kernel size so one file can act per probe)."""
    folder.mkdir(parents=True)
    (folder / "colourization.py").write_text(HEADER + textwrap.dedent(attack) + CNN)
    return folder


def spec(key="fwd", kernel=3, timeout=60.0) -> ProbeSpec:
    return ProbeSpec(key, "model_forward", "colourization",
                     dict(model="CNN", kernel=kernel, nf=8, nc=24, cin=1, seed=0, batch=2),
                     timeout=timeout)


def plan(ws: Path, specs, sandbox: Sandbox):
    return run_plan(specs, ws, {"colourization": ws / "colourization.py"}, "a2", sandbox)


def session(ws: Path, sandbox: Sandbox) -> WorkerSession:
    return WorkerSession(sandbox, ws, {"colourization": "colourization.py"}, "a2")


def ask(sess: WorkerSession, *specs):
    return [sess.request(s, time.monotonic() + 300)[0] for s in specs]


def sandbox(**limits) -> Sandbox:
    return Sandbox(Limits(**limits), quiet=True)


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


def assert_honest(result):
    assert result.ok, result.error
    assert result.arrays["out"].shape == (2, 24, 32, 32)
    assert np.isfinite(result.arrays["out"]).all()


# ----------------------------------------------------------------------------- modes and setup

def test_basic_fallback_forced_runs_the_probe_and_says_it_is_not_isolated(tmp_path, monkeypatch, capsys):
    """Fallback: forced with GRADER_SANDBOX=basic it still grades, and says plainly it isolates nothing."""
    monkeypatch.setenv("GRADER_SANDBOX", "basic")
    box = Sandbox()
    assert box.mode == "basic"
    assert "NOT ISOLATED" in box.description and "can read every file" in box.description
    assert "NOT ISOLATED" in capsys.readouterr().err          # the warning, on stderr
    Sandbox()
    assert "NOT ISOLATED" not in capsys.readouterr().err      # ... said once only
    [result] = plan(student(tmp_path / "ws"), [spec()], box).values()
    assert_honest(result)
    if ISOLATED:        # the same submission gives the same numbers in the real sandbox
        [iso] = plan(student(tmp_path / "ws2"), [spec()], sandbox()).values()
        assert_honest(iso)
        np.testing.assert_array_equal(iso.arrays["out"], result.arrays["out"])
        np.testing.assert_array_equal(iso.arrays["grad"], result.arrays["grad"])


def test_userns_mode_runs_the_probe_in_the_same_view(tmp_path):
    """The laptop path (bubblewrap in a user namespace, no root needed) grades the honest probe and
    sees the same narrow filesystem. (Run as root here, its uid maps to root: said so in the text.)"""
    try:
        box = Sandbox(mode="userns", quiet=True)
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    assert "user namespace" in box.description
    ws = student(tmp_path / "ws", "print('ROOT', sorted(os.listdir('/')), flush=True)")
    sess = session(ws, box)
    assert_honest(ask(sess, spec())[0])
    sess.close()
    assert "'work'" not in sess.outputs[-1] and "'home'" not in sess.outputs[-1]


def test_forced_mode_that_cannot_run_raises_instead_of_running_weaker(monkeypatch):
    """No pretending: a forced mode that is unavailable is an error, not a quiet downgrade."""
    monkeypatch.setenv("GRADER_SANDBOX", "isolated")
    if ISOLATED:
        assert Sandbox(quiet=True).mode == "isolated"
        assert "dedicated unprivileged uid" in Sandbox(quiet=True).description
    else:
        with pytest.raises(SandboxUnavailable):
            Sandbox(quiet=True)
    with pytest.raises(ValueError):
        Sandbox(mode="docker", quiet=True)


def test_default_hidden_covers_the_project_and_the_gold_cache(monkeypatch, tmp_path):
    """The defaults hide the checkout (grader/, reference/, rubric/), site-packages entries of the
    project (editable finder, .pth, dist-info) and the gold cache."""
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    hidden = default_hidden()
    checkout = Path(grader.__file__).resolve().parents[1]
    assert checkout in hidden and tmp_path / "cache" in hidden
    for path in project_paths():
        assert path in hidden
        assert path.name != "site-packages"    # never the whole of site-packages


def test_gpu_is_only_what_it_is_given(tmp_path):
    """GPU: CUDA_VISIBLE_DEVICES is the Sandbox's `gpu` ('' = none) and no /dev/nvidia* is bound
    unless a GPU is given and exists."""
    box = Sandbox(gpu="", quiet=True)
    assert box.env(tmp_path)["CUDA_VISIBLE_DEVICES"] == ""
    assert box.env(tmp_path)["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)     # see sandbox.MALLOC_ENV
    assert Sandbox(gpu="1", quiet=True).env(tmp_path)["CUDA_VISIBLE_DEVICES"] == "1"
    assert gpu_device_nodes("") == []
    if box.mode != "basic":
        assert not any("/dev/nvidia" in a for a in box.argv(3, tmp_path, None))
    if not Path("/dev/nvidiactl").exists():
        assert gpu_device_nodes("0") == []


# ----------------------------------------------------------------------------- reconnaissance

RECON = r'''
CFG = json.loads(%r)
R = {}

def attempt(name, fn):
    try:
        R[name] = ["ok", repr(fn())[:3000]]
    except BaseException as exc:
        R[name] = ["fail", f"{type(exc).__name__}: {exc}"[:400]]

def read(path):
    with open(path, "rb") as fh:
        return fh.read()

def write(path):
    with open(path, "w") as fh:
        fh.write("pwned")
    return "written"

def import_(name):
    __import__(name)
    return sys.modules[name].__file__

def walk_for_gold():
    hits = []
    for top, dirs, files in os.walk("/"):
        if top in ("/proc", "/sys"):
            dirs[:] = []
            continue
        hits += [os.path.join(top, f) for f in dirs + files if "gold" in f.lower()]
    return hits[:20]

def connect(addr, family=None):
    import socket
    s = socket.socket(family or socket.AF_INET)
    s.settimeout(3)
    s.connect(addr)
    return "connected"

def ptrace(pid):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, 0, 0) != 0:      # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "attached"

attempt("whoami", lambda: (os.getuid(), os.getgid(), os.getgroups()))
attempt("caps", lambda: [l for l in read("/proc/self/status").decode().splitlines()
                         if l.startswith(("Cap", "NoNewPrivs"))])
attempt("import_reference", lambda: import_("reference.a2"))
attempt("import_grader", lambda: import_("grader.cli"))
attempt("import_rubric", lambda: import_("rubric"))
for i, root in enumerate(CFG["project_roots"]):
    attempt(f"project_{i}", lambda: os.listdir(root))
    attempt(f"reference_{i}", lambda: read(os.path.join(root, "reference", "a2", "__init__.py")))
for i, path in enumerate(CFG["site_entries"]):
    attempt(f"site_{i}", lambda: read(path) if os.path.isfile(path) else os.listdir(path))
attempt("gold_dir", lambda: read(CFG["gold_file"]))
attempt("gold_cache", lambda: read(CFG["cache_file"]))
attempt("course_gold", lambda: read(CFG["course_gold"]))
attempt("course_data", lambda: read(CFG["course_data"]))
attempt("other_student", lambda: read(CFG["other_student"]))
attempt("out_dir", lambda: os.listdir(CFG["out_dir"]))
attempt("walk", walk_for_gold)
attempt("root_listing", lambda: sorted(os.listdir("/")))
attempt("home", lambda: os.listdir("/home"))
attempt("root_home", lambda: os.listdir("/root"))
attempt("etc_shadow", lambda: read("/etc/shadow"))
attempt("etc_passwd_users", lambda: [l.split(":")[0] for l in read("/etc/passwd").decode().splitlines()])
attempt("environ", lambda: dict(os.environ))
attempt("proc_self_environ", lambda: read("/proc/self/environ"))
attempt("proc_1_environ", lambda: read("/proc/1/environ"))
attempt("proc_grader", lambda: read(f"/proc/{CFG['grader_pid']}/cmdline"))
attempt("proc_pids", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
attempt("interfaces", lambda: __import__("socket").if_nameindex())
attempt("net_host_port", lambda: connect(("127.0.0.1", CFG["port"])))
attempt("net_abstract", lambda: connect("\0" + CFG["abstract"], __import__("socket").AF_UNIX))
started = time.monotonic()
attempt("net_outside", lambda: connect(("192.0.2.1", 80)))
R["net_outside_s"] = time.monotonic() - started
attempt("write_workspace", lambda: write("mine.txt"))
attempt("write_tmp", lambda: write("/tmp/" + CFG["marker"]))
attempt("write_out_dir", lambda: write(os.path.join(CFG["out_dir"], "results.json")))
attempt("write_gold_dir", lambda: write(CFG["gold_file"]))
attempt("write_course", lambda: write(CFG["course_data"]))
attempt("write_site_packages", lambda: write(os.path.join(CFG["site"], CFG["marker"] + ".pth")))
attempt("write_etc", lambda: write("/etc/" + CFG["marker"]))
attempt("write_runtime", lambda: write(os.path.join(sys.path[1], "graderworker", "main.py")))
attempt("chmod_etc_passwd", lambda: os.chmod("/etc/passwd", 0o777))
attempt("chmod_runtime", lambda: os.chmod(sys.path[1], 0o777))
attempt("setuid_root", lambda: os.setuid(0))
attempt("ptrace_pid1", lambda: ptrace(1))
attempt("ptrace_parent", lambda: ptrace(os.getppid()))
attempt("kill_parent", lambda: os.kill(os.getppid(), 9))
attempt("kill_pid1", lambda: os.kill(1, 9))
attempt("kill_grader", lambda: os.kill(CFG["grader_pid"], 9))
attempt("kill_all", lambda: os.kill(-1, 9))
print("RECON:" + json.dumps(R), flush=True)
'''


class _Server:
    """A TCP listener on the host's loopback and an abstract unix socket, counting connections."""

    def __init__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.abstract = "grader-test-" + secrets.token_hex(4)
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        self.accepted = 0
        for s in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        for s in (self.tcp, self.unix):
            s.close()


@pytest.fixture(scope="module")
def recon(tmp_path_factory):
    """One isolated worker tries every read, write, network and signal attack at import time and
    reports what it saw; the tests below each check one family of them."""
    if not ISOLATED:
        pytest.skip("isolated mode needs root and bubblewrap")
    tmp = tmp_path_factory.mktemp("recon")
    token = "content-" + secrets.token_hex(8)     # what the files hold; their names differ
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
    other = student(tmp / "other_student", f"SECRET = {token!r}\n")
    out = tmp / "out"
    out.mkdir()
    (out / "results.json").write_text('{"score": 0}')
    site = next(p for p in sys.path if p.endswith("site-packages"))
    server = _Server()
    old_env = {k: os.environ.get(k) for k in ("GRADER_SECRET_TOKEN", "GRADER_CACHE")}
    os.environ["GRADER_SECRET_TOKEN"] = token
    os.environ["GRADER_CACHE"] = str(cache)
    cfg = {"project_roots": [str(p) for p in project_paths() if (p / "reference").is_dir()]
           + [str(Path(grader.__file__).resolve().parents[1])],
           "site_entries": [str(p) for p in project_paths() if "site-packages" in str(p)],
           "gold_file": str(next(gold.iterdir())), "cache_file": str(cache / "gold_cache.npz"),
           "course_gold": str(next((course / "gold").iterdir())),
           "course_data": str(course / "data.txt"),
           "other_student": str(other / "colourization.py"), "out_dir": str(out),
           "grader_pid": os.getpid(), "port": server.tcp.getsockname()[1],
           "abstract": server.abstract, "marker": "wmark-" + secrets.token_hex(6), "site": site}
    ws = student(tmp / "ws", RECON % json.dumps(cfg))
    try:
        box = Sandbox(hide=[gold, out, other, course / "gold"], readonly=[course], quiet=True)
        sess = session(ws, box)
        [result] = ask(sess, spec())
        uid = sess.proc.uid
        sess.close()
    finally:
        server.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    line = next(l for l in sess.outputs[-1].splitlines() if l.startswith("RECON:"))
    return dict(seen=json.loads(line[len("RECON:"):]), result=result, token=token, cfg=cfg,
                tmp=tmp, ws=ws, uid=uid, server=server, description=box.description)


def fails(seen, key):
    return seen[key][0] == "fail"


@isolated
def test_recon_worker_still_grades_honestly(recon):
    """The attacks are at import; the model itself is honest, so its probe result is intact."""
    assert_honest(recon["result"])
    assert recon["seen"]["write_workspace"] == ["ok", "'written'"]   # its own folder is writable ...
    assert not (recon["ws"] / "mine.txt").exists()    # ... and is a copy: the host's is never written


@isolated
def test_runs_as_a_dedicated_unprivileged_uid_without_capabilities(recon):
    """Defence: bubblewrap as root, then boot.enter drops to a pooled uid, no groups, no caps."""
    uid, gid, groups = eval(recon["seen"]["whoami"][1])
    assert uid == recon["uid"] and uid >= 1_000_000 and gid == uid and groups == []
    caps = eval(recon["seen"]["caps"][1])
    assert all(line.split()[1] == "0000000000000000" for line in caps if line.startswith("Cap"))
    assert "NoNewPrivs:\t1" in caps
    assert fails(recon["seen"], "setuid_root")
    assert eval(recon["seen"]["etc_passwd_users"][1]) == ["root", "nobody", "student"]


@isolated
def test_reference_source_cannot_be_imported_or_read(recon):
    """Attack: `import reference.a2`, `import grader.cli`, reading the checkout by path, reading
    the editable finder. Defence: the checkout is not mounted; project entries in site-packages are
    covered by an empty file/folder, so the .pth installs no finder. A virtual environment inside
    the checkout (`.venv`) is the one thing of it the worker sees: the interpreter it runs on."""
    seen = recon["seen"]
    for key in ("import_reference", "import_grader", "import_rubric"):
        assert fails(seen, key), seen[key]
        assert "ModuleNotFoundError" in seen[key][1]
    roots = [k for k in seen if k.startswith(("project_", "reference_"))]
    assert roots
    for key in roots:
        if key.startswith("project_") and seen[key][0] == "ok":
            # The checkout holds the interpreter (`python3 -m venv .venv` inside it): the worker
            # needs that, so the path down to it is there, and nothing else of the checkout.
            root = Path(recon["cfg"]["project_roots"][int(key.split("_")[1])])
            needed = {Path(p).relative_to(root).parts[0] for p in _python_dirs()
                      if Path(p).is_relative_to(root) and Path(p) != root}
            assert needed and set(eval(seen[key][1])) <= needed, (key, seen[key], needed)
        else:
            assert fails(seen, key), (key, seen[key])
    for key in (k for k in seen if k.startswith("site_")):
        assert seen[key][0] == "fail" or seen[key][1] in ("b''", "[]"), (key, seen[key])


@isolated
def test_gold_other_students_and_output_are_hidden(recon):
    """Attack: read planted gold in a hidden folder, in the gold cache, inside a visible shared folder
    (hidden sub-folder), another student's file, the grader's output folder. Defence: not mounted, or
    covered by an empty tmpfs; the shared data beside the hidden gold stays readable."""
    seen = recon["seen"]
    for key in ("gold_dir", "gold_cache", "course_gold", "other_student", "out_dir", "home"):
        assert fails(seen, key), (key, seen[key])
    assert seen["course_data"] == ["ok", repr(b"shared course data")]
    assert recon["token"] not in json.dumps({k: v for k, v in seen.items() if k != "environ"})


@isolated
def test_walking_root_finds_no_gold(recon):
    """Attack: walk `/` for files named *gold*. Defence: the allowlisted view has none of them."""
    seen = recon["seen"]
    assert seen["walk"][0] == "ok"
    assert recon["token"] not in seen["walk"][1] and "planted" not in seen["walk"][1]
    root = eval(seen["root_listing"][1])
    assert not {"home", "work", "var", "run", "mnt", "media", "srv", "opt", "boot"} & set(root)
    if seen["root_home"][0] == "ok":          # only the path down to a Python installed under /root
        # the Python installation itself (in a venv, the base interpreter's prefix) may sit there
        pythons = {Path(p).parts[2] for p in (sys.prefix, sys.base_prefix)
                   if len(Path(p).parts) > 2 and Path(p).parts[1] == "root"}
        assert set(eval(seen["root_home"][1])) <= pythons


@isolated
def test_proc_shows_nothing_of_the_grader_and_env_is_scrubbed(recon):
    """Attack: /proc/1/environ, /proc/<grader pid>/, os.environ, /proc/self/environ for a planted
    GRADER_SECRET_TOKEN. Defence: own pid namespace with a fresh /proc, a scrubbed environment."""
    seen, token = recon["seen"], recon["token"]
    assert token not in json.dumps(seen)
    env = eval(seen["environ"][1])
    assert env.pop("PWD", "/") in ("/", str(recon["ws"]))      # bubblewrap sets it
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "USER",
                                   "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "LOGNAME",
                                   "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",   # the worker's own BLAS share
                                   "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
                                   "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    assert fails(seen, "proc_1_environ")             # pid 1 is the sandbox's, and not ours to read
    assert fails(seen, "proc_grader") or "pytest" not in seen["proc_grader"][1]
    assert max(eval(seen["proc_pids"][1])) < 100     # a fresh pid namespace: only its own few


@isolated
def test_network_is_loopback_only(recon):
    """Attack: connect to a server the grader runs on 127.0.0.1, to an abstract unix socket, and to
    an outside address. Defence: own network namespace with only `lo`: refused / unreachable."""
    seen = recon["seen"]
    assert [name for _, name in eval(seen["interfaces"][1])] == ["lo"]
    assert fails(seen, "net_host_port") and "ConnectionRefused" in seen["net_host_port"][1]
    assert fails(seen, "net_abstract")
    assert fails(seen, "net_outside") and "unreachable" in seen["net_outside"][1].lower()
    assert seen["net_outside_s"] < 1.0               # fails at once, nothing was routed
    assert recon["server"].accepted == 0


@isolated
def test_writes_outside_the_workspace_fail_and_change_nothing(recon):
    """Attack: write into the output folder, gold, shared data, site-packages, /etc, the worker
    runtime, the host's /tmp; chmod system files. Defence: read-only binds, hidden folders, a
    private /tmp; the host sees no change."""
    seen, cfg, token = recon["seen"], recon["cfg"], recon["token"]
    for key in ("write_out_dir", "write_gold_dir", "write_course", "write_site_packages",
                "write_etc", "write_runtime", "chmod_etc_passwd", "chmod_runtime"):
        assert fails(seen, key), (key, seen[key])
    assert seen["write_tmp"][0] == "ok"                       # its private tmpfs ...
    assert not Path("/tmp", cfg["marker"]).exists()           # ... is not the host's /tmp
    assert Path(cfg["out_dir"], "results.json").read_text() == '{"score": 0}'
    assert Path(cfg["gold_file"]).read_text() == token
    assert Path(cfg["course_data"]).read_text() == "shared course data"
    assert not Path(cfg["site"], cfg["marker"] + ".pth").exists()
    assert not Path("/etc", cfg["marker"]).exists()


@isolated
def test_cannot_signal_or_trace_the_grader(recon):
    """Attack: kill(getppid()), kill(1), kill(<grader pid>), kill(-1), ptrace. Defence: the grader is
    outside the pid namespace and every process inside but the worker's own is another uid."""
    seen = recon["seen"]
    for key in ("kill_parent", "kill_pid1", "ptrace_pid1", "ptrace_parent"):
        assert fails(seen, key), (key, seen[key])
    assert fails(seen, "kill_grader") and "ProcessLookupError" in seen["kill_grader"][1]
    assert os.getpid() and processes_of_uid(recon["uid"]) == []   # we are alive; it is gone


# ----------------------------------------------------------------------------- resource attacks

@isolated
def test_fork_bomb_is_bounded_and_leaves_nothing(tmp_path):
    """Attack: fork bomb in forward. Defence: RLIMIT_NPROC on the worker's own uid; the timeout kills
    the worker and the pid namespace (plus a uid sweep) takes every child with it."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            if kernel == 5:
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
    """)
    box = sandbox(processes=24)
    sess = session(ws, box)
    assert_honest(ask(sess, spec())[0])
    uid, peak, out = sess.proc.uid, 0, {}
    worker = threading.Thread(target=lambda: out.update(r=ask(sess, spec("bomb", 5, timeout=3))[0]))
    worker.start()
    while worker.is_alive():
        peak = max(peak, len(processes_of_uid(uid)))
        time.sleep(0.05)
    sess.close()
    assert not out["r"].ok and "timed out after 3 s" in out["r"].error
    assert 2 < peak <= 24
    assert processes_of_uid(uid) == []


@isolated
def test_memory_bomb_is_a_clear_error_and_the_next_probe_gets_a_fresh_worker(tmp_path):
    """Attack: allocate far more than allowed. Defence: RLIMIT_AS -> MemoryError -> 'used more than
    3 GiB of memory'; the worker is replaced before the next probe."""
    ws = student(tmp_path / "ws", """
        def on_init(kernel):
            if kernel == 5:
                hog = bytearray(8 << 30)
    """)
    sess = session(ws, sandbox(memory_bytes=3 << 30))
    bomb, = ask(sess, spec("bomb", 5))
    first = sess.proc
    assert not bomb.ok and bomb.error.startswith("used more than 3 GiB of memory"), bomb.error
    assert first is None                         # stopped at once: its state is suspect
    honest, = ask(sess, spec("after"))
    sess.close()
    assert_honest(honest)


@isolated
def test_cpu_time_limit_is_named(tmp_path):
    """Attack: burn CPU. Defence: RLIMIT_CPU -> SIGXCPU -> 'used more than N s of CPU time'."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            while True:
                pass
    """)
    [result] = plan(ws, [spec(timeout=30)], sandbox(cpu_s=3)).values()
    assert not result.ok and "used more than 3 s of CPU time" in result.error, result.error


@isolated
def test_disk_fill_hits_the_file_size_limit_and_tmp_is_capped(tmp_path):
    """Attack: one file past the file limit; then many small files in the workspace, /tmp and
    /dev/shm. Defence: RLIMIT_FSIZE per file; the workspace (a copy), /tmp and /dev/shm are folders
    of ONE private tmpfs of `space_bytes`: after the workspace took 3 of its 6 MiB and /tmp 2,
    /dev/shm finds at most the last one; the host's workspace gets nothing."""
    ws = student(tmp_path / "ws", """
        def fill(folder, count):
            done = 0
            try:
                for i in range(count):
                    with open(os.path.join(folder, f"fill{i}"), "wb") as fh:
                        fh.write(b"x" * ((1 << 20) - 1))
                    done += 1
            finally:
                print(f"FILL {folder} {done}", flush=True)

        def on_forward(kernel):
            if kernel == 5:
                with open("big.bin", "wb") as fh:
                    for _ in range(8):
                        fh.write(b"x" * (1 << 20))
            if kernel == 7:
                fill(".", 2)
                fill("/tmp", 2)
                fill("/dev/shm", 16)
    """)
    box = sandbox(file_bytes=1 << 20, space_bytes=6 << 20)
    sess = session(ws, box)
    disk, tmp = ask(sess, spec("disk", 5), spec("tmp", 7))
    sess.close()
    # the model was built, so the forward's error is a fact of the answer (its construction counts)
    disk_error, tmp_error = (r.error or r.meta.get("forward_error", "") for r in (disk, tmp))
    assert disk_error.startswith("wrote a file larger than 1 MiB"), disk_error
    assert tmp_error.startswith("ran out of space (6 MiB for the workspace, /tmp and /dev/shm "
                                "together)"), tmp_error
    out = "\n".join(sess.outputs)
    assert "FILL . 2" in out and "FILL /tmp 2" in out
    shm = int(out.split("FILL /dev/shm ")[1].split()[0])
    assert shm <= 1, out[-2000:]        # 6 MiB in all: big.bin's first 1 MiB, the workspace's 2, /tmp's 2
    assert sorted(p.name for p in ws.iterdir()) == ["colourization.py"]   # the host's copy: untouched


@isolated
def test_the_workspace_quota_is_one_total_and_a_copy_per_worker(tmp_path):
    """The cap holds across the three places and every worker starts from the submission as
    prepared: a file a crashed worker wrote is not there for the next one (no state passes)."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            st = [os.statvfs(p) for p in (".", "/tmp", "/dev/shm")]
            print("SPACE", [s.f_blocks * s.f_frsize for s in st], sorted(os.listdir(".")), flush=True)
            if kernel == 5:
                open("left_by_first.txt", "w").write("x")
                os._exit(3)
    """)
    sess = session(ws, sandbox(space_bytes=8 << 20))
    first, second = ask(sess, spec("a", 5), spec("b", 3))
    sess.close()
    assert not first.ok and second.ok
    lines = [l for l in "\n".join(sess.outputs).splitlines() if l.startswith("SPACE")]
    assert len(lines) == 2
    for line in lines:
        sizes, listing = eval(line[len("SPACE "):].split("] ", 1)[0] + "]"), eval(line.split("] ", 1)[1])
        assert sizes == [8 << 20] * 3                 # one 8 MiB filesystem, seen at all three
    assert "left_by_first.txt" not in lines[1]
    assert not (ws / "left_by_first.txt").exists()



# ----------------------------------------------------------------------------- time attacks

@isolated
def test_infinite_loop_at_import_times_out_once_for_the_file(tmp_path):
    """Attack: `while True: pass` at import. Defence: the trusted side's wall clock kills the worker;
    the file's other probes get the same result without another wait."""
    from grader.sandbox.waiting import WALL_FACTOR

    ws = student(tmp_path / "ws", "while True:\n    pass\n")
    results = plan(ws, [spec("a", timeout=4), spec("b", timeout=4)], sandbox())
    a, b = results["a"], results["b"]
    assert a.error == "importing the submission timed out after 4 s"
    assert b.error == a.error
    # Measured per probe, not as the plan's wall time: that also holds the worker's start-up, and on
    # a loaded machine the timeout itself stretches (idle-machine time, up to WALL_FACTOR x).
    assert 4.0 <= a.seconds < WALL_FACTOR * 4 + 1, a.seconds      # the one wait, for the file
    assert b.seconds < 0.5, b.seconds                               # b is answered without another


@isolated
def test_infinite_loop_and_sleep_in_forward_time_out(tmp_path):
    """Attack: loop forever / sleep past the timeout in forward. Defence: per-probe wall clock; the
    next probe runs in a fresh worker."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            if kernel == 5:
                while True:
                    pass
            if kernel == 7:
                time.sleep(600)
    """)
    # each short-timeout probe runs in a warm worker, so only the probe itself is timed
    results = plan(ws, [spec("warm"), spec("loop", 5, 2), spec("after"), spec("sleep", 7, 2)],
                   sandbox())
    assert results["loop"].error == "probe loop timed out after 2 s"
    assert results["sleep"].error == "probe sleep timed out after 2 s"
    assert_honest(results["warm"])
    assert_honest(results["after"])             # a fresh worker after the killed one


# ----------------------------------------------------------------------------- process attacks

@isolated
def test_background_processes_do_not_outlive_the_worker(tmp_path):
    """Attack: double fork + setsid, nohup, a new-session Popen, all sleeping with a marker. Defence:
    --die-with-parent and the pid namespace: when the worker goes, they go."""
    marker = "bgmarker" + secrets.token_hex(6)
    ws = student(tmp_path / "ws", f"""
        import subprocess
        MARK = {marker!r}
        CMD = [sys.executable, "-c", "import time; time.sleep(120)", MARK]
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, CMD)
            os._exit(0)
        subprocess.Popen(["nohup"] + CMD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.Popen(CMD, start_new_session=True)
        time.sleep(0.5)
    """)
    sess = session(ws, sandbox())
    assert_honest(ask(sess, spec())[0])
    assert len(cmdlines_with(marker)) >= 3            # the attack really ran
    sess.close()
    assert cmdlines_with(marker) == []


@isolated
def test_os_exit_during_a_probe_is_no_answer_and_the_next_probe_runs(tmp_path):
    """Attack: os._exit(0) in forward. Defence: no answer means no credit; a fresh worker follows."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            if kernel == 5:
                os._exit(0)
    """)
    results = plan(ws, [spec("exit", 5), spec("after")], sandbox())
    assert not results["exit"].ok and "exited (status 0) during exit" in results["exit"].error
    assert_honest(results["after"])


@isolated
def test_fake_answers_on_stdout_are_ignored(tmp_path):
    """Attack: print a well-formed answer frame and a fake Gradescope JSON to stdout. Defence: answers
    come only on the trusted side's own pipe, with the request's nonce."""
    ws = student(tmp_path / "ws", """
        from graderworker import protocol
        def on_forward(kernel):
            fake = {"nonce": "0" * 16, "ok": True, "meta": {"forged": True}}
            sys.stdout.buffer.write(protocol.encode(fake, {"out": torch.zeros(1).numpy()}))
            print(json.dumps({"score": 100, "tests": [{"score": 100}]}), flush=True)
    """)
    [result] = plan(ws, [spec()], sandbox()).values()
    assert_honest(result)
    assert "forged" not in result.meta


@isolated
def test_garbage_on_the_answer_pipe_is_a_malformed_answer(tmp_path):
    """Attack: write garbage to the answer file descriptor. Defence: strict framing; the probe gets no
    credit, the grader does not crash, the next probe runs in a fresh worker."""
    ws = student(tmp_path / "ws", """
        def on_forward(kernel):
            if kernel == 5:
                os.write(int(sys.argv[-1]), b"garbage!" * 64)
    """)
    results = plan(ws, [spec("junk", 5), spec("after")], sandbox())
    assert not results["junk"].ok and "malformed answer" in results["junk"].error
    assert_honest(results["after"])


# ----------------------------------------------------------------------------- the seccomp filter

def _syscall_numbers() -> dict[str, int]:
    import pyseccomp

    arch = pyseccomp.system_arch()
    return {name: pyseccomp.resolve_syscall(arch, name) for name in KERNEL_CALLS}


# name -> the arguments (ints, or bytes for a C string); each is refused by the filter
KERNEL_CALLS = {
    "unshare": "CLONE_NEWUSER", "clone": "CLONE_NEWUSER|SIGCHLD", "setns": "0, 0",
    "mount": "b'none', b'/tmp', b'tmpfs', 0, 0", "umount2": "b'/tmp', 0", "pivot_root": "b'.', b'.'",
    "open_tree": "-100, b'/', 0", "fsopen": "b'tmpfs', 0", "move_mount": "-1, b'', -1, b'', 0",
    "ptrace": "16, 1, 0, 0", "process_vm_readv": "os.getpid(), 0, 0, 0, 0, 0",
    "process_vm_writev": "os.getpid(), 0, 0, 0, 0, 0",
    "keyctl": "0, -3, 0", "add_key": "b'user', b'grader', b'x', 1, -3", "request_key": "b'user', b'grader', 0, 0",
    "bpf": "0, 0, 0", "perf_event_open": "0, 0, -1, -1, 0", "userfaultfd": "0",
    "init_module": "0, 0, b''", "finit_module": "-1, b'', 0", "delete_module": "b'grader', 0",
    "kexec_load": "0, 0, 0, 0", "kexec_file_load": "-1, -1, 0, b'', 0",
    "personality": "0x0040000", "io_uring_setup": "1, IO_URING_PARAMS",
    "clone3": "0, 0",
}
# What the filter answers: EPERM (PermissionError), and ENOSYS for clone3 (so glibc falls back)
REFUSED_WITH = dict({name: "PermissionError" for name in KERNEL_CALLS}, clone3="ENOSYS")

KERNEL_ATTACK = r'''
import ctypes, errno, subprocess, threading
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
NR = json.loads(%r)
CALLS = json.loads(%r)
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
IO_URING_PARAMS = ctypes.create_string_buffer(120)

def kernel_calls(where):
    seen = {}
    for name, text in CALLS.items():
        args = [ctypes.c_char_p(a) if isinstance(a, bytes) else a if isinstance(a, ctypes.Array)
                else ctypes.c_long(a) for a in eval("(" + text + ",)", dict(globals(), os=os))]
        try:
            ret = _LIBC.syscall(ctypes.c_long(NR[name]), *args)
            if ret < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            if name == "clone" and ret == 0:
                os._exit(0)                     # the child of a clone that was allowed
            seen[name] = "allowed"
        except OSError as exc:
            seen[name] = type(exc).__name__ if exc.errno != errno.ENOSYS else "ENOSYS"
    if "personality" in CALLS:                   # the query stays allowed, and so does plain Linux
        seen["personality_query"] = _LIBC.syscall(ctypes.c_long(NR["personality"]), ctypes.c_long(0xffffffff))
    done = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
    seen["unshare_cli"] = [done.returncode, done.stderr.strip()[-80:]]
    box = []
    worker = threading.Thread(target=lambda: box.append(subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid() > 0)"], capture_output=True, text=True).stdout))
    worker.start()
    worker.join()
    seen["thread_and_subprocess"] = box
    seen["seccomp_status"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
    print(f"KERNEL {where} " + json.dumps(seen), flush=True)

kernel_calls("import")

def on_forward(kernel):
    kernel_calls("probe")
'''


def kernel_report(output: str) -> dict[str, dict]:
    return {line.split()[1]: json.loads(line.split(" ", 2)[2])
            for line in output.splitlines() if line.startswith("KERNEL ")}


def run_kernel_attack(tmp_path, box) -> dict[str, dict]:
    ws = student(tmp_path / "ws", KERNEL_ATTACK % (json.dumps(_syscall_numbers()), json.dumps(KERNEL_CALLS)))
    sess = session(ws, box)
    [result] = ask(sess, spec())
    sess.close()
    assert_honest(result)              # a refused call is an error the code handles, not a kill
    return kernel_report("\n".join(sess.outputs))


@isolated
def test_the_kernel_surface_is_refused_with_permission_error(tmp_path):
    """Attack: from student code at import and inside a probe, every call of the filter's list:
    a user namespace (`unshare(CLONE_NEWUSER)` as `os.unshare` would, `clone` with it, `unshare -U`
    from a subprocess), setns, mounts (mount, umount2, pivot_root, open_tree, fsopen, move_mount),
    ptrace and process_vm_*, the key rings, bpf, perf_event_open, userfaultfd, module and kexec
    calls, a personality change, io_uring, clone3. Defence: the seccomp filter installed by
    boot.enter before student code: PermissionError (ENOSYS for clone3, so glibc falls back to
    clone), while threads and subprocesses keep working and the probe is graded."""
    seen = run_kernel_attack(tmp_path, sandbox())
    assert set(seen) == {"import", "probe"}, seen
    for where, calls in seen.items():
        refused = {name: calls[name] for name in KERNEL_CALLS}
        assert refused == REFUSED_WITH, (where, {k: v for k, v in refused.items() if v != REFUSED_WITH[k]})
        assert calls["personality_query"] == 0          # querying: PER_LINUX
        assert calls["unshare_cli"][0] != 0 and "Operation not permitted" in calls["unshare_cli"][1]
        assert calls["thread_and_subprocess"] == ["True\n"]
        assert calls["seccomp_status"] == ["2"]         # SECCOMP_MODE_FILTER


@isolated
def test_without_the_filter_those_calls_reach_the_kernel(tmp_path):
    """The attack above is real: the same worker without the filter (Sandbox(seccomp=False), for
    this test only) gets past the calls an unprivileged process may make (reading its own memory
    through process_vm_readv, the key rings, a personality change), so it is the filter that
    refuses them. (A user namespace it cannot make even then: bubblewrap chroots the worker, and
    the kernel refuses CLONE_NEWUSER to a chrooted process; the filter is a second wall there.)"""
    seen = run_kernel_attack(tmp_path, sandbox_without_filter())
    calls = seen["probe"]
    assert calls["seccomp_status"] == ["0"]
    allowed = {name for name in KERNEL_CALLS if calls[name] == "allowed"}
    assert {"process_vm_readv", "keyctl", "personality"} <= allowed, calls
    assert calls["clone3"] != "ENOSYS"


def sandbox_without_filter(**limits) -> Sandbox:
    return Sandbox(Limits(**limits), quiet=True, seccomp=False)


NORMAL_WORK = r'''
def normal_work():
    import concurrent.futures, multiprocessing, subprocess
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import skimage.color, skimage.transform
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = TensorDataset(torch.randn(32, 3, 8, 8), torch.randint(0, 2, (32,)))
    losses = []
    for epoch in range(2):
        for x, y in DataLoader(data, batch_size=8, shuffle=True, num_workers=2):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    fig, ax = plt.subplots()
    ax.plot(losses)
    fig.savefig("curve.png")
    lab = skimage.color.rgb2lab(np.random.rand(8, 8, 3))
    small = skimage.transform.resize(lab, (4, 4))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        squares = list(pool.map(lambda v: v * v, range(8)))
    with multiprocessing.get_context("fork").Pool(2) as procs:
        doubled = procs.map(abs, [-1, -2, -3])
    out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout
    print("NORMAL " + json.dumps({"steps": len(losses), "png": os.path.getsize("curve.png") > 1000,
                                  "lab": list(small.shape), "threads": squares[-1], "pool": doubled,
                                  "subprocess": out.strip()}), flush=True)

normal_work()

def on_forward(kernel):
    normal_work()
'''


@isolated
def test_training_dataloader_matplotlib_and_skimage_run_under_the_filter(tmp_path):
    """Honest work a student's file does at import or in a probe keeps working under the filter:
    torch training with Adam, a DataLoader with 2 worker processes, matplotlib (Agg) writing a
    PNG, scikit-image, a thread pool, a multiprocessing pool and a subprocess."""
    ws = student(tmp_path / "ws", NORMAL_WORK)
    sess = session(ws, sandbox())
    [result] = ask(sess, spec(timeout=240))
    sess.close()
    out = "\n".join(sess.outputs)
    assert_honest(result)
    runs = [json.loads(line[len("NORMAL "):]) for line in out.splitlines() if line.startswith("NORMAL ")]
    assert len(runs) == 2, out[-3000:]
    for run in runs:
        assert run == {"steps": 8, "png": True, "lab": [4, 4, 3], "threads": 49, "pool": [1, 2, 3],
                       "subprocess": "42"}, run
