"""Data for Assignment 2: CIFAR-10 readers, embedded images, colours, snapshots and their symmetries."""
from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from grader.report.images import encode_png, grid, read_png_size, write_png
from reference.a2 import data
from reference.a2 import min_char_rnn as M

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(name) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"course data not found: {path} (only present on the course's machines)")
    return path


# ----------------------------------------------------------------------------------------------
# CIFAR-10 readers, on small files written here in CIFAR's own pickled-batch format
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cifar():
    """Five training batches of 3 images and a test batch of 4, random pixels and labels."""
    rng = np.random.RandomState(0)
    batches = {}
    for name in data.CIFAR_TRAIN_BATCHES:
        batches[name] = (rng.randint(0, 256, (3, 3, 32, 32)).astype(np.uint8), rng.randint(0, 10, 3))
    batches[data.CIFAR_TEST_BATCH] = (rng.randint(0, 256, (4, 3, 32, 32)).astype(np.uint8),
                                      rng.randint(0, 10, 4))
    return batches


def _expected(batches):
    xs = np.concatenate([batches[n][0] for n in data.CIFAR_TRAIN_BATCHES])
    ys = np.concatenate([batches[n][1] for n in data.CIFAR_TRAIN_BATCHES]).reshape(-1, 1)
    tx, ty = batches[data.CIFAR_TEST_BATCH]
    return (xs, ys), (tx, ty.reshape(-1, 1))


def _assert_same(got, want):
    for (gx, gy), (wx, wy) in zip(got, want):
        assert gx.dtype == np.uint8 and gx.shape[1:] == (3, 32, 32)
        assert gy.shape == (len(gx), 1)
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)


def _write_folder(folder: Path, batches):
    folder.mkdir(parents=True)
    for name, (x, y) in batches.items():
        with open(folder / name, "wb") as f:
            data.write_cifar_batch(f, x, y)


def test_reads_the_course_tarball(tmp_path, tiny_cifar):
    src = tmp_path / "src" / "cifar-10-batches-py"
    _write_folder(src, tiny_cifar)
    (src / "readme.html").write_text("<html></html>")
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    _assert_same(data.load_cifar10(tar_path), _expected(tiny_cifar))


def test_reads_the_extracted_folder_and_its_parent(tmp_path, tiny_cifar):
    folder = tmp_path / "cifar-10-batches-py"
    _write_folder(folder, tiny_cifar)
    _assert_same(data.load_cifar10(folder), _expected(tiny_cifar))
    _assert_same(data.load_cifar10(tmp_path), _expected(tiny_cifar))


def test_reads_an_npz_with_flat_labels(tmp_path, tiny_cifar):
    (x, y), (tx, ty) = _expected(tiny_cifar)
    path = tmp_path / "horses.npz"
    np.savez(path, train_x=x, train_y=y.ravel().astype(np.uint8), test_x=tx, test_y=ty.ravel())
    _assert_same(data.load_cifar10(path), _expected(tiny_cifar))


def test_a_missing_batch_is_reported(tmp_path, tiny_cifar):
    folder = tmp_path / "cifar-10-batches-py"
    _write_folder(folder, tiny_cifar)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.load_cifar10(folder)


@pytest.mark.course_data
def test_reads_the_course_horses():
    (x, y), (tx, ty) = data.load_cifar10(shared_file("cifar10_horse.npz"))
    assert x.shape == (5000, 3, 32, 32) and tx.shape == (1000, 3, 32, 32)
    assert (y == 7).all() and ty.shape == (1000, 1)


# ----------------------------------------------------------------------------------------------
# The embedded images
# ----------------------------------------------------------------------------------------------

def test_synthetic_cifar_is_deterministic_small_and_mostly_horses():
    start = time.perf_counter()
    (x, y), (tx, ty) = data.synthetic_cifar10()
    assert time.perf_counter() - start < 2.0               # about 0.1 s here; generous for CI
    assert x.shape == (1000, 3, 32, 32) and x.dtype == np.uint8 and y.shape == (1000, 1)
    assert tx.shape == (200, 3, 32, 32) and ty.shape == (200, 1)
    assert 0.7 < np.mean(y == 7) < 0.9 and len(np.unique(y)) > 2   # other classes to filter out
    (x2, y2), _ = data.synthetic_cifar10()
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    (x3, _), _ = data.synthetic_cifar10(seed=1)
    assert not np.array_equal(x, x3)
    (x4, y4), (tx4, _) = data.synthetic_cifar10(n_train=10, n_test=5)
    assert x4.shape == (10, 3, 32, 32) and tx4.shape == (5, 3, 32, 32)


def test_synthetic_horse_colour_needs_context():
    """Sky at the top, ground at the bottom: the colour depends on where a pixel is."""
    (x, y), _ = data.synthetic_cifar10()
    horses = x[y[:, 0] == 7].astype(np.float64) / 255
    top, bottom = horses[:, :, :4].mean(axis=(0, 2, 3)), horses[:, :, -3:].mean(axis=(0, 2, 3))
    assert top[2] > top[1] and bottom[1] > bottom[2]     # blue-ish sky, green-ish ground


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------

def test_kmeans_finds_separated_colours_deterministically():
    rng = np.random.RandomState(0)
    centres = np.array([[0.1, 0.1, 0.1], [0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9]])
    px = np.concatenate([c + 0.02 * rng.randn(500, 3) for c in centres])
    found = data.kmeans_colours(px, k=4, seed=0)
    assert found.shape == (4, 3)
    for c in centres:
        assert np.min(np.linalg.norm(found - c, axis=1)) < 0.01
    np.testing.assert_array_equal(found, data.kmeans_colours(px, k=4, seed=0))
    images = rng.rand(5, 3, 8, 8)
    assert data.kmeans_colours(images, k=24, seed=0).shape == (24, 3)


