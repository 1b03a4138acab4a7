"""Zip safety, one policy for every archive the grader opens (a student's submission in intake, a
class archive in batch): which members are refused before anything is extracted, and when a
member's declared size makes it a zip bomb. The callers word the messages for their readers.

Refused: an absolute path (`/etc/x`, `C:\\x`), a path that leaves the archive (`..`), a symbolic
link, an encrypted member. A member larger than `floor` bytes that expands more than `max_ratio`
times its compressed size is a bomb. The callers check sizes again on the bytes actually
read (a central directory can lie).
"""
from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass

ABSOLUTE, LEAVES, SYMLINK, ENCRYPTED = "absolute", "leaves", "symlink", "encrypted"


@dataclass(frozen=True)
class Problem:
    kind: str                   # ABSOLUTE | LEAVES | SYMLINK | ENCRYPTED


def member_parts(name: str) -> list[str]:
    """A member's path parts ('/' or '\\' separated; empty and '.' parts dropped)."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def member_problem(info: zipfile.ZipInfo, name: str | None = None) -> Problem | None:
    """Why this member must not be extracted, or None. `name`: the member's decoded name."""
    name = info.filename if name is None else name
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        return Problem(ABSOLUTE)
    if ".." in member_parts(name):
        return Problem(LEAVES)
    if stat.S_ISLNK(info.external_attr >> 16):
        return Problem(SYMLINK)
    if info.flag_bits & 0x1:
        return Problem(ENCRYPTED)
    return None


def expansion(info: zipfile.ZipInfo, max_ratio: float, floor: int) -> float | None:
    """The member's expansion ratio if it makes it a zip bomb, else None."""
    size = info.file_size
    ratio = size / max(info.compress_size, 1)
    return ratio if size > floor and ratio > max_ratio else None
