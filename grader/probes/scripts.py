"""Script probes, the trusted side: the request that runs a student's script in the worker.

A pack's plan asks for a script run with `script_spec` (the worker side is grader/worker/script.py):
which role's script, the data files to place where it reads them (made from arrays the plan chooses
to send: never a split the checks judge on), the top-level constants set to the profile's budget,
the seed, and the globals and written files to return. The answer's arrays are named
`global/<name>[/<key>]` and `file/<path>[/<key>]`; `grader.checkkit.script_answer` reads them back.
"""
from __future__ import annotations

import json

from .client import ProbeSpec

FORMATS = ("mat", "npy", "npz", "bytes")


def script_spec(key: str, role: str, *, inputs: dict | None = None, arrays: dict | None = None,
                constants: dict | None = None, seed: int = 0, globals: list[str] | None = None,
                outputs: list[str] | None = None, folder: str = "python", timeout: float = 600.0,
                name: str | None = None, partial: bool = False, all_dicts: bool = False,
                output_patterns: list[str] | None = None, models: dict | None = None,
                time_limit: float | None = None, argv_choices: list[str] | None = None,
                snapshots: dict | None = None) -> ProbeSpec:
    """A ProbeSpec for the worker's `script` probe; its arguments are checked here, when the plan
    is built (a typo is the pack's error at gold time, not a student's zero).

    What real scripts need (grader/worker/script.py does it):
    - `partial`: a script that raises, exits non-zero or runs past its time limit still returns
      what it had left (status `failed`/`stopped`, its `error` as a fact and a note), since real
      scripts often crash after training (a plot, a removed API);
    - `all_dicts`: every dict of arrays the script leaves is returned (`global/<name>`, also
      `global/<object>.<attr>` and `global/<function>.<local>`), e.g. momentum kept in `M_params`;
    - `output_patterns`: file-name globs (`["*.pickle", "*.pkl"]`): every file the script wrote
      anywhere in its run folder that matches is returned as `file/<path>` (`nn_weights.pickle`,
      `../out/w.pickle`); `outputs` are the exact names the handout gives, tried first;
    - `models`: `{"array": NAME, "shapes": [[-1, 1024], ...]}`: every torch model the script left
      (a global, an attribute of a global, a local of one of its functions) is run on the sent
      array `NAME` and its outputs returned as `model/<where>/out`;
    - `time_limit`: seconds after which the worker stops the script itself, with a clear message
      (default: a little under `timeout`, which kills the worker from outside); both count
      idle-machine seconds, not the time spent waiting for a CPU (grader/sandbox/waiting.py);
    - `argv_choices`: the names a script may expect as its command-line argument for the part
      graded (`["6.1.1", "7.1.1"]`): a script that compares `sys.argv[1]` with one of them runs
      with it (`python run_q7_1.py 7.1.1`), with a note; other scripts run without arguments;
    - `snapshots`: `{"total_error": ["params", "params_orig"]}`: those globals are also returned as
      they were right after the last top-level statement that assigns `total_error`
      (`global/params@total_error`), for a part of a script that later code overwrites."""
    inputs, arrays, constants = inputs or {}, arrays or {}, constants or {}
    if models is not None and models.get("array") not in arrays:
        raise ValueError(f"script {key}: models names array {models.get('array')!r}, which is not sent")
    for rel, spec in inputs.items():
        if rel.startswith("/") or not isinstance(spec, dict) or spec.get("format") not in FORMATS:
            raise ValueError(f"script {key}: input {rel!r} needs a relative path and a format in {FORMATS}")
        for file_key, array in spec.get("arrays", {}).items():
            if array not in arrays:
                raise ValueError(f"script {key}: input {rel} names array {array!r}, which is not sent")
    json.dumps(constants, allow_nan=False)       # constants travel as JSON and become literals
    if time_limit is None:
        time_limit = max(1.0, timeout - max(5.0, 0.1 * timeout))
    args = {"role": role, "inputs": inputs, "constants": constants, "seed": int(seed),
            "globals": list(globals or []), "outputs": list(outputs or []), "folder": folder,
            "partial": bool(partial), "all_dicts": bool(all_dicts),
            "output_patterns": list(output_patterns or []), "time_limit": float(time_limit)}
    if snapshots:
        args["snapshots"] = {str(k): [str(g) for g in v] for k, v in snapshots.items()}
    if argv_choices:
        args["argv_choices"] = [str(c) for c in argv_choices]
    if models is not None:
        args["models"] = {"array": models["array"], "shapes": [list(s) for s in models.get("shapes", [])]}
    if name:
        args["name"] = name
    return ProbeSpec(key, "script", role, args, arrays=dict(arrays), timeout=timeout)