def test_colours_round_trip_without_pickle(tmp_path):
    colours = np.random.RandomState(0).rand(24, 3)
    data.save_colours(colours, tmp_path / "c.npy")
    np.testing.assert_array_equal(data.load_colours(tmp_path / "c.npy"), colours)


@pytest.mark.course_data
def test_loads_the_course_colours():
    colours = data.load_colours(shared_file("colour_kmeans24_cat7.npy"))
    assert colours.shape == (24, 3) and colours.min() >= 0 and colours.max() <= 1


# ----------------------------------------------------------------------------------------------
# Snapshots and the symmetries that rearrange them
# ----------------------------------------------------------------------------------------------

def random_snapshot(hidden=12, chars="\nab :cdefghijk!", seed=0, scale=1.0):
    rng = np.random.RandomState(seed)
    v = len(chars)
    return data.Snapshot(rng.randn(hidden, v) * scale, rng.randn(hidden, hidden) * 0.4,
                         rng.randn(v, hidden) * scale, rng.randn(hidden, 1) * 0.3,
                         rng.randn(v, 1) * 0.3, list(chars))


def next_char_distribution(snap, text):
    """{char: p(char | text)} from a zero state, computed with the module's own functions."""
    M.set_model(*snap.weights(), snap.chars)
    p = M.next_char_probs(None, text)
    return {c: p[i] for i, c in enumerate(snap.chars)}


def test_snapshot_round_trip_in_our_format(tmp_path):
    snap = random_snapshot()
    path = data.save_snapshot(snap, tmp_path / "s.npz")
    with np.load(path, allow_pickle=False) as z:                   # no pickle inside
        assert z["chars"].dtype.kind == "U"
    back = data.load_snapshot(path)
    assert back.chars == snap.chars
    for a, b in zip(back.weights(), snap.weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("symmetry", ["hidden", "vocab", "sign", "course"])
def test_rearrangements_preserve_the_function(symmetry):
    snap = random_snapshot(hidden=110, scale=2.0, seed=3)          # > 100 units for "course"
    rng = np.random.RandomState(1)
    if symmetry == "hidden":
        new = data.permute_hidden(snap, rng.permutation(snap.hidden_size))
    elif symmetry == "vocab":
        new = data.reorder_vocab(snap, list(rng.permutation(snap.chars)))
    elif symmetry == "sign":
        new = data.flip_hidden_sign(snap, [0, 5, 7])
    else:
        new = data.arrange_like_course(snap)
        assert [new.char_to_ix[c] for c in "\n :"] == [0, 2, 9]
        found = M.analyse_following(*new.weights(), new.char_to_ix)
        assert found["unit"] == 100 and found["activation"] > 0
    assert sorted(new.chars) == sorted(snap.chars)
    for text in ["a", "ab :", "kj\nhe", ":", "!!! c"]:
        before, after = next_char_distribution(snap, text), next_char_distribution(new, text)
        for c in snap.chars:
            assert after[c] == pytest.approx(before[c], abs=1e-12)


def test_course_order_puts_newline_space_colon_where_the_course_has_them():
    order = data.course_order(list("zyx:\n abcdefg"))
    assert order[0] == "\n" and order[2] == " " and order[9] == ":"
    assert sorted(order) == sorted("zyx:\n abcdefg")


@pytest.mark.course_data
def test_loads_the_course_snapshot():
    snap = data.load_snapshot(shared_file("char-rnn-snapshot.npz"))
    assert snap.Wxh.shape == (250, 62) and snap.vocab_size == 62
    assert snap.char_to_ix[":"] == 9 and snap.chars[0] == "\n" and snap.chars[2] == " "


# ----------------------------------------------------------------------------------------------
# The embedded corpus
# ----------------------------------------------------------------------------------------------

def test_embedded_corpus_is_a_play():
    text = data.embedded_corpus()
    assert 60_000 <= len(text.encode()) <= 150_000
    assert text == data.embedded_corpus()
    assert {"\n", " ", ":"} <= set(text)
    after_colon = {text[i + 1] for i in range(len(text) - 1) if text[i] == ":"}
    assert after_colon == {"\n", " "}
    assert text.count(":\n") > 500 and text.count(": ") > 100


# ----------------------------------------------------------------------------------------------
# PNG pictures
# ----------------------------------------------------------------------------------------------

def _decode_png(raw: bytes):
    """Minimal decoder for the PNGs we write (8-bit, filter 0), to check the bytes round trip."""
    import struct
    import zlib
    pos, idat, header = 8, b"", None
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        kind, payload = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + payload) & 0xFFFFFFFF == struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    w, h, _, colour_type, *_ = header
    ch = 3 if colour_type == 2 else 1
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, ch).squeeze()


def test_png_round_trip(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    np.testing.assert_array_equal(_decode_png(encode_png(rgb)), rgb)
    grey = rgb[:, :, 0]
    path = write_png(tmp_path / "a" / "g.png", grey)
    np.testing.assert_array_equal(_decode_png(path.read_bytes()), grey)
    assert read_png_size(path) == (7, 5)


def test_grid_tiles_rows_of_mixed_layouts():
    chw = np.zeros((3, 4, 4))
    hwc = np.ones((4, 4, 3))
    img = grid([[chw, hwc], [np.full((4, 4), 0.5)]], pad=1, scale=2)
    assert img.shape == (2 * (1 + 2 * 5), 2 * (1 + 2 * 5), 3) and img.dtype == np.uint8
    assert img[2, 2].tolist() == [0, 0, 0] and img[2, 12].tolist() == [255, 255, 255]
    assert img[12, 2].tolist() == [128, 128, 128]
