"""What isolation costs per submission: full sandbox vs a plain unisolated worker, side by side.

    python3 bench/isolation_overhead.py [--reps 9]

Each repetition grades one tiny honest submission with one `model_forward` probe through the real
`run_plan`: start a worker, import torch and the student's file, answer, kill the worker. The two
launchers alternate, so both see the same machine load; the medians and their difference are
printed. Target (issue 5): isolation adds < 0.5 s per submission.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.probes.client import ProbeSpec, run_plan  # noqa: E402
from grader.sandbox.launcher import Sandbox, SandboxUnavailable  # noqa: E402

STUDENT = """\
import torch, torch.nn as nn


class CNN(nn.Module):
    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super().__init__()
        self.conv = nn.Conv2d(num_in_channels, num_colours, kernel, padding=kernel // 2)

    def forward(self, x):
        return self.conv(x)
"""

SPEC = ProbeSpec("fwd", "model_forward", "colourization",
                 dict(model="CNN", kernel=3, nf=8, nc=24, cin=1, seed=0, batch=2))


def once(sandbox: Sandbox, root: Path, n: int) -> float:
    ws = root / f"ws{n}"
    ws.mkdir()
    (ws / "colourization.py").write_text(STUDENT)
    started = time.perf_counter()
    result = run_plan([SPEC], ws, {"colourization": ws / "colourization.py"}, "a2", sandbox)["fwd"]
    took = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the probe failed under {sandbox.mode}: {result.error}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    try:
        full = Sandbox(quiet=True)
    except SandboxUnavailable as exc:
        raise SystemExit(str(exc))
    plain = Sandbox(mode="basic", netns=False, quiet=True)
    print(f"isolated launcher: {full.description}\n")
    print(f"plain launcher:    {plain.description}\n")
    times = {"isolated": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        root = Path(tmp)
        once(full, root, -1)                      # warm the page cache and the bwrap probe
        once(plain, root, -2)
        for n in range(args.reps):
            order = [("isolated", full), ("plain", plain)]
            for name, box in order if n % 2 == 0 else order[::-1]:
                times[name].append(once(box, root, len(times["isolated"]) * 2 + len(times["plain"])))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{'launcher':<10} {'mode':<9} {'median s':>9} {'min s':>7} {'max s':>7}   "
          f"(start worker + one model_forward probe + kill; {args.reps} reps each, alternating)")
    for name, box in (("isolated", full), ("plain", plain)):
        t = times[name]
        print(f"{name:<10} {box.mode:<9} {med[name]:>9.3f} {min(t):>7.3f} {max(t):>7.3f}")
    extra = med["isolated"] - med["plain"]
    print(f"\nisolation overhead per submission (median difference): {extra:+.3f} s "
          f"({'within' if extra < 0.5 else 'OVER'} the 0.5 s target)")
    return 0 if extra < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
