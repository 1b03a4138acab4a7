"""The TA round trip: manual.csv out, filled in, `grader merge-manual` in, through the real CLI."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from classkit import grades, reference_files, run_batch, run_cli, write_zip
from grader.report.results import validate_result


def read_sheet(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def write_sheet(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    # a TA's copy keeps the grader's notes column, which merging ignores
    writer = csv.DictWriter(buf, ["student", "item", "title", "max_points", "points", "comment", "grader_note"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def fill(rows: list[dict], marks: dict) -> list[dict]:
    out = []
    for row in rows:
        row = dict(row)
        if (row["student"], row["item"]) in marks:
            row["points"], row["comment"] = marks[(row["student"], row["item"])]
        out.append(row)
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three students (empty archives: they fail intake at once, but their written answers still
    get marked); S3 handed in 9 days late: 7 grace days, then 20% off."""
    root = tmp_path_factory.mktemp("manual")
    cls = root / "class"
    for s in ("CS17BTECH11001", "CS17BTECH11002", "CS17BTECH11003"):
        write_zip(cls / f"{s}_Assign2.zip", {})
    times = root / "times.csv"
    times.write_text("student,submitted_at\nCS17BTECH11001,2019-03-01T10:00:00Z\n"
                     "CS17BTECH11002,2019-03-01T10:00:00Z\nCS17BTECH11003,2019-03-10T10:00:00Z\n")
    out = root / "out"
    proc = run_batch(cls, "--out", out, "--deadline", "2019-03-01T12:00:00Z", "--submitted-at", times)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, cls, out, times


def results(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(out.glob("*/result.json"))}


def test_manual_sheet_lists_every_student_and_manual_item(batch):
    _, _, out, _ = batch
    rows = read_sheet(out / "manual.csv")
    assert len(rows) == 3 * 19
    first = rows[0]
    assert (first["student"], first["item"], first["max_points"], first["points"], first["comment"]) == \
        ("CS17BTECH11001", "q1a", "1", "", "")


def test_bad_sheets_are_rejected_whole_with_every_problem_listed(batch):
    root, _, out, _ = batch
    before = results(out)
    rows = fill(read_sheet(out / "manual.csv"), {
        ("CS17BTECH11001", "q1a"): ("1", "good"),                 # fine, but must not be applied
        ("CS17BTECH11001", "q1b"): ("2", ""),                     # max 1
        ("CS17BTECH11002", "q6a"): ("-0.5", ""),                  # negative
        ("CS17BTECH11002", "q6b"): ("one", ""),                   # not a number
        ("CS17BTECH11003", "q6c"): ("", "a comment only"),
    })
    rows += [{"student": "CS17BTECH99999", "item": "q1a", "title": "", "max_points": "1", "points": "1",
              "comment": ""},
             {"student": "CS17BTECH11001", "item": "q9z", "title": "", "max_points": "1", "points": "1",
              "comment": ""}]
    proc = run_cli("merge-manual", out, write_sheet(root / "bad.csv", rows))
    assert proc.returncode == 1
    err = proc.stderr
    for text in ("points 2 out of range 0..1", "points -0.5 out of range 0..2", "'one' is not a number",
                 "a comment without points", "unknown student 'CS17BTECH99999'", "unknown manual item 'q9z'"):
        assert text in err, err
    assert "nothing was applied" in err
    assert err.count("line ") == 6
    assert results(out) == before


