"""Facts about a submission read from its source on the trusted side (parsed, never run).

The worker reports facts about the student's model (the types of its layers, ...); student code runs
in the worker and can make it report anything (see grader/intake/tamper.py), so checks that score such a
fact compare it with what the source, kept before the worker ran, says.
"""
from __future__ import annotations

import ast
import functools
import re

# torch's own convolution modules; MyConv2d/MyDilatedConv2d are the handout's (the harness swaps in a
# stand-in for MyConv2d while it builds the model, so what they use inside does not matter here)
TORCH_CONV = re.compile(r"^(Lazy)?Conv(Transpose)?[123]d$")
PROVIDED = {"MyConv2d", "MyDilatedConv2d"}


@functools.lru_cache(maxsize=4)
def parse(source: str) -> ast.Module:
    """The parsed source, shared by the checks of one run (several read the same file). Callers
    only read the tree."""
    return ast.parse(source)


def torch_convs_reached(source: str, cls_name: str) -> list[tuple[int, str]]:
    """(line, name) where class `cls_name`, or a module-level definition it uses (followed by name,
    transitively), refers to a torch convolution module: nn.Conv2d, torch.nn.Conv2d, a Conv2d imported
    from torch.nn, getattr(nn, "Conv2d"). Type tests (isinstance/issubclass) do not count."""
    try:
        tree = parse(source)
    except SyntaxError:
        return []
    defs = {}
    top = list(tree.body)
    for stmt in list(top):                     # one level into top-level if/try blocks
        top += [s for part in ("body", "orelse", "finalbody") for s in getattr(stmt, part, [])
                if isinstance(stmt, (ast.If, ast.Try))]
        top += [s for h in getattr(stmt, "handlers", []) for s in h.body]
    for stmt in top:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = stmt.value
        elif isinstance(stmt, ast.ImportFrom):          # from torch.nn import Conv2d as C
            for alias in stmt.names:
                if TORCH_CONV.match(alias.name):
                    defs[alias.asname or alias.name] = ast.Constant(alias.name, lineno=stmt.lineno)
    hits, seen, todo = [], set(), [cls_name]
    while todo:
        name = todo.pop()
        if name in seen or name in PROVIDED or name not in defs:
            continue
        seen.add(name)
        skip = {id(n) for call in ast.walk(defs[name]) if isinstance(call, ast.Call)
                and getattr(call.func, "id", "") in ("isinstance", "issubclass") for arg in call.args[1:]
                for n in ast.walk(arg)}
        for node in ast.walk(defs[name]):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Attribute) and TORCH_CONV.match(node.attr):
                hits.append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TORCH_CONV.match(node.value):
                hits.append((node.lineno, node.value))
            elif isinstance(node, ast.Name):
                if TORCH_CONV.match(node.id):
                    hits.append((node.lineno, node.id))
                else:
                    todo.append(node.id)
    return sorted(set(hits))
