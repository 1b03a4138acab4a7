"""q4a and r3: the written answers that have one right value, read from answers.toml."""
from __future__ import annotations

import re

from conftest import expect


def _resolution(value) -> str:
    """'8x8', '8 x 8', '8×8', 8 or [8, 8] -> '8x8'."""
    if isinstance(value, int):
        return f"{value}x{value}"
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    nums = re.findall(r"\d+", str(value))
    if len(nums) == 1:
        return f"{nums[0]}x{nums[0]}"
    return "x".join(nums[:2]) if len(nums) >= 2 else str(value)


def test_q4a_resolution(run):
    """[q4a] gives the super-resolution input's and output's resolution."""
    answers = run.answers_file().get("q4a")
    expect(isinstance(answers, dict), "answers.toml has no [q4a] section with input_resolution "
                                      "and output_resolution")
    want = run.gold.derived_meta["sr_resolution"]
    for field in ("input", "output"):
        key = f"{field}_resolution"
        expect(key in answers, f"[q4a] has no {key}")
        expect(_resolution(answers[key]) == want[field],
               f"[q4a] {key} = {answers[key]!r} is not right: think about what two 2x average-poolings "
               f"and two 2x upsamplings do to a 32x32 image" if field == "input" else
               f"[q4a] {key} = {answers[key]!r} is not right")


def _entries(section: dict, key: str):
    value = section.get(key, [])
    if value and isinstance(value[0], int):
        value = [value]
    try:
        return {(int(r), int(c)) for r, c in value}
    except (TypeError, ValueError):
        expect(False, f"[r3] {key} must be a list of [row, column] pairs, e.g. [[12, 3]]")


def _r3(run):
    """The [r3] section, the student's hidden unit and the snapshot's character indices. The unit
    itself is judged by test_r3_unit_and_wxh only: the Why checks read the weights of the unit the
    student named, so a wrong unit is charged once."""
    section = run.answers_file().get("r3")
    expect(isinstance(section, dict), "answers.toml has no [r3] section")
    ix = run.gold.derived_meta["colon_ix"]
    unit = section.get("hidden_unit")
    expect(isinstance(unit, int), "[r3] hidden_unit must be an integer (the index of a hidden unit)")
    return section, unit, ix


def test_r3_unit_and_wxh(run):
    """The hidden unit that drives the character after ':', and its input weight from ':'."""
    section, unit, ix = _r3(run)
    colon = run.gold.derived_meta["colon"]
    expect(unit == colon["unit"], f"[r3] hidden_unit = {unit} is not the unit that drives the character "
                                  f"after ':' in this snapshot")
    expect((unit, ix[":"]) in _entries(section, "Wxh"),
           f"[r3] Wxh does not list the input weight from ':' to hidden unit {unit}")


def test_r3_why_newline(run):
    """Why_newline lists the output weight from the named unit to '\\n' ([row, column] = [index, unit])."""
    section, unit, ix = _r3(run)
    expect((ix["\n"], unit) in _entries(section, "Why_newline"),
           f"[r3] Why_newline does not list the output weight from unit {unit} to '\\n'")


def test_r3_why_space(run):
    """Why_space lists the output weight from the named unit to ' '."""
    section, unit, ix = _r3(run)
    expect((ix[" "], unit) in _entries(section, "Why_space"),
           f"[r3] Why_space does not list the output weight from unit {unit} to ' '")
