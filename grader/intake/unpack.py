"""Intake: turn what a student handed in into prepared modules in a workspace. Trusted side.

Student code is never run here. A submission (folder, .zip, .py or .ipynb) is unpacked into
`workspace/.raw/` under limits, the file for each role is found (`grader.intake.locate`), notebooks become
modules (`grader.intake.notebook`), every module is made import-safe (`grader.intake.sourceprep`) and written as
`workspace/<role>.py` (plus the submission's other .py files under their own names, so that sibling
imports work), the answers file is copied to `workspace/answers.toml`, and `.raw/` is removed.
Nothing is written outside the workspace.

`load_submission` returns a `Submission`; a problem that is the student's to fix (a corrupt zip, a zip
bomb, no usable file) is reported in `Submission.error`, never raised. It raises only for the
caller's mistakes (a path that does not exist, a workspace that is not empty).
"""
from __future__ import annotations

import hashlib
import keyword
import os
import re
import shutil
import stat
import sys
import threading
import time
import tomllib
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake import notebook, sourceprep, zipsafe
from grader.intake.locate import FileEntry, locate
from grader.pack import provide_files
from grader.intake.roles import CODE, DATA, SCRIPT, roles_for
from grader.records import Submission

RAW_DIR = ".raw"
ANSWERS_FILE = "answers.toml"
WANTED_SUFFIXES = {".py", ".ipynb", ".toml", ".zip"}    # everything else is listed and left out
MAX_ANSWERS_BYTES = 2**20
# Module names a student's file must not take in the workspace: they would hide Python's own
# modules (or the grader's, or the test runner's) from the worker.
_RESERVED_MODULES = set(sys.stdlib_module_names) | {
    "torch", "numpy", "np", "scipy", "matplotlib", "PIL", "sklearn", "pandas", "torchvision",
    "grader", "reference", "rubric", "tests", "pytest", "_pytest", "nbformat", "nbconvert",
    "conftest", "sitecustomize", "usercustomize", "setup", "__init__", "__main__", "answers",
}
_MAX_LISTED = 10
_MAX_SKIPPED_LISTED = 12


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on what a submission may unpack to (zip bombs, huge folders). Checked on the sizes the
    archive declares before extracting, and again on the bytes actually read while extracting."""

    max_total_bytes: int = 100 * 2**20     # all extracted files together, nested archives included
    max_file_bytes: int = 50 * 2**20       # any one extracted file
    max_files: int = 5000                  # entries of all archives (or files of a folder) together
    max_ratio: float = 100.0               # uncompressed/compressed size of one file ...
    ratio_floor_bytes: int = 2**20         # ... for files larger than this (small files may compress well)
    max_depth: int = 3                     # zips inside the zip, inside that one, ...


class IntakeError(Exception):
    """The student's fault: the message says what was expected and what was found."""


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------

def load_submission(path: Path, workspace: Path, *, student: str | None = None,
                    limits: ZipLimits = ZipLimits(), assignment: str) -> Submission:
    """Unpack, find, convert and prepare one student's submission into `workspace` (see module doc)."""
    path, workspace = Path(path), Path(workspace)
    if not path.exists():
        raise FileNotFoundError(f"no submission at {path}")
    _make_workspace(path, workspace)
    sub = Submission(student=student or student_id_from_name(path.name), source=path, workspace=workspace)
    raw = workspace / RAW_DIR
    try:
        unpacked = _Unpacker(raw, limits).unpack(path)
        sub.notes.extend(unpacked.notes())
        _prepare_all(unpacked, sub, roles_for(assignment))
        provide_files(assignment, sub)      # the course's own files (grader.pack)
    except IntakeError as exc:
        sub.error = str(exc)
        sub.modules, sub.answers = {}, None
        _clear(workspace)
    finally:
        shutil.rmtree(raw, ignore_errors=True)
    return sub


def _make_workspace(path: Path, workspace: Path) -> None:
    if workspace.exists() and (not workspace.is_dir() or any(workspace.iterdir())):
        raise ValueError(f"workspace {workspace} must not exist or be empty")
    if path.is_dir() and workspace.resolve().is_relative_to(path.resolve()):
        raise ValueError(f"workspace {workspace} must not be inside the submission folder {path}")
    workspace.mkdir(parents=True, exist_ok=True)


def _clear(workspace: Path) -> None:
    for child in workspace.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Unpacking
