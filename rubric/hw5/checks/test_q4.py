"""q4.2: findLetters on synthetic pages (true boxes), a page at phone-photo size, the course photos.

Thin wrappers: each check asserts its verdict from rubric/hw5/verdicts.py (the logic of the
item, over judge.py), whose message is the student's feedback."""
from __future__ import annotations

from conftest import expect

from rubric.hw5 import verdicts


def _check(run, name):
    v = verdicts.function_verdicts(run)[f"test_q4.py::{name}"]
    expect(v.ok, v.message)


def test_findletters_recall(run):
    _check(run, "test_findletters_recall")


def test_findletters_precision(run):
    _check(run, "test_findletters_precision")


def test_findletters_bw(run):
    _check(run, "test_findletters_bw")


def test_findletters_photo_scale(run):
    _check(run, "test_findletters_photo_scale")


def test_findletters_course_photos(run):
    _check(run, "test_findletters_course_photos")
