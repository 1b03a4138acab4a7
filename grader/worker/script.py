"""Script probes, run inside the worker: a student's script run to completion, its results returned.

Homework often is a script (`run_q3.py`) whose training loop is top-level code. The probe `script`
runs such a file the way a student runs it, with what the pack's plan chooses (the request's args):

- `inputs`: data files placed where the script reads them, relative to the script's folder
  (`{"../data/train.mat": {"format": "mat", "arrays": {"train_data": "x", ...}}}`: file keys taken
  from the request's arrays; formats mat, npy, npz, bytes), so `../data/x.mat` works;
- `constants`: named top-level constants replaced, by the parsed source, whatever the student's
  value (`{"max_iters": 5}`: the profile's budget), and a fact for each that was or was not found;
- `seed`: `random`, `numpy` and `torch` seeded before the script starts;
- matplotlib forced to its non-interactive backend (`plt.show()` returns at once), stdin empty;
- `globals`: names whose values come back (a dict of arrays such as `params`, an array, a number,
  a torch model as its state_dict), and `outputs`: files it wrote, opened here in the worker (a
  pickle is unpickled only here, never on the trusted side) and returned the same way.

Values come back as plain numeric arrays named `global/<name>[/<key>...]` and
`file/<path>[/<key>...]`; strings and shapes as small JSON facts. The trusted side judges them.
"""
from __future__ import annotations

import ast
import builtins
import io
import json
import os
import pickle
import random
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np

from .loader import StudentError, describe

PROBES: dict = {}
RUN_DIR = ".grader-script"
MAX_VALUES = 2000          # arrays and facts returned from one probe
MAX_FACTS = 200            # facts travel in the answer's JSON header (capped at 1 MiB)
MAX_TEXT = 500
MAX_DEPTH = 6
FORMATS = ("mat", "npy", "npz", "bytes")


def probe(name):
    def register(fn):
        PROBES[name] = fn
        return fn
    return register


# --------------------------------------------------------------------------------------------------
# The source: named constants replaced
# --------------------------------------------------------------------------------------------------

def override_constants(source: str, constants: dict, filename: str) -> tuple[ast.Module, dict]:
    """The parsed script with each top-level `NAME = ...` (or `NAME: T = ...`, also inside a
    top-level `if __name__ == "__main__":`) of a name in `constants` given that value instead.
    Returns the tree and, per name, what the student had (None where the name was not assigned)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise StudentError(f"{Path(filename).name} does not parse: {exc.msg} (line {exc.lineno})") from None
    found: dict = {name: None for name in constants}

    def visit(body):
        for node in body:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
                continue
            target = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target = node.targets[0].id
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                target = node.target.id
            if target in constants:
                found[target] = ast.unparse(node.value)[:200]
                node.value = ast.copy_location(ast.parse(repr(constants[target]), mode="eval").body, node.value)

    visit(tree.body)
    ast.fix_missing_locations(tree)
    return tree, found


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


def place_inputs(folder: Path, inputs: dict, arrays: dict) -> list[str]:
    placed = []
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
    return placed


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
    try:
        placed = place_inputs(folder, args.get("inputs", {}), arrays)
        tree, found = override_constants(script.read_text(), args.get("constants", {}), str(script))
        code = compile(tree, str(script), "exec")
        facts: dict = {"script": name, "inputs": placed, "matplotlib": quiet_matplotlib(),
                       "constants": {k: {"found": v is not None, "was": v} for k, v in found.items()}}
        seed_all(int(args.get("seed", 0)))
        scope = {"__name__": "__main__", "__file__": str(script), "__builtins__": builtins}
        saved = (os.getcwd(), sys.argv, sys.stdin, list(sys.path), builtins.input)
        ctx.on_loaded()
        started = time.perf_counter()
        os.chdir(folder)
        sys.argv, sys.stdin = [str(script)], io.StringIO("")
        builtins.input = _no_input
        sys.path.insert(0, str(folder))
        status = "completed"
        try:
            exec(code, scope)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise StudentError(f"{name} stopped with sys.exit({exc.code!r})") from None
            status = "exited"
        except StudentError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the student's script may raise anything
            raise StudentError(f"running {name} failed: {describe(exc, folder)}") from None
        finally:
            os.chdir(saved[0])
            sys.argv, sys.stdin, builtins.input = saved[1], saved[2], saved[4]
            sys.path[:] = saved[3]
            _close_figures()
        facts.update(status=status, seconds=round(time.perf_counter() - started, 3))
        out = _Collector()
        missing = []
        for g in args.get("globals", []):
            if g in scope:
                out.add(f"global/{g}", scope[g])
            else:
                missing.append(g)
        facts["missing_globals"] = missing
        if after is not None:
            extra, extra_facts = after(scope)
            out.arrays.update(extra)
            facts.update(extra_facts)
        unread, read = [], []
        for rel in args.get("outputs", []):
            path = _inside(folder, rel, "output file")
            if not path.is_file():
                unread.append(rel)
                continue
            try:
                out.add(f"file/{rel}", read_output(path))
                read.append(rel)
            except Exception as exc:  # noqa: BLE001 - a file the student wrote may be anything
                out.facts[f"file/{rel}"] = f"could not be read: {type(exc).__name__}: {str(exc)[:300]}"
        facts.update(outputs_read=read, outputs_missing=unread,
                     wrote=sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                                  if p.is_file() and p != script)[:100],
                     values=out.facts)
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
