"""Inputs of HW5's probes, made on the trusted side when gold is built (seeded: reproducible).

- `fn/*`: the function probes' arguments (the harness's inputs to nn.py's functions). The checks
  judge the student's outputs against these trusted copies, never against what the worker echoes.
- `nist/*`: the NIST36 splits the scripts read at ../data/nist36_{train,valid,test}.mat: the
  course's own files when `--data` holds them (data.zip), else the embedded synthetic look-alike
  of reference/hw5/data.py, at the profile's size.
- `holdout_x`, `holdout_y`: a split the scripts never see; its labels never leave the trusted side
  (the trained networks are judged on it; q6.1.1 sends the images, without labels, to have the
  student's PyTorch model predict them). With the course's data it is half of nist36_test.
- `page/<k>`: synthetic pages for findLetters (uint8 RGB), their true boxes and text in meta;
  `photo/<k>`: the course's photos (JPEG bytes) when `--data` has an images/ folder.
- `standin/<name>`: the reference's nn.py functions (source), the scripts' stand-ins (plan.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
HOLDOUT_SEED = 99
SPLITS = ("train", "valid", "test")
ACTIVATIONS = ("sigmoid", "linear", "tanh")        # backwards is fed layers of these
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def _course_splits(data: Path | None) -> dict | None:
    if data is None or not all((Path(data) / f"nist36_{s}.mat").is_file() for s in SPLITS):
        return None
    import scipy.io

    out = {}
    for s in SPLITS:
        mat = scipy.io.loadmat(str(Path(data) / f"nist36_{s}.mat"))
        out[s] = (np.asarray(mat[f"{s}_data"], dtype=np.float64), np.asarray(mat[f"{s}_labels"], dtype=np.float64))
    return out


def nist_inputs(profile: dict, data: Path | None) -> tuple[dict, dict]:
    from reference.hw5 import data as hw5data

    course = _course_splits(data)
    if course is not None:
        test_x, test_y = course["test"]
        order = np.random.default_rng(SEED).permutation(len(test_x))
        keep, held = np.sort(order[len(order) // 2:]), np.sort(order[:len(order) // 2])
        course["test"] = (test_x[keep], test_y[keep])
        holdout = (test_x[held], test_y[held])
        splits, source = course, f"the course's nist36_*.mat ({data})"
    else:
        per_class = {s: int(profile[f"{s}_per_class"]) for s in SPLITS}
        splits = {s: hw5data.make_split(per_class[s], hw5data.split_seed(SEED, s)) for s in SPLITS}
        holdout = hw5data.make_split(per_class["valid"], 1000 * SEED + HOLDOUT_SEED)
        source = "embedded synthetic NIST36 (reference/hw5/data.py)"
    arrays = {}
    for s, (x, y) in splits.items():
        arrays[f"nist/{s}_x"], arrays[f"nist/{s}_y"] = x, y
    arrays["holdout_x"], arrays["holdout_y"] = holdout
    meta = {"data": source, "sizes": {s: int(len(x)) for s, (x, _) in splits.items()},
            "holdout": int(len(holdout[0]))}
    return arrays, meta


def page_inputs(profile: dict, data: Path | None) -> tuple[dict, dict]:
    from reference.hw5 import data as hw5data

    arrays, pages = {}, []
    for i in range(int(profile.get("pages", 0))):
        page = hw5data.make_page(SEED * 100 + i)
        arrays[f"page/{i}"] = (page.image * 255).round().astype(np.uint8)      # [H, W, 3]
        pages.append({"boxes": page.boxes, "lines": page.lines, "shape": list(page.image.shape)})
    photos = []
    folder = Path(data) / "images" if data is not None else None
    if folder is not None and folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in PHOTO_SUFFIXES:
                arrays[f"photo/{len(photos)}"] = np.frombuffer(p.read_bytes(), dtype=np.uint8)
                photos.append(p.name)
    return arrays, {"pages": pages, "photos": photos}


def function_inputs(rubric) -> dict:
    """The arguments of the function probes, from fixed seeds."""
    rng = np.random.RandomState(1)
    a = {"fn/sigmoid_x": np.concatenate([[-1000.0, 1000.0, -50.0, 50.0, 0.0], np.linspace(-8, 8, 17)]),
         "fn/forward_X": rng.randn(7, 5), "fn/forward_W": rng.randn(5, 4), "fn/forward_b": rng.randn(4)}
    small = rng.randn(6, 5) * 3
    a["fn/softmax_small"] = small
    a["fn/softmax_large"] = small + np.array([[1000.0], [-1000.0], [0.0], [500.0], [-3.0], [700.0]])
    a["fn/loss_y"] = np.eye(4)[rng.randint(0, 4, 10)]
    z = rng.randn(10, 4)
    a["fn/loss_probs"] = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    for act in ACTIVATIONS:
        X, W, b = rng.randn(6, 5), rng.randn(5, 4), rng.randn(4)
        pre = X @ W + b
        post = {"sigmoid": 1 / (1 + np.exp(-pre)), "linear": pre, "tanh": np.tanh(pre)}[act]
        a.update({f"fn/bwd_{act}_X": X, f"fn/bwd_{act}_W": W, f"fn/bwd_{act}_b": b,
                  f"fn/bwd_{act}_pre": pre, f"fn/bwd_{act}_post": post, f"fn/bwd_{act}_delta": rng.randn(6, 4)})
    n = int(rubric.item("q2.4").params["n"])
    a["fn/batches_x"] = np.arange(n * 3, dtype=np.float64).reshape(n, 3) + 0.5        # distinct rows
    a["fn/batches_y"] = np.eye(4)[np.random.RandomState(2).randint(0, 4, n)]
    return a


REFERENCE_NN = Path(__file__).resolve().parent.parent.parent / "reference" / "hw5" / "python" / "nn.py"


def standin_inputs() -> dict:
    """The reference's nn.py functions, as source bytes (`standin/<name>`): the scripts' stand-ins
    (plan.py). Staff-side gold only: [student_gold] never ships them."""
    import ast

    from .plan import STANDIN_FUNCTIONS

    text = REFERENCE_NN.read_text()
    found = {n.name: ast.get_source_segment(text, n) for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)}
    return {f"standin/{name}": np.frombuffer(found[name].encode("utf-8"), dtype=np.uint8).copy()
            for name in STANDIN_FUNCTIONS if name in found}


def make_inputs(rubric, profile: dict, data: Path | None) -> tuple[dict, dict]:
    arrays = function_inputs(rubric)
    arrays.update(standin_inputs())
    nist, nist_meta = nist_inputs(profile, data)
    pages, page_meta = page_inputs(profile, data)
    arrays.update(nist)
    arrays.update(pages)
    return arrays, {**nist_meta, **page_meta}
