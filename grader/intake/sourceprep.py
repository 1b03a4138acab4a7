"""Make a student's module safe to import, by parsing it (never by running it).

Importing a submission must define its functions and classes and nothing more: no training, no
downloads, no plotting. `prepare` keeps a small, well-defined set of top-level statements and blanks
out the rest, keeping every kept line at its original line number so that tracebacks from the worker
still point at the student's own lines.

What is kept at the top level (anything else is skipped and listed in `Prepared.skipped`):
- imports, rewritten so that a missing or broken module does not stop the import (see
  `_guard_import`); `from __future__ import ...` stays as written;
- `def`, `async def` and `class` statements with their decorators (their bodies are not run at import);
- simple assignments: every target is a name, attribute, subscript or a tuple/list of those, and the
  value is a *simple expression* (see `_simple_reason`): literals, names, attribute access,
  subscripts, arithmetic, comparisons, containers, lambdas, f-strings, and calls to an allow-list of
  harmless constructors (`dict`, `range`, `np.zeros`, `nn.Conv2d`, `AttrDict`, ...);
- `x.update(...)`, `x.append(...)` and similar container updates of a kept name, with simple arguments
  (the 2019 notebooks build their `args` this way);
- docstrings and other bare constants, `pass`, `global`;
- `try:` and `if` blocks whose parts are all themselves keepable (`try: import cPickle ...`);
- except `if __name__ == "__main__":`, which is always dropped: it is the script's entry point.
Comments are removed everywhere (`blank_comments`; lines stay in place), so that files differing only
in their comments prepare to the same bytes.
A kept statement that uses a name only a skipped statement defines (`chars = list(set(data))` after
`data = open(...).read()` was skipped) is skipped too, so the module imports without a NameError.

Source that does not parse gets only repairs that cannot change its meaning, kept when the result
parses (`make_parsable`): HTML-unescaping (code saved through an HTML exporter), Python 2 `print`
statements rewritten as calls, and tab indentation expanded as Python 2 read it.
"""
from __future__ import annotations

import ast
import builtins
import html
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Callable

MISSING_HELPER = "__grader_missing__"   # defined by the worker in the module namespace
NOTEBOOK_MARKER = "# %% [cell "          # cell markers written by grader.intake.notebook; never dropped


@dataclass
class Skipped:
    lineno: int                  # the statement's first line in the student's source
    text: str                    # that line, shortened
    reason: str = ""             # why it was skipped, for the feedback


@dataclass
class Prepared:
    source: str                  # the module to write into the workspace ("" on error)
    skipped: list[Skipped] = field(default_factory=list)
    error: str | None = None     # a message for the student when the module cannot be prepared
    repairs: list[str] = field(default_factory=list)    # e.g. "Python 2 print statements ..."
    line_map: list[int] = field(default_factory=list)   # prepared line k -> original line line_map[k-1]


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------

_CODING_RE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode_source(data: bytes) -> tuple[str, str | None]:
    """Bytes of a .py file -> (text with '\\n' newlines, a note when a fallback was needed).

    Honours a BOM or a PEP 263 coding line; a file that is not valid in its declared encoding is read
    as Latin-1 (every byte maps to a character) rather than refused, and a note says so.
    """
    note = None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        text = data.decode("latin-1")
        note = "it is not valid UTF-8; it was read as Latin-1 (save it as UTF-8 to be sure)"
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    # The prepared module is written as UTF-8, so an old coding line would now be wrong.
    lines = text.split("\n")
    for i in range(min(2, len(lines))):
        if _CODING_RE.match(lines[i]):
            lines[i] = "# -*- coding: utf-8 -*-"
    return "\n".join(lines), note


# --------------------------------------------------------------------------------------------------
# Python 2 repairs
# --------------------------------------------------------------------------------------------------

# After `print`, these tokens start a Python 2 print statement's arguments; anything else (`(`, `=`,
# `.`, `,`, keywords such as `in`) means `print` is used as a name and is left alone.
_PRINT_ARG_START = {tokenize.NAME, tokenize.STRING, tokenize.NUMBER}
_PRINT_OP_START = {"-", "+", "~", "[", "{", ">>", "`"}
_NOT_AN_ARG = {"in", "is", "and", "or", "if", "else", "for", "not in"}
_STMT_END = {tokenize.NEWLINE, tokenize.ENDMARKER}