# --------------------------------------------------------------------------------------------------

@dataclass
class _Unpacked:
    entries: list[FileEntry] = field(default_factory=list)   # usable files, on disk in .raw/
    ignored: list[str] = field(default_factory=list)         # other files (report.pdf, ...)
    junk: list[str] = field(default_factory=list)            # __MACOSX/, .DS_Store, ...
    nested: list[str] = field(default_factory=list)          # inner archives that were opened
    duplicates: list[str] = field(default_factory=list)      # names stored twice in one archive

    def notes(self) -> list[str]:
        notes = []
        if self.nested:
            notes.append("opened the archive(s) inside the submission: " + _listing(self.nested))
        if self.duplicates:
            notes.append("the archive holds these names more than once; the later copy was used: "
                         + _listing(self.duplicates))
        if self.ignored:
            notes.append(f"left out {len(self.ignored)} file(s) that are not .py, .ipynb, .toml or "
                         f".zip: " + _listing(self.ignored))
        if self.junk:
            notes.append(f"left out {len(self.junk)} system file(s) (__MACOSX, .DS_Store, "
                         f"checkpoints, hidden files): " + _listing(self.junk))
        return notes


class _Unpacker:
    """Copies the usable files of a submission into `raw`, counting files and bytes against limits."""

    def __init__(self, raw: Path, limits: ZipLimits):
        self.raw, self.limits = raw, limits
        self.files = 0
        self.bytes = 0
        self.out = _Unpacked()

    def unpack(self, path: Path) -> _Unpacked:
        self.raw.mkdir()
        suffix = path.suffix.lower()
        if path.is_dir():
            self._folder(path, self.raw, "", 0)
        elif suffix == ".zip" or _sniff(path) == "zip":
            self._zip(path, self.raw, "", 0, path.name)
        elif suffix in WANTED_SUFFIXES:
            self._count_files(1, path.name)
            st = path.stat()
            self._check_size(st.st_size, path.name)
            target = self._new_path(self.raw, [path.name])
            self._copy_file(path, target, path.name)
            self.out.entries.append(FileEntry(target, path.name, st.st_mtime))
        else:
            kind = _sniff(path)
            found = f"a {kind} file" if kind else f"a {suffix or 'extension-less'} file"
            raise IntakeError(f"expected a .zip, .py or .ipynb file (or a folder); found {path.name}, "
                              f"{found}. Please hand in a .zip archive")
        return self.out

    # ---- limits ----------------------------------------------------------------------------------
    def _count_files(self, n: int, where: str) -> None:
        self.files += n
        if self.files > self.limits.max_files:
            raise IntakeError(f"{where}: the submission has more than {self.limits.max_files} files; "
                              f"hand in only your code and answers")

    def _check_size(self, size: int, display: str) -> None:
        if size > self.limits.max_file_bytes:
            raise IntakeError(f"{display} is {_mib(size)}; the limit for one file is "
                              f"{_mib(self.limits.max_file_bytes)}. Hand in code without large outputs")
        if self.bytes + size > self.limits.max_total_bytes:
            raise IntakeError(f"the submission unpacks to more than {_mib(self.limits.max_total_bytes)} "
                              f"(at {display}); hand in only your code and answers")

    # ---- folders ---------------------------------------------------------------------------------
    def _folder(self, folder: Path, dest: Path, prefix: str, depth: int) -> None:
        for root, dirs, files in os.walk(folder):             # does not follow symlinked folders
            here = Path(root)
            rel = here.relative_to(folder).parts
            for d in dirs:
                if (here / d).is_symlink():
                    raise IntakeError(f"the submission folder contains a symbolic link "
                                      f"({prefix + '/'.join(rel + (d,))}); hand in plain files only")
            for d in [d for d in dirs if zipsafe.is_junk(d)]:
                self.out.junk.append(prefix + "/".join(rel + (d,)) + "/")
            dirs[:] = sorted(d for d in dirs if not zipsafe.is_junk(d))
            for name in sorted(files):
                parts = list(rel) + [name]
                display = prefix + "/".join(parts)
                st = os.lstat(here / name)
                self._count_files(1, display)
                if stat.S_ISLNK(st.st_mode):
                    raise IntakeError(f"the submission folder contains a symbolic link ({display}); "
                                      f"hand in plain files only")
                if zipsafe.is_junk(name):
                    self.out.junk.append(display)
                elif not stat.S_ISREG(st.st_mode) or Path(name).suffix.lower() not in WANTED_SUFFIXES:
                    self.out.ignored.append(display)
                else:
                    self._check_size(st.st_size, display)
                    target = self._new_path(dest, parts)
                    self._copy_file(here / name, target, display)
                    self._add(target, display, st.st_mtime, depth)

    def _copy_file(self, source: Path, target: Path, display: str) -> None:
        # O_NOFOLLOW: a file swapped for a symlink after the check is not followed.
        try:
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise IntakeError(f"{display} cannot be read ({exc.strerror}); hand in plain, readable files") from None
        with os.fdopen(fd, "rb") as src, open(target, "xb") as dst:
            self._stream(src.read, dst, display, declared=None)

    def _stream(self, read, dst, display: str, declared: int | None) -> None:
        written = 0
        while chunk := read(1 << 16):
            written += len(chunk)
            if declared is not None and written > declared:
                raise IntakeError(f"{display} is larger than the archive says: the archive is "
                                  f"malformed or a zip bomb")
            self._check_size(written, display)
            dst.write(chunk)
        self.bytes += written

    # ---- zips ------------------------------------------------------------------------------------
    def _zip(self, zpath: Path, dest: Path, prefix: str, depth: int, label: str) -> None:
        try:
            zf = zipfile.ZipFile(zpath)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            kind = _sniff(zpath)
            if kind and kind != "zip":
                raise IntakeError(f"{label} is not a zip archive: it is a {kind} file. "
                                  f"Please hand in a .zip archive") from None
            raise IntakeError(f"{label} is not a valid zip archive ({exc}); it may be truncated or "
                              f"corrupt. Create the zip again and resubmit") from None
        with zf:
            try:
                infos = zf.infolist()
            except Exception as exc:                       # a central directory that lies
                raise IntakeError(f"{label} is corrupt ({exc})") from None
            self._count_files(len(infos), label)
            plan = self._plan_zip(infos, prefix, label)
            last = {display: info for info, _, display in plan}
            for info, parts, display in plan:
                if last[display] is not info:          # a name stored twice: unzip keeps the later
                    self.out.duplicates.append(display)
                    continue
                target = self._new_path(dest, parts)
                self._extract(zf, info, target, display, label)
                self._add(target, display, _zip_mtime(info), depth)

    def _plan_zip(self, infos: list[zipfile.ZipInfo], prefix: str, label: str) -> list:
        """Check every entry before extracting anything; return the entries worth extracting."""
        plan = []
        declared = 0
        for info in infos:
            name = zipsafe.entry_name(info)
            shown = zipsafe.printable(name)
            problem = zipsafe.member_problem(info, name)          # the one policy (grader/intake/zipsafe.py)
            if problem:
                raise IntakeError(_ZIP_REFUSED[problem.kind].format(label=label, shown=shown))
            parts = zipsafe.member_parts(name)
            if info.is_dir() or not parts:
                continue
            display = prefix + "/".join(zipsafe.printable(p) for p in parts)
            if any(zipsafe.is_junk(p) for p in parts):
                self.out.junk.append(display)
                continue
            if Path(parts[-1]).suffix.lower() not in WANTED_SUFFIXES:
                self.out.ignored.append(display)
                continue
            size = info.file_size
            ratio = zipsafe.expansion(info, self.limits.max_ratio, self.limits.ratio_floor_bytes)
            if ratio is not None:
                raise IntakeError(f"{label}: {display} would expand {ratio:.0f} "
                                  f"times (limit {self.limits.max_ratio:.0f}); this looks like a zip bomb")
            self._check_size(size, display)
            declared += size
            if self.bytes + declared > self.limits.max_total_bytes:
                raise IntakeError(f"{label} unpacks to more than {_mib(self.limits.max_total_bytes)}; "
                                  f"hand in only your code and answers")
            plan.append((info, parts, display))
        return plan

    def _extract(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, display: str,
                 label: str) -> None:
        try:
            with zf.open(info) as src, open(target, "xb") as dst:
                self._stream(src.read, dst, display, declared=info.file_size)
        except zipfile.BadZipFile as exc:
            raise IntakeError(f"{label} is corrupt: {display} cannot be read ({exc}). "
                              f"Create the zip again and resubmit") from None
        except (zlib.error, EOFError) as exc:
            raise IntakeError(f"{label} is corrupt or truncated: {display} cannot be read "
                              f"({exc or type(exc).__name__}). Create the zip again and resubmit") from None
        except NotImplementedError as exc:
            raise IntakeError(f"{label} uses a compression method the grader cannot read ({exc}); "
                              f"create it again with ordinary (deflate) compression") from None
        except RuntimeError as exc:                       # zipfile: "File ... is encrypted"
            raise IntakeError(f"{label} cannot be read: {exc}") from None

    # ---- both ------------------------------------------------------------------------------------
    def _add(self, target: Path, display: str, mtime: float, depth: int) -> None:
        if target.suffix.lower() != ".zip":
            self.out.entries.append(FileEntry(target, display, mtime))
            return
        if depth + 1 > self.limits.max_depth:
            raise IntakeError(f"archives are nested more than {self.limits.max_depth} deep (at {display}); "
                              f"hand in one zip with your files")
        inner = self._new_path(target.parent, [target.stem], directory=True)
        self.out.nested.append(display)
        self._zip(target, inner, display + "/", depth + 1, display)
        target.unlink()

    def _new_path(self, dest: Path, parts: list[str], directory: bool = False) -> Path:
        """A fresh path under `dest` for archive path `parts`, with safe component names."""
        folder = dest
        for part in parts[:-1]:
            folder = folder / zipsafe.disk_name(part)
        folder.mkdir(parents=True, exist_ok=True)
        name = zipsafe.disk_name(parts[-1])
        candidate = folder / name
        stem, suffix = (name, "") if directory else (Path(name).stem, Path(name).suffix)
        n = 1
        while candidate.exists():                          # duplicates and names equal once sanitised
            n += 1
            candidate = folder / f"{stem}~{n}{suffix}"
        if directory:
            candidate.mkdir()
        return candidate


