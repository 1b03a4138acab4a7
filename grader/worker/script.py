"""Script probes, run inside the worker: a student's script run to completion, its results returned.

Homework often is a script (`run_q3.py`) whose training loop is top-level code. The probe `script`
runs such a file the way a student runs it, with what the pack's plan chooses (the request's args):

- `inputs`: data files placed where the script reads them, relative to the script's folder
  (`{"../data/train.mat": {"format": "mat", "arrays": {"train_data": "x", ...}}}`: file keys taken
  from the request's arrays; formats mat, npy, npz, bytes), so `../data/x.mat` works; each is also
  linked at the other usual places (`./x.mat`, `./data/`, `../`), and a read there is noted;
- `constants`: named top-level constants replaced, by the parsed source, whatever the student's
  value (`{"max_iters": 5}`: the profile's budget), every assignment of the name (twice, or under
  `if __name__ == "__main__":`), and a fact for each that was or was not found;
- `seed`: `random`, `numpy` and `torch` seeded before the script starts;
- matplotlib forced to its non-interactive backend (`plt.show()` returns at once), stdin empty;
- `globals`: names whose values come back (a dict of arrays such as `params`, an array, a number,
  a torch model as its state_dict), and `outputs`: files it wrote, opened here in the worker (a
  pickle is unpickled only here, never on the trusted side) and returned the same way;
  `output_patterns` find the files of other names or folders it wrote (`../out/w.pickle`, made
  by the grader when the script writes into a folder that does not exist);
- `all_dicts`: every dict of arrays it left (globals, attributes of global objects, locals of its
  functions); `models`: every torch model it left (also a local of a function), run on a sent
  array, outputs returned;
- `time_limit`: the worker stops the script itself (a slow loop) with a clear message, counting
  idle-machine seconds (the time it waited for a CPU that other work held is given back, up to
  3x the limit of wall time: a loaded machine does not change the verdict); with `partial`, a
  script that fails or is stopped still returns what it had computed.
Each thing done for the student (a constant set, a folder made, a file read at an alias, a
failure after which partial results were graded) is a note in `facts["notes"]`, which the report
shows; the shims of removed library APIs are grader/worker/compat.py's.

Values come back as plain numeric arrays named `global/<name>[/<key>...]` and
`file/<path>[/<key>...]`; strings and shapes as small JSON facts. The trusted side judges them.
"""
from __future__ import annotations

import ast
import builtins
import copy
import fnmatch
import io
import json
import os
import pickle
import random
import shutil
import signal
import sys
import time
import types
from pathlib import Path

import numpy as np

from .loader import StudentError, describe
from .runqueue import WALL_FACTOR, run_delay

PROBES: dict = {}
RUN_DIR = ".grader-script"
MAX_VALUES = 2000          # arrays and facts returned from one probe
MAX_FACTS = 200            # facts travel in the answer's JSON header (capped at 1 MiB)
MAX_TEXT = 500
MAX_DEPTH = 6
FORMATS = ("mat", "npy", "npz", "bytes")
MAX_FILE_BYTES = 256 << 20  # a written file larger than this is not opened


def probe(name):
    def register(fn):
        PROBES[name] = fn
        return fn
    return register


# --------------------------------------------------------------------------------------------------
# The source: named constants replaced, functions' frames watched
# --------------------------------------------------------------------------------------------------

FRAME_HOOK = "__grader_frame__"


def _blocks(node) -> list[list]:
    """The statement lists of a top-level block the script always or conditionally runs once
    (`if`, `try`, `with`), where an assignment of a constant is still the script's setting. Loop
    bodies are left alone: `learning_rate = learning_rate * 0.9` inside a loop is training."""
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
        return [node.body, node.orelse, node.finalbody] + [h.body for h in node.handlers]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [node.body]
    return []


def override_constants(source: str, constants: dict, filename: str) -> tuple[ast.Module, dict]:
    """`replace_constants` without the counts."""
    tree, found, _ = replace_constants(source, constants, filename)
    return tree, found


SNAPSHOT_HOOK = "__grader_snapshot__"


