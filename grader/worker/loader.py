"""Import a student's prepared module from a file, with placeholders for unavailable imports."""
from __future__ import annotations

import importlib.util
import sys
import traceback
import types
from pathlib import Path


class MissingModule(types.ModuleType):
    """Stands in for a module the grader does not have (google.colab, matplotlib, ...).

    Importing it succeeds so the rest of the file loads; using it raises a clear error.
    """

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise ImportError(f"module {self.__name__!r} is not available in the grader "
                          f"(your code used {self.__name__}.{attr})")

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self.__name__!r} is not available in the grader")


def missing(name: str) -> MissingModule:
    return MissingModule(name)


class StudentError(Exception):
    """An error raised by (or caused by) the student's code; its message is shown to the student."""


def load_module(role: str, path: Path) -> types.ModuleType:
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__grader_missing__"] = missing
    sys.modules[name] = module            # lets sibling files `import model`
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit too
        raise StudentError(f"importing {path.name} failed: {describe(exc, path.parent)}") from None
    return module


def describe(exc: BaseException, workspace: Path) -> str:
    """The exception and the innermost line of the student's own files it passed through."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).parent == workspace:
            where = f" ({Path(frame.filename).name}, line {frame.lineno}, in {frame.name})"
    text = str(exc)
    if len(text) > 500:
        text = text[:500] + " ..."
    return f"{type(exc).__name__}: {text}{where}"