_ZIP_REFUSED = {
    zipsafe.ABSOLUTE: "{label} contains a file with an absolute path ({shown}); the archive cannot be "
                      "unpacked safely. Zip the folder with relative paths",
    zipsafe.LEAVES: "{label} contains a path that leaves the archive ({shown}); the archive cannot be "
                    "unpacked safely",
    zipsafe.SYMLINK: "{label} contains a symbolic link ({shown}); hand in plain files only",
    zipsafe.ENCRYPTED: "{label} is password-protected ({shown} is encrypted); hand in an archive "
                       "without a password",
}


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    try:
        return time.mktime(info.date_time + (0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _sniff(path: Path) -> str | None:
    """What a file is, from its first bytes (to tell a student their .zip is really a .rar)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for magic, kind in ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"Rar!", "RAR"),
                        (b"7z\xbc\xaf", "7-Zip"), (b"\x1f\x8b", "gzip/tar.gz"), (b"%PDF", "PDF"),
                        (b"BZh", "bzip2")):
        if head.startswith(magic):
            return kind
    return None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _listing(names: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------------
# Preparing the modules
# --------------------------------------------------------------------------------------------------

def _prepare_all(unpacked: _Unpacked, sub: Submission, roles: tuple) -> None:
    entries = unpacked.entries
    if not entries:
        others = unpacked.ignored
        if not others:
            raise IntakeError("the submission is empty: it contains no files"
                              + (f" (only system files: {_listing(unpacked.junk)})" if unpacked.junk else ""))
        raise IntakeError("the submission has no .py, .ipynb or answers.toml file; found: " + _listing(others))
    location = locate(entries, roles)
    if not location.chosen:
        wanted = ", ".join(r.expected for r in roles)
        found = [e.name for e in entries] + unpacked.ignored
        raise IntakeError(f"none of the expected files was found (expected {wanted}); found: "
                          + _listing(found))
    sub.notes.extend(location.notes)

    cache: dict[Path, tuple[str | None, str | None, list[str]]] = {}
    written: dict[str, str] = {}                    # module name in the workspace -> where it came from
    for role, module, kind in ((r.name, r.module, r.kind) for r in roles if r.kind in (CODE, SCRIPT)):
        entry = location.chosen.get(role)
        if entry is None:
            continue
        text, error, notes = (_script_source(entry) if kind == SCRIPT else _prepare_cached(entry, cache))
        sub.notes.extend(n for n in notes if n not in sub.notes)   # one file may serve two roles
        if error:
            sub.role_errors[role] = error
            sub.notes.append(f"{role}: {error}")
            continue
        target = sub.workspace / f"{module}.py"
        target.write_text(text, encoding="utf-8")
        sub.modules[role] = target
        written[module] = entry.name

    for data_role in (r.name for r in roles if r.kind == DATA and r.name in location.chosen):
        _copy_answers(location.chosen[data_role], sub, data_role)

    # The other .py files whose names can be imported, shallowest first, so that `import utils`
    # in a student's module works.
    candidates = {c.entry.path for cands in location.candidates.values() for c in cands}
    chosen = {e.path for e in location.chosen.values()}
    for entry in sorted((e for e in entries if e.suffix == ".py"), key=lambda e: (e.depth, e.name)):
        module = Path(entry.name).stem
        if not module.isidentifier() or keyword.iskeyword(module):
            if entry.path not in candidates:           # `import plot-utils` cannot be written anyway
                sub.notes.append(f"left out {entry.name}: `{module}` cannot be imported by that name")
            continue
        if module in written:
            if entry.path not in candidates:
                sub.notes.append(f"left out {entry.name}: {written[module]} already provides "
                                 f"the module `{module}`")
            continue
        if module in _RESERVED_MODULES:
            sub.notes.append(f"left out {entry.name}: a module named `{module}` would hide Python's "
                             f"or the grader's own `{module}`; rename it")
            continue
        text, error, notes = _prepare_cached(entry, cache)
        if entry.path not in chosen:
            sub.notes.extend(notes)
        if error:
            if entry.path not in chosen:
                sub.notes.append(f"left out {entry.name}: {error}")
            continue
        (sub.workspace / f"{module}.py").write_text(text, encoding="utf-8")
        written[module] = entry.name


def _script_source(entry: FileEntry) -> tuple[str | None, str | None, list[str]]:
    """A script role's file whole (a script probe runs it to completion): decoded, not made import-safe."""
    if entry.suffix != ".py":
        return None, f"{entry.name}: a script is expected as a .py file", []
    source, note = sourceprep.decode_source(entry.path.read_bytes())
    return source, None, [f"{entry.name}: {note}"] if note else []


def _prepare_cached(entry: FileEntry, cache: dict) -> tuple[str | None, str | None, list[str]]:
    if entry.path not in cache:
        cache[entry.path] = _prepare_file(entry)
    return cache[entry.path]


def _prepare_file(entry: FileEntry) -> tuple[str | None, str | None, list[str]]:
    """(prepared module text, error for the student, notes) for one .py or .ipynb file.

    Memoised on the file's bytes and name, all the result depends on: a batch meets the same file
    (the provided code left as given, a resubmission) in many students' submissions."""
    data = entry.path.read_bytes()
    key = (hashlib.sha256(data).digest(), entry.name, entry.suffix)
    with _PREPARED_LOCK:
        done = _PREPARED.get(key)
        if done is not None:
            _PREPARED.move_to_end(key)
    if done is None:
        text, error, notes = _prepare_data(data, entry.name, entry.suffix)
        done = (text, error, tuple(notes))
        with _PREPARED_LOCK:
            _PREPARED[key] = done
            while len(_PREPARED) > _PREPARED_MAX:
                _PREPARED.popitem(last=False)
    return done[0], done[1], list(done[2])


_PREPARED: OrderedDict = OrderedDict()
_PREPARED_LOCK = threading.Lock()
_PREPARED_MAX = 256


def _prepare_data(data: bytes, name: str, suffix: str) -> tuple[str | None, str | None, list[str]]:
    notes: list[str] = []
    where = None
    if suffix == ".ipynb":
        nb = notebook.notebook_to_module(data, name)
        notes.extend(nb.notes)
        if nb.dropped:
            notes.append(f"{name}: dropped IPython lines: " + _listing(nb.dropped, _MAX_SKIPPED_LISTED))
        notes.extend(f"{name}: repaired {r}" for r in nb.repairs)
        notes.extend(f"{name}: {e}" for e in nb.cell_errors)
        if nb.error:
            return None, nb.error, notes
        if not nb.code_cells:
            notes.append(f"{name}: the notebook has no code cells")
        source, where = nb.source, nb.where
    else:
        source, decode_note = sourceprep.decode_source(data)
        if decode_note:
            notes.append(f"{name}: {decode_note}")
    prepared = sourceprep.prepare(source, name, where=where)
    notes.extend(f"{name}: repaired: {r}" for r in prepared.repairs)
    if prepared.skipped:
        describe = where or (lambda n: f"line {n}")
        items = [f"{describe(s.lineno)} `{s.text}` ({s.reason})" for s in prepared.skipped]
        notes.append(f"{name}: skipped top-level code that would run when imported: "
                     + _listing(items, _MAX_SKIPPED_LISTED))
    if prepared.error:
        return None, prepared.error, notes
    return prepared.source, None, notes


def _copy_answers(entry: FileEntry, sub: Submission, role: str) -> None:
    size = entry.path.stat().st_size
    if size > MAX_ANSWERS_BYTES:
        sub.role_errors[role] = (f"{entry.name} is {_mib(size)}; an answers file is expected "
                                         f"to be under {_mib(MAX_ANSWERS_BYTES)}")
        sub.notes.append(f"{role}: {sub.role_errors[role]}")
        return
    target = sub.workspace / ANSWERS_FILE
    shutil.copyfile(entry.path, target)
    sub.answers = target
    try:
        tomllib.loads(target.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        sub.role_errors[role] = f"{entry.name} is not valid TOML ({exc}); fix it so it can be read"
        sub.notes.append(f"{role}: {sub.role_errors[role]}")


# --------------------------------------------------------------------------------------------------
# Student ids
# --------------------------------------------------------------------------------------------------

# Institute roll numbers: CS17BTECH11001, CS17B1001, ES16MTECH11025 (letters, year, programme, serial).
_ROLL = re.compile(r"^[A-Za-z]{2,4}\d{2}[A-Za-z]{1,8}\d{3,6}$")
_ASSIGNMENT_TOKEN = re.compile(r"^(assign(ment)?|a|pa|hw|homework|lab|submission|final)\d*$", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".zip", ".ipynb", ".py", ".tar", ".gz", ".tgz", ".rar", ".7z", ".toml")
_MOODLE = re.compile(r"^(?P<who>.+?)_(?P<pid>\d+)_assignsubmission_[a-z]+_?(?P<file>.*)$", re.IGNORECASE)
_CANVAS = re.compile(r"^(?P<who>[a-z]+)(?:_late)?_(?P<uid>\d+)_\d+_(?P<file>.+?)(?:-\d+)?$")
_CLASSROOM = re.compile(r"^(?P<file>.+?) - (?P<who>[^\W\d_][\w .'-]*)$")


def student_id_from_name(filename: str) -> str:
    """A student id from a submission's file (or folder) name; the rules are in docs/intake.md.

    1. Strip the extension(s) and the LMS wrapper: Moodle `Name_12345_assignsubmission_file_<file>`,
       Canvas `lastnamefirstname[_late]_12345_67890_<file>[-1]`, Google Classroom `<file> - Name`.
    2. In what is left, a token that looks like a roll number (`CS17BTECH11001`, `CS17B1001`) wins,
       upper-cased.
    3. Else drop assignment words (`Assign3`, `HW7`, `lab3`, ...); if what remains has a digit, it is
       the id (`2019CS10001_Assign3` -> `2019CS10001`); else the LMS's own name for the student
       (Moodle `Name_12345`, Canvas `lastnamefirstname_12345`, Classroom `Name`) when there is one.
    4. Else the file stem. Always sanitised to [A-Za-z0-9._-]; never empty.
    """
    name = filename.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem = name
    while stem.lower().endswith(_ARCHIVE_SUFFIXES):
        stem = stem[: stem.rfind(".")]
    inner, lms_identity = stem, None
    for pattern, identity in ((_MOODLE, lambda m: f"{m['who']}_{m['pid']}"),
                              (_CANVAS, lambda m: f"{m['who']}_{m['uid']}"),
                              (_CLASSROOM, lambda m: m["who"])):
        match = pattern.match(stem)
        if match:
            inner, lms_identity = match["file"], identity(match)
            break
    tokens = [t for t in re.split(r"[\s_.\-]+", inner) if t]
    for token in tokens:
        if _ROLL.match(token):
            return token.upper()
    rest = [t for t in tokens if not _ASSIGNMENT_TOKEN.match(t)]
    if rest and any(c.isdigit() for c in "".join(rest)):
        candidate = "_".join(rest)
    elif lms_identity:
        candidate = lms_identity
    else:
        candidate = "_".join(rest) or stem
    return _sanitise_id(candidate) or _sanitise_id(stem) or "unknown"


def _sanitise_id(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    return re.sub(r"_+", "_", text).strip("._-")
