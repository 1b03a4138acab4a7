"""Find the file that plays each role of an assignment in a submission: a search over every file.

The roles are data (`grader.intake.roles.Role`), given by the caller from the assignment's pack; nothing
here knows any assignment. For each role, the candidates are every file that defines the role's API
(its classes, functions or function aliases, found by `grader.intake.fingerprint` in scripts and notebooks
alike, whatever the file is called) and every file named for the role. Names are compared
case-insensitively after removing everything but letters and digits, so `Two_Layer_Net.py`,
`two-layer-net.py` and `TWOLAYERNET.ipynb` are the same name. A name is one of four levels:

  0 exact name      the stem is one of the role's preferred stems (`Role.stems`), with one of its suffixes
  1 copy of it      the exact name plus a copy suffix: `Model (1).ipynb`, `model - Copy.py`
  2 keyword         the name matches one of the role's keywords (`Role.keywords`; roles with a lower
                    `keyword_rank` are tried first)
  3 content only    the name says nothing; the file defines the role's API

The choice is deterministic, by the first rule that separates two candidates:
  1. a file that defines the role's API beats one that does not;
  2. the more of the role's graded parts (`Role.graded_parts`) holding the student's own code, the
     better: a part is the student's when it is neither a placeholder (`pass`, `raise
     NotImplementedError`, an empty "YOUR CODE GOES HERE") nor identical to the course's starter
     (`Role.starters`). This is a static proxy for "the candidate that earns most": grading every
     candidate would multiply a submission's probes, and a part that is still the starter's earns
     nothing, while a part the student wrote usually earns something;
  3. a file that is none of the course's starters beats an unchanged starter;
  4. lower name level (an exact name beats a copy, a copy beats a keyword, a keyword beats none);
  5. the shallower path (fewer folders deep);
  6. the more recently modified (as recorded in the archive);
  7. .py before .ipynb;
  8. alphabetical order of the path.
A note names the chosen file (and, where the choice turned on it, the parts it was chosen for) and,
for each other candidate, the rule that set it aside.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake import fingerprint
from grader.intake.roles import CODE, Role, Starter

CODE_SUFFIXES = (".py", ".ipynb")

# `Model (1)`, `model - Copy`, `model_copy2`, `Copy of model`
_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|[\s_-]*-?\s*copy(\s*\(?\d*\)?)?)+$", re.IGNORECASE)
_COPY_PREFIX = re.compile(r"^copy\s+of\s+", re.IGNORECASE)
_CONTENT_BYTES = 8 * 2**20                   # how much of a file is searched for the API
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
    role: Role
    level: int                   # 0 exact .. 3 content only (see the module docstring)
    defines: bool                # defines the role's API
    own: tuple[str, ...] = ()    # the graded parts it implements with the student's own code (def names)
    starter: Starter | None = None   # the course starter it is an unchanged copy of
    api_found: tuple[str, ...] = ()  # the definitions that identify the role, as found

    def sort_key(self) -> tuple:
        e = self.entry
        return (not self.defines, -len(self.own), self.starter is not None, self.level, e.depth,
                -e.mtime, CODE_SUFFIXES.index(e.suffix) if e.suffix in CODE_SUFFIXES else 9,
                e.name.casefold(), e.name)


@dataclass
class Location:
    chosen: dict[str, FileEntry] = field(default_factory=dict)          # role name -> file
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)  # role name -> sorted, chosen first
    notes: list[str] = field(default_factory=list)


def normalise(stem: str) -> str:
    return re.sub(r"[^a-z0-9]", "", stem.lower())


def role_of_name(name: str, roles: tuple[Role, ...]) -> tuple[str, int] | None:
    """(role name, level 0-2) for a file name, or None when the name says nothing about a role."""
    path = Path(name.replace("\\", "/"))
    suffix = path.suffix.lower()
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    fitting = [r for r in roles if suffix in r.suffixes]
    if not fitting:
        return None
    norm = normalise(stem)
    uncopied = normalise(_COPY_PREFIX.sub("", _COPY_SUFFIX.sub("", stem)))
    for role in fitting:
        if norm in role.stems:
            return role.name, 0
    for role in fitting:
        if uncopied in role.stems:
            return role.name, 1
    for role in sorted(fitting, key=lambda r: r.keyword_rank):   # stable: the pack's order otherwise
        if any(re.search(k, norm) for k in role.keywords):
            return role.name, 2
    return None


def _text(entry: FileEntry, cache: dict[Path, str]) -> str:
    if entry.path not in cache:
        try:
            with open(entry.path, "rb") as f:
                cache[entry.path] = f.read(_CONTENT_BYTES).decode("utf-8", errors="replace")
        except OSError:
            cache[entry.path] = ""
    return cache[entry.path]


def _definitions(entry: FileEntry, cache: dict) -> list[fingerprint.Definition]:
    key = ("defs", entry.path)
    if key not in cache:
        try:
            data = entry.path.read_bytes()[:_CONTENT_BYTES]
            cache[key] = fingerprint.definitions(fingerprint.module_text(data, entry.name))
        except Exception:  # noqa: BLE001 - an unreadable file defines nothing; intake reports it
            cache[key] = []
    return cache[key]


def _examine(entry: FileEntry, role: Role, level: int | None, texts: dict, defs_cache: dict) -> Candidate | None:
    """The candidate `entry` makes for `role`, or None when it is neither named for it nor defines it."""
    pattern = role.api_pattern
    if role.kind != CODE or pattern is None:
        return Candidate(entry, role, level, True) if level is not None else None
    if not pattern.search(_text(entry, texts)):
        return Candidate(entry, role, level, False) if level is not None else None
    defs = _definitions(entry, defs_cache)
    defines = any(role.identifies(d.name) for d in defs) or not defs   # unparsed: trust the text
    if level is None and not defines:
        return None
    own = own_parts(defs, role)
    starter = None if own else starter_of(defs, role)
    found = tuple(dict.fromkeys(d.name for d in defs if role.identifies(d.name)))
    return Candidate(entry, role, 3 if level is None else level, defines, own, starter, found)


def _is_own(d: fingerprint.Definition, role: Role) -> bool:
    return not d.placeholder and not any(d.digest in s.given for s in role.starters)


def own_parts(defs: list[fingerprint.Definition], role: Role) -> tuple[str, ...]:
    """For each graded part of `role`, the first definition that implements it with the student's own
    code (a def, or a class with at least one such method); the names, in the parts' order."""
    found = []
    for part in role.graded_parts:
        for d in defs:
            if not any(re.fullmatch(p, d.name) for p in part):
                continue
            if d.kind == "def" and _is_own(d, role):
                found.append(d.qualname)
                break
            if d.kind == "class" and any(m.kind == "def" and m.qualname.startswith(d.qualname + ".")
                                         and _is_own(m, role) for m in defs):
                found.append(d.qualname)
                break
    return tuple(found)