def repair_print_statements(source: str) -> tuple[str, list[int]] | None:
    """Rewrite Python 2 `print x, y` / `print >>f, x` / `print x,` as calls; keep line breaks.

    Returns (new source, lines repaired) or None when there was nothing to repair or the source
    cannot even be tokenized. The caller decides whether the repair is good (it must then parse).
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    lines = source.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def pos(rc: tuple[int, int]) -> int:
        return offsets[rc[0] - 1] + rc[1]

    edits: list[tuple[int, int, str]] = []
    repaired: list[int] = []
    depth = 0
    at_stmt_start = True
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth = max(0, depth - 1)
        if at_stmt_start and tok.type == tokenize.NAME and tok.string == "print" and depth == 0:
            stmt = _print_statement(tokens, i)
            if stmt is not None:
                end_index, replacement_parts = stmt
                new = _build_print_call(source, pos, tokens, i, end_index, replacement_parts)
                if new is not None:
                    edits.append((pos(tok.start), pos(tokens[end_index].end), new))
                    repaired.append(tok.start[0])
                    i = end_index + 1
                    at_stmt_start = False
                    continue
        if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            at_stmt_start = True
        elif tok.type == tokenize.OP and tok.string in (":", ";") and depth == 0:
            at_stmt_start = True
        elif tok.type not in (tokenize.NL, tokenize.COMMENT):
            at_stmt_start = False
        i += 1
    if not edits:
        return None
    for start, end, text in reversed(edits):
        source = source[:start] + text + source[end:]
    return source, repaired


def _print_statement(tokens: list[tokenize.TokenInfo], i: int):
    """If tokens[i] starts a print statement, return (index of its last token, commas at depth 0)."""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if nxt is None:
        return None
    if nxt.type in _STMT_END or (nxt.type == tokenize.COMMENT) or (nxt.type == tokenize.OP and nxt.string == ";"):
        return i, []                                    # bare `print`: a newline
    if nxt.type == tokenize.NAME and nxt.string in _NOT_AN_ARG:
        return None
    if not (nxt.type in _PRINT_ARG_START or (nxt.type == tokenize.OP and nxt.string in _PRINT_OP_START)):
        return None
    depth = 0
    commas: list[int] = []
    last = i
    j = i + 1
    while j < len(tokens):
        t = tokens[j]
        if t.type in _STMT_END or (t.type == tokenize.OP and t.string == ";" and depth == 0):
            break
        if t.type == tokenize.OP:
            if t.string in "([{":
                depth += 1
            elif t.string in ")]}":
                depth -= 1
            elif t.string == "," and depth == 0:
                commas.append(j)
        if t.type not in (tokenize.NL, tokenize.COMMENT):
            last = j
        j += 1
    return last, commas


def _build_print_call(source, pos, tokens, i, last, commas) -> str | None:
    """The text of `print(...)` for the print statement spanning tokens[i..last]."""
    if last == i:
        return "print()"
    first = i + 1
    file_expr = None
    if tokens[first].type == tokenize.OP and tokens[first].string == ">>":
        if not commas:                                   # `print >>f`: a newline to f
            file_expr = source[pos(tokens[first].end):pos(tokens[last].end)].strip()
            return f"print(file={file_expr})" if file_expr else None
        file_expr = source[pos(tokens[first].end):pos(tokens[commas[0]].start)].strip()
        first = commas[0] + 1
        commas = commas[1:]
        if first > last:
            return f"print(file={file_expr})"
    end_kw = None
    end_index = last
    if commas and commas[-1] == last:                    # trailing comma: no newline in Python 2
        end_kw = 'end=" "'
        end_index = last - 1
        if end_index < first:
            return None
    args = source[pos(tokens[first].start):pos(tokens[end_index].end)]
    extra = [kw for kw in (end_kw, f"file={file_expr}" if file_expr else None) if kw]
    return "print(" + ", ".join([args] + extra) + ")"


_ESCAPED = re.compile(r"&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);")
_PRE = re.compile(r"<pre\b[^>]*>(.*)</pre>", re.IGNORECASE | re.DOTALL)


def unescape_html(source: str) -> str | None:
    """Code that went through an HTML exporter (`a &lt; b`, or a whole page `<pre>...</pre>`), as
    code; None when nothing looks escaped. Any raw `<...>` inside the <pre> is markup (a real `<` in
    the code would have been escaped), so it is removed."""
    if not _ESCAPED.search(source):
        return None
    text = source
    page = _PRE.search(text) if text.lstrip()[:1] == "<" else None
    if page:
        text = re.sub(r"<[^>\n]+>", "", page.group(1)).lstrip("\n")
    return html.unescape(text)


def expand_leading_tabs(source: str) -> str:
    """Python 2 read a tab in indentation as 8 columns; Python 3 refuses a mix. Same meaning, spaces."""
    out = []
    for line in source.split("\n"):
        stripped = line.lstrip(" \t")
        indent = line[: len(line) - len(stripped)]
        out.append(indent.expandtabs(8) + stripped)
    return "\n".join(out)


def repair_python2(source: str) -> tuple[str, list[str]] | None:
    """Try the unambiguous Python 2 -> 3 repairs; return (source that parses, repair notes) or None."""
    notes: list[str] = []
    text = source
    error = _parse_error(text)
    if error is None:
        return None
    for _ in range(2):                    # tabs, then prints (or prints, then tabs they uncovered)
        if isinstance(error, TabError) and not _notes_have(notes, "tabs"):
            text = expand_leading_tabs(text)
            notes.append("indentation mixing tabs and spaces was expanded (a tab = 8 columns, as in Python 2)")
            error = _parse_error(text)
        if error is not None and not _notes_have(notes, "print"):
            fixed = repair_print_statements(text)
            if fixed is not None:
                text, lines = fixed
                shown = ", ".join(str(n) for n in lines[:10]) + (", …" if len(lines) > 10 else "")
                notes.append(f"Python 2 print statements were rewritten as print(...) calls (line {shown})")
                error = _parse_error(text)
        if error is None:
            return text, notes
    return None


HTML_REPAIR = "its code was HTML-escaped (&lt; &gt; &quot; …) and was unescaped"


def make_parsable(source: str) -> tuple[str, list[str]] | None:
    """For source that does not parse: the first of these that parses, with what was done, or None.
    1. the HTML-unescaped code; 2. the Python 2 repairs of the code as it is; 3. both."""
    unescaped = unescape_html(source)
    if unescaped is not None and _parse_error(unescaped) is None:
        return unescaped, [HTML_REPAIR]
    fixed = repair_python2(source)
    if fixed is not None:
        return fixed
    if unescaped is not None:
        fixed = repair_python2(unescaped)
        if fixed is not None:
            return fixed[0], [HTML_REPAIR] + fixed[1]
    return None


def _notes_have(notes: list[str], word: str) -> bool:
    return any(word in n for n in notes)


def _parse_error(text: str) -> SyntaxError | None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return exc
    except (RecursionError, MemoryError, ValueError):
        return SyntaxError("too complex to parse")
    return None


def syntax_message(exc: SyntaxError, filename: str, where: Callable[[int], str] | None = None,
                   lines: list[str] | None = None) -> str:
    """`SyntaxError in model.py line 12: invalid syntax: `print x y` (Python 3 is required)`;
    with `where`: `SyntaxError in model.ipynb, cell 7, line 3: ...`."""
    lineno = exc.lineno or 0
    place = f", {where(lineno)}" if where else f" line {lineno}"
    text = (exc.text or "").strip()
    if not text and lines and 0 < lineno <= len(lines):
        text = lines[lineno - 1].strip()
    shown = f": `{_shorten(text, 80)}`" if text else ""
    kind = type(exc).__name__
    return f"{kind} in {filename}{place}: {exc.msg}{shown} (Python 3 is required)"


# --------------------------------------------------------------------------------------------------
# What is safe to keep
# --------------------------------------------------------------------------------------------------

# Calls allowed in a kept top-level value: constructors and pure helpers that build small objects.
_SAFE_CALLS = {
    # builtins
    "dict", "list", "set", "frozenset", "tuple", "range", "int", "float", "str", "bool", "complex",
    "bytes", "len", "min", "max", "abs", "round", "sorted", "reversed", "enumerate", "zip", "slice",
    "object",
    # containers and attribute dictionaries
    "OrderedDict", "collections.OrderedDict", "defaultdict", "collections.defaultdict",
    "namedtuple", "collections.namedtuple", "deque", "collections.deque",
    "AttrDict", "EasyDict", "edict", "easydict.EasyDict", "Namespace", "argparse.Namespace",
    "SimpleNamespace", "types.SimpleNamespace",
    # paths (building a path reads nothing)
    "Path", "pathlib.Path", "os.path.join", "os.path.dirname", "os.path.basename",
    "os.path.abspath", "os.path.splitext", "os.getcwd",
    # torch: devices, small tensors, dtypes
    "torch.device", "torch.tensor", "torch.zeros", "torch.ones", "torch.arange", "torch.Size",
    "torch.cuda.is_available",
}
_NUMPY_SAFE = {"array", "asarray", "zeros", "ones", "full", "eye", "arange", "linspace",
               "zeros_like", "ones_like", "float32", "float64", "int32", "int64", "uint8", "dtype"}
_STR_METHODS = {"format", "join"}                    # "{}".format(x), ", ".join(names)
_UPDATE_METHODS = {"update", "append", "extend", "add", "insert", "setdefault"}
_BUILTIN_NAMES = set(dir(builtins)) | {"__name__", "__file__", "__doc__", MISSING_HELPER}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _safe_callee(func: ast.AST) -> bool:
    if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant)
            and isinstance(func.value.value, str) and func.attr in _STR_METHODS):
        return True
    name = _dotted(func)
    if name is None:
        return False
    if name in _SAFE_CALLS:
        return True
    parts = name.split(".")
    if parts[0] in ("np", "numpy") and len(parts) == 2 and parts[1] in _NUMPY_SAFE:
        return True
    # nn.Conv2d(...), torch.nn.BatchNorm2d(...): layer and loss constructors (classes are Capitalised).
    if parts[:-1] in (["nn"], ["torch", "nn"]) and parts[-1][:1].isupper():
        return True
    return False


def _simple_reason(node: ast.AST | None) -> str | None:
    """None when `node` is a simple expression (safe to evaluate at import); else why it is not."""
    if node is None or isinstance(node, (ast.Constant, ast.Name)):
        return None
    if isinstance(node, ast.Lambda):               # its body only runs when called
        return _first_reason(node.args.defaults + [d for d in node.args.kw_defaults if d])
    if isinstance(node, ast.Call):
        if not _safe_callee(node.func):
            return f"calls {_shorten(ast.unparse(node.func), 40)}()"
        return _first_reason([node.func, *node.args, *(k.value for k in node.keywords)])
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return "uses a comprehension"
    if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
        return f"uses {type(node).__name__.lower()}"
    if isinstance(node, (ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Set,
                         ast.Dict, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
                         ast.Starred, ast.JoinedStr, ast.FormattedValue, ast.Load, ast.Store,
                         ast.operator, ast.unaryop, ast.boolop, ast.cmpop)):
        return _first_reason(list(ast.iter_child_nodes(node)))
    return f"uses {type(node).__name__}"


def _first_reason(nodes) -> str | None:
    for child in nodes:
        reason = _simple_reason(child)
        if reason:
            return reason
    return None


def _loaded_names(node: ast.AST | None) -> set[str]:
    """Names an expression reads when evaluated (a lambda's body is not evaluated)."""
    names: set[str] = set()
    if node is None:
        return names
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        names.add(node.id)
    elif isinstance(node, ast.Lambda):
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d]:
            names |= _loaded_names(d)
        return names
    for child in ast.iter_child_nodes(node):
        names |= _loaded_names(child)
    return names


