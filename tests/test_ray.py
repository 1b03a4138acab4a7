"""`grader batch --executor ray`: a real local Ray instance grades a small class, and the gradebook
equals the local executor's. Skipped, with the reason, where Ray is not installed (it is in the
`test` extra)."""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from classkit import example_files, grades, reference_files, run_batch, write_zip
from grader.batch.raybatch import pack_path, unpack_path

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'dl-grader[ray]')")


def results(out: Path) -> dict:
    docs = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text())
        doc.pop("execution_time")
        docs[path.parent.name] = doc
    return docs


def ray_processes() -> list[bytes]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"/raylet" in cmd or b"gcs_server" in cmd:
                found.append(cmd[:120])
    return found


@needs_ray
@pytest.mark.heavy
def test_ray_executor_writes_the_local_gradebook(tmp_path):
    """A class of four (a zip, a mutant, a corrupt zip, a folder entry) graded by the local executor
    and by `--executor ray` on a local instance of 2 CPUs: the same gradebook, results, feedback
    and pictures; the instance is gone afterwards."""
    cls = tmp_path / "class"
    write_zip(cls / "CS17B101_Assign2.zip", reference_files())
    write_zip(cls / "CS17B102_Assign2.zip", example_files("mutants/temperature_divided", tmp_path / "tmp"))
    (cls / "CS17B103_Assign2.zip").write_bytes(b"PK\x03\x04 not a zip")
    (cls / "CS17B104").mkdir()                                           # a folder entry, not a zip
    (cls / "CS17B104" / "min_char_rnn.py").write_bytes(reference_files()["min_char_rnn.py"])
    env = {"GRADER_PROBE_CACHE": str(tmp_path / "probe-cache")}
    local = run_batch(cls, "--out", tmp_path / "local", "--workers", "2", env=env)
    started = time.monotonic()
    ray = run_batch(cls, "--out", tmp_path / "ray", "--workers", "2", "--executor", "ray",
                    "--ray-num-cpus", "1", "--no-cache", env=env, timeout=600)
    seconds = time.monotonic() - started
    assert local.returncode == 0, local.stderr[-2000:]
    assert ray.returncode == 0, ray.stderr[-3000:] + ray.stdout[-2000:]
    assert grades(tmp_path / "ray") == grades(tmp_path / "local")
    assert results(tmp_path / "ray") == results(tmp_path / "local")
    for student in ("CS17B101", "CS17B102"):
        assert (tmp_path / "ray" / student / "colourization.png").read_bytes() == \
            (tmp_path / "local" / student / "colourization.png").read_bytes()
        assert (tmp_path / "ray" / student / "feedback.md").read_text() == \
            (tmp_path / "local" / student / "feedback.md").read_text()
    engine = json.loads((tmp_path / "ray" / "batch.json").read_text())["engine"]
    assert engine["executor"] == "ray" and "a local instance" in engine["description"]
    deadline = time.monotonic() + 20
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_processes() == []
    print(f"ray batch of 4 in {seconds:.0f} s")


def test_ray_missing_is_a_clear_error_before_grading(tmp_path, monkeypatch):
    from grader.batch import raybatch

    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert "needs Ray" in raybatch.available()


def test_submissions_travel_to_a_task_unchanged(tmp_path):
    folder = tmp_path / "sub"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "colourization.py").write_text("x = 1\n")
    (folder / "nested" / "data.bin").write_bytes(bytes(range(256)))
    (folder / "empty").mkdir()
    (folder / "link.py").symlink_to("colourization.py")
    packed = pack_path(folder)
    back = unpack_path(packed, tmp_path / "there")
    for path in folder.rglob("*"):
        twin = back / path.relative_to(folder)
        assert twin.is_symlink() == path.is_symlink() and twin.is_dir() == path.is_dir()
        if path.is_file() and not path.is_symlink():
            assert twin.read_bytes() == path.read_bytes()
    assert os.readlink(back / "link.py") == "colourization.py"
    single = tmp_path / "CS1_Assign2.zip"
    single.write_bytes(b"PK\x03\x04zzz")
    assert unpack_path(pack_path(single), tmp_path / "one").read_bytes() == b"PK\x03\x04zzz"
