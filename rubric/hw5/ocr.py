"""q4.4 for the TA's note: run_q4.py on one synthetic page, and the text it printed against the truth.

run_q4 needs `q3_weights.pickle`. The engine builds every probe of a plan before any runs, so the
student's own trained weights (run_q3's answer) cannot feed run_q4's probe; and a pickle written in
the worker is never trusted outside it. So run_q4 gets the reference's trained weights: the ones
its run_q3 saved when gold was built (derive.py keeps them as derived arrays), pickled here on the
trusted side as q3_weights.pickle under the handout's names (Wlayer1, blayer1, Woutput, boutput).
The note then judges the student's findLetters, line grouping, cropping and classification, not
their training; it says so.

The text is what the script prints: the lines made only of capital letters and digits (spaces,
brackets, quotes and commas aside), which leaves out file names, counts and messages.
"""
from __future__ import annotations

import pickle
import re

import numpy as np

from . import judge, measure

PAGE = "page_0.png"                   # the synthetic page, at ../images/ where run_q4 lists it
WEIGHTS = "q3_weights.pickle"
STDOUT = 20000                        # characters of what run_q4 prints that come back
DERIVED = "q4_weights/"               # gold's derived arrays: the reference's trained weights
_JUNK = re.compile(r"[\s\[\]'\",()]+")
_TEXT = re.compile(r"^[A-Z0-9]+$")


def weights_derived(answer) -> dict:
    """Gold's derived arrays `q4_weights/<name>`: the weights the reference's run_q3 saved (a
    ScriptAnswer of gold's run_q3 probe), {} when it saved none."""
    w = measure.q3_weights(answer) or {}
    return {f"{DERIVED}{k}": np.asarray(v) for k, v in w.items() if isinstance(v, np.ndarray)}


def weights_pickle(inputs) -> np.ndarray | None:
    """q3_weights.pickle's bytes, made here on the trusted side from the reference's weights (gold's
    derived arrays, which a note group's inputs hold as `derived/q4_weights/<name>`); unpickled by
    the student's script in the worker. None when gold has none."""
    prefix = "derived/" + DERIVED
    w = {k[len(prefix):]: np.asarray(inputs.arrays[k]) for k in list(inputs.arrays) if k.startswith(prefix)}
    return np.frombuffer(pickle.dumps(w, protocol=4), dtype=np.uint8).copy() if w else None


def text_lines(printed: str) -> list[str]:
    """The lines of what run_q4 printed that read as extracted text (capital letters and digits)."""
    found = []
    for line in printed.splitlines():
        text = _JUNK.sub("", line)
        if text and _TEXT.match(text):
            found.append(text)
    return found


def note(result, truth_lines: list[str]) -> str:
    """The TA's note on q4.4 from the run_q4 probe's raw result."""
    given = (f"It was given the reference's trained network as {WEIGHTS}, not the one run_q3.py trained, "
             f"so this judges findLetters, the line grouping, cropping and classification, not the training.")
    if result is None:
        return "run_q4.py was not run (no run_q4 probe in this grading)."
    facts = result.meta if isinstance(result.meta, dict) else {}
    if not result.ok:
        return f"run_q4.py could not be run on a synthetic page: {str(result.error or 'it failed')[:300]}"
    printed = facts.get("stdout") if isinstance(facts.get("stdout"), str) else ""
    lines = text_lines(printed)
    head = f"run_q4.py on one synthetic page ({PAGE}, {len(truth_lines)} lines). {given}"
    failed = f" It stopped early: {str(facts['error'])[:300]}" if facts.get("error") else ""
    if not lines:
        shown = printed.strip()[:300] or "nothing"
        return f"{head}{failed}\nIt printed no line of capital letters and digits (it printed: {shown})."
    score = judge.text_score(lines, truth_lines)
    return (f"{head}{failed}\nExtracted: {' / '.join(lines)[:600]}\nTruth:     {' / '.join(truth_lines)}\n"
            f"{score.message}.")
