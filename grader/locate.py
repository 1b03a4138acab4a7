"""Find the file that plays each role of an assignment in a submission.

The roles are data (`grader.roles.Role`), given by the caller from the assignment's pack; nothing
here knows any assignment. Names are compared case-insensitively after removing everything but
letters and digits, so `Colourization.py`, `colour-ization.py` and `COLOURIZATION.ipynb` are the same
name. A file can be a candidate at four levels:

  0 exact name      the stem is one of the role's preferred stems (`Role.stems`), with one of its suffixes
  1 copy of it      the exact name plus a copy suffix: `Colourization (1).ipynb`, `colourization - Copy.py`
  2 keyword         the name matches one of the role's keywords (`Role.keywords`; roles with a lower
                    `keyword_rank` are tried first)
  3 content only    no file is named for the role, but a code file defines the role's API
                    (`Role.classes`, `Role.functions`)

When several candidates exist the choice is deterministic, by the first rule that separates them:
  1. lower level (an exact name beats a copy, a copy beats a keyword match);
  2. a file that defines the role's API beats one that does not;
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

from grader.roles import CODE, Role

CODE_SUFFIXES = (".py", ".ipynb")

# `Colourization (1)`, `colourization - Copy`, `colourization_copy2`, `Copy of colourization`
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

    def sort_key(self) -> tuple:
        e = self.entry
        return (self.level, not self.defines, e.depth, -e.mtime,
                CODE_SUFFIXES.index(e.suffix) if e.suffix in CODE_SUFFIXES else 9,
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


def _defines(entry: FileEntry, role: Role, cache: dict[Path, str]) -> bool:
    pattern = role.api_pattern
    if role.kind != CODE or pattern is None:
        return True
    if entry.path not in cache:
        try:
            with open(entry.path, "rb") as f:
                cache[entry.path] = f.read(_CONTENT_BYTES).decode("utf-8", errors="replace")
        except OSError:
            cache[entry.path] = ""
    return bool(pattern.search(cache[entry.path]))


def locate(entries: list[FileEntry], roles: tuple[Role, ...]) -> Location:
    """Choose one file per role among `entries` (the submission's files) and explain the choice."""
    cache: dict[Path, str] = {}
    by_name = {role.name: role for role in roles}
    by_role: dict[str, list[Candidate]] = {role.name: [] for role in roles}
    for entry in entries:
        found = role_of_name(entry.name, roles)
        if found:
            name, level = found
            role = by_name[name]
            by_role[name].append(Candidate(entry, role, level, _defines(entry, role, cache)))
    for role in roles:                           # level 3: only when nothing is named for the role
        if role.kind == CODE and role.api and not by_role[role.name]:
            by_role[role.name] = [Candidate(e, role, 3, True) for e in entries
                                  if e.suffix in role.suffixes and _defines(e, role, cache)]

    location = Location()
    for role in roles:
        candidates = sorted(by_role[role.name], key=Candidate.sort_key)
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
        why += f" {best.role.api_label}"
    note = f"{best.role.name}: using {best.entry.name} ({why})"
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
        return f"it does not define {best.role.api_label}"
    if o.depth != b.depth:
        return "it is in a deeper folder"
    if o.mtime != b.mtime:
        return "it is older"
    if o.suffix != b.suffix:
        return ".py is preferred to .ipynb"
    return "alphabetical order"
