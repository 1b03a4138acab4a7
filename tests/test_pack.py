"""Packs (grader/pack.py): loaded and validated once, found by path, name or $GRADER_PACKS; course
files used in place of the student's; what of the gold students see; script probes in the worker
runtime (grader/worker/script.py)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader import pack as packmod
from grader import rubric as rubricmod
from grader.intake.unpack import load_submission
from grader.scaffold import new_pack
from grader.worker.loader import StudentError
from grader.worker.script import override_constants, run_script

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scaffold(tmp_path):
    return new_pack("tinypk", tmp_path / "tinypk")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# ---------------------------------------------------------------------------------- loading

def test_a2_is_a_builtin_pack_with_its_roles_hooks_and_visibility():
    pack = packmod.load("a2")
    assert pack.package == "rubric.a2" and pack.reference == PROJECT / "reference" / "a2"
    assert [r.name for r in pack.roles] == ["colourization", "regression", "rnn", "answers"]
    assert set(pack.hooks) == {"feedback_picture", "cost", "same_model"} and callable(pack.hook("same_model"))
    assert pack.worker_file == pack.root / "probes.py" and packmod.worker_modules()["a2"] == pack.worker_file
    assert not (PROJECT / "grader" / "worker" / "a2.py").exists()     # the runtime holds no pack's probes
    assert len(packmod.worker_digest("a2")) == 64                     # in the probe cache's key
    assert pack.student_visible("inputs", "train_x", set())
    assert not pack.student_visible("inputs", "valid_y", {"cnn_forward"})
    assert pack.student_visible("inputs", "valid_y", {"cnn_train"})
    assert pack.student_visible("derived", "sample_p/x", {"rnn_sample"})
    assert not pack.student_visible("derived", "colon_weights", {"rnn_sample", "cnn_train"})
    assert rubricmod.load("a2").pack is pack                 # loaded once per manifest version


def test_a_pack_is_found_by_path_by_name_and_on_the_search_path(scaffold, tmp_path, monkeypatch):
    with pytest.raises(packmod.PackError, match="no assignment pack named 'tinypk'"):
        packmod.find("tinypk")
    monkeypatch.setenv(packmod.ENV_PATH, str(scaffold.parent))
    assert packmod.find("tinypk") == scaffold.resolve()
    pack = packmod.load(str(scaffold))
    assert pack.name == "tinypk" and pack.package.startswith("_gradepack_tinypk_")
    assert pack.plan.__name__ == f"{pack.package}.plan" and set(pack.plan.GROUPS) == {"predict", "fit"}
    assert packmod.worker_modules()["tinypk"] == scaffold.resolve() / "probes.py"
    assert rubricmod.load("tinypk").assignment == "tinypk"
    with pytest.raises(packmod.PackError, match="no pack at"):
        packmod.find(str(tmp_path / "nowhere"))


def test_a_packs_probes_reach_the_worker_runtime_and_the_probe_cache_key(scaffold, tmp_path):
    """The probe module is copied into the runtime as graderworker.<name> (cold and warm workers
    import it from there), and the probe cache's key changes with it."""
    from types import SimpleNamespace

    from grader.probes.cache import ProbeCache
    from grader.sandbox.launcher import RUNTIME_PACKAGE, runtime_dir

    pack = packmod.load(str(scaffold))
    copied = runtime_dir() / RUNTIME_PACKAGE / "tinypk.py"
    assert copied.read_text() == pack.worker_file.read_text()
    ws = tmp_path / "ws"
    ws.mkdir()
    box = SimpleNamespace(threads=1, gpu=None, mode="basic")
    cache = ProbeCache(tmp_path / "cache")
    before = cache.chain(ws, {}, "tinypk", box).key
    _edit(pack.worker_file, '"""', '"""Edited. ')
    packmod.load(str(scaffold))
    assert cache.chain(ws, {}, "tinypk", box).key != before
    assert "Edited." in (runtime_dir() / RUNTIME_PACKAGE / "tinypk.py").read_text()


@pytest.mark.parametrize("old,new,message", [
    ('name = "tinypk"', 'name = "tiny-pk"', "must be a Python identifier"),
    ('name = "tinypk"', 'name = "protocol"', "taken by the worker runtime"),
    ('plan = "plan.py"', 'plan = "plan2.py"', "not a file"),
    ('checks = "checks"', 'checks = "chekcs"', "not a folder"),
    ('reference_files', 'referense_files', "unknown keys"),
    ('test_loss = ["fit"]', 'test_loss = ["fitt"]', "unknown probe groups"),
    ('[student_gold.inputs]', '[hooks]\ncost = "hooks.py:cost"\n[student_gold.inputs]', "must be \"file.py:function\""),
])
def test_manifest_typos_fail_at_load(scaffold, old, new, message):
    _edit(scaffold / "pack.toml", old, new)
    with pytest.raises(packmod.PackError, match=message):
        packmod.load(scaffold)


