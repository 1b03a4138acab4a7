"""Late policy and grace days: the rule (unit tests) and through the real `grader batch`."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from classkit import grades, run_batch, write_zip
from grader.batch.late import (LateError, LatePolicy, Ledger, assess, days_late, load_policy,
                               read_submission_times)

UTC = timezone.utc
DEADLINE = datetime(2019, 3, 1, 23, 59, tzinfo=UTC)
POLICY = LatePolicy(DEADLINE)                       # the handout's: 10%/day, 12 grace days, 7 at most


def late_by(days=0.0, seconds=0.0) -> datetime:
    return DEADLINE + timedelta(days=days, seconds=seconds)


def test_on_time():
    for when in (DEADLINE, late_by(days=-3)):
        r = assess(POLICY, when, "csv", 12)
        assert (r.late_days, r.grace_days_used, r.penalty) == (0, 0, 0.0)
        assert r.sentence().startswith("On time")


def test_days_late_round_up():
    assert days_late(late_by(seconds=1), DEADLINE) == 1
    assert days_late(late_by(days=1), DEADLINE) == 1
    assert days_late(late_by(days=1, seconds=1), DEADLINE) == 2


def test_late_within_grace_costs_grace_days_only():
    r = assess(POLICY, late_by(days=2, seconds=30), "csv", 12)
    assert (r.late_days, r.grace_days_used, r.penalty_days, r.penalty) == (3, 3, 0, 0.0)
    assert "3 grace day(s) used" in r.sentence() and "no penalty" in r.sentence()


def test_late_beyond_the_grace_left():
    r = assess(POLICY, late_by(days=5), "csv", 2)
    assert (r.late_days, r.grace_days_used, r.penalty_days, r.penalty) == (5, 2, 3, 0.3)
    assert "30% deducted" in r.sentence()


def test_at_most_seven_grace_days_on_one_assignment():
    r = assess(POLICY, late_by(days=9), "csv", 12)
    assert (r.grace_days_used, r.penalty_days, r.penalty) == (7, 2, 0.2)


def test_penalty_never_exceeds_the_whole_score():
    r = assess(POLICY, late_by(days=30), "csv", 0)
    assert r.penalty == 1.0


def test_no_deadline_means_nothing_assessed():
    r = assess(None, late_by(days=3), "archive", None)
    assert r.late_days is None and r.penalty == 0.0


def test_ledger_spends_across_assignments_and_regrading_does_not_spend_twice(tmp_path):
    ledger = Ledger.load(tmp_path / "grace_days.json")
    assert ledger.left("S1", "a2", 12) == 12
    ledger.record("S1", "a1", 10)                               # a1: 10 days spent
    left = ledger.left("S1", "a2", 12)
    r = assess(POLICY, late_by(days=4), "csv", left)
    assert (left, r.grace_days_used, r.penalty) == (2, 2, 0.2)
    ledger.record("S1", "a2", r.grace_days_used)
    for _ in range(3):                                          # graded again, and again
        again = assess(POLICY, late_by(days=4), "csv", ledger.left("S1", "a2", 12))
        ledger.record("S1", "a2", again.grace_days_used)
        assert (again.grace_days_used, again.penalty) == (2, 0.2)
    assert ledger.spent == {"S1": {"a1": 10, "a2": 2}}
    assert ledger.left("S1", "a3", 12) == 0                     # exhausted for the next one
    ledger.save()
    reloaded = Ledger.load(tmp_path / "grace_days.json")
    assert reloaded.spent == ledger.spent
    ledger.record("S1", "a2", 0)                                # regraded on time: days come back
    assert ledger.left("S1", "a3", 12) == 2


def test_ledger_file_problems_are_reported(tmp_path):
    bad = tmp_path / "l.json"
    bad.write_text('{"spent": {"S1": {"a1": -2}}}')
    with pytest.raises(LateError, match="whole numbers"):
        Ledger.load(bad)
    bad.write_text("{not json")
    with pytest.raises(LateError, match="not valid JSON"):
        Ledger.load(bad)


def test_policy_file(tmp_path):
    path = tmp_path / "late_policy.toml"
    path.write_text("per_day_penalty = 0.15\ngrace_days_total = 10\ngrace_days_max_per_assignment = 5\n"
                    "[deadlines]\na1 = 2019-02-01T23:59:00+05:30\na2 = \"2019-03-01T23:59:00Z\"\n")
    policy = load_policy(path, "a2")
    assert policy.deadline == DEADLINE and policy.per_day_penalty == 0.15
    assert (policy.grace_days_total, policy.grace_days_max_per_assignment) == (10, 5)
    assert load_policy(path, "a1").deadline == datetime(2019, 2, 1, 18, 29, tzinfo=UTC)
    assert load_policy(path, "a2", "2019-03-05T00:00:00+00:00").deadline.day == 5    # --deadline wins
    with pytest.raises(LateError, match="no deadline for a3"):
        load_policy(path, "a3")
    assert load_policy(None, "a2") is None
    naive = load_policy(None, "a2", "2019-03-01T23:59:00")                        # local time
    assert naive.deadline == datetime(2019, 3, 1, 23, 59).astimezone()


@pytest.mark.parametrize("text, message", [
    ("deadline = 2019-03-01T23:59:00Z\ngrace_days = 3\n", "unknown key"),
    ("deadline = 2019-03-01T23:59:00Z\nper_day_penalty = 10\n", "fraction"),
    ("deadline = 2019-03-01T23:59:00Z\ngrace_days_total = -1\n", "non-negative"),
    ("deadline = \"next friday\"\n", "ISO-8601"),
    ("deadline = [\n", "not valid TOML"),
])
def test_policy_mistakes_are_reported(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(LateError, match=message):
        load_policy(path, "a2")


def test_submission_times_csv(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("\ufeffStudent,Submitted_At,email\nS1,2019-03-02T10:00:00Z,x@y\nS2,2019-03-01 20:00:00+00:00,\n")
    times = read_submission_times(path)
    assert times["S1"] == datetime(2019, 3, 2, 10, tzinfo=UTC) and times["S2"].hour == 20
    path.write_text("student,submitted_at\nS1,yesterday\n")
    with pytest.raises(LateError, match="line 2"):
        read_submission_times(path)
    path.write_text("name,time\n")
    with pytest.raises(LateError, match="student,submitted_at"):
        read_submission_times(path)


# --------------------------------------------------------------------------------------------------
# Through the real command line
# --------------------------------------------------------------------------------------------------

def test_batch_applies_the_policy_with_the_ledger_and_regrading_does_not_spend_twice(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "late_policy.toml").write_text("[deadlines]\na2 = 2019-03-01T23:59:00Z\n")
    (course / "grace_days.json").write_text(json.dumps({"spent": {"CS17BTECH11004": {"a1": 12},
                                                                  "CS17BTECH11005": {"a1": 3}}}))
    cls = tmp_path / "class"
    for i in range(1, 7):                    # empty archives: status error at once, late all the same
        write_zip(cls / f"CS17BTECH1100{i}_Assign2.zip", {})
    # CS17BTECH11006 is not in the CSV: its archive's time (1.5 days late) is used
    stamp = (DEADLINE + timedelta(days=1.5)).timestamp()
    os.utime(cls / "CS17BTECH11006_Assign2.zip", (stamp, stamp))
    times = tmp_path / "times.csv"
    times.write_text("student,submitted_at\n"
                     "CS17BTECH11001,2019-03-01T22:00:00Z\n"               # on time
                     "CS17BTECH11002,2019-03-03T12:00:00Z\n"               # 2 days: grace
                     "CS17BTECH11003,2019-03-10T23:59:00Z\n"               # 9 days: 7 grace + 2 -> 20%
                     "CS17BTECH11004_Assign2.zip,2019-03-02T23:00:00Z\n"   # 1 day, no grace left -> 10%
                     "CS17BTECH11005,2019-03-06T00:00:00Z\n"               # 5 days, 9 left
                     "NOBODY,2019-03-02T00:00:00Z\n")
    args = [cls, "--out", tmp_path / "out", "--late-policy", course / "late_policy.toml",
            "--submitted-at", times]
    first = run_batch(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = grades(tmp_path / "out")
    got = {s: (r["late_days"], r["grace_days_used"], r["penalty"]) for s, r in rows.items()}
    assert got == {"CS17BTECH11001": ("0", "0", "0"), "CS17BTECH11002": ("2", "2", "0"),
                   "CS17BTECH11003": ("9", "7", "0.2"), "CS17BTECH11004": ("1", "0", "0.1"),
                   "CS17BTECH11005": ("5", "5", "0"), "CS17BTECH11006": ("2", "2", "0")}
    assert "NOBODY" in first.stdout                            # a CSV name that matches nobody: warned
    ledger = json.loads((course / "grace_days.json").read_text())
    assert ledger["spent"] == {"CS17BTECH11002": {"a2": 2}, "CS17BTECH11003": {"a2": 7},
                               "CS17BTECH11004": {"a1": 12}, "CS17BTECH11005": {"a1": 3, "a2": 5},
                               "CS17BTECH11006": {"a2": 2}}
    feedback = (tmp_path / "out" / "CS17BTECH11003" / "feedback.md").read_text()
    assert "9 day(s) late" in feedback and "7 grace day(s) used" in feedback and "20% deducted" in feedback
    assert "the archive's time" in (tmp_path / "out" / "CS17BTECH11006" / "feedback.md").read_text()

    before = (tmp_path / "out" / "grades.csv").read_text()
    again = run_batch(*args, "--force")                        # re-grading the same assignment
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already graded" not in again.stderr
    assert json.loads((course / "grace_days.json").read_text()) == ledger
    assert (tmp_path / "out" / "grades.csv").read_text() == before


def test_a_bad_policy_stops_the_batch_before_grading(tmp_path):
    cls = tmp_path / "class"
    write_zip(cls / "S1.zip", {})
    bad = tmp_path / "policy.toml"
    bad.write_text("deadline = 2019-03-01T23:59:00Z\ngrace_day_total = 3\n")
    proc = run_batch(cls, "--out", tmp_path / "out", "--late-policy", bad)
    assert proc.returncode == 2 and "unknown key(s) grace_day_total" in proc.stderr
    assert not (tmp_path / "out").exists()
