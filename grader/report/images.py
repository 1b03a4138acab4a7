"""A tiny PNG writer and image-grid maker (zlib + struct only: no matplotlib, no PIL).

Used by the reference's `train` / `plot_activation` and by the grader's feedback pictures.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type+data."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image [H, W, 3] (RGB) or [H, W] (greyscale), 8 bits per sample."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError("encode_png expects uint8 pixels, got %s" % img.dtype)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        colour_type, channels = 0, 1                   # greyscale
    elif img.ndim == 3 and img.shape[2] == 3:
        colour_type, channels = 2, 3                   # truecolour
    else:
        raise ValueError("expected [H, W] or [H, W, 3], got %s" % (img.shape,))
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image %s" % (img.shape,))
    rows = img.reshape(h, w * channels)
    # every scanline starts with filter type 0 (None)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def write_png(path, image: np.ndarray) -> Path:
    """Write a uint8 [H, W, 3] or [H, W] image to `path` (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))
    return path


def read_png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG header: enough for tests and sanity checks."""
    data = Path(path).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s is not a PNG" % path)
    return struct.unpack(">II", data[16:24])


def _to_hwc(tile) -> np.ndarray:
    """A tile as float [H, W, 3]: accepts [H, W], [1|3, H, W] (torch layout) or [H, W, 1|3]."""
    t = np.asarray(tile, dtype=np.float64)
    if t.ndim == 2:
        t = t[:, :, None]
    elif t.ndim == 3 and t.shape[0] in (1, 3) and t.shape[2] not in (1, 3):
        t = np.transpose(t, (1, 2, 0))                 # [C, H, W] -> [H, W, C]
    if t.ndim != 3 or t.shape[2] not in (1, 3):
        raise ValueError("a tile must be [H, W], [C, H, W] or [H, W, C] with C in (1, 3); got %s"
                         % (np.shape(tile),))
    if t.shape[2] == 1:
        t = np.repeat(t, 3, axis=2)
    return t


def grid(rows, pad: int = 2, scale: int = 1, background: float = 1.0) -> np.ndarray:
    """Tile images (floats in [0, 1]) into one uint8 [H, W, 3] picture, row by row.

    rows: a list of rows, each a list of tiles ([H, W], [C, H, W] or [H, W, C]); rows may differ in
    length and tiles in size (each cell takes the largest tile's size). `pad` pixels of background
    separate the cells; `scale` repeats every pixel (nearest) so 32x32 images are visible.
    """
    tiles = [[_to_hwc(t) for t in row] for row in rows]
    if not any(tiles):
        raise ValueError("grid needs at least one tile")
    th = max(t.shape[0] for row in tiles for t in row)
    tw = max(t.shape[1] for row in tiles for t in row)
    ncols = max(len(row) for row in tiles)
    out = np.full((pad + len(tiles) * (th + pad), pad + ncols * (tw + pad), 3), background)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            y, x = pad + r * (th + pad), pad + c * (tw + pad)
            out[y:y + t.shape[0], x:x + t.shape[1]] = t
    out = np.nan_to_num(np.clip(out, 0.0, 1.0))
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.round(out * 255).astype(np.uint8)