def test_staff_code_errors_name_the_file(scaffold):
    (scaffold / "roles.py").write_text("ROLES = ()\n")
    with pytest.raises(packmod.PackError, match="roles.py must define ROLES"):
        packmod.load(scaffold)
    (scaffold / "roles.py").write_text("import nonexistent_module_xyz\n")
    with pytest.raises(packmod.PackError, match="importing roles.py failed: ModuleNotFoundError"):
        packmod.load(scaffold)


def test_rubric_names_must_exist_in_the_pack(scaffold):
    _edit(scaffold / "rubric.toml", 'probes = ["fit"]', 'probes = ["fitt"]')
    with pytest.raises(rubricmod.RubricError, match="unknown probe group 'fitt'"):
        rubricmod.load(str(scaffold))


# ------------------------------------------------------------------- course-provided files

def test_the_course_util_replaces_the_students_copy_with_a_note(scaffold, tmp_path):
    (scaffold / "provided").mkdir()
    (scaffold / "provided" / "util.py").write_text("import numpy as np\n\ndef relu_deriv(x):\n"
                                                    "    return (x > 0).astype(float)\n")
    with (scaffold / "pack.toml").open("a") as fh:
        fh.write('\n[[provided]]\nfile = "provided/util.py"\nname = "util.py"\n'
                 'note = "the starter\'s util.py uses np.float, removed in numpy 1.24"\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    for name in ("solution.py", "run_fit.py"):
        (sub / name).write_text((scaffold / "reference" / name).read_text())
    (sub / "util.py").write_text("import numpy as np\n\ndef relu_deriv(x):\n    return (x > 0).astype(np.float)\n")
    got = load_submission(sub, tmp_path / "ws", assignment=str(scaffold))
    assert got.error is None
    assert (got.workspace / "util.py").read_text() == (scaffold / "provided" / "util.py").read_text()
    assert any("util.py: the course's own copy was used in place of yours (the starter's util.py uses "
               "np.float" in n for n in got.notes), got.notes
    # a script role is kept whole (its top-level training loop is the point), a code role made import-safe
    assert (got.workspace / "run_fit.py").read_text() == (sub / "run_fit.py").read_text()
    assert set(got.modules) == {"solution", "fit"}


# ------------------------------------------------------------------------------ script probes

class _Ctx:
    def __init__(self, workspace: Path, paths: dict):
        self.workspace, self.paths = workspace, paths
        self.on_loaded = lambda: None


SCRIPT = textwrap.dedent("""\
    import pickle, random
    import numpy as np
    import matplotlib.pyplot as plt
    from scipy.io import loadmat

    max_iters = 5000
    batch_size: int = 64
    if __name__ == "__main__":
        learning_rate = 1.0
    d = loadmat("../data/train.mat")
    x = d["train_data"]
    params = {"W": x[:2] * 2, "n": max_iters, "lr": learning_rate, "draw": np.random.rand(3), "r": random.random()}
    plt.plot([1, 2, 3]); plt.show()
    with open("q3_weights.pickle", "wb") as fh:
        pickle.dump({"W1": np.ones((2, 2)), "nested": {"b": np.zeros(3)}}, fh)
    """)


def _run(tmp_path, source, args, arrays=None):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "run_q3.py").write_text(source)
    return run_script(_Ctx(ws, {"q3": ws / "run_q3.py"}), "q3", args, arrays or {})


def test_a_script_runs_with_data_budget_seed_and_a_quiet_matplotlib(tmp_path):
    x = np.arange(12.0).reshape(4, 3)
    args = {"inputs": {"../data/train.mat": {"format": "mat", "arrays": {"train_data": "x"}}},
            "constants": {"max_iters": 3, "batch_size": 8, "learning_rate": 0.5, "absent": 1},
            "seed": 7, "globals": ["params", "nothing"], "outputs": ["q3_weights.pickle", "missing.npy"]}
    arrays, facts = _run(tmp_path, SCRIPT, args, {"x": x})
    np.testing.assert_array_equal(arrays["global/params/W"], x[:2] * 2)
    assert arrays["global/params/n"] == 3 and arrays["global/params/lr"] == 0.5
    np.random.seed(7)
    np.testing.assert_array_equal(arrays["global/params/draw"], np.random.rand(3))
    np.testing.assert_array_equal(arrays["file/q3_weights.pickle/W1"], np.ones((2, 2)))
    np.testing.assert_array_equal(arrays["file/q3_weights.pickle/nested/b"], np.zeros(3))
    assert facts["constants"]["max_iters"] == {"found": True, "was": "5000"}
    assert facts["constants"]["absent"] == {"found": False, "was": None}
    assert facts["missing_globals"] == ["nothing"] and facts["outputs_missing"] == ["missing.npy"]
    assert facts["matplotlib"] == "agg" and facts["status"] == "completed"
    assert all(v.dtype.kind in "biuf" for v in arrays.values())
    assert not (tmp_path / "ws" / ".grader-script").exists() or not any((tmp_path / "ws" / ".grader-script").iterdir())