def insert_snapshots(tree: ast.Module, snapshots: dict) -> dict[str, int]:
    """After the last top-level statement that assigns `name` (anywhere inside it: `total_error
    += err` in a loop), a call that copies the globals `snapshots[name]` lists, so a script that
    goes on after that part (a checker, then a training loop that overwrites the checker's numbers)
    is judged on them as they were. {name: line of that statement} for the names found."""
    where = {}
    for name in snapshots:
        last = None
        for i, node in enumerate(tree.body):
            if any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in ast.walk(node)):
                last = i
        if last is not None:
            where[name] = last
    for name, i in sorted(where.items(), key=lambda kv: -kv[1]):
        call = ast.Expr(ast.Call(ast.Name(SNAPSHOT_HOOK, ast.Load()), [ast.Constant(name)], []))
        tree.body.insert(i + 1, ast.copy_location(call, tree.body[i]))
    ast.fix_missing_locations(tree)
    return {name: tree.body[i].lineno for name, i in where.items()}


def argv_choice(tree: ast.Module, choices: list[str]) -> str | None:
    """The command-line argument to run the script with: the first of `choices` (a pack's names
    for the part it grades, e.g. "6.1.1" and an older handout's "7.1.1") that the script compares
    `sys.argv[1]` with (`if sys.argv[1] == "7.1.1":`, in a function or at the top level). A TA
    runs such a script as `python run.py 7.1.1`; run without it, it raises IndexError."""
    def is_argv1(node) -> bool:
        return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "argv" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "sys" and isinstance(node.slice, ast.Constant)
                and node.slice.value == 1)
    compared = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
            for a, b in ((node.left, node.comparators[0]), (node.comparators[0], node.left)):
                if is_argv1(a) and isinstance(b, ast.Constant) and isinstance(b.value, str):
                    compared.add(b.value)
    return next((c for c in choices if c in compared), None)


