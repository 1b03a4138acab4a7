"""Data for Assignment 2, on the trusted side: CIFAR-10 readers, colour centres, char-RNN snapshots,
and the embedded defaults that let everything run on a fresh machine with no downloads.

Instructor files (the CIFAR-10 batches, the course's colours and snapshot) are Python pickles; this
module may unpickle them because they come from the course, never from a student.

    load_cifar10(source)            CIFAR-10 from the course tarball, its folder, or an .npz
    synthetic_cifar10(...)          the embedded default: small, learnable "horse in a field" images
    load_colours / kmeans_colours   the colour categories
    Snapshot, load_snapshot, save_snapshot      char-RNN weights (course or our own format)
    embedded_corpus / embedded_snapshot         the embedded default for the char-RNN part
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HORSE = 7
CIFAR_TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
CIFAR_TEST_BATCH = "test_batch"


# ----------------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------------

def _unpickle_batch(fileobj):
    """One CIFAR-10 python batch: a pickled dict with b'data' [n, 3072] uint8 and b'labels'."""
    batch = pickle.load(fileobj, encoding="bytes")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError("not a CIFAR-10 batch: keys %s" % sorted(map(str, batch)))
    x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)       # [n, 3, 32, 32]
    y = np.asarray(labels, dtype=np.int64).reshape(-1, 1)              # [n, 1]
    return x, y


def _join(batches):
    xs, ys = zip(*batches)
    return np.concatenate(xs), np.concatenate(ys)


def _from_batches(read):
    """Train = data_batch_1..5 in order, test = test_batch; `read(name)` gives a binary file."""
    train = _join([_unpickle_batch(read(name)) for name in CIFAR_TRAIN_BATCHES])
    test = _unpickle_batch(read(CIFAR_TEST_BATCH))
    return train, test


def _from_tar(path):
    with tarfile.open(path, "r:*") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name):
            if name not in members:
                raise FileNotFoundError("%s has no %s" % (path, name))
            return io.BytesIO(tar.extractfile(members[name]).read())

        return _from_batches(read)


def _from_folder(path):
    folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path

    def read(name):
        f = folder / name
        if not f.is_file():
            raise FileNotFoundError("%s has no %s" % (folder, name))
        return io.BytesIO(f.read_bytes())

    return _from_batches(read)


def _from_npz(path):
    with np.load(path, allow_pickle=False) as z:
        def pair(split):
            x = np.asarray(z["%s_x" % split], dtype=np.uint8)
            y = np.asarray(z["%s_y" % split], dtype=np.int64).reshape(-1, 1)
            return x, y
        return pair("train"), pair("test")


def load_cifar10(source):
    """((x_train uint8 [N,3,32,32], y_train int [N,1]), (x_test, y_test)) from `source`:

    - the course's `cifar-10-python.tar.gz` (any tar holding data_batch_1..5 and test_batch),
    - an extracted `cifar-10-batches-py/` folder (or its parent),
    - an `.npz` with train_x / train_y / test_x / test_y (e.g. cifar10_horse.npz).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        (train, test) = _from_folder(path)
    elif path.suffix == ".npz":
        (train, test) = _from_npz(path)
    elif tarfile.is_tarfile(path):
        (train, test) = _from_tar(path)
    else:
        raise ValueError("%s is neither a CIFAR-10 tarball, a batches folder nor an .npz" % path)
    for x, _ in (train, test):
        if x.ndim != 4 or x.shape[1:] != (3, 32, 32):
            raise ValueError("%s: images have shape %s, expected [N, 3, 32, 32]" % (path, x.shape))
    return train, test


def write_cifar_batch(fileobj, x, y):
    """Write a batch in CIFAR-10's own pickled format (used by tests and tools)."""
    batch = {b"batch_label": b"batch", b"labels": [int(v) for v in np.ravel(y)],
             b"data": np.asarray(x, dtype=np.uint8).reshape(len(x), -1),
             b"filenames": [b"%d.png" % i for i in range(len(x))]}
    pickle.dump(batch, fileobj, protocol=2)


# ----------------------------------------------------------------------------------------------
# The embedded default images: a horse (or not) in a field under the sky
# ----------------------------------------------------------------------------------------------

