"""The framing between trusted side and worker: round trips, and hostile frames rejected."""
import io
import struct

import numpy as np
import pytest

from grader.worker import protocol


def test_round_trip():
    frame = protocol.encode({"nonce": "ab", "ok": True}, {"out": np.arange(6, dtype=np.float32).reshape(2, 3)})
    head, arrays = protocol.read_frame(io.BytesIO(frame), 1 << 20)
    assert head == {"nonce": "ab", "ok": True}
    assert arrays["out"].dtype == np.float32 and arrays["out"].shape == (2, 3)


def test_object_arrays_are_refused_and_never_unpickled():
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    import zipfile
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("x.npy", buf.getvalue())
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_arrays(zbuf.getvalue())


def test_oversized_answers_are_refused_before_reading():
    head = b"{}"
    frame = protocol.MAGIC + struct.pack(">Q", len(head)) + head + struct.pack(">Q", 10 ** 12)
    with pytest.raises(protocol.ProtocolError, match="exceeds the cap"):
        protocol.read_frame(io.BytesIO(frame), 1 << 20)


@pytest.mark.parametrize("frame", [b"XXXX", protocol.MAGIC + struct.pack(">Q", 3) + b"[1]",
                                   protocol.MAGIC + struct.pack(">Q", 2 << 20)])
def test_malformed_frames(frame):
    with pytest.raises((protocol.ProtocolError, EOFError)):
        protocol.read_frame(io.BytesIO(frame + b"\0" * 16), 1 << 20)


def test_nan_in_header_is_not_encodable():
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})