def replace_constants(source: str, constants: dict, filename: str) -> tuple[ast.Module, dict, dict]:
    """The parsed script with every top-level assignment of a name in `constants` (`NAME = ...`,
    `NAME: T = ...`, an element of `a, NAME = 1, 2`; also inside a top-level `if __name__ ==
    "__main__":`, `try` or `with`) given that value instead, so the one in force is the budget
    however often the student assigns it. Returns the tree and, per name, what the student had
    last (None where the name was not assigned), and per name how many assignments were replaced."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise StudentError(f"{Path(filename).name} does not parse: {exc.msg} (line {exc.lineno})") from None
    found: dict = {name: None for name in constants}
    counts: dict = {name: 0 for name in constants}

    def literal(name, old):
        found[name] = ast.unparse(old)[:200]
        counts[name] += 1
        return ast.copy_location(ast.parse(repr(constants[name]), mode="eval").body, old)

    def visit(body):
        for node in body:
            for block in _blocks(node):
                visit(block)
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in constants:
                        if len(node.targets) > 1:        # a = b = 5: only this name gets the budget
                            continue
                        node.value = literal(target.id, node.value)
                    elif (isinstance(target, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List))
                          and len(target.elts) == len(node.value.elts)
                          and not any(isinstance(e, ast.Starred) for e in target.elts)):
                        for i, elt in enumerate(target.elts):
                            if isinstance(elt, ast.Name) and elt.id in constants:
                                node.value.elts[i] = literal(elt.id, node.value.elts[i])
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                if node.target.id in constants:
                    node.value = literal(node.target.id, node.value)

    visit(tree.body)
    ast.fix_missing_locations(tree)
    return tree, found, counts


def watch_functions(tree: ast.Module) -> list[str]:
    """Each function the script defines at top level (also inside a top-level `if`/`try`/`with`)
    hands its local variables to `__grader_frame__(name, locals())` when it returns or raises, so a
    model built inside `def train():` can be found. Returns the names of the functions watched."""
    watched = []

    def wrap(fn):
        body = fn.body
        doc = body[:1] if body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str) else []
        hook = ast.parse(f"{FRAME_HOOK}({fn.name!r}, locals())").body[0]
        fn.body = doc + [ast.Try(body=body[len(doc):] or [ast.Pass()], handlers=[], orelse=[], finalbody=[hook])]
        watched.append(fn.name)

    def visit(body):
        for node in body:
            for block in _blocks(node):
                visit(block)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                wrap(node)

    visit(tree.body)
    ast.fix_missing_locations(tree)
    return watched


# --------------------------------------------------------------------------------------------------
# Values to plain arrays
# --------------------------------------------------------------------------------------------------

class _Collector:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.facts: dict[str, object] = {}

    def add(self, name: str, value, depth: int = 0) -> None:
        if len(self.arrays) + len(self.facts) >= MAX_VALUES or len(self.facts) >= MAX_FACTS:
            self.facts["truncated"] = True
            return
        torch = sys.modules.get("torch")
        if torch is not None:
            if isinstance(value, torch.nn.Module):
                value = value.state_dict()
            elif isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (bool, int, float)) and not isinstance(value, type):
            self.arrays[name] = np.asarray(value)
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                self.arrays[name] = np.ascontiguousarray(value)
            elif value.dtype.kind == "O" and depth < MAX_DEPTH:
                try:
                    self.arrays[name] = np.asarray(value.tolist(), dtype=np.float64)
                except (TypeError, ValueError):
                    self.facts[name] = f"an array of dtype {value.dtype}, shape {list(value.shape)}"
            else:
                self.facts[name] = f"an array of dtype {value.dtype}, shape {list(value.shape)}"
        elif isinstance(value, str):
            self.facts[name] = value[:MAX_TEXT]
        elif isinstance(value, dict) and depth < MAX_DEPTH:
            self.facts[f"{name}/"] = sorted(str(k)[:100] for k in value)[:50]
            for key, item in value.items():
                self.add(f"{name}/{key}", item, depth + 1)
        elif isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            try:
                arr = np.asarray(value)
            except (TypeError, ValueError):
                arr = None
            if arr is not None and arr.dtype.kind in "biuf":
                self.arrays[name] = arr
            else:
                self.facts[f"{name}/"] = len(value)
                for i, item in enumerate(value[:200]):
                    self.add(f"{name}/{i}", item, depth + 1)
        elif value is None:
            self.facts[name] = None
        else:
            self.facts[name] = f"a {type(value).__name__}"


def read_output(path: Path):
    """A file the script wrote, opened here in the worker: pickle, npy, npz, json, pt/pth, or text."""
    suffix = path.suffix.lower()
    if suffix in (".pickle", ".pkl", ".p"):
        with path.open("rb") as fh:
            return pickle.load(fh)
    if suffix == ".npy":
        return np.load(path, allow_pickle=True)
    if suffix == ".npz":
        with np.load(path, allow_pickle=True) as npz:
            return {k: npz[k] for k in npz.files}
    if suffix == ".json":
        return json.loads(path.read_text())
    if suffix in (".pt", ".pth"):
        import torch

        return torch.load(path, map_location="cpu", weights_only=False)
    return path.read_text(errors="replace")


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------

def _inside(root: Path, rel: str, what: str) -> Path:
    if os.path.isabs(rel):
        raise ValueError(f"{what} {rel!r} must be relative to the script's folder")
    path = Path(os.path.normpath(root / rel))
    if path != root.parent and root.parent not in path.parents:
        raise ValueError(f"{what} {rel!r} leaves the script's run folder")
    return path


ALIAS_DIRS = (".", "data", "..", "../data")   # where scripts commonly look for a data file


def place_inputs(folder: Path, inputs: dict, arrays: dict) -> tuple[list[str], dict[str, str]]:
    """Write the data files the request names; each is also reachable (a link) at the usual other
    places a script reads data from (`ALIAS_DIRS`, relative to the script's folder), unless its spec
    says `"alias": false` or a file is already there. Returns the files placed and {link: file}."""
    placed, aliases = [], {}
    for rel, spec in inputs.items():
        path = _inside(folder, rel, "input file")
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt, names = spec.get("format"), spec.get("arrays", {})
        if fmt not in FORMATS:
            raise ValueError(f"input file {rel}: format must be one of {FORMATS}, not {fmt!r}")
        values = {key: arrays[name] for key, name in names.items()}
        if fmt == "mat":
            import scipy.io

            scipy.io.savemat(path, values)
        elif fmt == "npz":
            np.savez(path, **values)
        elif len(values) != 1:
            raise ValueError(f"input file {rel}: format {fmt} holds exactly one array")
        elif fmt == "npy":
            with path.open("wb") as fh:
                np.save(fh, next(iter(values.values())))
        else:
            path.write_bytes(np.asarray(next(iter(values.values())), dtype=np.uint8).tobytes())
        placed.append(rel)
    for rel, spec in inputs.items():
        if spec.get("alias", True) is False:
            continue
        path = _inside(folder, rel, "input file")
        for where in ALIAS_DIRS:
            link = Path(os.path.normpath(folder / where / path.name))
            if link == path or link.exists() or link.is_symlink() or (link != folder.parent and folder.parent not in link.parents):
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
            aliases[str(link)] = rel
    return placed, aliases


# --------------------------------------------------------------------------------------------------
# What the script opens: data read at an alias, output folders that do not exist
# --------------------------------------------------------------------------------------------------

class _Watch:
    """Sees every file the script opens (a Python audit hook, installed once per process and
    inert between runs): reads of a data file's alias are noted, and a file written into a
    folder of the run that does not exist gets that folder made first (`../out/` of a student's
    own machine), with a note."""

    def __init__(self, root: Path, aliases: dict[str, str]):
        self.root, self.aliases = str(root), aliases
        self.read_aliases: dict[str, str] = {}
        self.made: list[str] = []

    def opened(self, path, mode, flags) -> None:
        if isinstance(path, int):
            return
        try:
            full = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if full in self.aliases:
            self.read_aliases.setdefault(full, self.aliases[full])
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        parent = os.path.dirname(full)
        if writing and parent.startswith(self.root + os.sep) and not os.path.exists(parent):
            try:
                os.makedirs(parent)
                self.made.append(os.path.relpath(parent, self.root))
            except OSError:
                pass


_WATCHING: list = []       # the _Watch of the run in progress (at most one)


def _audit(event, args):
    if _WATCHING and event == "open" and len(args) >= 3:
        _WATCHING[0].opened(*args[:3])


_AUDIT_INSTALLED: list = []


def _install_audit() -> None:
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_INSTALLED.append(True)


class _Anything(types.ModuleType):
    """Stands in for matplotlib where it is not installed: every use does nothing."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Anything(f"{self.__name__}.{attr}")

    def __call__(self, *args, **kwargs):
        return _Anything(self.__name__)

    def __iter__(self):
        return iter((_Anything(self.__name__), _Anything(self.__name__)))


def quiet_matplotlib() -> str:
    """The non-interactive backend (figures drawn to memory, `show()` returns at once)."""
    os.environ["MPLBACKEND"] = "Agg"
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        return "agg"
    except ImportError:
        for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.patches", "matplotlib.cm"):
            sys.modules.setdefault(name, _Anything(name))
        return "absent (a stand-in that draws nothing)"


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


class _OutOfTime(BaseException):
    """Raised into the script when its time limit passes (a BaseException: `except Exception`
    in the student's loop does not swallow it; it is raised again every second until it escapes)."""


_ARMED: list = []          # (monotonic start, own run-queue wait at start, limit) while a script runs


def _own_wait() -> float:
    """Seconds this process's main thread has waited for a CPU."""
    return run_delay("self") or 0.0


def _alarm(signum, frame):
    """The limit is idle-machine time, as the trusted side's probe timeout: time spent waiting for a
    CPU that other work held is given back (up to WALL_FACTOR x the limit of wall time), so a loaded
    machine does not stop a script that an idle one finishes."""
    if not _ARMED:
        return
    started, base, limit = _ARMED[0]
    wall = time.monotonic() - started
    left = min(limit - (wall - (_own_wait() - base)), WALL_FACTOR * limit - wall)
    if left > 0.05:
        signal.setitimer(signal.ITIMER_REAL, left, 1.0)
        return
    raise _OutOfTime()


def _arm(limit: float | None):
    if not limit or not hasattr(signal, "setitimer"):
        return None
    previous = signal.signal(signal.SIGALRM, _alarm)
    _ARMED.append((time.monotonic(), _own_wait(), float(limit)))
    signal.setitimer(signal.ITIMER_REAL, float(limit), 1.0)
    return previous


def _disarm(previous) -> None:
    _ARMED.clear()
    if previous is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Frames:
    """Local variables of the script's own functions as they return (see `watch_functions`): the
    torch models and dicts of arrays among them, the latest of each name kept."""

    def __init__(self):
        self.models: dict[str, object] = {}
        self.dicts: dict[str, dict] = {}

    def __call__(self, function: str, scope: dict) -> None:
        torch = sys.modules.get("torch")
        module_type = torch.nn.Module if torch is not None else ()
        for var, value in scope.items():
            if module_type and isinstance(value, module_type):
                self.models[f"{function}.{var}"] = value
            elif isinstance(value, dict) and value and _numeric_dict(value):
                self.dicts[f"{function}.{var}"] = value


def _numeric_dict(d: dict) -> bool:
    """A dict holding at least one numeric array (a `params` dict), and not a loadmat result."""
    if "__header__" in d:
        return False
    return any(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in list(d.values())[:500])


def _nbytes(d: dict) -> int:
    return sum(v.nbytes for v in d.values() if isinstance(v, np.ndarray))


def _candidates(scope: dict, frames: _Frames):
    """(name, value) of every dict of arrays and every torch model the script left: its globals,
    the attributes of its global objects (one level: `ae.params`), its functions' locals."""
    torch = sys.modules.get("torch")
    module_type = torch.nn.Module if torch is not None else ()
    dicts, models = {}, {}
    for name, value in list(scope.items()):
        if name.startswith("__") or isinstance(value, (types.ModuleType, type, types.FunctionType)):
            continue
        if module_type and isinstance(value, module_type):
            models[name] = value
        elif isinstance(value, dict):
            if value and _numeric_dict(value):
                dicts[name] = value
        elif hasattr(value, "__dict__") and not callable(value):
            for attr, inner in list(vars(value).items())[:100]:
                if module_type and isinstance(inner, module_type):
                    models[f"{name}.{attr}"] = inner
                elif isinstance(inner, dict) and inner and _numeric_dict(inner):
                    dicts[f"{name}.{attr}"] = inner
    for where, value in frames.dicts.items():
        dicts.setdefault(where, value)
    for where, value in frames.models.items():
        models.setdefault(where, value)
    seen: set = set()
    unique = lambda items: {k: v for k, v in items.items() if not (id(v) in seen or seen.add(id(v)))}
    return unique(dicts), unique(models)


def apply_models(models: dict, spec: dict, arrays: dict, out: "_Collector", limit: int = 8) -> list[dict]:
    """Each torch model found run (eval mode, no gradients) on the request's array `spec["array"]`,
    tried in the input shapes `spec["shapes"]` in turn (e.g. [[-1, 1024], [-1, 1, 32, 32]]); its
    outputs returned as `model/<where>/out`. The labels never reach the worker: the trusted side
    scores the outputs."""
    import torch

    x = np.asarray(arrays[spec["array"]], dtype=np.float32)
    shapes = spec.get("shapes") or [list(x.shape)]
    report = []
    for where, model in list(models.items())[:limit]:
        entry = {"where": where, "class": type(model).__name__,
                 "parameters": int(sum(p.numel() for p in model.parameters()))}
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        errors = []
        model.eval()
        for shape in shapes:
            try:
                with torch.no_grad():
                    y = model(torch.from_numpy(x.reshape(shape)).to(device))
                if isinstance(y, (tuple, list)):
                    y = y[0]
                y = y.detach().float().cpu().numpy()
                if y.ndim != 2 or y.shape[0] != x.shape[0]:
                    errors.append(f"input {list(shape)}: output of shape {list(y.shape)}")
                    continue
                out.arrays[f"model/{where}/out"] = y
                entry["input_shape"] = list(shape)
                break
            except Exception as exc:  # noqa: BLE001 - the student's forward may raise anything
                errors.append(f"input {list(shape)}: {type(exc).__name__}: {str(exc)[:200]}")
        if "input_shape" not in entry:
            entry["error"] = "; ".join(errors)[:600]
        report.append(entry)
    return report


def _top_level_line(exc: BaseException, script: str) -> int | None:
    """The line of the script's top-level statement that was running when `exc` was raised: how
    far a failed run got, the same every time (a run's seconds are not)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == script and code.co_name == "<module>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def run_script(ctx, role: str, args: dict, arrays: dict, after=None) -> tuple[dict, dict]:
    """Run the script of `role` to completion as `__main__` (see the module doc); (arrays, facts).
    `after(scope) -> (arrays, facts)`: a pack probe's own look at the finished script's globals."""
    if role not in ctx.paths:
        raise StudentError(f"no {role} script was found in the submission")
    source_path = ctx.paths[role]
    name = args.get("name") or source_path.name
    root = ctx.workspace / RUN_DIR / f"{os.getpid()}-{time.monotonic_ns()}"
    folder = root / args.get("folder", "python")
    folder.mkdir(parents=True)
    script = folder / name
    shutil.copyfile(source_path, script)
    notes: list[str] = []
    try:
        placed, aliases = place_inputs(folder, args.get("inputs", {}), arrays)
        constants = args.get("constants", {})
        tree, found, counts = replace_constants(script.read_text(), constants, str(script))
        snapshots = args.get("snapshots", {})          # {name: [globals]}, as script_spec checked it
        snapshot_lines = insert_snapshots(tree, snapshots)
        taken: dict = {}
        frames = _Frames()
        want_models = args.get("models") is not None
        if want_models or args.get("all_dicts"):
            watch_functions(tree)
        code = compile(tree, str(script), "exec")
        facts: dict = {"script": name, "inputs": placed, "matplotlib": quiet_matplotlib(),
                       "constants": {k: {"found": v is not None, "was": v} for k, v in found.items()},
                       "assignments": counts}
        for k, v in found.items():
            if v is not None and v != repr(constants[k]):
                notes.append(f"{name}: {k} = {constants[k]!r} while grading (yours: {v})"
                             + (f", in each of its {counts[k]} assignments" if counts[k] > 1 else ""))
        seed_all(int(args.get("seed", 0)))
        scope = {"__name__": "__main__", "__file__": str(script), "__builtins__": builtins,
                 FRAME_HOOK: frames,
                 SNAPSHOT_HOOK: lambda point: taken.__setitem__(point, {g: copy.deepcopy(scope[g]) for g in
                                                                       snapshots[point] if g in scope})}
        saved = (os.getcwd(), sys.argv, sys.stdin, list(sys.path), builtins.input)
        watch = _Watch(root, aliases)
        _install_audit()
        ctx.on_loaded()
        started = time.perf_counter()
        limit = args.get("time_limit")
        os.chdir(folder)
        argv = argv_choice(tree, list(args.get("argv_choices", [])))
        if argv is not None:
            notes.append(f"{name} picks its part from the command line (sys.argv[1] == {argv!r}): it was run as "
                         f"`python {name} {argv}`")
        sys.argv, sys.stdin = [str(script)] + ([argv] if argv is not None else []), io.StringIO("")
        builtins.input = _no_input
        sys.path.insert(0, str(folder))
        status, error = "completed", None
        try:
            _WATCHING[:] = [watch]
            previous = _arm(limit)
            try:
                exec(code, scope)
            finally:
                _disarm(previous)
                _WATCHING.clear()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                status, error = "failed", f"{name} stopped with sys.exit({exc.code!r})"
            else:
                status = "exited"
        except _OutOfTime:
            status = "stopped"
            error = (f"{name} did not finish within {limit:g} s, the time limit for this script at the "
                     f"grader's budget ({', '.join(f'{k} = {v!r}' for k, v in constants.items()) or 'no budget constants'}): "
                     f"a slow loop (per-example Python loops, or work the budget does not reach)?")
        except StudentError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the student's script may raise anything
            status, error = "failed", f"running {name} failed: {describe(exc, folder)}"
            facts["failed_line"] = _top_level_line(exc, str(script))
        finally:
            os.chdir(saved[0])
            sys.argv, sys.stdin, builtins.input = saved[1], saved[2], saved[4]
            sys.path[:] = saved[3]
            _close_figures()
        facts.update(status=status, seconds=round(time.perf_counter() - started, 3))
        if error is not None:
            if not args.get("partial"):
                raise StudentError(error)
            facts["error"] = error
            notes.append(f"{error}; what it had computed by then was graded")
        for link, rel in watch.read_aliases.items():
            notes.append(f"{name} read {os.path.relpath(link, folder)}, not {rel} where the handout puts it: "
                         f"the grader placed the file there too")
        for made in watch.made:
            notes.append(f"{name} writes into {os.path.relpath(root / made, folder)}/, which did not exist: "
                         f"the grader made the folder")
        out = _Collector()
        missing = []
        for g in args.get("globals", []):
            if g in scope:
                out.add(f"global/{g}", scope[g])
            else:
                missing.append(g)
        facts["missing_globals"] = missing
        for point, values in taken.items():
            for g, value in values.items():
                out.add(f"global/{g}@{point}", value)
        facts["snapshots"] = {point: {"line": line, "taken": point in taken} for point, line in snapshot_lines.items()}
        if args.get("all_dicts") or want_models:
            dicts, models = _candidates(scope, frames)
            if args.get("all_dicts"):
                cap = int(args.get("dict_bytes", 64 << 20))
                kept = [k for k, d in dicts.items() if k not in args.get("globals", []) and _nbytes(d) <= cap]
                for k in kept:
                    out.add(f"global/{k}", dicts[k])
                facts["dicts"] = kept
                facts["dicts_too_large"] = [k for k, d in dicts.items() if _nbytes(d) > cap]
            if want_models:
                facts["models"] = apply_models(models, args["models"], arrays, out)
        if after is not None:
            extra, extra_facts = after(scope)
            out.arrays.update(extra)
            facts.update(extra_facts)
        unread, read = [], []
        wanted = list(args.get("outputs", []))
        written = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p != script
                         and os.path.relpath(p, folder) not in placed)
        patterns = args.get("output_patterns", [])
        found_files = [os.path.relpath(p, folder) for p in written
                       if any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
        facts["outputs_found"] = found_files
        for rel in wanted + [f for f in found_files if f not in wanted]:
            path = _inside(folder, rel, "output file")
            if not path.is_file():
                unread.append(rel)
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                out.facts[f"file/{rel}"] = f"not read: {path.stat().st_size >> 20} MiB (the limit is {MAX_FILE_BYTES >> 20} MiB)"
                continue
            try:
                out.add(f"file/{rel}", read_output(path))
                read.append(rel)
            except Exception as exc:  # noqa: BLE001 - a file the student wrote may be anything
                out.facts[f"file/{rel}"] = f"could not be read: {type(exc).__name__}: {str(exc)[:300]}"
        facts.update(outputs_read=read, outputs_missing=unread,
                     wrote=[p.relative_to(root).as_posix() for p in written][:100],
                     values=out.facts, notes=notes)
        return out.arrays, facts
    except ValueError as exc:
        raise RuntimeError(f"the script probe's request is malformed: {exc}") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _no_input(prompt=""):
    raise EOFError("input() is not available while grading: the script runs without a keyboard")


def _close_figures() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and not isinstance(plt, _Anything):
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001
            pass


@probe("script")
def script_probe(ctx, args, arrays):
    """The generic script probe: args["role"] names the script's role (see run_script)."""
    return run_script(ctx, args["role"], args, arrays)
