"""What a source file defines, read without running or even parsing it: a fingerprint per definition.

Real submissions are Python 2 scripts, Python 3 scripts and notebooks, often not valid Python 3, so the
definitions are found textually: every `def`/`class` header and the indented block under it. Each
definition gets a hash of its normalised source (comments, docstrings, blank lines, spacing and
`print` lines removed, `xrange` read as `range`), so the same function copied from the course's
starter hashes the same whatever the Python version or the student's spacing, and a `placeholder`
flag for a body that is still a starter's stub (`pass`, `raise NotImplementedError`, `...`, or an
empty "YOUR CODE GOES HERE" region).

`python3 -m grader.intake.fingerprint FILE...` prints the definitions and hashes of files (how a pack's
starter fingerprints are made).
"""
from __future__ import annotations

import hashlib
import io
import re
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^(?P<indent>[ \t]*)(?P<kind>def|class)\s+(?P<name>[A-Za-z_]\w*)\s*(?P<rest>.*)$")
_MARKER = re.compile(r"#.*\b(your\s+code|code\s+goes\s+here|start\s+code|todo|fill\s+(this\s+)?in)\b",
                     re.IGNORECASE)
_END_MARKER = re.compile(r"^\s*#\s*([#=\-*~ ]+|.*\bend\s+(of\s+)?(your\s+)?code\b.*)$", re.IGNORECASE)
_EXPLICIT_END = re.compile(r"#.*\bend\s+(of\s+)?(your\s+|student\s+)?code\b", re.IGNORECASE)
_STUB = {"pass", "...", "raise NotImplementedError", "raise NotImplementedError()", "return",
         "return None"}
HASH_CHARS = 16
_STRING = re.compile(r"^[rRuUbBfF]{0,2}(\x27|\x22)")


@dataclass(frozen=True)
class Definition:
    qualname: str                # "Net.__init__", "sample", "Model.sample_text"
    kind: str                    # "def" or "class"
    params: tuple[str, ...]      # parameter names of a def, as written (`*args` as "*args")
    digest: str                  # hash of the normalised source (header included)
    placeholder: bool            # the body is still a stub (see the module docstring)
    line: int                    # 1-based line of the header

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


def module_text(data: bytes, name: str) -> str:
    """The code of a .py or .ipynb file as text (a notebook's code cells, via `grader.intake.notebook`)."""
    if name.lower().endswith(".ipynb"):
        from grader.intake import notebook

        nb = notebook.notebook_to_module(data, name)
        if nb.source:
            return nb.source
        return _raw_cells(data)
    from grader.intake import sourceprep

    return sourceprep.decode_source(data)[0]


def _raw_cells(data: bytes) -> str:
    """Code cells of a notebook that could not be converted (every cell broken): still fingerprinted."""
    import json

    try:
        cells = json.loads(data.decode("utf-8", errors="replace")).get("cells", [])
    except (ValueError, AttributeError):
        return ""
    out = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            out.append("".join(src) if isinstance(src, list) else str(src))
    return "\n".join(out)


def definitions(source: str) -> list[Definition]:
    lines = source.expandtabs(8).split("\n")
    found: list[Definition] = []
    stack: list[tuple[int, str]] = []                      # (indent, class name) of enclosing classes
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        end = _block_end(lines, i, indent)
        block = lines[i:end]
        qual = ".".join([c for _, c in stack] + [m["name"]])
        params = _params(" ".join(block[:8])) if m["kind"] == "def" else ()
        found.append(Definition(qual, m["kind"], params, _digest(block), m["kind"] == "def"
                                and _is_placeholder(block), i + 1))
        if m["kind"] == "class":
            stack.append((indent, m["name"]))
    return found


def _block_end(lines: list[str], start: int, indent: int) -> int:
    end = start + 1
    depth = _bracket_depth(lines[start])
    while end < len(lines) and depth > 0:                  # a header continued over several lines
        depth += _bracket_depth(lines[end])
        end += 1
    last = end
    for j in range(end, len(lines)):
        text = lines[j]
        if not text.strip():
            continue
        if len(text) - len(text.lstrip()) <= indent and not text.lstrip().startswith("#"):
            break
        last = j + 1
    return last


def _bracket_depth(line: str) -> int:
    code = line.split("#", 1)[0]
    return code.count("(") + code.count("[") - code.count(")") - code.count("]")


def _params(header: str) -> tuple[str, ...]:
    start = header.find("(")
    if start < 0:
        return ()
    depth, out, current = 0, [], ""
    for ch in header[start + 1:]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    names = []
    for part in out:
        name = re.split(r"[:=]", part, 1)[0].strip()
        if re.fullmatch(r"\*{0,2}[A-Za-z_]\w*", name):
            names.append(name)
    return tuple(names)