def test_a_failing_script_is_the_students_error_and_input_does_not_block(tmp_path):
    with pytest.raises(StudentError, match=r"running run_q3.py failed: ZeroDivisionError.*line 2"):
        _run(tmp_path, "x = 1\ny = x / 0\n", {})
    with pytest.raises(StudentError, match=r"EOFError: input\(\) is not available"):
        _run(tmp_path, "name = input('your name? ')\n", {})
    with pytest.raises(StudentError, match=r"sys.exit\(3\)"):
        _run(tmp_path, "import sys\nsys.exit(3)\n", {})
    arrays, facts = _run(tmp_path, "import sys\nv = 2\nsys.exit(0)\n", {"globals": ["v"]})
    assert facts["status"] == "exited" and arrays["global/v"] == 2


def test_data_files_cannot_be_placed_outside_the_run_folder(tmp_path):
    with pytest.raises(RuntimeError, match="leaves the script's run folder"):
        _run(tmp_path, "pass\n", {"inputs": {"../../../etc/x.npy": {"format": "npy", "arrays": {"a": "a"}}}},
             {"a": np.zeros(1)})


def test_constants_are_replaced_whatever_the_students_value():
    tree, found = override_constants("max_iters = compute()\nmax_iters2 = 1\n", {"max_iters": 4}, "s.py")
    import ast

    assert "max_iters = 4" in ast.unparse(tree) and found == {"max_iters": "compute()"}


def test_the_worker_runtime_serves_script_probes_for_every_pack():
    """grader/worker/main.py merges the runtime's script probe into each assignment's registry."""
    code = ("import sys; sys.path.insert(0, 'grader'); "
            "from worker import script; print(sorted(script.PROBES))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert proc.stdout.strip() == "['script']", proc.stderr
    assert "from .script import PROBES as generic" in (PROJECT / "grader/worker/main.py").read_text()


# ---------------------------------------------------------------------------- check helpers

def test_uniform_sample_accepts_uniform_draws_and_rejects_others():
    from grader.checks.kit import uniform_sample

    rng = np.random.default_rng(0)
    bound = np.sqrt(6 / (64 + 36))
    assert uniform_sample(rng.uniform(-bound, bound, (64, 36)), -bound, bound).ok
    assert not uniform_sample(rng.uniform(-bound, bound, (64, 36)) * 1.2, -bound, bound).ok       # range
    assert not uniform_sample(rng.normal(0, bound / 3, (64, 36)).clip(-bound, bound), -bound, bound).ok
    assert not uniform_sample(rng.uniform(0, bound, (64, 36)), -bound, bound).ok                   # mean


def test_a2_conftest_takes_its_helpers_from_the_engine():
    text = (PROJECT / "rubric/a2/checks/conftest.py").read_text()
    assert "from grader.checks.kit import" in text and "class Run" not in text


# ------------------------------------------------------------------------- engine-wide policies

def test_zip_safety_is_one_policy_for_submissions_and_class_archives():
    import zipfile

    from grader.intake import zipsafe

    def info(name, mode=0o100644, flags=0):
        i = zipfile.ZipInfo(name)
        i.external_attr, i.flag_bits = mode << 16, flags
        return i

    assert zipsafe.member_problem(info("/etc/passwd")).kind == zipsafe.ABSOLUTE
    assert zipsafe.member_problem(info("C:\\x.py")).kind == zipsafe.ABSOLUTE
    assert zipsafe.member_problem(info("a/../../x.py")).kind == zipsafe.LEAVES
    assert zipsafe.member_problem(info("link", mode=0o120777)).kind == zipsafe.SYMLINK
    assert zipsafe.member_problem(info("x.py", flags=1)).kind == zipsafe.ENCRYPTED
    assert zipsafe.member_problem(info("a/./b.py")) is None and zipsafe.member_parts("a/./b.py") == ["a", "b.py"]
    assert zipsafe.is_junk("__MACOSX") and zipsafe.is_junk(".DS_Store") and not zipsafe.is_junk("cnn.py")
    assert zipsafe.disk_name("../.x/y") == "_.._.x_y" and zipsafe.printable("a\x07b") == "a?b"
    for path in ("grader/intake/unpack.py", "grader/batch/classrun.py"):
        text = (PROJECT / path).read_text()
        assert "zipsafe.member_problem" in text and "zipsafe.entry_name" in text and "zipsafe.disk_name" in text
        assert "def _disk_name" not in text and "def _is_junk" not in text     # no second copy


def test_automatic_totals_have_one_definition():
    from grader.report.gradebook import fix_totals
    from grader.records import GradeReport, ItemScore

    items = [ItemScore("a", "A", 2, 2, "passed", "visible"), ItemScore("b", "B", 1, 1, "passed", "hidden", bonus=True),
             ItemScore("m", "M", 3, 4, "partial", "visible", manual=True),       # marked by a TA
             ItemScore("w", "W", 0, 5, "manual", "visible", manual=True)]        # not marked yet
    report = GradeReport("x", "s", items)
    from dataclasses import asdict

    doc = fix_totals({"items": [asdict(i) for i in items]}, {"m", "w"})
    assert (report.auto_score, report.auto_max, report.manual_pending) == (3, 2, 5)
    assert (doc["auto_score"], doc["auto_max"], doc["manual_pending"]) == (3, 2, 5)


def _imports(path: Path, module_level_only: bool = False) -> set[str]:
    """The grader modules a file imports (relative imports resolved; `from pkg import mod` names the
    module), at module level only or anywhere in it."""
    import ast

    rel = path.relative_to(PROJECT).with_suffix("")
    name = ".".join(rel.parts).removesuffix(".__init__")
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = ([n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
              for n in ast.walk(top)] if module_level_only else list(ast.walk(tree)))
    found = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)] if n.level else []
            target = ".".join(base + ([n.module] if n.module else [])) if n.level else n.module
            for a in n.names:
                sub = PROJECT / Path(*f"{target}.{a.name}".split("."))
                found.add(f"{target}.{a.name}" if sub.with_suffix(".py").exists() or sub.is_dir() else target)
        elif isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
    return {m for m in found if m and m.startswith("grader")}


