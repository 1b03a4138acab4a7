"""Inputs of Assignment 2's probes, made on the trusted side when gold is built.

Datasets come from the course's CIFAR-10 files when a data folder is given, else from the embedded
synthetic default; colours from the course's k-means file, else k-means on the training pixels; the
char-RNN from the course snapshot, else the embedded one. Validation labels are kept here and never
sent to a worker.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import rnnmath

HORSE = 7
PROCESS_IMAGES = 40


def _course_file(data: Path | None, *names: str) -> Path | None:
    for name in names:
        if data is not None and (data / name).exists():
            return data / name
    return None


def load_images(profile: dict, data: Path | None):
    from reference.a2 import data as refdata

    source = _course_file(data, "cifar10_horse.npz", "cifar-10-python.tar.gz", "cifar-10-batches-py")
    if source is not None:
        (x_tr, y_tr), (x_te, y_te) = refdata.load_cifar10(source)
        origin = source.name
    else:
        (x_tr, y_tr), (x_te, y_te) = refdata.synthetic_cifar10(
            n_train=max(profile["train_images"] + 100, 600), n_test=max(profile["valid_images"] + 50, 200), seed=0)
        origin = "embedded synthetic images"
    return (x_tr, y_tr.reshape(-1)), (x_te, y_te.reshape(-1)), origin


def downsize(rgb: np.ndarray) -> np.ndarray:
    """The handout's super-resolution input: two 2x average-poolings, then two 2x nearest upsamplings."""
    t = torch.from_numpy(rgb).float()
    t = F.avg_pool2d(F.avg_pool2d(t, 2), 2)
    return F.interpolate(t, scale_factor=4, mode="nearest").numpy()


def make_inputs(rubric, profile: dict, data: Path | None):
    from reference.a2 import colourization as ref
    from reference.a2 import data as refdata

    (x_tr, y_tr), (x_te, y_te), origin = load_images(profile, data)
    train = x_tr[y_tr == HORSE][: profile["train_images"]] / 256.0       # [N, 3, 32, 32]
    valid = x_te[y_te == HORSE][: profile["valid_images"]] / 256.0
    colours_file = _course_file(data, "colour_kmeans24_cat7.npy")
    if colours_file is not None:
        colours = refdata.load_colours(colours_file)
    else:
        colours = refdata.kmeans_colours(train, k=24, seed=0)
    arrays = {
        "train_x": train.mean(1, keepdims=True).astype(np.float32),
        "valid_x": valid.mean(1, keepdims=True).astype(np.float32),
        "train_x_sr": downsize(train).astype(np.float32),
        "valid_x_sr": downsize(valid).astype(np.float32),
        "train_y": ref.get_rgb_cat(train, colours)[:, 0].astype(np.uint8),  # [N, 32, 32]
        "valid_y": ref.get_rgb_cat(valid, colours)[:, 0].astype(np.uint8),
        "colours": np.asarray(colours, dtype=np.float64),
        "proc_xs": x_tr[:PROCESS_IMAGES].astype(np.uint8),
        "proc_ys": y_tr[:PROCESS_IMAGES].reshape(-1, 1).astype(np.int64),
    }
    meta = {"images": origin, "num_colours": int(len(colours)),
            "colours": colours_file.name if colours_file else "k-means on the training pixels"}
    rnn_arrays, rnn_meta = rnn_inputs(rubric, data)
    arrays.update(rnn_arrays)
    meta.update(rnn_meta)
    return arrays, meta


def rnn_inputs(rubric, data: Path | None):
    from reference.a2 import data as refdata

    path = _course_file(data, "char-rnn-snapshot.npz")
    snap = refdata.load_snapshot(path) if path else refdata.embedded_snapshot()
    text_file = _course_file(data, "shakespeare_train.txt")
    text = text_file.read_text() if text_file else refdata.embedded_corpus()
    weights = {k: np.asarray(getattr(snap, k), dtype=np.float64) for k in ("Wxh", "Whh", "Why", "bh", "by")}
    chars = list(snap.chars)
    h = rnnmath.hidden_after(weights, chars, text[1000:1060])
    sample = []
    for name, alpha in (("hot", 0.5), ("cold", 2.0)):
        seed_ix = rnnmath.most_telling_seed(weights, h, alpha)
        sample.append({"name": name, "alpha": alpha, "seed_ix": seed_ix, "h": "sample_h", "reps": 3000})
    complete = [{"starter": s, "n": 5, "reps": 600} for s in rnnmath.telling_starters(weights, chars, text)]
    meta = {"chars": chars, "snapshot": path.name if path else "embedded snapshot",
            "sample_contexts": sample, "complete_contexts": complete,
            "sample_names": rubric.item("r1.sample").params["names"],
            "complete_names": rubric.item("r2.complete").params["names"]}
    return dict(weights, sample_h=h), meta
