"""Run an HW5 script of a `python/` folder the way a script probe will, for the project's own tests
and measurements of the REFERENCE (never for student code: that runs only in the engine's worker).

    run_script(python_dir, "run_q3.py", {"max_iters": 20}, keep=["params"]) -> dict of globals

The script runs in a subprocess with its folder as the working directory (it reads ../data and
../images), top-level constants replaced (`NAME = ...` lines at column 0), numpy seeded, a
non-interactive matplotlib, one BLAS thread (several threads on small matrices are ~10x slower on
a loaded machine), and the chosen globals saved to an .npz: arrays as they are, dicts of arrays
flattened to "name/key", numbers as 0-d arrays. A script that raises still returns what it left
(globals, files written before the error), with the traceback as "_error".
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EPILOGUE = r'''
import numpy as _np
def _grader_save(_path, _names):
    _out = {}
    for _n in _names:
        _v = globals().get(_n)
        if isinstance(_v, dict):
            for _k, _a in _v.items():
                if isinstance(_a, tuple):
                    for _i, _e in enumerate(_a):
                        _out["%%s/%%s/%%d" %% (_n, _k, _i)] = _np.asarray(_e)
                elif _np.ndim(_a) or isinstance(_a, (int, float)):
                    _out["%%s/%%s" %% (_n, _k)] = _np.asarray(_a)
        elif isinstance(_v, (list, tuple)) and _v and all(isinstance(_e, str) for _e in _v):
            _out[_n] = _np.asarray(_v)
        elif _v is not None:
            try:
                _out[_n] = _np.asarray(_v)
            except Exception:
                pass
    for _f in %r:
        import pickle as _pk, os as _os
        if _os.path.exists(_f):
            with open(_f, "rb") as _fh:
                for _k, _a in dict(_pk.load(_fh)).items():
                    _out["file:%%s/%%s" %% (_f, _k)] = _np.asarray(_a)
    _m = globals().get("model")
    if %r and _m is not None and hasattr(_m, "state_dict"):
        import torch as _t
        _hx = _t.from_numpy(_np.load(%r)).float()
        with _t.no_grad():
            _m.eval()
            _out["holdout_predictions"] = _m(_hx).argmax(dim=1).cpu().numpy()
    # only plain arrays travel (None or objects would need a pickle)
    _out = {_k: _v for _k, _v in _out.items() if _v.dtype != object}
    _np.savez(_path, **_out)
_grader_save(%r, %r)
'''


class ScriptError(RuntimeError):
    pass


def override_constants(source: str, constants: dict) -> str:
    """Replace each top-level `NAME = value` line (the first one) by `NAME = repr(new)`."""
    for name, value in constants.items():
        pattern = re.compile(rf"^{re.escape(name)}\s*=\s*[^\n]*$", re.M)
        if not pattern.search(source):
            raise ScriptError(f"no top-level assignment of {name} to override")
        source = pattern.sub(f"{name} = {value!r}", source, count=1)
    return source


def unflatten(npz) -> dict:
    out: dict = {}
    for key in npz.files:
        parts = key.split("/")
        if len(parts) == 1:
            out[key] = npz[key]
        elif len(parts) == 2:
            out.setdefault(parts[0], {})[parts[1]] = npz[key]
        else:
            d = out.setdefault(parts[0], {})
            d.setdefault(parts[1], [None, None, None])[int(parts[2])] = npz[key]
    return out


def run_script(python_dir: Path, script: str, constants: dict | None = None, keep: list[str] | None = None,
               seed: int = 0, timeout: float = 300, files: list[str] | None = None,
               holdout_x: np.ndarray | None = None) -> dict:
    """Run `script` in `python_dir`; return the globals named in `keep` (dicts flattened one
    level), the pickles named in `files` as {"file:<name>": {key: array}}, and with `holdout_x`
    the argmax predictions of a global torch `model` on it ("holdout_predictions")."""
    python_dir = Path(python_dir)
    source = override_constants((python_dir / script).read_text(), constants or {})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "globals.npz"
        runner = python_dir / f".probe_{script}"
        hx = Path(tmp) / "holdout_x.npy"
        if holdout_x is not None:
            np.save(hx, np.asarray(holdout_x, dtype=np.float64))
        # the script runs inside try/except, so what it left before a crash (globals, files it
        # wrote) still comes back, with the error beside it
        runner.write_text(f"import numpy as _np0\n_np0.random.seed({seed})\n_grader_error = None\n"
                          f"try:\n    exec(compile({source!r}, {script!r}, 'exec'), globals())\n"
                          "except BaseException as _e:\n    import traceback as _tb\n"
                          "    _grader_error = ''.join(_tb.format_exception(_e))[-3000:]\n"
                          + EPILOGUE % (list(files or []), holdout_x is not None, str(hx), str(out),
                                        list(keep or []) + ["_grader_error"]))
        env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        try:
            proc = subprocess.run([sys.executable, runner.name], cwd=python_dir, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        finally:
            runner.unlink(missing_ok=True)
        if proc.returncode != 0 or not out.exists():
            raise ScriptError(f"{script} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        with np.load(out, allow_pickle=False) as npz:
            result = unflatten(npz)
        result["_stdout"] = proc.stdout
        error = result.pop("_grader_error", None)
        result["_error"] = None if error is None or error.ndim else str(error) or None
        return result