def _logical_lines(block: list[str]) -> list[str]:
    """The block's statements as normalised token strings (comments, docstrings, prints dropped)."""
    text = textwrap.dedent("\n".join(block)) + "\n"
    statements: list[list[str]] = []
    current: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.NEWLINE or (tok.type == tokenize.OP and tok.string == ";"):
                if current:
                    statements.append(current)
                current = []
                continue
            current.append("range" if tok.string == "xrange" else tok.string)
            if tok.type == tokenize.OP and tok.string == ":" and len(statements) == 0 and _header_done(current):
                statements.append(current)             # `def f(x): return x` on one line
                current = []
        if current:
            statements.append(current)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        statements = [re.sub(r"\s+", "", l.split("#", 1)[0]).split() for l in block if l.split("#", 1)[0].strip()]
        statements = [s for s in statements if s]
    kept = []
    for k, st in enumerate(statements):
        if st and st[0] == "print":
            continue
        if k == 1 and len(st) == 1 and _STRING.match(st[0]):
            continue                                    # the docstring (a lone string statement)
        kept.append(" ".join(st))
    return kept


def _header_done(tokens: list[str]) -> bool:
    depth = 0
    for t in tokens:
        depth += t in "([{"
        depth -= t in ")]}"
    return depth == 0


def _digest(block: list[str]) -> str:
    joined = "\n".join(_logical_lines(block))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:HASH_CHARS]


def _plumbing(statement: str) -> bool:
    """A starter's set-up or hand-back line: `res = None`, `W = params['W' + name]`,
    `params['grad_W' + name] = grad_W`, `return loss, acc`, a docstring, `pass` (no call, no
    arithmetic on values: nothing computed)."""
    import ast

    try:
        tree = ast.parse(statement.strip())
    except SyntaxError:
        return False
    if len(tree.body) != 1:
        return False
    node = tree.body[0]

    def simple(v, key=False) -> bool:
        if isinstance(v, (ast.Name, ast.Constant)):
            return True
        if isinstance(v, (ast.Tuple, ast.List)):
            return all(simple(e) for e in v.elts)
        if isinstance(v, ast.Subscript):
            return isinstance(v.value, ast.Name) and simple(v.slice, key=True)
        # a key such as 'W' + name
        return key and isinstance(v, ast.BinOp) and isinstance(v.op, ast.Add) and simple(v.left, True) \
            and simple(v.right, True)

    if isinstance(node, ast.Pass):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, ast.Return):
        return node.value is None or simple(node.value)
    if isinstance(node, ast.Assign):
        return all(simple(t) for t in node.targets) and simple(node.value)
    return False


def _is_placeholder(block: list[str]) -> bool:
    statements = _logical_lines(block)[1:]
    # `super().__init__()` comes with the starter's stub of a constructor: it is not the student's code
    body = [s.replace(" ", "") for s in statements if not s.startswith("super (")]
    stubs = {s.replace(" ", "") for s in _STUB}
    if all(s in stubs or s.startswith("raiseNotImplementedError") for s in body):
        return True
    # An empty "YOUR CODE GOES HERE" region: nothing but comments/`pass` between the marker and the
    # end marker (or the end of the function).
    # The region ends at an explicit "End your code" when there is one (the banner under the marker,
    # `# -----`, is then part of the region), else at the first banner line (`#####`).
    for k, line in enumerate(block):
        if not _MARKER.search(line) or _EXPLICIT_END.search(line):
            continue
        # A boxed marker (a banner line above and below it: `#####` / `##### your code here #####` /
        # `#####`) is a heading: the student's code goes after the box, among the starter's own
        # set-up and return lines. The function is a stub when every statement is such a line.
        if (0 < k < len(block) - 1 and _END_MARKER.match(block[k - 1]) and _END_MARKER.match(block[k + 1])
                and not _MARKER.search(block[k - 1]) and not _MARKER.search(block[k + 1])):
            return all(_plumbing(s) for s in statements)
        rest = block[k + 1:]
        explicit = next((j for j, later in enumerate(rest) if _EXPLICIT_END.search(later)), None)
        if explicit is not None:
            region = rest[:explicit]
        else:
            end = next((j for j, later in enumerate(rest) if _END_MARKER.match(later)), len(rest))
            region = rest[:end]
        if all(r.split("#", 1)[0].strip() in ("", "pass") for r in region):
            return True
    return False


def file_definitions(path: Path, name: str | None = None) -> list[Definition]:
    data = Path(path).read_bytes()
    return definitions(module_text(data, name or Path(path).name))


def main(argv: list[str]) -> int:
    for arg in argv:
        print(f"# {arg}")
        for d in file_definitions(Path(arg)):
            flag = " (placeholder)" if d.placeholder else ""
            print(f"{d.digest}  {d.kind} {d.qualname}({', '.join(d.params)}){flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