_SKY = np.array([[0.35, 0.55, 0.90], [0.55, 0.70, 0.95], [0.85, 0.60, 0.45]])   # blue, pale, dusk
_GROUND = np.array([[0.30, 0.58, 0.22], [0.55, 0.60, 0.25], [0.62, 0.52, 0.35]])  # grass, dry, sand
_COATS = np.array([[0.55, 0.33, 0.18], [0.90, 0.88, 0.84], [0.18, 0.14, 0.12], [0.70, 0.45, 0.20]])
_SEA = np.array([0.15, 0.35, 0.60])
_HULL = np.array([0.75, 0.20, 0.15])
SKY, GROUND, COAT, MANE, SEA, HULL = range(6)                          # region ids of a scene


def synthetic_cifar10(n_train=1000, n_test=200, seed=0):
    """Deterministic CIFAR-10-like data, in load_cifar10's format, generated in a fraction of a second.

    About 80% of the images are horses (label 7): a sky whose colour brightens towards the horizon,
    a streaked ground that darkens towards the bottom, and a brown / white / black / chestnut animal
    (body, neck, head, legs) with a darker mane. The rest carry other labels and show a sea with a
    red boat, so `process`'s class filter matters. Colours are predictable from the grey image only
    with context: a brown coat and green grass have about the same grey level, and so do a white
    coat and a pale sky.
    """
    rng = np.random.RandomState(seed)
    n = n_train + n_test
    y = np.where(rng.rand(n) < 0.8, HORSE, rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 9], n))
    y = y.astype(np.int64).reshape(-1, 1)                              # [n, 1]
    x = _render(rng, y[:, 0] == HORSE)                                 # [n, 3, 32, 32] uint8
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _ellipse(yy, xx, cy, cx, ry, rx):
    """[n, 32, 32] mask of one axis-aligned ellipse per image (centres/radii [n, 1, 1] or scalars)."""
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _render(rng, is_horse):
    """One scene per entry of is_horse [n]: a horse in a field, or a boat on the sea.

    A scene is a map of region ids, a colour per region and image (the palette), and a brightness
    factor per pixel; the picture is palette[region] * brightness plus a little pixel noise.
    """
    n = len(is_horse)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    yy, xx = yy[None], xx[None]                                        # [1, 32, 32]

    def col(v):                                                        # [n] -> [n, 1, 1]
        return np.asarray(v, dtype=np.float32)[:, None, None]

    palette = np.empty((n, 6, 3), np.float32)                          # [n, region, RGB]
    palette[:, SKY] = _SKY[rng.randint(0, 3, n)]
    palette[:, GROUND] = _GROUND[rng.randint(0, 3, n)]
    palette[:, COAT] = _COATS[rng.randint(0, 4, n)] * rng.uniform(0.9, 1.1, (n, 1))
    palette[:, MANE] = palette[:, COAT] * 0.45
    palette[:, SEA] = _SEA
    palette[:, HULL] = _HULL

    # background: sky above the horizon, ground (or sea) below it
    horizon = col(rng.randint(11, 19, n))
    above = yy < horizon                                               # [n, 32, 32]
    region = np.where(above, SKY, np.where(col(is_horse) > 0, GROUND, SEA)).astype(np.int64)
    # brightness: the sky brightens towards the horizon, the ground darkens towards the bottom and
    # has vertical streaks (grass)
    t_sky = np.clip(yy / horizon, 0, 1)
    t_gnd = np.clip((yy - horizon) / (32 - horizon), 0, 1)
    streaks = 0.12 * np.sin(xx * col(rng.uniform(1.5, 3.0, n)) + col(rng.uniform(0, 6, n)))
    shade = np.where(above, 0.8 + 0.25 * t_sky, 1.05 - 0.45 * t_gnd + streaks)

    # the animal: a body straddling the horizon, neck and head to one side, four legs
    cx, cy = col(rng.uniform(10, 22, n)), horizon + col(rng.uniform(-1, 3, n))
    ry, rx = col(rng.uniform(3.5, 5.0, n)), col(rng.uniform(6.0, 8.5, n))
    side = col(np.where(rng.rand(n) < 0.5, -1.0, 1.0))                 # facing left or right
    body = _ellipse(yy, xx, cy, cx, ry, rx)
    neck = _ellipse(yy, xx, cy - ry - 1, cx + side * (rx - 1), 3.0, 1.8)
    head = _ellipse(yy, xx, cy - ry - 3.5, cx + side * (rx + 1.5), 1.8, 3.0)
    legs = np.zeros_like(body)
    for off in (-0.7, -0.45, 0.45, 0.7):
        legs |= (np.abs(xx - (cx + off * rx)) <= 0.8) & (yy >= cy) & (yy <= cy + ry + 5)
    mane = neck & (np.abs(xx - (cx + side * (rx - 1))) >= 0.9)
    horse = col(is_horse) > 0
    region[horse & (body | neck | head | legs)] = COAT
    region[horse & mane] = MANE
    # the other classes: a red hull floating on the horizon
    hull = _ellipse(yy, xx, horizon, cx, 2.5, rx) & (yy >= horizon)
    region[~horse & hull] = HULL
    shade = np.where(region >= COAT, 1.0, shade)                       # flat-coloured objects

    rgb = palette[np.arange(n)[:, None, None], region] * shade[..., None]   # [n, 32, 32, 3]
    noise = rng.randint(-7, 8, rgb.shape).astype(np.float32)           # fine texture, in 1/255
    pixels = np.clip(np.round(rgb * 255) + noise, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.transpose(pixels, (0, 3, 1, 2)))    # [n, 3, 32, 32]