def test_batch_and_ray_executors_do_not_import_each_other():
    """The executors get a `Jobs` (grader/batch/executor.py), never the batch driver: neither
    executor module imports the driver (not even lazily), and the Ray one not the local one."""
    for path, others in (("grader/batch/raybatch.py", {"grader.batch.classrun", "grader.batch"}),
                         ("grader/batch/executor.py", {"grader.batch.classrun", "grader.batch.raybatch"})):
        assert not _imports(PROJECT / path) & others, f"{path} imports {_imports(PROJECT / path) & others}"


def test_the_engine_has_no_import_cycles():
    """Module-level imports of grader/ (the worker runtime aside) form no cycle."""
    graph = {}
    for path in (PROJECT / "grader").rglob("*.py"):
        if "worker" in path.relative_to(PROJECT / "grader").parts:
            continue
        name = ".".join(path.relative_to(PROJECT).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _imports(path, module_level_only=True) - {name}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(trail + [node, dep])}"
            if dep not in state:
                visit(dep, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "grader.batch.classrun" in graph and "grader.intake.unpack" in graph


def test_the_engine_names_no_assignment():
    """Nothing under grader/ (code, comments, templates, help texts) names an assignment or a part
    of one: what an assignment is lives in its pack (rubric/<name>/, or a course's own folder)."""
    import re

    words = re.compile(r"(?<![0-9a-z])a2(?![0-9])|colou?ri|cnn|unet|myconv|rnn|horse|lossfun|cifar", re.I)
    found = [f"{p.relative_to(PROJECT)}:{i}: {line.strip()}"
             for p in sorted((PROJECT / "grader").rglob("*")) if p.is_file() and "__pycache__" not in p.parts
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if words.search(line)]
    assert not found, "\n".join(found)


def test_the_cli_default_pack_is_a_setting(monkeypatch):
    monkeypatch.delenv(packmod.ENV_DEFAULT, raising=False)
    assert packmod.default_assignment() == "a2"            # rubric/a2/pack.toml: default = true
    monkeypatch.setenv(packmod.ENV_DEFAULT, "tinypk")
    assert packmod.default_assignment() == "tinypk"
    from grader.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.assignment is None                         # chosen by _resolve, from the setting