def _stored_names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _target_reason(target: ast.AST) -> str | None:
    if isinstance(target, ast.Name):
        return None
    if isinstance(target, ast.Attribute):
        return _simple_reason(target.value)
    if isinstance(target, ast.Subscript):
        return _simple_reason(target.value) or _simple_reason(target.slice)
    if isinstance(target, (ast.Tuple, ast.List)):
        return next((r for r in map(_target_reason, target.elts) if r), None)
    if isinstance(target, ast.Starred):
        return _target_reason(target.value)
    return f"assigns to {type(target).__name__}"


def _is_main_guard(test: ast.AST) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


@dataclass
class _Scope:
    """Which module-level names exist after the statements kept so far."""

    bound: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)    # bound only by skipped statements
    star_import: bool = False
    future_annotations: bool = False

    def missing(self, names: set[str]) -> list[str]:
        out = []
        for name in sorted(names):
            if name in self.bound or name in _BUILTIN_NAMES:
                continue
            if self.star_import and name not in self.skipped:
                continue                               # may come from `from x import *`
            out.append(name)
        return out

    def bind(self, names: set[str]) -> None:
        self.bound |= names
        self.skipped -= names

    def lose(self, names: set[str]) -> None:
        self.skipped |= names - self.bound


KEEP, IMPORT, SKIP = "keep", "import", "skip"


