"""Data for HW5, on the trusted side: the embedded default NIST36 look-alike, synthetic pages for Q4,
and the data folder in the layout the students' scripts read.

The course's `nist36_{train,valid,test}.mat` are not redistributable here, so the project draws its
own with the same conventions (see ../../../shared/HW5_HANDOUT.md, "Data"):

    `<split>_data`   float64 [N, 1024], each row a 32x32 image stored TRANSPOSED
                     (`row.reshape(32, 32).T` is the picture), ink dark (~0) on white (~1)
    `<split>_labels` float64 one-hot [N, 36] over A-Z then 0-9
    rows sorted by class, the same count per class (f23's run_q5 indexes valid as 100*class + i)

Glyphs come from the TrueType fonts matplotlib ships (DejaVu, STIX), with a random affine jitter,
stroke width, ink and paper levels and pixel noise. Everything is a function of an explicit seed.

    make_split(n_per_class, seed)       (data [N,1024], labels [N,36])
    make_page(seed, ...)                (RGB page float [H,W,3], true boxes, text lines)
    write_data_folder(root, profile)    root/data/*.mat, root/images/*.png, root/images_truth.json
"""
from __future__ import annotations

import functools
import json
import shutil
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LETTERS = string.ascii_uppercase[:26] + "".join(str(d) for d in range(10))   # class i is LETTERS[i]
NUM_CLASSES = len(LETTERS)
SPLITS = ("train", "valid", "test")
TRUTH_FILE = "images_truth.json"
# What a phone photo does to a page, measured on the course's four photos (images/01_list ...
# 04_deep, 2026-12-02; tests/test_reference_hw5.py checks it): ink edges are soft (pixels halfway
# between ink and paper, per ink pixel: 0.28-1.31) and sensor noise is small against the ink's
# contrast (0.002-0.005). Sharp glyphs with noise 0.02 measured 0.10-0.13 and 0.03: a page no camera
# makes, on which a denoised global threshold (TV denoising, then Yen's, as a real submission does)
# lands inside the paper's own grey levels (3-27% of them) where on every course photo it lands
# below them (at most 1.3%). Blurred by PAGE_BLUR px with PAGE_NOISE: 0.35-0.46 and 0.008.
PAGE_BLUR = 1.5
PAGE_NOISE = 0.005

# Fonts that every install of matplotlib carries (mpl-data/fonts/ttf).
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf")


@dataclass(frozen=True)
class Sizes:
    """Examples per class of each split, and the number of synthetic pages."""
    train: int
    valid: int
    test: int
    pages: int


# `full` uses the course's real files when a data folder is given (write_data_folder(course=...));
# without one it draws a synthetic set the size of NIST36 (10800 / 3600 / 1800).
PROFILE_SIZES = {
    "ci": Sizes(train=20, valid=10, test=10, pages=2),
    "cpu": Sizes(train=100, valid=30, test=30, pages=4),
    "full": Sizes(train=300, valid=100, test=50, pages=6),
}


def _fonts():
    import matplotlib
    from PIL import ImageFont
    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [str(root / f) for f in FONT_FILES if (root / f).is_file()]


_FONT_CACHE: dict = {}


def _font(path: str, size: int):
    from PIL import ImageFont
    key = (path, size)
    if key not in _FONT_CACHE:
        _FONT_CACHE[key] = ImageFont.truetype(path, size)
    return _FONT_CACHE[key]


