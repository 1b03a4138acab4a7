"""Turn a Jupyter notebook into one Python module, by reading its JSON (never by running it).

Code cells become one module in notebook order; markdown and raw cells are left out. Each cell starts
with a marker line `# %% [cell N]` so that a line of the module can be told back as "cell N, line K"
(`NotebookModule.where` during intake, `describe_line` later on the prepared file).

Cell numbers count every cell from the top of the notebook, markdown included, starting at 1: that is
what a student counts when looking at the notebook.

Per cell, in this order:
1. IPython syntax is dropped and listed: `%magic` and `!shell` lines, `x = !cmd`, `get_ipython()...`
   lines, `obj?` help lines, and cell magics: a `%%time`, `%%timeit`, `%%capture` or `%%prun` cell
   keeps its Python body (IPython runs it as Python), any other `%%bash`, `%%writefile`, ... cell is
   dropped whole. A dropped line inside an indented block becomes `pass` so the block stays valid.
2. Like IPython, a cell whose first line is indented is dedented.
3. If the cell does not parse: HTML-escaped code (`&lt;` for `<`, seen in oddly exported notebooks)
   is unescaped when that makes it parse; then the Python 2 repairs of `grader.intake.sourceprep`
   (print statements, tab indentation) are tried.
4. `from __future__ import ...` statements are taken out of their cell and put at the top of the
   module (Jupyter compiles each cell on its own, so the course's own starter has one in cell 10;
   joined into one module it would be a SyntaxError). Their lines stay, blank, in the cell.
5. The cell must then compile on its own (`return` outside a function, `break` outside a loop, an
   unknown `__future__` feature parse but do not compile): one that does not is left out and
   reported with its cell and line number, the way Jupyter would have run the other cells; only a
   notebook with no usable code cell is an error.
"""
from __future__ import annotations

import __future__
import ast
import io
import json
import re
import textwrap
import tokenize
from dataclasses import dataclass, field

import nbformat

from grader.intake import sourceprep

MARKER = sourceprep.NOTEBOOK_MARKER            # "# %% [cell "
_MARKER_RE = re.compile(r"^# %% \[cell (\d+)\]")
_PYTHON_BODY_MAGICS = {"time", "timeit", "capture", "prun"}
_LINE_MAGIC = re.compile(r"^\s*(%|!(?!=)|\?)")
_HELP_LINE = re.compile(r"^\s*[\w.\[\]()'\"]+\s*\?{1,2}\s*$")
_ASSIGN_MAGIC = re.compile(r"^\s*[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]")
_GET_IPYTHON = re.compile(r"^\s*get_ipython\(\)")


class NotebookError(Exception):
    """The file cannot be read as a notebook; the message says what is wrong, for the student."""


@dataclass
class Cell:
    number: int                   # 1-based, counting every cell from the top
    cell_type: str
    source: str


@dataclass
class NotebookModule:
    source: str = ""                                            # the module text ("" on error)
    origins: list[tuple[int, int] | None] = field(default_factory=list)  # per module line: (cell, line)
    dropped: list[str] = field(default_factory=list)            # IPython lines/cells dropped
    repairs: list[str] = field(default_factory=list)            # cells unescaped or repaired
    cell_errors: list[str] = field(default_factory=list)        # cells left out: they do not compile
    futures: list[str] = field(default_factory=list)            # __future__ features moved to the top
    notes: list[str] = field(default_factory=list)              # other facts (Python 2 kernel, ...)
    error: str | None = None                                    # nothing usable, for the student
    code_cells: int = 0

    def where(self, lineno: int) -> str:
        """'cell 7, line 3' for a line of `source` (or of a prepared copy with the same lines)."""
        if 0 < lineno <= len(self.origins) and self.origins[lineno - 1]:
            cell, line = self.origins[lineno - 1]
            return f"cell {cell}, line {line}" if cell else f"line {line}"
        return describe_line(self.source, lineno)