def starter_of(defs: list[fingerprint.Definition], role: Role) -> Starter | None:
    """The course starter that a file with no code of the student's own is a copy of, if any."""
    digests = {d.digest for d in defs}
    best, best_n = None, 0
    for s in role.starters:
        n = len(digests & s.given)
        if n >= min(2, len(s.given)) and n > best_n:
            best, best_n = s, n
    return best


def locate(entries: list[FileEntry], roles: tuple[Role, ...]) -> Location:
    """Choose one file per role among `entries` (the submission's files) and explain the choice."""
    texts: dict[Path, str] = {}
    defs_cache: dict = {}
    named = {e.path: role_of_name(e.name, roles) for e in entries}
    location = Location()
    for role in roles:
        candidates = []
        for entry in entries:
            if entry.suffix not in role.suffixes:
                continue
            found = named[entry.path]
            level = found[1] if found and found[0] == role.name else None
            candidate = _examine(entry, role, level, texts, defs_cache)
            if candidate is not None:
                candidates.append(candidate)
        candidates.sort(key=Candidate.sort_key)
        location.candidates[role.name] = candidates
        if not candidates:
            location.notes.append(f"{role.name}: no file found (looked for {role.expected})")
            continue
        best = candidates[0]
        location.chosen[role.name] = best.entry
        location.notes.append(_choice_note(best, candidates[1:]))
    return location


def _choice_note(best: Candidate, others: list[Candidate]) -> str:
    why = _LEVEL_WORDS[best.level]
    if best.level == 3:
        aliased = [n for n in best.api_found if n not in best.role.api]   # found under another name
        why += " " + (", ".join(best.api_found[:4]) if aliased else best.role.api_label)
    note = f"{best.role.name}: using {best.entry.name} ({why})"
    decisive = [c for c in others if c.defines and (len(c.own) != len(best.own)
                                                    or (c.starter is None) != (best.starter is None))]
    if best.starter is not None and best.starter.todo:
        note += f"; it is {best.starter.name}, unchanged: no code of the student's own was found"
    elif decisive and best.own:
        note += f"; chosen for the student's own code in {', '.join(best.own)}"
    if others:
        shown = [f"{c.entry.name} ({_set_aside(best, c)})" for c in others[:8]]
        more = f" and {len(others) - 8} more" if len(others) > 8 else ""
        note += "; ignored " + ", ".join(shown) + more
    return note


def _set_aside(best: Candidate, other: Candidate) -> str:
    """The first rule of the choice that put `other` after `best`, in words."""
    b, o = best.entry, other.entry
    if other.defines != best.defines:
        return f"it does not define {best.role.api_label}"
    if len(other.own) != len(best.own):
        if other.starter is not None:
            return f"{other.starter.name}, unchanged"
        mine = ", ".join(other.own) if other.own else "none"
        return (f"less of the student's own code in the graded parts: {mine}, against "
                f"{', '.join(best.own)}")
    if (other.starter is None) != (best.starter is None):
        return f"{other.starter.name}, unchanged"
    if other.level != best.level:
        return "its name is a less exact match"
    if o.depth != b.depth:
        return "it is in a deeper folder"
    if o.mtime != b.mtime:
        return "it is older"
    if o.suffix != b.suffix:
        return ".py is preferred to .ipynb"
    return "alphabetical order"