def _import_names(stmt: ast.Import | ast.ImportFrom) -> set[str]:
    names = set()
    for alias in stmt.names:
        if alias.name == "*":
            continue
        names.add(alias.asname or alias.name.split(".")[0])
    return names


def _def_time_nodes(stmt) -> list[ast.AST]:
    """Expressions a def/class statement evaluates when it runs: decorators, defaults, bases, and
    a class body's own statements (its methods' decorators and defaults, its class attributes)."""
    nodes: list[ast.AST] = list(stmt.decorator_list)
    if isinstance(stmt, ast.ClassDef):
        nodes += stmt.bases + [k.value for k in stmt.keywords]
        for inner in stmt.body:
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nodes += _def_time_nodes(inner)
            else:
                nodes.append(inner)
    else:
        a = stmt.args
        nodes += a.defaults + [d for d in a.kw_defaults if d]
    return nodes


def _class_body_names(stmt) -> set[str]:
    """Names a class body binds itself (`criterion = ...`, `def forward`), visible later in it."""
    if not isinstance(stmt, ast.ClassDef):
        return set()
    return set().union(set(), *(_assigned_by(inner) for inner in stmt.body))


def _annotations(stmt) -> list[ast.AST]:
    if isinstance(stmt, ast.ClassDef):
        return []
    a = stmt.args
    args = a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]
    return [x.annotation for x in args if x.annotation] + ([stmt.returns] if stmt.returns else [])


