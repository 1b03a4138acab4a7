"""Compatibility shims, applied in the worker before any student code, for every pack.

Homework written a few years ago uses library APIs that have since been removed (`np.float`, gone
from numpy 1.24; `skimage.measure.compare_psnr`, gone from scikit-image 0.19). A student must not
be failed for the year they took the course, so the worker restores each removed name as what it
became, and reports it in a note *only when the student's code used it* (`drain()` hands the notes
of a probe to its answer). The shims only restore removed aliases and keyword names: nothing that
exists today changes meaning.

Also here, because real scripts need it to run to completion at all:
- matplotlib: `plt.show()` and `plt.pause()` return at once, `matplotlib.use(...)` of an
  interactive backend is ignored (the worker draws with Agg and has no display);
- the optional libraries the grader does not install (`OPTIONAL_MODULES`: torchvision on a CPU
  machine, cv2, sklearn, ...) imported by the student's own files get a stand-in that fails with a clear message only when used, so the rest
  of a script still runs;
- BLAS and torch threads held to the worker's share (OpenBLAS' default threading on a loaded
  2-core machine made a numpy training script ~10x slower).

Every shim is a row of one of the tables below; `install()` applies them (idempotent).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import math
import os
import sys
import types
from pathlib import Path

# ------------------------------------------------------------------------------------- the tables

# numpy names removed in 1.20-2.0: name -> (what it became, as text; the value; removed in)
NUMPY_REMOVED = {
    "float": ("the builtin float", float, "1.24"),
    "int": ("the builtin int", int, "1.24"),
    "bool": ("the builtin bool", bool, "1.24"),
    "object": ("the builtin object", object, "1.24"),
    "complex": ("the builtin complex", complex, "1.24"),
    "str": ("the builtin str", str, "1.24"),
    "long": ("the builtin int", int, "1.24"),
    "unicode": ("the builtin str", str, "1.24"),
    "float_": ("np.float64", "float64", "2.0"),
    "complex_": ("np.complex128", "complex128", "2.0"),
    "int0": ("np.intp", "intp", "2.0"),
    "bool8": ("np.bool_", "bool_", "2.0"),
    "NaN": ("np.nan", math.nan, "2.0"),
    "NAN": ("np.nan", math.nan, "2.0"),
    "Inf": ("np.inf", math.inf, "2.0"),
    "Infinity": ("np.inf", math.inf, "2.0"),
    "PINF": ("np.inf", math.inf, "2.0"),
    "NINF": ("-np.inf", -math.inf, "2.0"),
    "product": ("np.prod", "prod", "2.0"),
    "cumproduct": ("np.cumprod", "cumprod", "2.0"),
    "alltrue": ("np.all", "all", "2.0"),
    "sometrue": ("np.any", "any", "2.0"),
    "asscalar": ("a.item()", lambda a: a.item(), "1.23"),
}

# scikit-image functions renamed or moved: (module, old name) -> (module, new name, removed in)
SKIMAGE_RENAMED = {
    ("skimage.measure", "compare_psnr"): ("skimage.metrics", "peak_signal_noise_ratio", "0.19"),
    ("skimage.measure", "compare_ssim"): ("skimage.metrics", "structural_similarity", "0.19"),
    ("skimage.measure", "compare_mse"): ("skimage.metrics", "mean_squared_error", "0.19"),
    ("skimage.measure", "compare_nrmse"): ("skimage.metrics", "normalized_root_mse", "0.19"),
    ("skimage.color", "rgb2grey"): ("skimage.color", "rgb2gray", "0.19"),
    ("skimage.color", "grey2rgb"): ("skimage.color", "gray2rgb", "0.19"),
}

# scikit-image keyword arguments renamed: old -> (new, how the value translates, removed in)
SKIMAGE_KWARGS = {
    "multichannel": ("channel_axis", lambda v: -1 if v else None, "0.19"),
    "selem": ("footprint", lambda v: v, "0.23"),
    "as_grey": ("as_gray", lambda v: v, "0.16"),
}

# matplotlib: what never blocks or sleeps while grading
PYPLOT_NO_OPS = ("show", "pause")

# --------------------------------------------------------------------------------------- the notes

_NOTES: dict[str, str] = {}      # key -> note, in the order first used
_DRAINED: set[str] = set()
_STUDENT_ROOTS: list[str] = []   # folders whose files are the student's (imports from there get stand-ins)


def _note(key: str, text: str) -> None:
    if key not in _NOTES:
        _NOTES[key] = text


def _student_frame(depth: int):
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return None
    for _ in range(8):
        if frame is None or _is_student(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


def _where(depth: int = 2) -> str:
    """The student's file (and line) that used a shim, for the note; '' if not the student's."""
    frame = _student_frame(depth)
    return f" (in {Path(frame.f_code.co_filename).name}, line {frame.f_lineno})" if frame else ""


def _file(depth: int = 2) -> str:
    frame = _student_frame(depth)
    return frame.f_code.co_filename if frame else ""


def _is_student(filename: str) -> bool:
    return any(filename.startswith(root) for root in _STUDENT_ROOTS)


def drain() -> list[str]:
    """The notes of shims used since the last call (each shim is reported once per worker)."""
    new = [text for key, text in _NOTES.items() if key not in _DRAINED]
    _DRAINED.update(_NOTES)
    return new


def used() -> list[str]:
    return list(_NOTES)


# ------------------------------------------------------------------------------------------ numpy

def _patch_numpy(np) -> None:
    if getattr(np, "__grader_compat__", False):
        return
    original = np.__dict__.get("__getattr__")

    def __getattr__(name):
        # only for the student's code: a library asking hasattr(np, "float_") keeps its answer
        if name in NUMPY_REMOVED and (not _STUDENT_ROOTS or _is_student(sys._getframe(1).f_code.co_filename)):
            became, value, version = NUMPY_REMOVED[name]
            if isinstance(value, str):
                value = getattr(np, value)
            _note(f"numpy.{name}:{_file()}", f"np.{name} (removed in numpy {version}) was read as {became}{_where()}")
            return value
        if original is None:
            raise AttributeError(f"module 'numpy' has no attribute {name!r}")
        return original(name)

    np.__getattr__ = __getattr__
    np.__grader_compat__ = True


# ---------------------------------------------------------------------------------------- skimage

def _translating(fn, renames: dict):
    """fn accepting the old keyword names of `renames` ({old: new}), each translated when used."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for old, new in renames.items():
            if old in kwargs:
                value = kwargs.pop(old)
                _, translate, version = SKIMAGE_KWARGS[old]
                kwargs.setdefault(new, translate(value))
                _note(f"skimage.kw.{old}.{fn.__name__}",
                      f"{fn.__name__}({old}={_short(value)}) (removed in scikit-image {version}) was called "
                      f"as {fn.__name__}({new}={_short(kwargs[new])}){_where()}")
        return fn(*args, **kwargs)

    wrapper.__grader_compat__ = True
    return wrapper


