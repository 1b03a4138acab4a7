"""Find code that reaches into the grader's worker (trusted side: the source is parsed, never run).

A submission's code runs inside the worker process, so it can reach the worker's own code and
state: the probe registry (`sys.modules["graderworker.<pack>"]`), the request being served (the
caller's frames), the answer pipe (an inherited file descriptor), or the functions the probes call
(builtins, numpy, torch). Through them it can make its worker report facts its own code does not
have: an output shape, the layer types, a completion's length. Answers compared with gold cannot be
faked that way (the numbers have to be right), but checks of reported facts can. This scan finds
the ways in; a submission where it finds one earns nothing from facts its worker reported (the
checks that rest on them fail with the finding) and is flagged for staff review.

What counts, each reported with its file and line:
- the worker runtime by name: `graderworker` anywhere (an import, a string, an attribute);
- frames and the object graph: `sys._getframe`, `sys.settrace`/`setprofile`, `inspect.currentframe`,
  `inspect.stack`/`trace`/`getouterframes`, `.f_back`, `.f_locals`, `.f_globals`, `.tb_frame`,
  `.gi_frame`, `.cr_frame`, `gc.get_objects`/`get_referrers`/`get_referents`;
- the process's file descriptors: `os.write`, `os.fdopen`, `os.dup`, `os.dup2`, and the strings
  `/proc/self/fd`, `/dev/fd/`, `/proc/self/mem`;
- other modules' namespaces: `sys.modules`;
- changing the modules the probes use: assigning, augmenting or deleting an attribute or item of
  `builtins`/`__builtins__`, `sys`, `numpy` or `torch` (through any import alias), or `setattr`/
  `delattr` on them. Not counted: `torch.backends.*` settings, numpy's removed type aliases
  (`np.float = float` in old code), `numpy.load` (the `allow_pickle` workaround), `sys.argv`
  (notebooks set it for argparse), `sys.path`,
  `sys.stdout`/`sys.stderr` (a log file; the answer pipe is caught by the descriptor rules).

It reads code as written; code built at run time (`exec` of a computed string) is not seen. That is
a limit of any static scan: the report says what was found, never that nothing could be there.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

RUNTIME = "graderworker"
WATCHED_MODULES = ("builtins", "__builtins__", "sys", "numpy", "torch")
DEFAULT_ALIASES = {"np": "numpy", "torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional",
                   "sys": "sys", "builtins": "builtins", "__builtins__": "builtins", "numpy": "numpy"}
# numpy.load: the Colab-era workaround `np.load = lambda *a, **k: old(*a, allow_pickle=True, **k)`
# (course data saved as object arrays). The worker decodes only the trusted side's requests with it
# and reports no fact through it, so replacing it can make a probe fail, never forge a fact.
ALLOWED_TARGETS = ("torch.backends.", "sys.argv", "sys.path", "sys.stdout", "sys.stderr",
                   "sys.dont_write_bytecode", "sys.tracebacklimit", "numpy.load")
NUMPY_ALIASES = {f"numpy.{n}" for n in ("float", "int", "bool", "object", "str", "complex", "long",
                                        "unicode")}
CALLS = {"sys._getframe": "reads the caller's frames", "sys.settrace": "traces the grader's code",
         "sys.setprofile": "traces the grader's code", "inspect.currentframe": "reads frames",
         "inspect.stack": "reads the caller's frames", "inspect.trace": "reads frames",
         "inspect.getouterframes": "reads the caller's frames",
         "gc.get_objects": "walks every object in the worker",
         "gc.get_referrers": "walks the worker's objects", "gc.get_referents": "walks the worker's objects",
         "os.write": "writes to a raw file descriptor", "os.fdopen": "opens a raw file descriptor",
         "os.dup": "duplicates a file descriptor", "os.dup2": "duplicates a file descriptor",
         "sys.modules": "reaches other modules' namespaces"}
FRAME_ATTRS = {"f_back", "f_locals", "f_globals", "tb_frame", "gi_frame", "cr_frame", "f_trace"}
STRINGS = ("/proc/self/fd", "/dev/fd/", "/proc/self/mem", RUNTIME)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.what}"


def scan_files(paths) -> list[Finding]:
    """Scan Python files (prepared modules keep the student's line numbers); a file whose text
    another one repeats (intake's role copy of a module) is scanned once."""
    found: list[Finding] = []
    seen: set[str] = set()
    for path in sorted(Path(p) for p in paths):
        try:
            source = path.read_text(errors="replace")
        except OSError:
            continue
        if source not in seen:
            seen.add(source)
            found += scan(source, path.name)
    return found


def scan(source: str, name: str = "<source>") -> list[Finding]:
    return list(_scan(source, name))


@functools.lru_cache(maxsize=256)
def _scan(source: str, name: str) -> tuple[Finding, ...]:
    # Memoised: a batch scans the same provided files (and resubmissions) for many students; the
    # findings are a function of the text and the name alone, and are immutable.
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    aliases = dict(DEFAULT_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found: dict[tuple[int, str], Finding] = {}

    def flag(node, what):
        found.setdefault((node.lineno, what), Finding(name, node.lineno, what))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom)
                                                    and node.module else [])
            if any(m.split(".")[0] == RUNTIME for m in mods):
                flag(node, f"imports the grader's worker runtime ({RUNTIME})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hit = next((s for s in STRINGS if s in node.value), None)
            if hit:
                flag(node, f"names {hit!r}")
        elif isinstance(node, ast.Name) and node.id == RUNTIME:
            flag(node, f"uses the grader's worker runtime ({RUNTIME})")
        elif isinstance(node, ast.Name) and aliases.get(node.id) in CALLS and node.id in aliases:
            dotted = aliases[node.id]
            flag(node, f"{dotted} ({CALLS[dotted]})")
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node, aliases)
            if node.attr in FRAME_ATTRS:
                flag(node, f"reads a frame's .{node.attr}")
            elif dotted in CALLS:
                flag(node, f"{dotted} ({CALLS[dotted]})")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in _flatten(targets):
                changed = _changed_module(target, aliases)
                if changed:
                    verb = "deletes" if isinstance(node, ast.Delete) else "replaces"
                    flag(node, f"{verb} {changed} (the grader's probes use it)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("setattr", "delattr") and node.args:
            base = _dotted(node.args[0], aliases)
            if base and _watched(base):
                flag(node, f"{node.func.id} on {base} (the grader's probes use it)")
    return tuple(sorted(found.values(), key=lambda f: (f.file, f.line, f.what)))


def _flatten(targets):
    for t in targets:
        if isinstance(t, (ast.Tuple, ast.List)):
            yield from _flatten(t.elts)
        elif isinstance(t, ast.Starred):
            yield from _flatten([t.value])
        else:
            yield t


def _dotted(node, aliases) -> str | None:
    """`np.random.choice` -> 'numpy.random.choice' (import aliases resolved); None if not a name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _watched(dotted: str) -> bool:
    return dotted.split(".")[0] in WATCHED_MODULES


def _changed_module(target, aliases) -> str | None:
    """The module attribute or item an assignment target changes, if it is a watched one."""
    node = target
    while isinstance(node, ast.Subscript):
        node = node.value
    if not isinstance(node, ast.Attribute) and node is target:
        return None          # a plain name: the student's own variable
    dotted = _dotted(node, aliases)
    if not dotted or "." not in dotted and not isinstance(target, ast.Subscript):
        return None
    if dotted.split(".")[0] not in WATCHED_MODULES:
        return None
    if dotted.startswith(ALLOWED_TARGETS) or dotted in NUMPY_ALIASES:
        return None
    return dotted + ("[...]" if isinstance(target, ast.Subscript) else "")