def _assigned_by(stmt: ast.stmt) -> set[str]:
    """Names a (possibly skipped) statement would bind at module level."""
    names: set[str] = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return _import_names(stmt)
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _classify(stmt: ast.stmt, scope: _Scope, top: bool = True) -> tuple[str, str]:
    """(KEEP | IMPORT | SKIP, reason). Updates `scope` with the names a kept statement binds."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            if any(a.name == "annotations" for a in stmt.names):
                scope.future_annotations = True
            return KEEP, ""
        if any(a.name == "*" for a in stmt.names):
            scope.star_import = True
        scope.bind(_import_names(stmt))
        return (IMPORT if top else KEEP), ""

    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        nodes = _def_time_nodes(stmt)
        if not scope.future_annotations:
            nodes += _annotations(stmt)
        used = set().union(set(), *(_loaded_names(n) for n in nodes)) - _class_body_names(stmt)
        missing = scope.missing(used)
        if missing:
            return SKIP, (f"its decorators, defaults or class body use {_names(missing)}, "
                          f"which is skipped or undefined")
        scope.bind({stmt.name})
        return KEEP, ""

    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        value = stmt.value
        reason = next((r for r in map(_target_reason, targets) if r), None) or _simple_reason(value)
        if isinstance(stmt, ast.AnnAssign) and not scope.future_annotations:
            reason = reason or _simple_reason(stmt.annotation)
        if reason:
            return SKIP, reason
        used = _loaded_names(value)
        for t in targets:
            if not isinstance(t, ast.Name):
                used |= _loaded_names(t)                  # `args.lr = ...` needs `args`
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            used.add(stmt.target.id)
        missing = scope.missing(used)
        if missing:
            return SKIP, f"uses {_names(missing)}, which is skipped or undefined"
        scope.bind(set().union(*(_stored_names(t) for t in targets)))
        return KEEP, ""

    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Constant):
            return KEEP, ""                               # docstrings
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                and value.func.attr in _UPDATE_METHODS and isinstance(value.func.value, ast.Name)):
            reason = _first_reason([*value.args, *(k.value for k in value.keywords)])
            if not reason:
                missing = scope.missing(_loaded_names(value))
                if missing:
                    return SKIP, f"uses {_names(missing)}, which is skipped or undefined"
                return KEEP, ""
            return SKIP, reason
        if isinstance(value, ast.Call):
            return SKIP, f"calls {_shorten(ast.unparse(value.func), 40)}()"
        return SKIP, "an expression statement runs code when imported"

    if isinstance(stmt, ast.If):
        if _is_main_guard(stmt.test):
            return SKIP, 'the `if __name__ == "__main__":` block is the script\'s entry point'
        reason = _simple_reason(stmt.test)
        if reason:
            return SKIP, f"its condition {reason}"
        missing = scope.missing(_loaded_names(stmt.test))
        if missing:
            return SKIP, f"uses {_names(missing)}, which is skipped or undefined"
        return _classify_block([stmt.body, stmt.orelse], scope, "if")

    if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
        for handler in stmt.handlers:
            if _simple_reason(handler.type):
                return SKIP, "an except clause is not simple"
        blocks = [stmt.body, stmt.orelse, stmt.finalbody] + [h.body for h in stmt.handlers]
        kind, reason = _classify_block(blocks, scope, "try")
        if kind == KEEP:
            scope.bind({h.name for h in stmt.handlers if h.name})
        return kind, reason

    if isinstance(stmt, (ast.Pass, ast.Global)):
        return KEEP, ""
    kinds = {ast.For: "a for loop", ast.AsyncFor: "a for loop", ast.While: "a while loop",
             ast.With: "a with block", ast.AsyncWith: "a with block", ast.Delete: "del",
             ast.Assert: "an assert", ast.Raise: "a raise", ast.Return: "return outside a function"}
    return SKIP, kinds.get(type(stmt), type(stmt).__name__) + " runs code when imported"


def _classify_block(blocks: list[list[ast.stmt]], scope: _Scope, what: str) -> tuple[str, str]:
    trial = _Scope(set(scope.bound), set(scope.skipped), scope.star_import, scope.future_annotations)
    for block in blocks:
        for inner in block:
            kind, reason = _classify(inner, trial, top=False)
            if kind == SKIP:
                return SKIP, f"the {what} block contains code that runs when imported ({reason})"
    scope.bind(trial.bound - scope.bound)
    return KEEP, ""


def _guard_import(stmt: ast.Import | ast.ImportFrom, text: str) -> str:
    """One line that binds placeholders, then imports: a missing or broken module is not fatal.

    `with suppress(Exception): np = __grader_missing__("numpy"); import numpy as np` has the meaning
    of `try: import numpy as np / except: np = __grader_missing__("numpy")` but fits on the import's
    own line, so no line number moves (the helper is fetched with `globals().get`, see below). Exception, not only ImportError: torchvision on a CPU-only
    torch raises RuntimeError when imported, matplotlib can fail on a missing backend.
    """
    binds = []
    for alias in stmt.names:
        if alias.name == "*":
            continue
        if isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            full = f"{module}.{alias.name}" if module and not module.endswith(".") else module + alias.name
        else:
            full = alias.name
        bound = alias.asname or alias.name.split(".")[0]
        binds.append(f"{bound} = {_MISSING_CALL}({full!r})")
    prefix = "with __import__('contextlib').suppress(Exception): "
    return prefix + "".join(b + "; " for b in binds) + text


# The helper is looked up, not named: if no worker defined it, binding the placeholder must not fail,
# or the import after it on the same line would never run (a missing module then leaves None).
_MISSING_CALL = f"globals().get({MISSING_HELPER!r}, lambda name: None)"


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------

def prepare(source: str, filename: str, *, where: Callable[[int], str] | None = None) -> Prepared:
    """Return the import-safe version of `source` (see the module docstring for the rules).

    `filename` is used in messages; `where(lineno)` can describe a line ("cell 7, line 3") for
    sources made from notebooks. Never raises for anything in `source`.
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in source:
        return Prepared("", error=f"{filename} contains NUL bytes: it is not a Python text file")
    repairs: list[str] = []
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        fixed = make_parsable(source)
        if fixed is None:
            return Prepared("", error=syntax_message(exc, filename, where, source.split("\n")))
        source, repairs = fixed
        tree = ast.parse(source, filename)
    except (RecursionError, MemoryError, ValueError) as exc:
        return Prepared("", error=f"{filename} could not be parsed ({type(exc).__name__}): is it nested too deeply?")

    try:
        text, line_map, skipped = _rewrite(source, tree)
    except RecursionError:
        return Prepared("", error=f"{filename} is nested too deeply to be prepared")
    text = blank_comments(text)
    try:
        compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        original = line_map[exc.lineno - 1] if exc.lineno and exc.lineno <= len(line_map) else 0
        exc.lineno = original or exc.lineno
        return Prepared("", skipped, syntax_message(exc, filename, where, source.split("\n")), repairs)
    except (RecursionError, MemoryError, ValueError) as exc:
        return Prepared("", skipped, f"{filename} could not be compiled ({type(exc).__name__})", repairs)
    return Prepared(text, skipped, None, repairs, line_map)


