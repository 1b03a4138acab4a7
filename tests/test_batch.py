"""`grader batch` on a real class: 20+ archives, good and hostile, through the real command line.

Also: a batch killed midway (SIGKILL, or Ctrl-C to its process group) and re-run ends with the
gradebook of one clean run.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from classkit import (LOOP_AT_IMPORT, PROJECT, REFERENCE, SLEEP_AT_IMPORT, encrypted_zip, example_files,
                      grades, reference_files, run_batch, snapshot, write_zip, zip_bytes)
from grader.batch.classrun import BatchError, Progress, collect
from grader.report.images import read_png_size
from grader.report.results import validate_result

PROBE_TIMEOUT = "8"          # a submission that loops when imported is stopped after this


def build_class(root: Path, tmp: Path, token: str) -> dict[str, tuple[str, str]]:
    """The class folder; returns student id -> (expected status, what it is)."""
    cls = root / "class"
    cls.mkdir(parents=True)
    ref = reference_files()
    v2018 = example_files("mutants/version_2018", tmp)
    notebook = example_files("mutants/notebook_with_training_cells", tmp)
    expect = {}

    def add(name: str, files: dict | bytes, student: str, status: str, what: str):
        path = cls / name
        if isinstance(files, bytes):
            path.write_bytes(files)
        else:
            write_zip(path, files)
        expect[student] = (status, what)

    # ---- good ones: both handout versions, a notebook with training cells, LMS download names
    add("CS17BTECH11001_Assign2.zip", {f"CS17BTECH11001_Assign2/{n}": c for n, c in ref.items()}
        | {"__MACOSX/CS17BTECH11001_Assign2/._colourization.py": b"junk", "CS17BTECH11001_Assign2/.DS_Store": b"j"},
        "CS17BTECH11001", "graded", "2019 handout, one top folder and macOS junk")
    add("Asha Rao_12345_assignsubmission_file_CS17BTECH11002_Assign2.zip", v2018,
        "CS17BTECH11002", "graded", "2018 handout, Moodle name")
    add("raoravi_late_23456_78901_CS17BTECH11003_Assign2-1.zip", notebook,
        "CS17BTECH11003", "graded", "notebook with training cells, Canvas name")
    american = {n.replace("colourization", "colorization"): c for n, c in ref.items()}
    add("CS17BTECH11004_Assign2 - Meena Iyer.zip", {"code.zip": zip_bytes(american)},
        "CS17BTECH11004", "graded", "American spelling in a zip in the zip, Classroom name")
    # ---- hostile and broken ones
    add("CS17BTECH11005_Assign2.zip", {"../../../../../../../../tmp/evil_" + token + ".py": "x = 1\n",
                                       "colourization.py": ref["colourization.py"]},
        "CS17BTECH11005", "error", "path traversal")
    add("CS17BTECH11006_Assign2.zip", {"/tmp/evil_abs_" + token + ".py": "x = 1\n"},
        "CS17BTECH11006", "error", "absolute path")
    add("CS17BTECH11007_Assign2.zip", {"colourization.py": b"#" * (3 << 20)},
        "CS17BTECH11007", "error", "zip bomb (ratio)")
    add("CS17BTECH11008_Assign2.zip", zip_bytes(ref)[:3000], "CS17BTECH11008", "error", "truncated zip")
    add("CS17BTECH11009_Assign2.zip", {}, "CS17BTECH11009", "error", "empty zip")
    encrypted_zip(cls / "CS17BTECH11010_Assign2.zip", {"colourization.py": "x = 1\n"})
    expect["CS17BTECH11010"] = ("error", "encrypted")
    add("CS17BTECH11011_Assign2.zip", {"my_code.py": "print('hello')\n", "report.docx": b"PK"},
        "CS17BTECH11011", "error", "wrong file names")
    add("CS17BTECH11012_Assign2.zip", {"colourization.py": "import torch\n\ndef f(:\n    pass\n"},
        "CS17BTECH11012", "graded", "syntax error (the items that need it score 0)")
    add("CS17BTECH11013_Assign2.zip", {"colourization.py": ref["colourization.py"].decode() + LOOP_AT_IMPORT},
        "CS17BTECH11013", "graded", "infinite loop at import")
    add("CS17BTECH11014_Assign2.zip", b"Rar!\x1a\x07\x00" + b"\x00" * 64, "CS17BTECH11014", "error",
        "a RAR named .zip")
    add("CS17BTECH11015_Assign2.rar", b"Rar!\x1a\x07\x00" + b"\x00" * 64, "CS17BTECH11015", "error", "a .rar")
    link = zipfile.ZipInfo("colourization.py")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(cls / "CS17BTECH11016_Assign2.zip", "w") as zf:
        zf.writestr(link, "/etc/passwd")
    expect["CS17BTECH11016"] = ("error", "symlink")
    add("CS17BTECH11001_Assign2 (1).zip", b"", "CS17BTECH11001-2", "error", "duplicate id, empty file")
    (cls / "CS17BTECH11018").mkdir()
    (cls / "CS17BTECH11018" / "report.pdf").write_bytes(b"%PDF-1.4")
    expect["CS17BTECH11018"] = ("error", "a folder with only a PDF")
    add("CS17BTECH11019_Assign2.docx", b"PK\x03\x04 not really", "CS17BTECH11019", "error", "a .docx")
    add("CS17BTECH11020_Assign2.zip", {"a.zip": zip_bytes({"b.zip": zip_bytes({"c.zip": zip_bytes(
        {"d.zip": zip_bytes({"colourization.py": "x = 1"})})})})}, "CS17BTECH11020", "error", "nested too deep")
    (cls / "submission_times.csv").write_text("student,submitted_at\n")   # the TA's file: not a student
    return expect


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    token = uuid.uuid4().hex[:12]
    expect = build_class(root, root / "tmp", token)
    out = root / "out"
    before = snapshot(root)
    started = time.monotonic()
    proc = run_batch(root / "class", "--out", out, "--workers", "2", "--probe-timeout", PROBE_TIMEOUT,
                     "--deadline", "2019-03-02T00:00:00+00:00", timeout=600)
    seconds = time.monotonic() - started
    return root, out, expect, proc, before, token, seconds


def test_every_archive_gets_a_row_with_the_right_status(graded_class):
    root, out, expect, proc, _, _, seconds = graded_class
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    rows = grades(out)
    assert len(expect) >= 20
    assert set(rows) == set(expect), (sorted(rows), sorted(expect))
    wrong = {s: (rows[s]["status"], want, rows[s]["error"]) for s, (want, _) in expect.items()
             if rows[s]["status"] != want}
    assert not wrong
    for student in rows:
        result = json.loads((out / student / "result.json").read_text())
        assert validate_result(result) == []
        assert (out / student / "results.json").exists() and (out / student / "feedback.md").exists()
    print(f"class of {len(rows)} graded in {seconds:.0f} s")


def test_messages_say_what_went_wrong(graded_class):
    _, out, _, proc, _, _, _ = graded_class
    rows = grades(out)
    assert "leaves the archive" in rows["CS17BTECH11005"]["error"]
    assert "absolute path" in rows["CS17BTECH11006"]["error"]
    assert "zip bomb" in rows["CS17BTECH11007"]["error"]
    assert "not a valid zip" in rows["CS17BTECH11008"]["error"]
    assert "empty" in rows["CS17BTECH11009"]["error"]
    assert "password-protected" in rows["CS17BTECH11010"]["error"]
    assert "none of the expected files" in rows["CS17BTECH11011"]["error"]
    assert "RAR" in rows["CS17BTECH11014"]["error"]
    assert "symbolic link" in rows["CS17BTECH11016"]["error"]
    assert "nested more than" in rows["CS17BTECH11020"]["error"]
    syntax = (out / "CS17BTECH11012" / "feedback.md").read_text()
    assert "SyntaxError" in syntax and rows["CS17BTECH11012"]["auto_score"] == "0"
    loop = json.loads((out / "CS17BTECH11013" / "result.json").read_text())
    cnn = next(i for i in loop["items"] if i["id"] == "q2a.cnn")
    assert cnn["points"] == 0 and "timed out" in cnn["feedback"]
    assert "duplicate student id CS17BTECH11001" in proc.stdout + proc.stderr
    assert "submission_times.csv" in proc.stdout + proc.stderr       # skipped, and said so


def test_good_submissions_score_and_get_pictures(graded_class):
    _, out, _, _, _, _, _ = graded_class
    rows = grades(out)
    for student in ("CS17BTECH11001", "CS17BTECH11002", "CS17BTECH11003", "CS17BTECH11004"):
        assert float(rows[student]["auto_score"]) >= 10, rows[student]
        assert read_png_size(out / student / "colourization.png") == (3 * (6 * 34 + 2), 3 * (4 * 34 + 2))
        text = (out / student / "feedback.md").read_text()
        assert "![colourization](colourization.png)" in text and "## Passed" in text
    assert rows["CS17BTECH11001"]["auto_score"] == rows["CS17BTECH11001"]["auto_max"] or \
        "answers" in (out / "CS17BTECH11001" / "feedback.md").read_text()
    notebook = (out / "CS17BTECH11003" / "feedback.md").read_text()
    assert "colourization.ipynb" in notebook and "train(args)" in notebook    # dropped training cell, listed
    assert not (out / "CS17BTECH11007" / "colourization.png").exists()


def test_gradebook_files(graded_class):
    _, out, expect, proc, _, _, _ = graded_class
    header = (out / "grades.csv").read_text().splitlines()[0]
    assert header.split(",")[:11] == ["student", "auto_score", "auto_max", "manual_score", "manual_pending",
                                      "late_days", "grace_days_used", "penalty", "final_score", "max_score",
                                      "status"]
    manual = (out / "manual.csv").read_text().splitlines()
    assert manual[0] == "student,item,title,max_points,points,comment,grader_note"
    # the rubric's 19 manual items for everyone, plus q4a and r3 for each student handing in no
    # answers.toml (answered in the report: a TA marks them)
    deferred = sum(1 for s in expect if (out / s / "result.json").exists()
                   for i in json.loads((out / s / "result.json").read_text())["items"]
                   if i["id"] in ("q4a.sr_resolution", "r3.colon_weights") and i["status"] == "manual")
    assert deferred > 0 and len(manual) - 1 == len(expect) * 19 + deferred
    assert "most failed items" in proc.stdout and "%" in proc.stdout
    assert "remaining 0" in proc.stderr                                   # the progress counts
    assert not (out / ".work").exists() or not any((out / ".work").iterdir())


def test_nothing_was_written_outside_the_batch_folder(graded_class):
    root, out, _, _, before, token, _ = graded_class
    after = snapshot(root, skip=out)
    assert after == before
    assert not list(Path("/tmp").glob(f"evil*{token}*"))
    assert not list(root.rglob(f"evil*{token}*"))


def test_ids_duplicates_and_lms_folders(tmp_path):
    cls = tmp_path / "c"
    moodle = cls / "Asha Rao_12345_assignsubmission_file_"
    moodle.mkdir(parents=True)
    (moodle / "CS17BTECH11009_Assign2.zip").write_bytes(b"")
    (cls / "cs17btech11009-a2.ipynb").write_text("{}")
    (cls / "Ravi Kumar_23456_assignsubmission_file_").mkdir()
    (cls / "Ravi Kumar_23456_assignsubmission_file_" / "a.py").write_text("")
    (cls / "Ravi Kumar_23456_assignsubmission_file_" / "b.py").write_text("")
    (cls / ".DS_Store").write_text("")
    entries, warnings, _ = collect(cls, assignment="a2")
    ids = {e.name: e.student for e in entries}
    assert ids == {"Asha Rao_12345_assignsubmission_file_": "CS17BTECH11009-2",   # the longer name
                   "cs17btech11009-a2.ipynb": "CS17BTECH11009",
                   "Ravi Kumar_23456_assignsubmission_file_": "Ravi_Kumar_23456"}
    assert any("duplicate student id CS17BTECH11009" in w for w in warnings)
    again, _, _ = collect(cls, assignment="a2")                                    # stable
    assert [(e.student, e.name) for e in again] == [(e.student, e.name) for e in entries]


def test_zip_of_zips_with_wrapper_folder(tmp_path):
    lms = write_zip(tmp_path / "download.zip", {
        "A2 submissions/CS17BTECH11001_Assign2.zip": zip_bytes({"colourization.py": "x = 1"}),
        "A2 submissions/CS17BTECH11002_Assign2.zip": b"",
        "A2 submissions/Asha Rao_12345_assignsubmission_file_/CS17BTECH11003_Assign2.zip": b"",
        "__MACOSX/A2 submissions/._x": b"",
        "A2 submissions/../../escape.zip": b"",
    })
    entries, warnings, zpath = collect(lms, assignment="a2")
    assert zpath == str(lms)
    got = {e.student: (e.name, e.error is not None) for e in entries}
    assert got["CS17BTECH11001"] == ("CS17BTECH11001_Assign2.zip", False)
    assert got["CS17BTECH11003"][1] is False
    assert any("leaves the archive" in (e.error or "") for e in entries)
    assert any("looked inside the single folder A2 submissions/" in w for w in warnings)


@pytest.mark.slow
def test_an_alternative_solution_that_must_be_trained(tmp_path, request):
    """The alternative solution cannot reuse the reference's training (about a minute on 2 cores)."""
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("slow (about a minute): run with -m slow")
    cls = tmp_path / "class"
    cls.mkdir()
    write_zip(cls / "CS17BTECH11030_Assign2.zip", example_files("alternative", tmp_path))
    write_zip(cls / "CS17BTECH11031_Assign2.zip", reference_files())
    proc = run_batch(cls, "--out", tmp_path / "out", "--workers", "2", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = grades(tmp_path / "out")
    assert rows["CS17BTECH11030"]["status"] == "graded" and float(rows["CS17BTECH11030"]["auto_score"]) >= 10
    ours = (tmp_path / "out" / "CS17BTECH11030" / "colourization.png").read_bytes()
    theirs = (tmp_path / "out" / "CS17BTECH11031" / "colourization.png").read_bytes()
    assert ours != theirs                       # its own trained output, not the reference's


def test_one_students_submission_is_not_taken_for_a_class(tmp_path):
    write_zip(tmp_path / "CS17BTECH11001_Assign2.zip", reference_files())
    with pytest.raises(BatchError, match="looks like one student's submission"):
        collect(tmp_path / "CS17BTECH11001_Assign2.zip", assignment="a2")
    proc = run_batch(REFERENCE, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "grader grade" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_progress_on_a_terminal_and_in_a_log():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream in (Tty(), io.StringIO()):
        progress = Progress(3, stream)
        progress.start()
        progress.finish("S1", False, "graded 15/15")
        progress.start()
        progress.finish("S2", True, "error: empty")
        progress.message("a warning")
        progress.close()
        text = stream.getvalue()
        assert "2/3: done 1, failed 1, remaining 1" in text and "a warning" in text
        assert ("\r\033[K" in text) == isinstance(stream, Tty)


# --------------------------------------------------------------------------------------------------
# Killed and resumed
# --------------------------------------------------------------------------------------------------

def small_class(cls: Path) -> None:
    """Fast errors around two submissions that take a few seconds each (they hang when imported).
    With one worker slot, the second slow one cannot start before the first is done (the fast ones
    need no worker and are graded meanwhile)."""
    cls.mkdir(parents=True)
    for i in (1, 2):
        write_zip(cls / f"CS17BTECH1100{i}_Assign2.zip", {})
    for i in (3, 6):
        write_zip(cls / f"CS17BTECH1100{i}_Assign2.zip",
                  {"colourization.py": (REFERENCE / "colourization.py").read_text() + SLEEP_AT_IMPORT})
    for i in (4, 5):
        (cls / f"CS17BTECH1100{i}_Assign2.zip").write_bytes(b"not a zip")


KILL_ARGS = ["--workers", "1", "--probe-timeout", "4", "--deadline", "2019-03-01T00:00:00Z"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small class and its gradebook from one clean run."""
    root = tmp_path_factory.mktemp("small")
    small_class(root / "class")
    clean = run_batch(root / "class", "--out", root / "clean", *KILL_ARGS)
    assert clean.returncode == 0, clean.stderr[-3000:]
    return root / "class", (root / "clean" / "grades.csv").read_text()


def start_batch(cls: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """The real command in its own process group (as a terminal runs it); returns once the first
    students' results exist and the slow one is being graded."""
    argv = [sys.executable, "-m", "grader.cli", "batch", str(cls), "--out", str(out), *KILL_ARGS]
    proc = subprocess.Popen(argv, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    first = out / "CS17BTECH11001" / "result.json"
    slow = out / "CS17BTECH11003"
    deadline = time.monotonic() + 120
    while not slow.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    assert first.exists() and proc.poll() is None, "the batch finished before it could be stopped"
    return proc, first


def test_killed_batch_resumes_to_the_same_gradebook(tmp_path, small):
    cls, clean = small
    out = tmp_path / "killed"
    proc, first = start_batch(cls, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (out / "grades.csv").exists()
    assert not (out / "CS17BTECH11003" / "result.json").exists()     # killed while being graded
    assert not (out / "CS17BTECH11006" / "result.json").exists()     # waiting for the one worker slot
    kept = first.stat().st_mtime_ns

    resumed = run_batch(cls, "--out", out, *KILL_ARGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "CS17BTECH11001: already graded, kept" in resumed.stderr
    assert first.stat().st_mtime_ns == kept
    assert (out / "grades.csv").read_text() == clean


def _ignoring_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("when", ["first_line", "first_result"])
def test_ctrl_c_stops_cleanly_and_the_rerun_completes(tmp_path, small, when):
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it) stops the batch with 130 and
    keeps what finished; the same command then completes it. The batch inherits SIGINT *ignored*,
    as a background job of a script does (the case that once let a batch run to the end, exit 0),
    and the signal is sent at a point the batch itself announces, not after a sleep: its first
    line ("grading ... submissions"), or the first student's result line."""
    cls, clean = small
    out = tmp_path / "interrupted"
    argv = [sys.executable, "-m", "grader.cli", "batch", str(cls), "--out", str(out), *KILL_ARGS]
    proc = subprocess.Popen(argv, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_ignoring_sigint)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if (when == "first_line" and "grading " in line) or (when == "first_result" and "graded " in line
                                                            and "CS17BTECH" in line):
            break
    assert proc.poll() is None, "".join(seen)[-2000:]
    os.killpg(proc.pid, signal.SIGINT)             # what Ctrl-C in a terminal does: the whole group
    _, stderr = proc.communicate(timeout=120)
    stderr = "".join(seen) + stderr
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert not (out / "grades.csv").exists()
    resumed = run_batch(cls, "--out", out, *KILL_ARGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if when == "first_result":
        assert "already graded, kept" in resumed.stderr
    assert (out / "grades.csv").read_text() == clean
