"""Which device each batch worker gets: GPUs shared by a configurable number of workers, else CPU.

`grader batch --gpus auto|all|none|0,1 --workers-per-gpu N`: with GPUs, the batch runs
len(gpus) x N students at once (unless --workers says otherwise) and worker slot i gets GPU
gpus[i % len(gpus)], so each GPU serves N workers; the sandbox then sets the worker's
CUDA_VISIBLE_DEVICES to that one GPU and binds only its device nodes. Without GPUs every slot is
CPU-only (CUDA_VISIBLE_DEVICES=""). Detection reads the driver's /proc entries, never initialises
CUDA in the grader (the grader forks helpers, and CUDA does not survive a fork).

Deterministic settings (applied by the worker runtime, grader/worker/main.py):
- CPU: one intra-op thread per worker (`torch.set_num_threads(1)`, OMP/MKL_NUM_THREADS=1), seeds
  set by every probe; CPU kernels are then deterministic run to run.
- CUDA: `torch.backends.cudnn.deterministic = True`, `cudnn.benchmark = False`, TF32 off for
  matmul and cuDNN, `torch.use_deterministic_algorithms(True, warn_only=True)` and
  CUBLAS_WORKSPACE_CONFIG=:4096:8. Ops without a deterministic CUDA kernel (e.g. the backward of
  max-pooling or of bilinear upsampling) warn instead of failing, so a GPU training run can differ
  from run to run in the last bits; the training checks compare accuracies with a margin.
Only training (`model_train`) runs on the GPU; the exact-function probes stay on the CPU, where the
gold was made.
"""
from __future__ import annotations

import os
from pathlib import Path


def detect_gpus() -> list[str]:
    """GPU indices visible to the grader: $CUDA_VISIBLE_DEVICES if set, else the driver's list."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    root = Path("/proc/driver/nvidia/gpus")
    try:
        count = len([p for p in root.iterdir() if p.is_dir()])
    except OSError:
        count = 0
    return [str(i) for i in range(count)]


def parse_gpus(arg: str | None) -> list[str]:
    """`--gpus`: auto or all (default: what `detect_gpus` finds), none, or a list such as 0,1."""
    if arg is None or arg.strip().lower() in ("auto", "all"):
        return detect_gpus()
    if arg.strip().lower() in ("none", "cpu", ""):
        return []
    gpus = [g.strip() for g in arg.split(",") if g.strip()]
    if not all(g.isdigit() or g.startswith(("GPU-", "MIG-")) for g in gpus):
        raise ValueError(f"--gpus {arg!r}: expected auto, none, or indices such as 0,1")
    return gpus


def worker_count(workers: int, gpus: list[str], workers_per_gpu: int) -> int:
    if workers:
        return workers
    if gpus:
        return len(gpus) * max(1, workers_per_gpu)
    return min(4, os.cpu_count() or 1)


def assign(workers: int, gpus: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES for each worker slot: round-robin over the GPUs, or "" (CPU)."""
    if not gpus:
        return [""] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]