def test_merge_round_trip(batch):
    root, cls, out, times = batch
    rows = fill(read_sheet(out / "manual.csv"), {
        ("CS17BTECH11001", "q1a"): ("1", "Clear table."),
        ("CS17BTECH11001", "q3b.discussion"): ("1.5", "Only one reason given."),
        ("CS17BTECH11002", "q6a"): ("0", "Missing."),
        ("CS17BTECH11003", "q6a"): ("2", ""),
        ("CS17BTECH11003", "r1.report"): ("2", "Nice samples."),
    })
    proc = run_cli("merge-manual", out, write_sheet(root / "filled.csv", rows))
    assert proc.returncode == 0, proc.stderr
    assert "merged 5 mark(s)" in proc.stdout

    doc = json.loads((out / "CS17BTECH11001" / "result.json").read_text())
    assert validate_result(doc) == []
    items = {i["id"]: i for i in doc["items"]}
    assert (items["q1a"]["status"], items["q1a"]["points"], items["q1a"]["feedback"]) == ("passed", 1, "Clear table.")
    assert (items["q3b.discussion"]["status"], items["q3b.discussion"]["points"]) == ("partial", 1.5)
    assert items["q1b"]["status"] == "manual"
    assert (doc["auto_score"], doc["auto_max"], doc["score"], doc["manual_pending"]) == (0, 15, 2.5, 22)
    zero = {i["id"]: i for i in json.loads((out / "CS17BTECH11002" / "result.json").read_text())["items"]}
    assert zero["q6a"]["status"] == "failed"
    gradescope = json.loads((out / "CS17BTECH11001" / "results.json").read_text())
    assert gradescope["score"] == 0 and not any(t["name"].startswith("q1a") for t in gradescope["tests"])

    g = grades(out)
    assert (g["CS17BTECH11001"]["manual_score"], g["CS17BTECH11001"]["manual_pending"],
            g["CS17BTECH11001"]["final_score"]) == ("2.5", "22", "2.5")
    assert (g["CS17BTECH11003"]["penalty"], g["CS17BTECH11003"]["final_score"]) == ("0.2", "3.2")   # 4 * 0.8
    text = (out / "CS17BTECH11001" / "feedback.md").read_text()
    assert "`q3b.discussion` UNet vs CNN, and two reasons skips help: 1.5/2. Only one reason given." in text
    assert "`q1b` Epochs in the given setting: not marked yet" in text
    sheet = {(r["student"], r["item"]): (r["points"], r["comment"]) for r in read_sheet(out / "manual.csv")}
    assert sheet[("CS17BTECH11001", "q3b.discussion")] == ("1.5", "Only one reason given.")

    # Merging the same sheet again changes nothing; a regrade (--force) keeps the TA's marks.
    before = (out / "grades.csv").read_text()
    assert run_cli("merge-manual", out, root / "filled.csv").returncode == 0
    assert (out / "grades.csv").read_text() == before
    again = run_batch(cls, "--out", out, "--deadline", "2019-03-01T12:00:00Z", "--submitted-at", times, "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "grades.csv").read_text() == before

    # A sheet edited in place and not merged is never overwritten by a batch run.
    rows = read_sheet(out / "manual.csv")
    rows[1]["points"] = "1"
    write_sheet(out / "manual.csv", rows)
    edited = (out / "manual.csv").read_text()
    kept = run_batch(cls, "--out", out, "--deadline", "2019-03-01T12:00:00Z", "--submitted-at", times)
    assert kept.returncode == 0 and "not merged yet" in kept.stdout
    assert (out / "manual.csv").read_text() == edited


def test_merge_into_a_folder_that_is_not_a_batch(tmp_path):
    sheet = write_sheet(tmp_path / "s.csv", [])
    proc = run_cli("merge-manual", tmp_path, sheet)
    assert proc.returncode == 2 and "batch.json" in proc.stderr


# ------------------------------------------------------------------ answers handed in in the write-up

ANSWER_ITEMS = {"q4a.sr_resolution": 1, "r3.colon_weights": 3}


@pytest.fixture(scope="module")
def answers_batch(tmp_path_factory):
    """Three students with only the char-RNN file (quick to grade): one without answers.toml (its
    answers are in the PDF), one with the reference's answers.toml, one with a malformed one."""
    root = tmp_path_factory.mktemp("answers")
    cls = root / "class"
    rnn = reference_files(("min_char_rnn.py",))
    answers = (Path(__file__).resolve().parent.parent / "reference" / "a2" / "answers.toml").read_bytes()
    write_zip(cls / "CS17BTECH11004_Assign2.zip", dict(rnn))
    write_zip(cls / "CS17BTECH11005_Assign2.zip", dict(rnn, **{"answers.toml": answers}))
    write_zip(cls / "CS17BTECH11006_Assign2.zip", dict(rnn, **{"answers.toml": b"[r3\nhidden_unit = 1"}))
    out = root / "out"
    proc = run_batch(cls, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, out


def test_no_answers_file_sends_q4a_and_r3_to_a_ta(answers_batch):
    root, out = answers_batch
    doc = json.loads((out / "CS17BTECH11004" / "result.json").read_text())
    assert validate_result(doc) == []
    items = {i["id"]: i for i in doc["items"]}
    for item_id, points in ANSWER_ITEMS.items():
        item = items[item_id]
        assert (item["status"], item["points"], item["manual"]) == ("manual", 0, True), item
        assert "expected in your write-up" in item["feedback"]
    # not in the automatic totals, pending for a TA; the written questions still are too
    assert doc["auto_max"] == 15 - sum(ANSWER_ITEMS.values())
    assert doc["manual_pending"] == 25 + sum(ANSWER_ITEMS.values())
    gradescope = json.loads((out / "CS17BTECH11004" / "results.json").read_text())
    assert not any(t["name"].startswith(tuple(ANSWER_ITEMS)) for t in gradescope["tests"])
    sheet = {(r["student"], r["item"]): r for r in read_sheet(out / "manual.csv")}
    for item_id, points in ANSWER_ITEMS.items():
        assert sheet[("CS17BTECH11004", item_id)]["max_points"] == str(points)
        assert ("CS17BTECH11005", item_id) not in sheet and ("CS17BTECH11006", item_id) not in sheet
    g = grades(out)
    assert (g["CS17BTECH11004"]["auto_max"], g["CS17BTECH11004"]["manual_pending"]) == ("11", "29")
    text = (out / "CS17BTECH11004" / "feedback.md").read_text()
    assert "`r3.colon_weights`" in text.split("## Written questions")[1]
    assert "no answers.toml, so the answer is expected in your write-up" in text


def test_a_present_answers_file_is_still_graded_and_a_malformed_one_still_fails(answers_batch):
    root, out = answers_batch
    good = {i["id"]: i for i in json.loads((out / "CS17BTECH11005" / "result.json").read_text())["items"]}
    bad = {i["id"]: i for i in json.loads((out / "CS17BTECH11006" / "result.json").read_text())["items"]}
    for item_id, points in ANSWER_ITEMS.items():
        assert (good[item_id]["status"], good[item_id]["points"]) == ("passed", points)
        assert bad[item_id]["status"] == "failed" and not bad[item_id]["manual"]
        assert "not valid TOML" in bad[item_id]["feedback"]
    assert grades(out)["CS17BTECH11005"]["auto_max"] == "15"


def test_a_ta_marks_an_answer_from_the_write_up(answers_batch):
    root, out = answers_batch
    rows = fill(read_sheet(out / "manual.csv"), {
        ("CS17BTECH11004", "r3.colon_weights"): ("2", "Unit right, Why for ' ' missing."),
    })
    proc = run_cli("merge-manual", out, write_sheet(root / "filled.csv", rows))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "CS17BTECH11004" / "result.json").read_text())
    items = {i["id"]: i for i in doc["items"]}
    assert (items["r3.colon_weights"]["status"], items["r3.colon_weights"]["points"]) == ("partial", 2)
    assert items["q4a.sr_resolution"]["status"] == "manual"
    # still a TA's mark, not an automatic one: the automatic totals do not move
    assert (doc["auto_max"], doc["manual_pending"]) == (11, 26)
    assert doc["score"] - doc["auto_score"] == 2
    too_many = fill(read_sheet(out / "manual.csv"), {("CS17BTECH11004", "q4a.sr_resolution"): ("3", "")})
    proc = run_cli("merge-manual", out, write_sheet(root / "too_many.csv", too_many))
    assert proc.returncode != 0 and "out of range 0..1" in (proc.stdout + proc.stderr)