def describe_line(module_source: str, lineno: int) -> str:
    """'cell N, line K' for line `lineno` of a module made by `notebook_to_module` (worker tracebacks)."""
    lines = module_source.split("\n")[: max(lineno, 0)]
    for index in range(len(lines) - 1, -1, -1):
        match = _MARKER_RE.match(lines[index])
        if match:
            return f"cell {match.group(1)}, line {lineno - (index + 1)}"
    return f"line {lineno}"


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def read_cells(text: str, filename: str) -> tuple[list[Cell], list[str]]:
    """The cells of a v3 or v4 notebook, and notes on what was tolerated. Raises NotebookError."""
    notes: list[str] = []
    body = text.lstrip("\ufeff").lstrip()
    try:
        # strict=False: control characters inside strings are tolerated; raw_decode: so is junk after.
        obj, end = json.JSONDecoder(strict=False).raw_decode(body)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{filename} is not a valid notebook: its JSON is broken at line {exc.lineno}, "
            f"column {exc.colno} ({exc.msg}). Open it in Jupyter and save it again, or submit a .py file"
        ) from None
    trailing = body[end:].strip()
    if trailing:
        notes.append(f"{filename}: ignored {len(trailing)} characters after the end of the notebook's JSON")
    if not isinstance(obj, dict):
        raise NotebookError(f"{filename} is not a notebook: expected a JSON object with 'cells', "
                            f"found a JSON {type(obj).__name__}")
    raw_cells = _cells_via_nbformat(obj)
    if raw_cells is None:
        raw_cells = obj.get("cells")
        if raw_cells is None and isinstance(obj.get("worksheets"), list):      # nbformat 3
            raw_cells = [c for ws in obj["worksheets"] if isinstance(ws, dict)
                         for c in (ws.get("cells") or [])]
    if not isinstance(raw_cells, list):
        keys = ", ".join(sorted(map(str, obj))[:8]) or "none"
        raise NotebookError(f"{filename} is not a notebook: expected a list of 'cells', found keys: {keys}")
    cells = []
    for number, raw in enumerate(raw_cells, start=1):
        if not isinstance(raw, dict):
            continue
        source = raw.get("source", raw.get("input", ""))
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            source = ""
        cells.append(Cell(number, str(raw.get("cell_type", "code")), source))
    if _python2_kernel(obj):
        notes.append(f"{filename}: the notebook ran on a Python 2 kernel; the grader runs Python 3")
    return cells, notes


def _cells_via_nbformat(obj: dict) -> list | None:
    """Let nbformat upgrade v3 to v4 when the notebook says which version it is; None if it cannot."""
    if obj.get("nbformat") not in (3, 4):
        return None
    try:
        nb = nbformat.convert(nbformat.from_dict(obj), 4)
        return [dict(c) for c in nb.get("cells", [])]
    except Exception:                      # a half-broken notebook: read its cells by hand instead
        return None


def _python2_kernel(obj: dict) -> bool:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    kernel = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    return "python2" in str(kernel.get("name", "")) or str(info.get("version", "")).startswith("2.")


# --------------------------------------------------------------------------------------------------
# Converting
# --------------------------------------------------------------------------------------------------

def notebook_to_module(data: bytes | str, filename: str) -> NotebookModule:
    """Read a notebook and return its code cells as one module (see the module docstring)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        cells, notes = read_cells(text, filename)
    except NotebookError as exc:
        script = _python_script(text)
        if script is not None:                   # a .py file saved under an .ipynb name
            lines = script.split("\n")
            return NotebookModule(script, [(0, n) for n in range(1, len(lines) + 1)],
                                  notes=[f"{filename} is a Python script, not a notebook: read as a .py file"])
        return NotebookModule(error=str(exc))

    result = NotebookModule(notes=notes)
    out = [f"# Code cells of {filename}, converted by the grader's intake (IPython lines dropped).", ""]
    origins: list[tuple[int, int] | None] = [None, None]
    parsed_cells = 0
    for cell in cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        result.code_cells += 1
        out.append(f"{MARKER}{cell.number}]")
        origins.append(None)
        lines = _convert_cell(cell, filename, result)
        if lines is None:
            out.append("# (left out: see the intake notes)")
            origins.append(None)
        else:
            parsed_cells += 1
            for k, line in enumerate(lines, start=1):
                out.append(line)
                origins.append((cell.number, k))
        out.append("")
        origins.append(None)
    if result.code_cells and not parsed_cells:
        first = result.cell_errors[0].split(" — ")[0]
        more = len(result.cell_errors) - 1
        result.error = first + (f" (and {more} more cell{'s' if more > 1 else ''} with errors)" if more else "")
        return result
    if result.futures:
        # Line 2 is the header's blank line, so no other line moves.
        out[1] = "from __future__ import " + ", ".join(dict.fromkeys(result.futures))
    result.source = "\n".join(out) + "\n"
    result.origins = origins + [None]
    return result


def _python_script(text: str) -> str | None:
    if text.lstrip()[:1] in ("{", "["):              # JSON that is not a notebook: not a script either
        return None
    try:
        ast.parse(text)
        return text
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        fixed = sourceprep.repair_python2(text)
        return text if fixed is not None else None


def _convert_cell(cell: Cell, filename: str, result: NotebookModule) -> list[str] | None:
    """The cell's lines as Python 3 (same number of lines), or None when it cannot be made to parse."""
    source = cell.source.replace("\r\n", "\n").replace("\r", "\n")
    lines = source.split("\n")
    if source.endswith("\n"):
        lines.pop()
    where = f"cell {cell.number}"

    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    head = lines[first].strip()
    if head.startswith("%%"):
        magic = head[2:].split()[0] if head[2:].split() else ""
        if magic not in _PYTHON_BODY_MAGICS:
            result.dropped.append(f"{where}: the whole `%%{magic}` cell (not Python)")
            return ["# (dropped: a %%" + magic + " cell)"] + [""] * (len(lines) - 1)
        result.dropped.append(f"{where}, line {first + 1}: `{_short(head)}` (its Python body is kept)")
        lines[first] = ""

    lines = _drop_ipython_lines(lines, where, result)
    text = "\n".join(lines)
    if lines and lines[0][:1] in (" ", "\t"):
        text = textwrap.dedent(text)             # IPython dedents a cell typed with an indent

    error = _parse_error(text)
    repairs: list[str] = []
    if error is not None:
        fixed = sourceprep.make_parsable(text)
        if fixed is None:
            unescaped = sourceprep.unescape_html(text)
            if unescaped is not None:             # report the error of the unescaped code
                error = _parse_error(unescaped) or error
            return _leave_out(error, cell, filename, text, result)
        text, repairs = fixed
    text, futures = _take_futures(text)
    error = _compile_error(text)
    if error is not None:
        return _leave_out(error, cell, filename, text, result)
    result.repairs.extend(f"{where}: {n}" for n in repairs)
    if futures:
        result.futures.extend(futures)
        result.repairs.append(f"{where}: `from __future__ import {', '.join(futures)}` was moved to the "
                              f"top of the module (Jupyter compiles each cell on its own)")
    return text.split("\n")