def _short(value) -> str:
    return repr(value) if isinstance(value, (bool, int, float, str, type(None))) else "..."


def _maybe_translating(value):
    if not inspect.isfunction(value) or getattr(value, "__grader_compat__", False):
        return value
    try:
        params = inspect.signature(value).parameters
    except (TypeError, ValueError):
        return value
    renames = {old: new for old, (new, _, _) in SKIMAGE_KWARGS.items() if new in params and old not in params}
    return _translating(value, renames) if renames else value


def _patch_skimage(module) -> None:
    """A scikit-image module: renamed functions found under their old names, old keywords
    translated. Lazily loaded attributes (scikit-image's lazy_loader) are wrapped as they are first
    read; attributes already in the module are wrapped now."""
    if module.__dict__.get("__grader_compat__"):
        return
    name = module.__name__
    for attr, value in list(module.__dict__.items()):
        if not attr.startswith("_") and getattr(value, "__module__", "").startswith("skimage"):
            wrapped = _maybe_translating(value)
            if wrapped is not value:
                module.__dict__[attr] = wrapped
    original = module.__dict__.get("__getattr__")
    renamed = {old: new for (mod, old), new in SKIMAGE_RENAMED.items() if mod == name}
    if original is not None or renamed:
        def __getattr__(attr):
            if attr in renamed:
                new_mod, new_name, version = renamed[attr]
                value = getattr(importlib.import_module(new_mod), new_name)
                _note(f"{name}.{attr}", f"{name}.{attr} (removed in scikit-image {version}) was "
                                        f"{new_mod}.{new_name}{_where()}")
                return _maybe_translating(value)
            if original is None:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}")
            value = _maybe_translating(original(attr))
            return value

        module.__getattr__ = __getattr__
    module.__grader_compat__ = True


# ------------------------------------------------------------------------------------- matplotlib

def _patch_pyplot(plt) -> None:
    if getattr(plt, "__grader_compat__", False):
        return
    for attr in PYPLOT_NO_OPS:
        def no_op(*args, __attr=attr, **kwargs):
            _note(f"pyplot.{__attr}", f"plt.{__attr}() returned at once: figures are drawn off screen "
                                      f"(matplotlib's Agg backend) while grading{_where()}")
            return None

        setattr(plt, attr, no_op)
    plt.__grader_compat__ = True


def _patch_matplotlib(mpl) -> None:
    if getattr(mpl, "__grader_compat__", False):
        return
    original = mpl.use

    def use(backend, *args, **kwargs):
        if str(backend).lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
            _note("matplotlib.use", f"matplotlib.use({backend!r}) was ignored: the grader draws with "
                                    f"the non-interactive Agg backend{_where()}")
            return None
        return original(backend, *args, **kwargs)

    mpl.use = use
    mpl.__grader_compat__ = True


