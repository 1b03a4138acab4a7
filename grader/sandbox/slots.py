"""Compute slots shared by a batch's grading threads.

A batch grades `--workers W` submissions' probes at once: W sandboxed workers, one per core (or
per GPU share). Everything else a submission needs (intake, the tamper scan, the trusted checks,
scoring, the feedback picture, result files) runs on the trusted side and needs no worker, so a
grading thread holds a slot only while its worker lives (`probing.WorkerSession`, from its first
launch to its close). The batch runs more grading threads than slots, so that one submission's
trusted-side work overlaps the others' probes instead of leaving a core idle, and a submission
whose every answer comes from the probe cache never takes a slot at all.

The slots' sandboxes must agree on everything a probe answer or a report depends on (limits,
threads, GPU, mode, the isolation description): the batch pools them only then (the CPU case, or
one GPU), and otherwise gives each grading thread its own sandbox for the whole submission.
"""
from __future__ import annotations

import queue

SAME = ("description", "limits", "threads", "gpu", "mode", "workspace_parent")


class SlotPool:
    """Stands in for a sandbox wherever the pipeline reads its settings; `acquire()` hands out one
    of the real ones (blocking until a slot is free) and `release()` gives it back."""

    def __init__(self, sandboxes: list):
        if not sandboxes:
            raise ValueError("a slot pool needs at least one sandbox")
        self.first = sandboxes[0]
        self._free: queue.Queue = queue.Queue()
        for box in sandboxes:
            self._free.put(box)

    @staticmethod
    def poolable(sandboxes: list) -> bool:
        """Whether these sandboxes are interchangeable for every submission."""
        return bool(sandboxes) and all(
            getattr(box, name, None) == getattr(sandboxes[0], name, None) for box in sandboxes for name in SAME)

    def __getattr__(self, name):
        return getattr(self.first, name)

    def acquire(self):
        return self._free.get()

    def release(self, box) -> None:
        self._free.put(box)

    def launch(self, workspace):
        raise TypeError("a SlotPool launches no worker itself: a WorkerSession acquires a slot first")
