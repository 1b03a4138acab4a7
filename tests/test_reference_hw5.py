"""HW5's reference solution (reference/hw5/python) and its embedded data (reference/hw5/data.py):
the network's functions against numerical checks, the scripts trained on the synthetic data at the
ci budget, the data's conventions, findLetters on synthetic pages and the course photos, and the
example submissions under submissions/hw5 (function items here; every item behind `slow`)."""
from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from reference.hw5 import data as hw5data
from reference.hw5 import harness
from grader.examples import SHARED, expected, list_examples, materialize
from rubric.hw5 import judge

PROJECT = Path(__file__).resolve().parent.parent
PYDIR = PROJECT / "reference" / "hw5" / "python"
RUBRIC = tomllib.loads((PROJECT / "rubric" / "hw5" / "rubric.toml").read_text())
PHOTOS = SHARED / "data" / "hw5-course" / "images"
# characters in the four course photos (read off the photos; dots and dashes are not characters)
PHOTO_CHARACTERS = {"01_list.jpg": 115, "02_letters.jpg": 36, "03_haiku.jpg": 54, "04_deep.jpg": 26}


def load_reference(name: str):
    """A module of the reference's python/ folder, imported under a private name (its own
    `from util import *` sees the reference's util)."""
    saved = sys.modules.get("util")
    spec_u = importlib.util.spec_from_file_location("util", PYDIR / "util.py")
    util = importlib.util.module_from_spec(spec_u)
    spec_u.loader.exec_module(util)
    sys.modules["util"] = util
    try:
        spec = importlib.util.spec_from_file_location(f"hw5_reference_{name}", PYDIR / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            sys.modules.pop("util", None)
        else:
            sys.modules["util"] = saved
    return mod, util


@pytest.fixture(scope="module")
def nn():
    return load_reference("nn")[0]


@pytest.fixture(scope="module")
def util():
    return load_reference("nn")[1]


@pytest.fixture(scope="module")
def ci_data(tmp_path_factory):
    """The ci profile's data folder, written once for this module."""
    root = tmp_path_factory.mktemp("hw5data")
    summary = hw5data.write_data_folder(root, "ci", seed=0)
    return root, summary


@pytest.fixture(scope="module")
def ci_run(ci_data, tmp_path_factory):
    """A copy of the reference's python/ folder beside the ci data (data/, images/)."""
    import shutil
    root, _ = ci_data
    sub = tmp_path_factory.mktemp("hw5sub")
    for name in ("data", "images"):
        (sub / name).symlink_to(root / name)
    shutil.copytree(PYDIR, sub / "python", ignore=shutil.ignore_patterns("__pycache__", "*.pickle", "*.png"))
    return sub / "python"


# ------------------------------------------------------------------ nn.py against numerical checks

def test_initialize_weights_is_xavier_uniform(nn):
    for k, (i, o) in enumerate([(1024, 64), (64, 36), (2, 25), (25, 4)]):
        np.random.seed(k)
        p = {}
        nn.initialize_weights(i, o, p, "L")
        assert judge.xavier_check(p["WL"], p["bL"], i, o), (i, o)
        assert p["bL"].shape == (o,) and p["bL"].ndim == 1


def test_sigmoid_saturates_without_warnings(nn):
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to 0 is fine
        out = nn.sigmoid(np.array([-1000.0, 1000.0, -30.0, 0.0, 30.0]))
    assert out[0] == 0.0 and out[1] == 1.0 and out[3] == 0.5
    x = np.linspace(-20, 20, 101)
    assert np.allclose(nn.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_softmax_rows_stable_and_argument_untouched(nn):
    x = np.random.RandomState(0).randn(5, 7) * 4 + np.array([[1000.0], [-1000.0], [0], [3], [700]])
    before = x.copy()
    p = nn.softmax(x)
    assert np.array_equal(x, before)
    assert judge.softmax_check(before, p)
    assert np.allclose(p.sum(axis=1), 1.0)


def test_loss_is_the_summed_cross_entropy(nn):
    y = np.eye(4)[[0, 1, 2, 3, 0, 0]]
    probs = np.full((6, 4), 0.25)
    loss, acc = nn.compute_loss_and_acc(y, probs)
    assert np.isclose(loss, -6 * np.log(0.25))          # the handout's "-log(0.25) * 40" scaled
    assert 0 <= acc <= 1


def test_forward_stores_its_cache(nn, util):
    rng = np.random.RandomState(1)
    X, p = rng.randn(6, 5), {"WL": rng.randn(5, 3), "bL": rng.randn(3)}
    for act, name in ((nn.sigmoid, "sigmoid"), (util.tanh, "tanh"), (util.relu, "relu"), (util.linear, "linear")):
        post = nn.forward(X, p, "L", act)
        assert judge.forward_check(X, p["WL"], p["bL"], name, post, p["cache_L"])


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "linear", "relu"])
def test_backwards_matches_finite_differences(nn, util, act):
    """grad_W, grad_b, grad_X of L = sum(delta * act(X W + b)), by central differences."""
    rng = np.random.RandomState(2)
    X, W, b, delta = rng.randn(6, 5), rng.randn(5, 4), rng.randn(4), rng.randn(6, 4)
    fn = {"sigmoid": nn.sigmoid, "tanh": util.tanh, "linear": util.linear, "relu": util.relu}[act]
    deriv = {"sigmoid": nn.sigmoid_deriv, "tanh": util.tanh_deriv, "linear": util.linear_deriv,
             "relu": util.relu_deriv}[act]
    p = {"WL": W, "bL": b}
    nn.forward(X, p, "L", fn)
    grad_X = nn.backwards(delta, p, "L", deriv)
    loss = lambda: float(np.sum(delta * fn(X @ W + b)))
    for got, arr in ((p["grad_WL"], W), (p["grad_bL"], b), (grad_X, X)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + 1e-6
            hi = loss()
            arr[idx] = old - 1e-6
            lo = loss()
            arr[idx] = old
            num[idx] = (hi - lo) / 2e-6
        assert got.shape == arr.shape
        assert np.allclose(got, num, rtol=1e-5, atol=1e-6)


def test_relu_deriv_works_on_current_numpy(util):
    assert np.array_equal(util.relu_deriv(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("batch_size", [5, 10, 47, 50])
def test_batches_are_a_shuffled_partition(nn, batch_size):
    x = np.arange(47 * 3, dtype=float).reshape(47, 3) + 0.5
    y = np.eye(4)[np.random.RandomState(2).randint(0, 4, 47)]
    np.random.seed(batch_size)
    xa, ya = x.copy(), y.copy()
    batches = nn.get_random_batches(xa, ya, batch_size)
    if batch_size >= 47:
        assert len(batches) == 1 and batches[0][0].shape == (47, 3)
        return
    assert judge.batches_check(x, y, batch_size, batches, xa, ya)
    assert batches[-1][0].shape[0] == 47 % batch_size      # the partial last batch is kept


# ------------------------------------------------------------------ the embedded data

def test_data_folder_layout_and_conventions(ci_data):
    import scipy.io
    root, summary = ci_data
    sizes = hw5data.PROFILE_SIZES["ci"]
    for split in hw5data.SPLITS:
        mat = scipy.io.loadmat(str(root / "data" / f"nist36_{split}.mat"))
        x, y = mat[f"{split}_data"], mat[f"{split}_labels"]
        n = 36 * getattr(sizes, split)
        assert x.shape == (n, 1024) and y.shape == (n, 36)
        assert x.dtype == np.float64 and 0 <= x.min() and x.max() <= 1
        assert np.array_equal(y.sum(axis=1), np.ones(n))
        # sorted by class, the same count per class (f23's run_q5 indexes valid as 100*class + i)
        assert np.array_equal(y.argmax(1), np.repeat(np.arange(36), getattr(sizes, split)))
        # ink dark on white paper, as NIST36
        assert np.median(x) > 0.8
    pages = hw5data.read_truth(root)
    assert len(pages) == sizes.pages
    assert sorted(p.name for p in (root / "images").iterdir()) == [p["file"] for p in pages]
    assert all(len(p["boxes"]) == sum(len(l.replace(" ", "")) for l in p["lines"]) for p in pages)


def test_rows_are_stored_transposed_and_deterministic():
    x, y = hw5data.make_split(2, seed=7)
    again, _ = hw5data.make_split(2, seed=7)
    assert np.array_equal(x, again)
    assert not np.array_equal(x, hw5data.make_split(2, seed=8)[0])
    # the first row is the first image drawn from the same seed, stored as image.T flattened
    rng = np.random.default_rng(7)
    first = hw5data.render_char("A", rng)
    assert np.array_equal(hw5data.image_of_row(x[0]), first)
    assert np.array_equal(x[0], first.T.reshape(-1))
    # an 'L' has its ink down the left and along the bottom of the picture
    k = hw5data.LETTERS.index("L")
    big, _ = hw5data.make_split(6, seed=3)
    L = np.mean([hw5data.image_of_row(r) for r in big[k * 6:(k + 1) * 6]], axis=0)
    assert L[8:26, 4:14].mean() < L[8:26, 18:28].mean()      # left darker than right
    assert L[20:28, 8:24].mean() < L[4:12, 16:28].mean()     # bottom darker than top right


def test_profile_sizes_match_the_rubric():
    for name, sizes in hw5data.PROFILE_SIZES.items():
        prof = RUBRIC["profiles"][name]
        if prof.get("data") == "synthetic":
            assert (sizes.train, sizes.valid, sizes.test, sizes.pages) == (
                prof["train_per_class"], prof["valid_per_class"], prof["test_per_class"], prof["pages"])


# ------------------------------------------------------------------ the scripts at the ci budget

def test_run_q2_trains_and_its_checker_is_accurate(ci_run):
    r = harness.run_script(ci_run, "run_q2.py", RUBRIC["profiles"]["ci"]["run_q2"],
                           keep=["x", "y", "params", "params_orig", "total_error"])
    loss, _ = judge.q2_loss_and_gradients(r["params"], r["x"], r["y"])
    acc = np.mean(judge.network_probs(r["params"], r["x"], in_dim=2, out_dim=4).argmax(1) == r["y"].argmax(1))
    assert loss < 35 and acc > 0.75                      # the handout's target
    _, exact = judge.q2_loss_and_gradients(r["params_orig"], r["x"], r["y"])
    err = judge.gradcheck_error({k: r["params"][k] for k in exact}, exact).value
    assert err < RUBRIC_PARAM("q2.5", "max_total_error")
    assert abs(err - float(r["total_error"])) < 1e-6     # the script's own figure agrees


def RUBRIC_PARAM(item: str, key: str):
    return next(i for i in RUBRIC["items"] if i["id"] == item)["params"][key]


def test_run_q3_reaches_well_above_chance_at_the_ci_budget(ci_run):
    r = harness.run_script(ci_run, "run_q3.py", RUBRIC["profiles"]["ci"]["run_q3"], keep=["hidden_size"],
                           files=["q3_weights.pickle"])
    weights = r["file:q3_weights.pickle"]
    assert sorted(weights) == ["Wlayer1", "Woutput", "blayer1", "boutput"]
    assert weights["Wlayer1"].shape == (1024, 64)
    hx, hy = hw5data.make_split(10, seed=99)             # a split the script never saw
    acc = judge.params_accuracy(weights, hx, hy).value
    assert acc > 0.5, acc                                # chance is 1/36; measured 0.70
    assert (ci_run / "q3_confusion.png").exists() and (ci_run / "q3_weights_training.png").exists()


def test_findletters_finds_every_synthetic_character():
    q4 = load_reference("q4")[0]
    for seed in range(3):
        page = hw5data.make_page(seed)
        boxes, bw = q4.findLetters(page.image)
        recall, precision, _ = judge.match_boxes(boxes, page.boxes)
        assert recall >= 0.95 and precision >= 0.95, (seed, recall, precision)
        assert judge.bw_check(bw, page.image.shape, page.boxes)
        assert bw.dtype == np.float64 and set(np.unique(bw)) <= {0.0, 1.0}


@pytest.mark.course_data
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "04_deep.jpg" else n
                                  for n in PHOTO_CHARACTERS])       # 04 is 12 megapixels
def test_findletters_on_the_course_photos(name):
    if not PHOTOS.is_dir():
        pytest.skip(f"the course photos are not at {PHOTOS}")
    import skimage
    import skimage.io
    q4 = load_reference("q4")[0]
    count = PHOTO_CHARACTERS[name]
    image = skimage.img_as_float(skimage.io.imread(str(PHOTOS / name)))
    boxes, bw = q4.findLetters(image)
    assert abs(len(boxes) - count) <= 3, (name, len(boxes), count)
    assert bw.shape == image.shape[:2] and np.mean(bw) > 0.9      # mostly white paper


def _photo_statistics(image) -> tuple[float, float]:
    """(soft edges, noise): pixels halfway between the ink's and the paper's grey per ink pixel
    (Otsu's split), and the estimated noise over the ink's contrast."""
    import skimage.color
    import skimage.filters
    import skimage.restoration

    grey = skimage.color.rgb2gray(image[..., :3])
    split = skimage.filters.threshold_otsu(grey)
    ink, paper = np.median(grey[grey <= split]), np.median(grey[grey > split])
    mid = (grey > ink + 0.25 * (paper - ink)) & (grey < ink + 0.75 * (paper - ink))
    noise = skimage.restoration.estimate_sigma(image[..., :3], channel_axis=-1, average_sigmas=True)
    return mid.mean() / (grey <= split).mean(), noise / (paper - ink)


@pytest.mark.course_data
def test_synthetic_pages_look_like_the_course_photos():
    """The pages stand in for the course's photos, so the grey-level facts that decide whether a
    student's threshold works must be the photos': soft ink edges and little noise (data.PAGE_BLUR
    and PAGE_NOISE; sharp glyphs with noise 0.02 measured 0.10-0.13 and 0.027-0.031, the photos
    0.28-1.31 and 0.002-0.005)."""
    if not PHOTOS.is_dir():
        pytest.skip(f"the course photos are not at {PHOTOS}")
    import re
    import skimage.io

    photos = [_photo_statistics(skimage.io.imread(str(PHOTOS / n)).astype(np.float64) / 255)
              for n in sorted(PHOTO_CHARACTERS)]
    pages = [_photo_statistics(hw5data.make_page(seed).image) for seed in range(6)]
    soft = [s for s, _ in photos]
    for page_soft, page_noise in pages:
        assert min(soft) <= page_soft <= max(soft), (page_soft, soft)
        assert page_noise <= 2 * max(n for _, n in photos), (page_noise, photos)
    # the photo-size page's noise is the page's (rubric/hw5/probes.py runs in the worker: read, not imported)
    probes = (Path(__file__).resolve().parent.parent / "rubric" / "hw5" / "probes.py").read_text()
    assert float(re.search(r"^PHOTO_NOISE = ([0-9.]+)", probes, re.M).group(1)) == hw5data.PAGE_NOISE


# ------------------------------------------------------------------ the example submissions
# (graded through the engine by tests/test_hw5_examples.py)

EXAMPLES = list_examples("hw5")


def test_every_example_materialises_and_has_a_verdict_for_every_item(tmp_path):
    items = {i["id"] for i in RUBRIC["items"]}
    assert len([e for e in EXAMPLES if "mutants" in e.parts]) >= 12
    for example in EXAMPLES:
        want = expected(example)
        assert set(want) == items, example.name
        if (example / "submission.toml").exists() or example.is_symlink():
            continue
        sub = materialize(example, tmp_path, "hw5")
        assert (sub / "python" / "nn.py").is_file()
        if "mutants" in example.parts:
            ref = {p.name: p.read_text() for p in (PROJECT / "reference" / "hw5" / "python").glob("*.py")}
            changed = [p.name for p in (sub / "python").glob("*.py") if p.read_text() != ref.get(p.name)]
            assert len(changed) == 1, (example.name, changed)        # one bug, in one file


# ------------------------------------------------------------------ real submissions: the verdicts file

REAL = SHARED / "real-hw5"


def test_real_verdicts_are_consistent():
    """tests/real/hw5_expected.json: every automatic item judged, each deduction a reason whose
    points add up to what was lost (the grader's agreement waits for the pack engine)."""
    doc = json.loads((PROJECT / "tests" / "real" / "hw5_expected.json").read_text())
    items = {i["id"]: i["points"] for i in RUBRIC["items"]}
    assert "_doc" in doc
    for folder, v in doc.items():
        if folder.startswith("_"):
            continue
        assert set(v["points"]) == set(items), folder
        assert set(v["provisional"]) <= set(items) and set(v["deductions"]) <= set(items)
        for item, pts in v["points"].items():
            lost = sum(-float(d.split(":")[0]) for d in v["deductions"].get(item, []))
            assert abs(items[item] - lost - pts) < 1e-9, (folder, item)
            assert all(len(d.split(":", 1)[1].strip()) > 10 for d in v["deductions"].get(item, []))
        assert v["handling"], folder


@pytest.mark.course_data
def test_real_verdicts_cover_every_real_submission():
    if not (REAL / "SOURCES.tsv").is_file():
        pytest.skip(f"the real submissions are not at {REAL}")
    doc = json.loads((PROJECT / "tests" / "real" / "hw5_expected.json").read_text())
    folders = {line.split("\t")[0] for line in (REAL / "SOURCES.tsv").read_text().splitlines()[1:] if line.strip()}
    assert folders == {k for k in doc if not k.startswith("_")}
    for folder in folders:
        assert (REAL / folder / "python" / "nn.py").is_file()