# ----------------------------------------------------------------------------------------------
# Colour categories
# ----------------------------------------------------------------------------------------------

def load_colours(path):
    """Colour centres float [K, 3] in [0, 1] from a .npy file.

    Accepts our plain [K, 3] arrays and the course's files (a Python 2 pickled object array
    [centres, distortion], read with latin1). Only instructor files reach the pickle branch.
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError:                                 # object array: the course's pickle
        arr = np.load(path, allow_pickle=True, encoding="latin1")
    if arr.dtype == object:
        arr = arr[0] if arr.ndim else arr.item()[0]
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError("%s: colour centres have shape %s, expected [K, 3]" % (path, arr.shape))
    return arr


def save_colours(colours, path):
    """Write colour centres as a plain float [K, 3] .npy (no pickle)."""
    np.save(path, np.asarray(colours, dtype=np.float64), allow_pickle=False)


def _pixels(rgb):
    """[N, 3, H, W] images or [M, 3] pixels -> [M, 3] pixels."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 4:
        return np.transpose(rgb, (0, 2, 3, 1)).reshape(-1, 3)
    if rgb.ndim == 2 and rgb.shape[1] == 3:
        return rgb
    raise ValueError("expected [N, 3, H, W] images or [M, 3] pixels, got %s" % (rgb.shape,))


def _sq_dists(px, centres):
    """Squared distances [M, K] between pixels [M, 3] and centres [K, 3]."""
    return ((px[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)


def kmeans_colours(rgb, k=24, seed=0, iters=25, max_pixels=20000):
    """k colour centres [k, 3] of the pixels of `rgb` by k-means (k-means++ start, Lloyd steps).

    Deterministic for a given input and seed: a fixed random subset of at most `max_pixels` pixels
    is clustered, and the centres are returned sorted by brightness, then by R, G, B.
    """
    rng = np.random.RandomState(seed)
    px = _pixels(rgb)
    if len(px) > max_pixels:
        px = px[rng.choice(len(px), max_pixels, replace=False)]
    if len(px) < k:
        raise ValueError("k-means needs at least k=%d pixels, got %d" % (k, len(px)))
    # k-means++: each new centre drawn with probability proportional to squared distance
    centres = [px[rng.randint(len(px))]]
    d2 = _sq_dists(px, np.array(centres))[:, 0]
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(px), 1.0 / len(px))
        centres.append(px[rng.choice(len(px), p=probs)])
        d2 = np.minimum(d2, _sq_dists(px, centres[-1][None])[:, 0])
    centres = np.array(centres)                                        # [k, 3]
    for _ in range(iters):
        dists = _sq_dists(px, centres)                                 # [M, k]
        assign = dists.argmin(axis=1)
        new = centres.copy()
        for j in range(k):
            members = px[assign == j]
            if len(members):
                new[j] = members.mean(axis=0)
            else:                                      # empty cluster: restart at the worst pixel
                new[j] = px[dists.min(axis=1).argmax()]
        if np.allclose(new, centres):
            break
        centres = new
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0], centres.sum(axis=1)))
    return centres[order]


