"""Framing between the trusted side and a worker: JSON header + arrays as .npz, never pickle.

This module is part of the worker runtime (it is copied into the sandbox), so it imports only the
standard library and numpy. The trusted side uses the same functions and treats every frame that
comes back as hostile: sizes are capped before reading, arrays are loaded with allow_pickle=False and
only plain numeric/bool dtypes are accepted.

A frame is: MAGIC (4 bytes) | header length (8, big-endian) | header JSON | npz length (8) | npz.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

MAGIC = b"GRD1"
_LEN = struct.Struct(">Q")
MAX_HEADER_BYTES = 1 << 20          # 1 MiB of JSON is far more than any honest answer needs
ALLOWED_KINDS = frozenset("biuf")   # bool, signed, unsigned, float: no objects, strings or voids


class ProtocolError(Exception):
    """A frame that is malformed, oversized, or carries something other than plain arrays."""


def encode(header: dict, arrays: dict | None = None) -> bytes:
    head = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    buf = io.BytesIO()
    if arrays:
        np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    body = buf.getvalue()
    return MAGIC + _LEN.pack(len(head)) + head + _LEN.pack(len(body)) + body


def write_frame(stream, header: dict, arrays: dict | None = None) -> None:
    stream.write(encode(header, arrays))
    stream.flush()


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream, max_bytes: int) -> tuple[dict, dict]:
    """Read one frame; raise ProtocolError if it is not a well-formed frame within max_bytes."""
    if _read_exact(stream, 4) != MAGIC:
        raise ProtocolError("bad frame magic")
    (hlen,) = _LEN.unpack(_read_exact(stream, 8))
    if hlen > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {hlen} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(_read_exact(stream, hlen))
    except ValueError as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    (blen,) = _LEN.unpack(_read_exact(stream, 8))
    if blen > max_bytes:
        raise ProtocolError(f"answer of {blen} bytes exceeds the cap of {max_bytes}")
    arrays = decode_arrays(_read_exact(stream, blen)) if blen else {}
    return header, arrays


def decode_arrays(body: bytes) -> dict:
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the sender's malformed frame
        raise ProtocolError(f"arrays could not be decoded: {exc}") from None
    for name, arr in arrays.items():
        if type(arr) is not np.ndarray or arr.dtype.kind not in ALLOWED_KINDS:
            raise ProtocolError(f"array {name!r} has dtype {arr.dtype}; only numbers are accepted")
    return arrays
