"""Find the file that plays each role (colourization, regression, rnn, answers) in a submission.

Names are compared case-insensitively after removing everything but letters and digits, so
`Colourization.py`, `colour-ization.py` and `COLORIZATION.ipynb` are the same name; British and
American spellings (and -isation) are all accepted. A file can be a candidate at four levels:

  0 exact name      colourization / colorization / colourisation . py|ipynb
                    colour_regression / color_regression . py|ipynb
                    min-char-rnn / min_char_rnn . py|ipynb            answers.toml
  1 copy of it      the exact name plus a copy suffix: `Colourization (1).ipynb`, `colourization - Copy.py`
  2 keyword         the name contains the keyword: `a2_colourization.py` (colouri[sz]ation),
                    `colour_regression_v2.py` (regression), `char_rnn.py` (char…rnn), `rnn_temp.py`
                    (starts with rnn), `my_answers.toml` (answer)
  3 content only    no file is named for the role, but a .py/.ipynb defines the role's key names
                    (`class CNN`/`class UNet`, `class RegressionCNN`, `def lossFun`)

When several candidates exist the choice is deterministic, by the first rule that separates them:
  1. lower level (an exact name beats a copy, a copy beats a keyword match);
  2. a file that defines the role's key names beats one that does not;
  3. the shallower path (fewer folders deep);
  4. the more recently modified (as recorded in the archive);
  5. .py before .ipynb;
  6. alphabetical order of the path.
A note names the chosen file and, for each other candidate, the rule that set it aside.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.records import ROLE_COLOURIZATION, ROLE_REGRESSION, ROLE_RNN

ROLE_ANSWERS = "answers"
CODE_ROLES = (ROLE_COLOURIZATION, ROLE_REGRESSION, ROLE_RNN)
ROLES = CODE_ROLES + (ROLE_ANSWERS,)
CODE_SUFFIXES = (".py", ".ipynb")

# What each role looks for, in words, for the notes and error messages.
EXPECTED = {
    ROLE_COLOURIZATION: "colourization.py/.ipynb (or colorization)",
    ROLE_REGRESSION: "colour_regression.py/.ipynb (or color_regression)",
    ROLE_RNN: "min-char-rnn.py (or min_char_rnn, *char*rnn*, rnn*; .py/.ipynb)",
    ROLE_ANSWERS: "answers.toml",
}
_EXACT = {
    ROLE_COLOURIZATION: {"colourization", "colorization", "colourisation", "colorisation"},
    ROLE_REGRESSION: {"colourregression", "colorregression"},
    ROLE_RNN: {"mincharrnn"},
    ROLE_ANSWERS: {"answers"},
}
_KEY_NAMES = {
    ROLE_COLOURIZATION: (re.compile(r"\bclass\s+(CNN|UNet)\b"), "CNN/UNet"),
    ROLE_REGRESSION: (re.compile(r"\bclass\s+RegressionCNN\b"), "RegressionCNN"),
    ROLE_RNN: (re.compile(r"\bdef\s+lossFun\b"), "lossFun"),
}
# `Colourization (1)`, `colourization - Copy`, `colourization_copy2`, `Copy of colourization`
_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|[\s_-]*-?\s*copy(\s*\(?\d*\)?)?)+$", re.IGNORECASE)
_COPY_PREFIX = re.compile(r"^copy\s+of\s+", re.IGNORECASE)
_CONTENT_BYTES = 8 * 2**20                   # how much of a file is searched for the key names
_LEVEL_WORDS = {0: "exact name", 1: "the expected name with a copy suffix",
                2: "name contains the role's keyword", 3: "no file has the expected name; it defines"}


@dataclass(frozen=True)
class FileEntry:
    path: Path                   # where the file is on disk (inside the unpacked copy)
    name: str                    # its path inside the submission, '/'-separated, as the student knows it
    mtime: float = 0.0           # modification time recorded in the archive or folder

    @property
    def depth(self) -> int:
        return self.name.count("/")

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()


@dataclass
class Candidate:
    entry: FileEntry
    role: str
    level: int                   # 0 exact .. 3 content only (see the module docstring)
    defines: bool                # defines the role's key names

    def sort_key(self) -> tuple:
        e = self.entry
        return (self.level, not self.defines, e.depth, -e.mtime,
                CODE_SUFFIXES.index(e.suffix) if e.suffix in CODE_SUFFIXES else 9,
                e.name.casefold(), e.name)


@dataclass
class Location:
    chosen: dict[str, FileEntry] = field(default_factory=dict)          # role -> file
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)  # role -> sorted, chosen first
    notes: list[str] = field(default_factory=list)


def normalise(stem: str) -> str:
    return re.sub(r"[^a-z0-9]", "", stem.lower())


def role_of_name(name: str) -> tuple[str, int] | None:
    """(role, level 0-2) for a file name, or None when the name says nothing about a role."""
    path = Path(name.replace("\\", "/"))
    suffix = path.suffix.lower()
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if suffix == ".toml":
        roles = [ROLE_ANSWERS]
    elif suffix in CODE_SUFFIXES:
        roles = list(CODE_ROLES)
    else:
        return None
    norm = normalise(stem)
    uncopied = normalise(_COPY_PREFIX.sub("", _COPY_SUFFIX.sub("", stem)))
    for role in roles:
        if norm in _EXACT[role]:
            return role, 0
    for role in roles:
        if uncopied in _EXACT[role]:
            return role, 1
    if suffix == ".toml":
        return (ROLE_ANSWERS, 2) if "answer" in norm else None
    # The regression keyword is tested first: `colorization_regression.py` is the regression file.
    if "regression" in norm:
        return ROLE_REGRESSION, 2
    if re.search(r"colou?ri[sz]ation", norm):
        return ROLE_COLOURIZATION, 2
    if re.search(r"char.*rnn", norm) or norm.startswith("rnn"):
        return ROLE_RNN, 2
    return None


def _defines(entry: FileEntry, role: str, cache: dict[Path, str]) -> bool:
    if role not in _KEY_NAMES:
        return True
    if entry.path not in cache:
        try:
            with open(entry.path, "rb") as f:
                cache[entry.path] = f.read(_CONTENT_BYTES).decode("utf-8", errors="replace")
        except OSError:
            cache[entry.path] = ""
    return bool(_KEY_NAMES[role][0].search(cache[entry.path]))


def locate(entries: list[FileEntry]) -> Location:
    """Choose one file per role among `entries` (the submission's files) and explain the choice."""
    cache: dict[Path, str] = {}
    by_role: dict[str, list[Candidate]] = {role: [] for role in ROLES}
    for entry in entries:
        found = role_of_name(entry.name)
        if found:
            role, level = found
            by_role[role].append(Candidate(entry, role, level, _defines(entry, role, cache)))
    for role in CODE_ROLES:                      # level 3: only when nothing is named for the role
        if not by_role[role]:
            by_role[role] = [Candidate(e, role, 3, True) for e in entries
                             if e.suffix in CODE_SUFFIXES and _defines(e, role, cache)]

    location = Location()
    for role in ROLES:
        candidates = sorted(by_role[role], key=Candidate.sort_key)
        location.candidates[role] = candidates
        if not candidates:
            location.notes.append(f"{role}: no file found (looked for {EXPECTED[role]})")
            continue
        best = candidates[0]
        location.chosen[role] = best.entry
        location.notes.append(_choice_note(role, best, candidates[1:]))
    return location


def _choice_note(role: str, best: Candidate, others: list[Candidate]) -> str:
    why = _LEVEL_WORDS[best.level]
    if best.level == 3:
        why += f" {_KEY_NAMES[role][1]}"
    note = f"{role}: using {best.entry.name} ({why})"
    if others:
        shown = [f"{c.entry.name} ({_set_aside(best, c)})" for c in others[:8]]
        more = f" and {len(others) - 8} more" if len(others) > 8 else ""
        note += "; ignored " + ", ".join(shown) + more
    return note


def _set_aside(best: Candidate, other: Candidate) -> str:
    """The first rule of the choice that put `other` after `best`, in words."""
    b, o = best.entry, other.entry
    if other.level != best.level:
        return "its name is a less exact match"
    if other.defines != best.defines:
        return f"it does not define {_KEY_NAMES[best.role][1]}"
    if o.depth != b.depth:
        return "it is in a deeper folder"
    if o.mtime != b.mtime:
        return "it is older"
    if o.suffix != b.suffix:
        return ".py is preferred to .ipynb"
    return "alphabetical order"