@functools.lru_cache(maxsize=4096)
def _drawn(char: str, font: str, big: int, stroke: int):
    """A character drawn once per (font, size, stroke): an 8-bit PIL image [2big, 2big] of its ink, the ink
    centre (y, x) and its larger extent in pixels."""
    from PIL import Image, ImageDraw
    canvas = Image.new("L", (2 * big, 2 * big), 0)
    ImageDraw.Draw(canvas).text((big // 2, big // 2), char, fill=255, font=_font(font, int(big * 0.6)),
                                stroke_width=stroke, stroke_fill=255)
    ys, xs = np.nonzero(np.asarray(canvas) > 127)
    centre = ((ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0)
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    return canvas, centre, extent


def _glyph_mask(char: str, rng: np.random.Generator, fonts: list[str], out: int,
                fill: float = 0.72, rotate: float = 10.0, shear: float = 0.2) -> np.ndarray:
    """Ink coverage in [0, 1] of one character, [out, out], centred, its larger side ~`fill`*out.

    Drawn at 3x on a PIL canvas (font, stroke width), warped by a random affine map (rotation,
    shear, anisotropic scale, shift), then box-filtered down to `out` pixels."""
    from PIL import Image
    big = 3 * out
    font = fonts[rng.integers(len(fonts))]
    stroke = int(rng.integers(0, max(2, big // 24)))
    ink, (cy, cx), extent = _drawn(char, font, big, stroke)

    # affine map from output pixel (u, v) to canvas pixel: scale to the glyph's extent, jitter
    target = fill * big * rng.uniform(0.85, 1.1)
    s = extent / target
    theta = np.deg2rad(rng.uniform(-rotate, rotate))
    sh = rng.uniform(-shear, shear)
    aspect = rng.uniform(0.85, 1.15)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    A = s * rot @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([aspect, 1.0 / aspect])
    shift = rng.uniform(-0.06, 0.06, size=2) * big
    center_out = np.array([big / 2.0, big / 2.0]) + shift                  # (x, y)
    offset = np.array([cx, cy]) - A @ center_out
    # PIL's AFFINE takes the inverse map (output -> input) as (a, b, c, d, e, f)
    coeffs = (A[0, 0], A[0, 1], offset[0], A[1, 0], A[1, 1], offset[1])
    warped = ink.transform(
        (big, big), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    small = warped.resize((out, out), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0                      # [out, out]


def render_char(char: str, rng: np.random.Generator, fonts: list[str] | None = None) -> np.ndarray:
    """One 32x32 NIST36-style image [32, 32] (row = y): dark ink on a light, noisy background."""
    fonts = fonts or _fonts()
    ink = _glyph_mask(char, rng, fonts, 32)
    paper = rng.uniform(0.92, 1.0)
    dark = rng.uniform(0.0, 0.25)
    img = paper - (paper - dark) * ink
    img = img + rng.normal(0.0, rng.uniform(0.01, 0.06), size=img.shape)
    return np.clip(img, 0.0, 1.0)


def make_split(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n_per_class` images of each of the 36 classes, sorted by class.

    Returns (data [36*n, 1024] float64, rows = image.T flattened; labels [36*n, 36] one-hot)."""
    rng = np.random.default_rng(seed)
    fonts = _fonts()
    n = n_per_class * NUM_CLASSES
    data = np.empty((n, 1024))
    labels = np.zeros((n, NUM_CLASSES))
    for k, char in enumerate(LETTERS):
        for i in range(n_per_class):
            row = k * n_per_class + i
            data[row] = render_char(char, rng, fonts).T.reshape(1024)   # stored transposed
            labels[row, k] = 1.0
    return data, labels


def image_of_row(row: np.ndarray) -> np.ndarray:
    """The picture [32, 32] a data row stands for (the course's `row.reshape(32, 32).T`)."""
    return np.asarray(row).reshape(32, 32).T


# ----------------------------------------------------------------------------------------------
# Synthetic pages for Q4
# ----------------------------------------------------------------------------------------------

@dataclass
class Page:
    image: np.ndarray            # [H, W, 3] float in [0, 1], dark ink on paper
    boxes: list[list[int]]       # true boxes [y1, x1, y2, x2] (regionprops' bbox: y2, x2 exclusive)
    lines: list[str]             # the text, one string per line, characters in reading order


def make_page(seed: int, n_lines: int | None = None, glyph: int | None = None) -> Page:
    """A page of separated characters in lines, photographed-looking: tinted paper, an
    illumination gradient, coloured ink, the blur and noise of a camera (PAGE_BLUR, PAGE_NOISE).
    Boxes are the ink (coverage > 0.5) of each glyph before the blur."""
    import scipy.ndimage

    rng = np.random.default_rng(seed)
    fonts = _fonts()
    n_lines = n_lines or int(rng.integers(3, 5))
    glyph = glyph or int(rng.integers(48, 72))            # glyph cell size, pixels
    gap = glyph // 3
    words = [["".join(rng.choice(list(LETTERS), size=int(rng.integers(2, 6))))
              for _ in range(int(rng.integers(1, 3)))] for _ in range(n_lines)]
    lines = [" ".join(w) for w in words]
    width = 2 * glyph + max(len(t) for t in lines) * (glyph + gap)
    height = 2 * glyph + n_lines * int(glyph * 1.8)
    ink = np.zeros((height, width))
    boxes = []
    for li, text in enumerate(lines):
        y0 = glyph + li * int(glyph * 1.8) + int(rng.integers(-glyph // 8, glyph // 8 + 1))
        x0 = glyph
        for ch in text:
            if ch == " ":
                x0 += glyph // 2 + gap
                continue
            mask = _glyph_mask(ch, rng, fonts, glyph, fill=0.8, rotate=6.0, shear=0.12)
            yy, xx = y0 + int(rng.integers(-2, 3)), x0
            ink[yy:yy + glyph, xx:xx + glyph] = np.maximum(ink[yy:yy + glyph, xx:xx + glyph], mask)
            ys, xs = np.nonzero(mask > 0.5)
            boxes.append([int(yy + ys.min()), int(xx + xs.min()), int(yy + ys.max() + 1), int(xx + xs.max() + 1)])
            x0 += glyph + gap + int(rng.integers(-gap // 4, gap // 4 + 1))
    # paper colour with a smooth illumination falloff, ink colour, sensor noise
    yy, xx = np.mgrid[0:height, 0:width]
    light = 1.0 - 0.15 * ((xx / width - rng.uniform()) ** 2 + (yy / height - rng.uniform()) ** 2)
    paper = rng.uniform(0.85, 0.98, size=3)
    ink_rgb = rng.uniform(0.0, 0.3, size=3)
    ink = scipy.ndimage.gaussian_filter(ink, PAGE_BLUR)             # the camera's optics
    img = (paper[None, None, :] * light[..., None]) * (1 - ink[..., None]) + ink_rgb * ink[..., None]
    img = img + rng.normal(0.0, PAGE_NOISE, size=img.shape)
    return Page(np.clip(img, 0.0, 1.0), boxes, lines)


# ----------------------------------------------------------------------------------------------
# The data folder the scripts read: <root>/data/nist36_*.mat, <root>/images/, beside <root>/python/
# ----------------------------------------------------------------------------------------------

def split_seed(seed: int, split: str) -> int:
    return 1000 * seed + SPLITS.index(split) + 1


def write_split(path: Path, split: str, data: np.ndarray, labels: np.ndarray) -> None:
    import scipy.io
    scipy.io.savemat(str(path), {f"{split}_data": data, f"{split}_labels": labels})


def write_data_folder(root: Path, profile: str = "ci", seed: int = 0, course: Path | None = None) -> dict:
    """Write `root/data/nist36_{train,valid,test}.mat`, `root/images/*.png` and the pages' truth
    `root/images_truth.json` (kept out of images/: run_q4 reads every file of that folder as an image).

    With `course` (a folder holding the course's nist36_*.mat, and optionally images/), the real
    files are copied instead of drawn; their photos have no truth boxes. Returns a summary."""
    import skimage.io
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    sizes = PROFILE_SIZES[profile]
    summary = {"profile": profile, "seed": seed, "source": "synthetic", "splits": {}, "pages": []}
    if course is not None:
        course = Path(course)
        missing = [s for s in SPLITS if not (course / f"nist36_{s}.mat").is_file()]
        if missing:
            raise FileNotFoundError(f"{course} has no nist36_{missing[0]}.mat (expected the course's data.zip contents)")
        for s in SPLITS:
            shutil.copyfile(course / f"nist36_{s}.mat", root / "data" / f"nist36_{s}.mat")
        summary["source"] = str(course)
        photos = course / "images"
        if photos.is_dir():
            for p in sorted(photos.iterdir()):
                if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    shutil.copyfile(p, root / "images" / p.name)
                    summary["pages"].append({"file": p.name, "boxes": None, "lines": None})
        (root / TRUTH_FILE).write_text(json.dumps(summary["pages"], indent=1))
        return summary
    for s in SPLITS:
        data, labels = make_split(getattr(sizes, s), split_seed(seed, s))
        write_split(root / "data" / f"nist36_{s}.mat", s, data, labels)
        summary["splits"][s] = int(data.shape[0])
    for i in range(sizes.pages):
        page = make_page(seed * 100 + i)
        name = f"{i + 1:02d}_synthetic.png"
        skimage.io.imsave(str(root / "images" / name), (page.image * 255).round().astype(np.uint8),
                          check_contrast=False)
        summary["pages"].append({"file": name, "boxes": page.boxes, "lines": page.lines})
    (root / TRUTH_FILE).write_text(json.dumps(summary["pages"], indent=1))
    return summary


def read_truth(root: Path) -> list[dict]:
    return json.loads((Path(root) / TRUTH_FILE).read_text())