# ------------------------------------------------------------------------------------ import hook

PATCHES = {"numpy": _patch_numpy, "matplotlib": _patch_matplotlib, "matplotlib.pyplot": _patch_pyplot}


def _patcher(fullname: str):
    if fullname in PATCHES:
        return PATCHES[fullname]
    if fullname == "skimage" or fullname.startswith("skimage."):
        return _patch_skimage
    return None


class _Absent:
    """A name of a module the grader does not have: `from torchvision import datasets` and
    `transforms.ToTensor` succeed; calling one (or reading a value from it) raises ImportError."""

    def __init__(self, path: str):
        self.__path = path

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Absent(f"{self.__path}.{attr}")

    def __call__(self, *args, **kwargs):
        top = self.__path.partition(".")[0]
        raise ImportError(f"module {self.__path.rpartition('.')[0]!r} is not available in the grader "
                          f"({top} is not installed; your code used {self.__path})")

    def __repr__(self):
        return f"<{self.__path}: not installed in the grader>"


class _AbsentModule(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Absent(f"{self.__name__}.{attr}")


class _Standin(importlib.abc.Loader):
    """A module the grader does not have, imported by the student's own code: importing succeeds
    (a package, so `import torchvision.transforms` works too); using it fails clearly."""

    def create_module(self, spec):
        module = _AbsentModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        return None


class _Patching(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, attr):            # get_source, is_package, ... of the real loader
        return getattr(self.loader, attr)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.busy: set[str] = set()

    def find_spec(self, fullname, path, target=None):
        patch = _patcher(fullname)
        top = fullname.partition(".")[0]
        standin = top in _STANDINS
        if fullname in self.busy:
            return None
        # only the student's own top-level imports are looked up here (to give a missing module a
        # stand-in), and the modules that get patched; every other import goes on as usual
        student = not standin and patch is None and fullname == top and top in OPTIONAL_MODULES \
            and bool(_STUDENT_ROOTS) and _imported_by_student()
        if patch is None and not standin and not student:
            return None
        self.busy.add(fullname)
        try:
            spec = None
            if not standin:
                for finder in sys.meta_path:
                    if finder is self or not hasattr(finder, "find_spec"):
                        continue
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        break
        finally:
            self.busy.discard(fullname)
        if spec is not None:
            if patch is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _Patching(spec.loader, patch)
            return spec
        if standin or student:
            _STANDINS.add(top)
            _note(f"standin.{top}", f"`import {top}`: {top} is not installed in the grader; it was given a "
                                    f"stand-in that fails only where it is used{_where(3)}")
            return importlib.machinery.ModuleSpec(fullname, _Standin(), is_package=True)
        return None


_STANDINS: set[str] = set()

# Libraries a course's students import that the grader does not install (torchvision's CPU wheel
# does not import with CPU torch): only these get a stand-in. Any other missing module still raises
# ModuleNotFoundError, so `try: import google.colab / except ImportError:` takes its fallback, and
# a student's import of a file that is not there (the reference's, say) fails as it would anywhere.
OPTIONAL_MODULES = frozenset({"torchvision", "torchaudio", "cv2", "sklearn", "pandas", "seaborn", "tqdm"})


def _imported_by_student() -> bool:
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
        frame = frame.f_back
    return frame is not None and _is_student(frame.f_code.co_filename)


_FINDER = _Finder()


# ---------------------------------------------------------------------------------------- threads

def limit_threads(n: int) -> None:
    """BLAS threads to `n`: the environment for libraries loaded later, and the OpenBLAS builds
    already loaded (numpy's and scipy's wheels bundle their own) told directly."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh
                    if "openblas" in line.split()[-1].lower() and ".so" in line.split()[-1]}
    except OSError:
        return
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for symbol in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                       "scipy_openblas_set_num_threads", "openblas_set_num_threads64_"):
            fn = getattr(handle, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(n))


# ---------------------------------------------------------------------------------------- install

def install(student_roots=(), threads: int | None = None) -> None:
    """Apply every shim (idempotent): the import hook first, then the modules already imported.
    `student_roots`: folders of the student's files (their imports of modules the grader lacks get
    stand-ins); `threads`: the worker's BLAS threads."""
    for root in student_roots:
        root = os.path.join(str(root), "")           # "/ws/", so that "/ws2/x.py" is not the student's
        if root not in _STUDENT_ROOTS:
            _STUDENT_ROOTS.append(root)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name, module in list(sys.modules.items()):
        patch = _patcher(name)
        if patch is not None and module is not None:
            patch(module)
    if threads is not None:
        limit_threads(threads)
