"""The probe cache's storage: an answer stored and loaded back is the same, and storing keeps no
file descriptor open (a term stores thousands of answers through one grader process: the
1000-student soak found one descriptor leaked per stored entry with arrays)."""
from __future__ import annotations

import os

import numpy as np

from grader.probes.cache import ProbeCache
from grader.records import ProbeResult


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_storing_many_answers_keeps_no_descriptor_open_and_they_load_back(tmp_path):
    cache = ProbeCache(tmp_path / "probes")
    before = open_fds()
    for i in range(200):
        result = ProbeResult(f"probe/{i}", True, {"y": np.full((2, 3), i, dtype=np.float32)}, {"n": i})
        cache.store(f"{i:064x}", result)
    assert cache.stored == 200
    assert open_fds() <= before + 2, (before, open_fds())
    back = cache.load(f"{7:064x}")
    assert back is not None and back.cached and back.meta == {"n": 7}
    np.testing.assert_array_equal(back.arrays["y"], np.full((2, 3), 7, dtype=np.float32))
    assert open_fds() <= before + 2
