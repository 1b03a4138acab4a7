"""Train the reference CNN and UNet with the handout's defaults and report accuracy and wall time.

    python3 bench/train_reference.py                                  # embedded synthetic images
    python3 bench/train_reference.py --data ../shared/data/cifar10_horse.npz \\
        --colours ../shared/data/colour_kmeans24_cat7.npy --epochs 1  # the real horses, briefly

Handout defaults: kernel 3, 32 filters, Adam lr 0.001, batch 100, 25 epochs, seed 0. Pictures and
learning curves go to <workdir>/outputs/<model>/. Not a test: a CPU run of all 25 epochs takes long.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from reference.a2 import colourization as C  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 tarball, batches folder or .npz (default: embedded)")
    p.add_argument("--colours", help="colour centres .npy (default: 24 k-means colours of the data)")
    p.add_argument("--models", nargs="+", default=["CNN", "UNet"], choices=sorted(C.MODELS))
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--num-filters", type=int, default=32)
    p.add_argument("--learn-rate", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--downsize-input", action="store_true", help="super-resolution instead")
    p.add_argument("--workdir", default=str(REPO / "out" / "bench"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    resolve = lambda p: str(Path(p).resolve()) if p else None      # before changing folder
    data, colours = resolve(a.data), resolve(a.colours)
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    print("data: %s | colours: %s | epochs %d | torch %s, %d threads"
          % (data or "embedded synthetic", colours or "k-means", a.epochs, torch.__version__,
             torch.get_num_threads()))
    results = []
    for model in a.models:
        args = C.AttrDict(model=model, data=data, colours=colours, epochs=a.epochs,
                          batch_size=a.batch_size, num_filters=a.num_filters,
                          learn_rate=a.learn_rate, seed=a.seed, downsize_input=a.downsize_input,
                          experiment_name=model, plot=True, gpu=torch.cuda.is_available())
        start = time.perf_counter()
        C.train(args)
        seconds = time.perf_counter() - start
        with open(Path("outputs") / model / "training_curve.csv") as f:
            last = list(csv.DictReader(f))[-1]
        results.append((model, float(last["val_loss"]), float(last["val_acc"]), seconds))
    print("\n%-6s %9s %8s %9s" % ("model", "val loss", "val acc", "wall (s)"))
    for model, loss, acc, seconds in results:
        print("%-6s %9.4f %7.1f%% %9.1f" % (model, loss, acc, seconds))
    print("outputs in %s" % (workdir / "outputs"))
    return results


if __name__ == "__main__":
    main()