def _leave_out(error: SyntaxError, cell: Cell, filename: str, text: str, result: NotebookModule) -> None:
    where = f"cell {cell.number}"
    message = sourceprep.syntax_message(error, filename, lambda n: f"{where}, line {n}", text.split("\n"))
    result.cell_errors.append(message + " — this cell was left out, so what it defines is missing; "
                                        "the other cells were graded")
    return None


_FEATURES = set(__future__.all_feature_names)


def _take_futures(text: str) -> tuple[str, list[str]]:
    """The cell without its top-level `from __future__ import ...` statements of known features
    (their lines left blank, or `pass` where another statement shares the line), and the features."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return text, []
    found = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"
             and n.level == 0 and all(a.name in _FEATURES and a.asname is None for a in n.names)]
    if not found:
        return text, []
    lines = text.split("\n")
    features: list[str] = []
    for node in reversed(found):
        features[:0] = [a.name for a in node.names]
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            line = lines[first]
            rest = (line[:node.col_offset] + line[node.end_col_offset:]).strip(" \t;")
            lines[first] = (line[:node.col_offset] + "pass" + line[node.end_col_offset:]) if rest else ""
        else:
            for i in range(first, last + 1):
                lines[i] = ""
    return "\n".join(lines), features


def _compile_error(text: str) -> SyntaxError | None:
    """What Jupyter would say when compiling this cell on its own (e.g. `return` outside a function)."""
    try:
        compile(text, "<cell>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxError(f"cannot be compiled ({type(exc).__name__})")
    return None


def _drop_ipython_lines(lines: list[str], where: str, result: NotebookModule) -> list[str]:
    candidates = {}
    for i, line in enumerate(lines):
        if (_LINE_MAGIC.match(line) or _HELP_LINE.match(line) or _ASSIGN_MAGIC.match(line)
                or _GET_IPYTHON.match(line)):
            indent = line[: len(line) - len(line.lstrip())]
            candidates[i] = indent + "pass  # IPython line dropped" if indent else ""
    if not candidates:
        return lines
    new = [candidates.get(i, line) for i, line in enumerate(lines)]
    # A line starting with % or ! inside a multi-line string is text, not IPython, and one that
    # continues a statement (`print('...'\n    % (a, b))`) is Python's `%`: put it back.
    text = "\n".join(new)
    for i in _lines_inside_strings(text) | _continuation_lines(text):
        if i in candidates:
            del candidates[i]
            new[i] = lines[i]
    for i in sorted(candidates):
        result.dropped.append(f"{where}, line {i + 1}: `{_short(lines[i].strip())}`")
    return new


def _lines_inside_strings(text: str) -> set[int]:
    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))     # 0-based indices of lines 2..end
    except (tokenize.TokenError, SyntaxError):
        pass
    return inside


def _continuation_lines(text: str) -> set[int]:
    """0-based indices of lines that continue a statement begun on an earlier line (inside brackets
    or after a backslash): a `%` there is the modulo operator."""
    continued: set[int] = set()
    open_statement, last_line = False, -1
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NEWLINE:
                open_statement = False
            if tok.type in skip or tok.type == tokenize.ENDMARKER:
                continue
            line = tok.start[0] - 1
            if line != last_line:
                if open_statement:
                    continued.add(line)
                last_line = line
            open_statement = True
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                last_line = tok.end[0] - 1
    except (tokenize.TokenError, SyntaxError):
        pass
    return continued


def _parse_error(text: str) -> SyntaxError | None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxError(f"cannot be parsed ({type(exc).__name__})")
    return None


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