_KEPT_COMMENTS = (NOTEBOOK_MARKER, "# [grader] ")


def blank_comments(text: str) -> str:
    """`text` with every comment removed (and the spaces before it), each line kept in its place.

    Comments cannot change what a module does, so two students whose files differ only in their
    comments (a name and roll number at the top, notes in the margin) get byte-identical prepared
    modules, and the probe cache (probecache.py, keyed by the workspace's bytes) answers the second
    from the first. Line numbers are unchanged, so tracebacks still point at the student's lines.
    The grader's own markers (notebook cells, skipped statements) stay. Text that cannot be
    tokenized is returned unchanged."""
    cuts: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and not tok.string.startswith(_KEPT_COMMENTS):
                cuts[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError):
        return text
    if not cuts:
        return text
    lines = text.split("\n")
    for lineno, col in cuts.items():
        lines[lineno - 1] = lines[lineno - 1][:col].rstrip()
    return "\n".join(lines)


def _rewrite(source: str, tree: ast.Module) -> tuple[str, list[int], list[Skipped]]:
    lines = source.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    scope = _Scope()
    skipped: list[Skipped] = []
    # Units: runs of top-level statements sharing a line (`import os; os.system(...)`).
    units: list[list[ast.stmt]] = []
    for stmt in tree.body:
        if units and _first_line(stmt) <= units[-1][-1].end_lineno:
            units[-1].append(stmt)
        else:
            units.append([stmt])

    plan: list[tuple[int, int, str, list[str] | None]] = []   # (first, last, kind, new lines)
    for unit in units:
        first, last = _first_line(unit[0]), unit[-1].end_lineno
        decisions = []
        for stmt in unit:
            kind, reason = _classify(stmt, scope)
            if kind == SKIP:
                scope.lose(_assigned_by(stmt))
                skipped.append(Skipped(_first_line(stmt), _shorten(lines[_first_line(stmt) - 1].strip(), 80), reason))
            decisions.append((stmt, kind))
        kinds = {k for _, k in decisions}
        if kinds == {KEEP}:
            plan.append((first, last, KEEP, None))
        elif kinds == {SKIP}:
            plan.append((first, last, SKIP, None))
        elif len(unit) == 1:                               # one import: guard it on its own lines
            stmt = unit[0]
            seg = lines[first - 1:last]
            seg[0] = _guard_import(stmt, seg[0])
            plan.append((first, last, "rewrite", seg))
        else:                                              # several statements on a line: one per line
            new: list[str] = []
            for stmt, kind in decisions:
                if kind == SKIP:
                    continue
                seg = ast.get_source_segment(source, stmt) or ast.unparse(stmt)
                new.extend((_guard_import(stmt, seg) if kind == IMPORT else seg).split("\n"))
            plan.append((first, last, "rewrite", new))

    out: list[str] = []
    line_map: list[int] = []

    def emit(text: str, original: int) -> None:
        out.append(text)
        line_map.append(original)

    def gap(lineno: int, text: str, droppable: bool) -> None:
        # Ahead of the original numbering (a rewrite took extra lines): drop blank lines to catch up.
        if len(out) >= lineno and droppable:
            return
        emit(text, lineno)

    lineno = 1
    for first, last, kind, new in plan:
        while lineno < first:
            text = lines[lineno - 1]
            gap(lineno, text, not text.strip() or (text.lstrip().startswith("#") and NOTEBOOK_MARKER not in text))
            lineno += 1
        if kind == KEEP:
            for n in range(first, last + 1):
                emit(lines[n - 1], n)
        elif kind == SKIP:
            for n in range(first, last + 1):
                label = "" if n != first else "# [grader] skipped: " + _shorten(lines[n - 1].strip(), 60)
                gap(n, label, True)
        else:
            for k, text in enumerate(new):
                emit(text, first + k if k <= last - first else first)
            for n in range(first + len(new), last + 1):
                gap(n, "", True)
        lineno = last + 1
    while lineno <= len(lines):
        text = lines[lineno - 1]
        gap(lineno, text, not text.strip())
        lineno += 1
    return "\n".join(out) + "\n", line_map, skipped


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return min([stmt.lineno] + [d.lineno for d in decorators]) if decorators else stmt.lineno


def _names(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:3])
    return shown + (" …" if len(names) > 3 else "")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
