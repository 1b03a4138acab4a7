"""Zip safety, one policy for every archive the grader opens (a student's submission in intake, a
class archive in batch): which members are refused before anything is extracted, and when a
member's declared size makes it a zip bomb. The callers word the messages for their readers.

Refused: an absolute path (`/etc/x`, `C:\\x`), a path that leaves the archive (`..`), a symbolic
link, an encrypted member. A member larger than `floor` bytes that expands more than `max_ratio`
times its compressed size is a bomb. The callers check sizes again on the bytes actually
read (a central directory can lie).

Names: how a member's name is decoded (`entry_name`), made safe on disk (`disk_name`), shown in a
message (`printable`), and which members are litter left out (`is_junk`).
"""
from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

ABSOLUTE, LEAVES, SYMLINK, ENCRYPTED = "absolute", "leaves", "symlink", "encrypted"
# Folders and files that operating systems and tools add; never the student's work.
JUNK_PARTS = {"__macosx", "__pycache__", ".ipynb_checkpoints", ".git", ".svn", ".idea", ".vscode"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


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


# ------------------------------------------------------------------------------ names

def entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name: UTF-8 when flagged; else try UTF-8 (macOS, 7-Zip), else keep cp437.

    zipfile decodes unflagged names as cp437, which maps every byte, so the original bytes can be
    recovered and tried as UTF-8. Names in other code pages (cp1252, cp866, GBK) stay readable-ish
    and are made safe by `disk_name`.
    """
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def disk_name(part: str) -> str:
    """A safe file name for one part of a member's path (or a student's entry name)."""
    name = re.sub(r"[^\w.() +,@=-]", "_", part).strip() or "_"
    if name.startswith("."):
        name = "_" + name
    if len(name.encode()) > 120:                           # file systems stop at 255 bytes
        suffix = Path(name).suffix[:10]
        name = name[: 100 - len(suffix)] + suffix
        while len(name.encode()) > 120:
            name = name[:-len(suffix) - 1] + suffix
    return name


def is_junk(part: str) -> bool:
    """Litter (`__MACOSX`, `.DS_Store`, `~$` lock files, hidden files) left out, never a file to grade."""
    low = part.lower()
    return low in JUNK_PARTS or low in JUNK_FILES or low.startswith(".") or low.startswith("~$")


def printable(text: str) -> str:
    """A name as it can be shown in a message (control characters as `?`)."""
    return "".join(c if c.isprintable() else "?" for c in text)
