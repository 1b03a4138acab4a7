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
                name: str | None = None) -> ProbeSpec:
    """A ProbeSpec for the worker's `script` probe; its arguments are checked here, when the plan
    is built (a typo is the pack's error at gold time, not a student's zero)."""
    inputs, arrays, constants = inputs or {}, arrays or {}, constants or {}
    for rel, spec in inputs.items():
        if rel.startswith("/") or not isinstance(spec, dict) or spec.get("format") not in FORMATS:
            raise ValueError(f"script {key}: input {rel!r} needs a relative path and a format in {FORMATS}")
        for file_key, array in spec.get("arrays", {}).items():
            if array not in arrays:
                raise ValueError(f"script {key}: input {rel} names array {array!r}, which is not sent")
    json.dumps(constants, allow_nan=False)       # constants travel as JSON and become literals
    args = {"role": role, "inputs": inputs, "constants": constants, "seed": int(seed),
            "globals": list(globals or []), "outputs": list(outputs or []), "folder": folder}
    if name:
        args["name"] = name
    return ProbeSpec(key, "script", role, args, arrays=dict(arrays), timeout=timeout)