# ----------------------------------------------------------------------------------------------
# Char-RNN snapshots
# ----------------------------------------------------------------------------------------------

@dataclass
class Snapshot:
    """Weights of a min-char-rnn model; chars[i] is the character of index i."""

    Wxh: np.ndarray       # [H, V]
    Whh: np.ndarray       # [H, H]
    Why: np.ndarray       # [V, H]
    bh: np.ndarray        # [H, 1]
    by: np.ndarray        # [V, 1]
    chars: list

    @property
    def char_to_ix(self):
        return {c: i for i, c in enumerate(self.chars)}

    @property
    def ix_to_char(self):
        return dict(enumerate(self.chars))

    @property
    def hidden_size(self):
        return self.Wxh.shape[0]

    @property
    def vocab_size(self):
        return len(self.chars)

    def weights(self):
        return self.Wxh, self.Whh, self.Why, self.bh, self.by

    def check(self):
        h, v = self.Wxh.shape
        expected = {"Whh": (h, h), "Why": (v, h), "bh": (h, 1), "by": (v, 1)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError("snapshot %s has shape %s, expected %s"
                                 % (name, getattr(self, name).shape, shape))
        if len(self.chars) != v or len(set(self.chars)) != v:
            raise ValueError("snapshot has %d distinct chars for a vocabulary of %d"
                             % (len(set(self.chars)), v))
        return self


def _char(c):
    return c.decode("latin1") if isinstance(c, bytes) else str(c)


def load_snapshot(path):
    """A Snapshot from our format (no pickle) or the course's char-rnn-snapshot.npz.

    The course file keeps its vocabulary in pickled dicts; the character order is taken from its
    ix_to_char so that indices match the weights (':' is 9, '\\n' 0, ' ' 2 there).
    """
    weights = ("Wxh", "Whh", "Why", "bh", "by")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "chars" in z.files and z["chars"].dtype.kind == "U" and "ix_to_char" not in z.files:
                w = {k: np.asarray(z[k], dtype=np.float64) for k in weights}
                return Snapshot(**w, chars=[str(c) for c in z["chars"]]).check()
    except ValueError:                                 # object arrays: the course's pickled format
        pass
    with np.load(path, allow_pickle=True, encoding="latin1") as z:
        w = {k: np.asarray(z[k], dtype=np.float64) for k in weights}
        ix_to_char = z["ix_to_char"].item()
        chars = [_char(ix_to_char[i]) for i in range(len(ix_to_char))]
    return Snapshot(**w, chars=chars).check()


def save_snapshot(snap, path):
    """Write a Snapshot in our format: float64 weights and chars as a unicode array (no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, Wxh=snap.Wxh, Whh=snap.Whh, Why=snap.Why, bh=snap.bh, by=snap.by,
             chars=np.array(snap.chars, dtype="<U1"))
    os.replace(tmp, path)                              # atomic: readers never see half a file
    return path


def permute_hidden(snap, perm):
    """The same function with hidden units renamed: new unit i is old unit perm[i]."""
    perm = np.asarray(perm)
    return Snapshot(snap.Wxh[perm], snap.Whh[np.ix_(perm, perm)], snap.Why[:, perm],
                    snap.bh[perm], snap.by.copy(), list(snap.chars))


def reorder_vocab(snap, chars):
    """The same function with the vocabulary listed in the order `chars` (a permutation)."""
    old = snap.char_to_ix
    if sorted(chars) != sorted(snap.chars):
        raise ValueError("reorder_vocab needs a permutation of the snapshot's characters")
    idx = np.array([old[c] for c in chars])
    return Snapshot(snap.Wxh[:, idx], snap.Whh.copy(), snap.Why[idx], snap.bh.copy(),
                    snap.by[idx], list(chars))


# ----------------------------------------------------------------------------------------------
# The embedded char-RNN default: a generated play and a model trained on it
# ----------------------------------------------------------------------------------------------

_SPEAKERS = ["ALDRIC", "BERENICE", "CASSIAN", "DOROTEA", "EDMUND", "FLAVIA", "GASPARD", "HELENA",
             "ISIDORE", "JULIANA", "KING LEOFRIC", "LADY MORWEN", "FIRST GUARD", "SECOND GUARD",
             "NURSE", "MESSENGER", "ALL"]
_NOUNS = ["king", "queen", "lord", "lady", "heart", "sword", "crown", "night", "day", "blood",
          "honour", "love", "grief", "father", "mother", "son", "daughter", "friend", "foe",
          "city", "gate", "field", "horse", "battle", "letter", "name", "death", "life", "soul",
          "tongue", "hand", "eye", "word", "tears", "fortune", "heaven", "earth", "sea", "storm",
          "house", "garden", "river", "wall", "servant", "prince", "duke", "throne", "oath"]
_VERBS = ["love", "hate", "fear", "know", "see", "hear", "speak", "bear", "keep", "break",
          "give", "take", "find", "lose", "seek", "leave", "follow", "serve", "trust", "swear",
          "mark", "remember", "forgive", "defend", "betray", "command", "answer", "call"]
_ADJS = ["noble", "gentle", "good", "sweet", "cruel", "false", "true", "dead", "young", "old",
         "fair", "dark", "bright", "proud", "poor", "brave", "wretched", "honest", "bloody",
         "royal", "cold", "wild", "quiet", "loyal"]
_SUBJ = ["I", "we", "you", "thou", "he", "she", "they", "my lord", "the king", "this man"]
_OPEN = ["O", "Alas", "Nay", "Ay", "Come", "Good", "Peace", "Hark", "Well", "Now", "Fie"]
_PLACES = ["A hall in the castle", "A street", "The field of battle", "A garden", "The gate of "
           "the city", "A room in the palace", "The shore", "A forest"]


def _sentence(rng):
    """One sentence of the play: a few fixed shapes filled from the word lists."""
    pick = lambda words: words[rng.randint(len(words))]
    shape = rng.randint(7)
    if shape == 0:
        s = "%s %s the %s %s" % (pick(_SUBJ), pick(_VERBS), pick(_ADJS), pick(_NOUNS))
    elif shape == 1:
        s = "%s, %s %s, %s my %s" % (pick(_OPEN), pick(_ADJS), pick(_NOUNS), pick(_VERBS),
                                       pick(_NOUNS))
    elif shape == 2:
        s = "the %s of the %s is %s" % (pick(_NOUNS), pick(_NOUNS), pick(_ADJS))
    elif shape == 3:
        s = "%s will %s thy %s and %s" % (pick(_SUBJ), pick(_VERBS), pick(_NOUNS), pick(_ADJS))
    elif shape == 4:
        # a colon inside speech: here ':' is followed by a space
        s = "%s this: the %s shall %s" % (pick(_VERBS), pick(_NOUNS), pick(_VERBS))
    elif shape == 5:
        s = "what %s is this, that %s %s" % (pick(_NOUNS), pick(_SUBJ), pick(_VERBS))
    else:
        s = "%s, %s! %s %s no more" % (pick(_OPEN), pick(_SPEAKERS).title(), pick(_SUBJ),
                                        pick(_VERBS))
    return s[0].upper() + s[1:] + ".,!?;."[rng.randint(6)]


def _speech(rng):
    lines = []
    for _ in range(1 + rng.randint(3)):
        lines.append(" ".join(_sentence(rng) for _ in range(1 + rng.randint(2))))
    return "\n".join(lines)


def embedded_corpus(seed=0, size=100_000):
    """A deterministic play of about `size` characters, in the course corpus's layout:

        NAME:
        Speech, one or more lines.
        <blank line>

    so ':' is followed by a newline (after a speaker) or a space (inside speech).
    """
    rng = np.random.RandomState(seed)
    parts, total, act = [], 0, 0
    while total < size:
        act += 1
        scene = "ACT %s. SCENE %d. %s.\n\n" % ("I II III IV V".split()[(act - 1) % 5],
                                              1 + act // 5, _PLACES[rng.randint(len(_PLACES))])
        cast = [_SPEAKERS[i] for i in rng.choice(len(_SPEAKERS), 4, replace=False)]
        for _ in range(8 + rng.randint(8)):
            scene += "%s:\n%s\n\n" % (cast[rng.randint(4)], _speech(rng))
        parts.append(scene)
        total += len(scene)
    return "".join(parts)


def flip_hidden_sign(snap, units):
    """The same function with the listed hidden units negated (tanh is odd, so h_j -> -h_j)."""
    s = Snapshot(snap.Wxh.copy(), snap.Whh.copy(), snap.Why.copy(), snap.bh.copy(),
                 snap.by.copy(), list(snap.chars))
    for j in np.atleast_1d(units):
        s.Wxh[j] *= -1
        s.bh[j] *= -1
        s.Whh[j, :] *= -1          # what unit j receives ...
        s.Whh[:, j] *= -1          # ... and what it sends (Whh[j, j] is negated twice: unchanged)
        s.Why[:, j] *= -1
    return s


# Indices that the course snapshot uses and the answers file names; the embedded snapshot is
# rearranged to match them.
COURSE_INDICES = {"\n": 0, " ": 2, ":": 9}
COURSE_UNIT = 100

EMBEDDED_HIDDEN = 128
EMBEDDED_STEPS = 6000
EMBEDDED_SNAPSHOT_VERSION = "v1-h%d-s%d" % (EMBEDDED_HIDDEN, EMBEDDED_STEPS)


def course_order(chars, fixed=None):
    """The vocabulary with the course's fixed indices ('\\n' 0, ' ' 2, ':' 9), the rest sorted."""
    fixed = COURSE_INDICES if fixed is None else fixed
    rest = iter(sorted(c for c in chars if c not in fixed))
    order = [None] * len(chars)
    for c, i in fixed.items():
        order[i] = c
    return [c if c is not None else next(rest) for c in order]


def arrange_like_course(snap, ch=":", targets=("\n", " "), unit=COURSE_UNIT):
    """Rearrange a snapshot, without changing what it computes, so that the course's answers hold.

    Three symmetries of the RNN are used: listing the vocabulary in another order, renaming the
    hidden units, and negating a hidden unit. Afterwards '\\n', ' ', ':' have the course's indices,
    and the unit that makes '\\n' / ' ' follow ':' is `unit`, with a positive activation.
    """
    from reference.a2.min_char_rnn import analyse_following

    snap = reorder_vocab(snap, course_order(snap.chars))
    found = analyse_following(*snap.weights(), snap.char_to_ix, ch=ch, targets=targets)
    u = found["unit"]
    if found["activation"] < 0:
        snap = flip_hidden_sign(snap, u)
    perm = np.arange(snap.hidden_size)
    perm[[u, unit]] = perm[[unit, u]]                  # swap u and `unit`
    snap = permute_hidden(snap, perm)
    check = analyse_following(*snap.weights(), snap.char_to_ix, ch=ch, targets=targets)
    assert check["unit"] == unit and check["activation"] > 0, check
    return snap


def default_cache_dir():
    return Path(os.environ.get("GRADER_CACHE") or "~/.cache/dl-grader").expanduser()


def embedded_snapshot(cache_dir=None):
    """The embedded char-RNN model: min-char-rnn trained on `embedded_corpus()`, course-arranged.

    Trained deterministically (hidden size 128, 6000 Adagrad windows, about 15 s on one CPU core)
    on first use, then cached as our .npz in `cache_dir` (default $GRADER_CACHE or
    ~/.cache/dl-grader) under a name that carries the version of this recipe.
    """
    from reference.a2.min_char_rnn import train

    path = Path(cache_dir or default_cache_dir()) / ("char-rnn-embedded-%s.npz"
                                                     % EMBEDDED_SNAPSHOT_VERSION)
    if path.is_file():
        try:
            return load_snapshot(path)
        except (OSError, ValueError, KeyError):        # a damaged cache: rebuild it
            pass
    res = train(embedded_corpus(), hidden_size=EMBEDDED_HIDDEN, steps=EMBEDDED_STEPS, seed=0)
    snap = Snapshot(res["Wxh"], res["Whh"], res["Why"], res["bh"], res["by"], res["chars"])
    snap = arrange_like_course(snap)
    save_snapshot(snap, path)
    return snap
