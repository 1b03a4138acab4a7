"""Assignment packs: the one place that knows a pack's layout and loads it (trusted side).

The engine grades whatever a pack describes. A pack is a folder with a manifest, `pack.toml`, whose
paths are relative to the folder:

    name = "tiny"                      # an identifier: the assignment's name in records and caches
    rubric = "rubric.toml"             # items, points, visibility, profiles, params (grader.rubric)
    plan = "plan.py"                   # GROUPS: probe group name -> fn(profile, inputs, for_gold)
    roles = "roles.py"                 # ROLES: what a submission provides (grader.intake.roles.Role)
    inputs = "inputs.py"               # make_inputs(rubric, profile, data) -> (arrays, meta)
    derive = "derive.py"               # derive(inputs, outputs) -> (arrays, meta)   (optional)
    checks = "checks"                  # pytest checks run on the trusted side
    worker = "probes.py"               # worker-side probes: PROBES (optional: script probes need none)
    reference = "reference"            # the reference solution, graded to make gold
    submissions = "submissions"        # examples: the reference, mutants with expected.json
    answers_template = "answers.toml"  # optional: what `grader answers-template` prints
    default = true                     # optional: the CLI's pack when no --assignment is given
    reference_files = ["tiny.py"]      # what a mutant with base = "reference" starts from

    [hooks]                            # optional, each "file.py:function" of the pack
    feedback_picture = "hooks.py:picture"  # (result, gold) -> PNG bytes or None
    cost = "hooks.py:cost_model"           # (pack) -> object with .cost(submission) -> float
    same_model = "hooks.py:same_model"     # (answer, gold answer) -> bool
    manual_notes = "hooks.py:notes"        # (results, gold) -> {manual item id: note} (see below)
    [[provided]]                       # course files used in place of the student's copies
    file = "provided/util.py"
    name = "util.py"
    [student_gold]                     # what of the gold a student bundle ships (default: nothing)
    inputs = { "*" = true, labels = ["train"] }   # name or glob -> true, or the probe groups
    derived = { "acc_*" = ["train"] }              # a visible item must use for it to ship
    derived_meta = {}

The `manual_notes` hook helps the TAs who mark the manual items: on the trusted side, after the
probes ran, it gets the probe answers (hostile data: check before use) and the gold, and returns
{manual item id: note}, where a note is a string (shown to the TA, in manual.csv and result.json,
and to the student, in feedback.md) or {"ta": text, "student": text} (`student` "" or absent: the
TA only, e.g. a number measured on data the student never sees). A manual item may name `probes`
in the rubric: their groups run only to feed this hook (after every scored probe, never in a
student's self-check), and no score reads them. A hook that raises costs the student nothing:
those items' notes say it could not be made (grader/report/notes.py).

A built-in pack is `rubric/<name>/pack.toml` of this project (pointing at `../../reference/<name>`);
a course's own pack is one folder anywhere, named by its path or found on `$GRADER_PACKS` (folders
that hold packs, or pack folders, separated by `os.pathsep`). Everything a manifest names is
checked when the pack loads: a typo is an error then, not a silent zero at grading time.

A pack's Python (plan, roles, inputs, derive, hooks) is staff code run on the trusted side. A
built-in pack is imported as the package `rubric.<name>`; any other as a package of a name unique to
its folder, so two packs never share modules. Its worker-side probe module is the only part of it
that enters the worker: it is copied into the worker runtime as `graderworker.<name>`
(see `worker_modules`, read by grader.sandbox.launcher.runtime_dir).
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
import keyword
import os
import shutil
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BUILTIN_ROOT = PROJECT / "rubric"
MANIFEST = "pack.toml"
ENV_PATH = "GRADER_PACKS"
ENV_DEFAULT = "GRADER_ASSIGNMENT"       # the CLI's default pack (see default_assignment)
# Modules of the worker runtime a pack's probe module must not replace.
_RUNTIME_NAMES = {p.stem for p in (Path(__file__).parent / "worker").glob("*.py")}
KEYS = {"name", "title", "rubric", "plan", "roles", "inputs", "derive", "checks", "worker", "reference",
        "submissions", "answers_template", "reference_files", "hooks", "provided", "student_gold",
        "examples", "gold_manifest", "profile_help", "data_help", "default"}
HOOKS = ("feedback_picture", "cost", "same_model", "manual_notes")


class PackError(Exception):
    """The pack is inconsistent or missing: staff must fix it before anything is graded."""


@dataclass(frozen=True)
class Provided:
    """A course file used in place of the student's copy of it (e.g. the course's `util.py`)."""

    source: Path                        # in the pack
    name: str                           # its name in the workspace
    note: str = ""                      # why, in the student's feedback


@dataclass
class Pack:
    name: str
    root: Path                          # the pack folder (where pack.toml is)
    manifest: dict
    rubric_file: Path
    plan_file: Path
    roles_file: Path
    checks_dir: Path
    inputs_file: Path | None = None
    derive_file: Path | None = None
    worker_file: Path | None = None
    reference: Path | None = None       # None where absent (a student bundle has none)
    submissions: Path | None = None
    answers_template: Path | None = None
    reference_files: tuple[str, ...] = ()
    hooks: dict = field(default_factory=dict)        # hook name -> "file.py:function"
    provided: tuple[Provided, ...] = ()
    student_gold: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)     # notebook conversion of mutants (examples.py)
    gold_manifest: tuple[str, ...] = ()               # inputs.json keys named in gold's manifest
    profile_help: str = ""
    data_help: str = ""
    package: str = ""                   # the Python package its modules are imported under

    # -- modules ------------------------------------------------------------------------------
    def module(self, path: Path):
        """A Python file of the pack, imported once as `<package>.<stem>` (relative imports work)."""
        _ensure_package(self)
        return importlib.import_module(f"{self.package}.{path.stem}")

    @property
    def plan(self):
        return self.module(self.plan_file)

    @property
    def roles(self) -> tuple:
        return _roles(self)

    def inputs_module(self):
        if self.inputs_file is None:
            raise PackError(f"pack {self.name} has no inputs module (a student bundle builds no gold)")
        return self.module(self.inputs_file)

    def derive(self, inputs, outputs) -> tuple[dict, dict]:
        if self.derive_file is None:
            return {}, {}
        return self.module(self.derive_file).derive(inputs, outputs)

    def hook(self, name: str):
        """The hook's function, or None if the pack has none."""
        spec = self.hooks.get(name)
        if spec is None:
            return None
        file, _, func = spec.partition(":")
        return getattr(self.module(self.root / file), func)

    # -- what gold students see ---------------------------------------------------------------
    def student_visible(self, kind: str, name: str, groups: set[str]) -> bool:
        """Does a student bundle ship gold `kind` ("inputs", "derived", "derived_meta") entry `name`,
        given the probe groups of the visible items? Unlisted names never ship; an exact name wins
        over a pattern, a longer pattern over a shorter one."""
        rules = self.student_gold.get(kind, {})
        if name in rules:
            rule = rules[name]
        else:
            matching = sorted((p for p in rules if fnmatch.fnmatchcase(name, p)), key=len, reverse=True)
            if not matching:
                return False
            rule = rules[matching[0]]
        return rule is True or (isinstance(rule, list) and bool(set(rule) & groups))

    def source_files(self) -> list[tuple[str, Path]]:
        """Everything gold depends on in the pack, named stably (for gold's cache key)."""
        files = [(f"pack/{p.relative_to(self.root).as_posix()}", p)
                 for p in sorted(self.root.rglob("*")) if p.is_file() and p.suffix in (".py", ".toml")
                 and "__pycache__" not in p.parts and self.checks_dir not in p.parents
                 and (self.submissions is None or self.submissions not in p.parents)
                 and (self.reference is None or self.reference not in p.parents)]
        if self.reference is not None:
            # every .py at any depth (a reference may keep its code in a folder, e.g. python/)
            files += [(f"reference/{p.relative_to(self.reference).as_posix()}", p)
                      for p in sorted(self.reference.rglob("*.py")) if "__pycache__" not in p.parts]
        if self.worker_file is not None and self.root not in self.worker_file.parents:
            files.append((f"worker/{self.worker_file.name}", self.worker_file))
        return files

    def probe_module(self):
        """The pack's worker-side probe module imported here, on the trusted side, as a module of
        the worker runtime (`grader.worker.<name>`: its relative imports find the runtime's loader),
        for staff tests of a probe's helpers. Grading never does this: probes run in the worker."""
        if self.worker_file is None:
            raise PackError(f"pack {self.name} has no worker-side probes")
        name = f"{__package__}.worker.{self.name}"
        with _LOCK:
            module = sys.modules.get(name)
            if module is not None and getattr(module, "__file__", None) == str(self.worker_file):
                return module
            importlib.import_module(f"{__package__}.worker")
            spec = importlib.util.spec_from_file_location(name, self.worker_file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module


# --------------------------------------------------------------------------------------------------
# Finding and loading
# --------------------------------------------------------------------------------------------------

_LOADED: dict[Path, tuple[tuple, Pack]] = {}       # pack folder -> (manifest identity, pack)
_NAMES: dict[str, Path] = {}                        # name -> folder, of packs loaded by path
_LOCK = threading.RLock()


def search_path() -> list[Path]:
    return [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]


def find(assignment: str | os.PathLike) -> Path:
    """The folder of the pack `assignment` names: a path to a pack folder (or its pack.toml), a name
    registered in this process, a name on $GRADER_PACKS, or a built-in name."""
    text = str(assignment)
    path = Path(text)
    if path.name == MANIFEST:
        path = path.parent
    if (os.sep in text or text.startswith(".") or path.is_dir()) and (path / MANIFEST).is_file():
        return path.resolve()
    if os.sep in text or text.startswith("."):
        raise PackError(f"no pack at {text}: a pack folder holds a {MANIFEST}")
    with _LOCK:
        if text in _NAMES:
            return _NAMES[text]
    for entry in search_path():
        if (entry / MANIFEST).is_file() and _manifest_name(entry) == text:
            return entry.resolve()
        if (entry / text / MANIFEST).is_file():
            return (entry / text).resolve()
    if (BUILTIN_ROOT / text / MANIFEST).is_file():
        return (BUILTIN_ROOT / text).resolve()
    where = [str(BUILTIN_ROOT)] + [str(p) for p in search_path()]
    raise PackError(f"no assignment pack named {text!r} (looked in {', '.join(where)}; give a pack "
                    f"folder's path, or add its parent folder to ${ENV_PATH})")


def _manifest(folder: Path) -> dict:
    try:
        with (folder / MANIFEST).open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _manifest_name(folder: Path) -> str | None:
    return _manifest(folder).get("name")


def builtin_names() -> list[str]:
    """The built-in packs (folders of `rubric/` holding a pack.toml), in name order."""
    return sorted(p.parent.name for p in BUILTIN_ROOT.glob(f"*/{MANIFEST}"))


def default_assignment() -> str | None:
    """The pack the command line grades when no --assignment is given: $GRADER_ASSIGNMENT, else
    the built-in pack whose manifest says `default = true`, else the only built-in pack; None
    when that leaves none (or several). Library functions never default: they take the pack."""
    if os.environ.get(ENV_DEFAULT):
        return os.environ[ENV_DEFAULT]
    names = builtin_names()
    marked = [n for n in names if _manifest(BUILTIN_ROOT / n).get("default") is True]
    if len(marked) == 1:
        return marked[0]
    return names[0] if len(names) == 1 and not marked else None


def load(assignment: str | os.PathLike) -> Pack:
    """The pack `assignment` names (see `find`), loaded and validated once per version of its
    manifest. A pack loaded by its path is registered under its name for this process and the
    processes it starts (the batch's executors, the check server), via $GRADER_PACKS."""
    root = find(assignment)
    manifest = root / MANIFEST
    st = manifest.stat()
    ident = (st.st_mtime_ns, st.st_size)
    with _LOCK:
        known = _LOADED.get(root)
        if known is not None and known[0] == ident:
            return known[1]
        pack = _read(root)
        other = _NAMES.get(pack.name)
        if other is not None and other != root:
            # one pack per name in a process (the worker knows a pack by its name): the one named
            # last by its path replaces the other
            _LOADED.pop(other, None)
        _LOADED[root] = (ident, pack)
        if root.parent != BUILTIN_ROOT.resolve():
            _NAMES[pack.name] = root
            entries = os.environ.get(ENV_PATH, "").split(os.pathsep)
            if str(root) not in entries:
                os.environ[ENV_PATH] = os.pathsep.join([str(root)] + [e for e in entries if e])
    return pack


def resolve(assignment: str | os.PathLike) -> str:
    """The pack's name, after loading it (what the CLI passes on: records, caches and the worker
    know an assignment by its name)."""
    return load(assignment).name


def _read(root: Path) -> Pack:
    where = str(root / MANIFEST)
    try:
        with (root / MANIFEST).open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise PackError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(raw) - KEYS
    if unknown:
        raise PackError(f"{where}: unknown keys {sorted(unknown)} (a pack knows {', '.join(sorted(KEYS))})")
    if not isinstance(raw.get("default", False), bool):
        raise PackError(f"{where}: `default` must be true or false")
    name = raw.get("name")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise PackError(f"{where}: `name` must be a Python identifier (it names the worker's probe module), "
                        f"not {name!r}")
    if name in sys.stdlib_module_names or name in _RUNTIME_NAMES:
        raise PackError(f"{where}: the name {name!r} is taken by the worker runtime or Python; choose another")

    def path(key: str, required: bool = True, default: str | None = None, kind: str = "file",
             may_be_absent: bool = False) -> Path | None:
        value = raw.get(key, default)
        if value is None:
            if required:
                raise PackError(f"{where}: missing `{key}`")
            return None
        p = (root / value).resolve()
        exists = p.is_file() if kind == "file" else p.is_dir()
        if not exists:
            if may_be_absent:
                return None
            raise PackError(f"{where}: `{key}` names {value}, which is not a {kind} ({p})")
        return p

    pack = Pack(
        name=name, root=root, manifest=raw,
        rubric_file=path("rubric", default="rubric.toml"),
        plan_file=path("plan", default="plan.py"),
        roles_file=path("roles", default="roles.py"),
        checks_dir=path("checks", default="checks", kind="folder"),
        # a student bundle leaves out what builds gold and the reference
        inputs_file=path("inputs", required=False, default="inputs.py", may_be_absent=True),
        derive_file=path("derive", required=False, default="derive.py", may_be_absent=True),
        worker_file=path("worker", required=False),
        reference=path("reference", required=False, default="reference", kind="folder", may_be_absent=True),
        submissions=path("submissions", required=False, default="submissions", kind="folder",
                         may_be_absent=True),
        answers_template=path("answers_template", required=False),
        reference_files=tuple(raw.get("reference_files", ())),
        hooks=dict(raw.get("hooks", {})),
        student_gold=dict(raw.get("student_gold", {})),
        examples=dict(raw.get("examples", {})),
        gold_manifest=tuple(raw.get("gold_manifest", ())),
        profile_help=str(raw.get("profile_help", "")),
        data_help=str(raw.get("data_help", "")),
    )
    for file in (pack.plan_file, pack.roles_file, pack.inputs_file, pack.derive_file):
        if file is not None and file.parent != root:
            raise PackError(f"{where}: {file.name} must be in the pack folder itself (it is imported "
                            f"as a module of the pack)")
    for hook, spec in pack.hooks.items():
        if hook not in HOOKS:
            raise PackError(f"{where}: unknown hook {hook!r} (hooks: {', '.join(HOOKS)})")
        file, sep, func = str(spec).partition(":")
        if not sep or not func.isidentifier() or not (root / file).is_file() or (root / file).parent != root:
            raise PackError(f"{where}: hook {hook} = {spec!r} must be \"file.py:function\" of a file in the pack")
    provided = []
    for i, entry in enumerate(raw.get("provided", [])):
        src = root / str(entry.get("file", ""))
        target = str(entry.get("name") or src.name)
        if not src.is_file():
            raise PackError(f"{where}: provided[{i}] names {entry.get('file')!r}, which is not a file")
        if "/" in target or "\\" in target or target.startswith("."):
            raise PackError(f"{where}: provided[{i}].name must be a plain file name, not {target!r}")
        provided.append(Provided(src.resolve(), target, str(entry.get("note", ""))))
    pack.provided = tuple(provided)
    for kind, rules in pack.student_gold.items():
        if kind not in ("inputs", "derived", "derived_meta") or not isinstance(rules, dict):
            raise PackError(f"{where}: [student_gold] has tables inputs, derived, derived_meta; not {kind!r}")
        for key, rule in rules.items():
            if not (rule is True or rule is False or (isinstance(rule, list) and all(isinstance(g, str) for g in rule))):
                raise PackError(f"{where}: student_gold.{kind}.{key} must be true, false or a list of probe groups")
    builtin = root.parent == BUILTIN_ROOT.resolve() and (BUILTIN_ROOT / "__init__.py").exists()
    pack.package = (f"rubric.{root.name}" if builtin and root.name == name
                    else f"_gradepack_{name}_{hashlib.sha256(str(root).encode()).hexdigest()[:10]}")
    if not pack.package.startswith("rubric."):
        # a pack read again (its manifest changed, or its last load failed) imports its files afresh
        for mod in [m for m in sys.modules if m == pack.package or m.startswith(pack.package + ".")]:
            del sys.modules[mod]
    _validate_modules(pack, where)
    return pack


def _validate_modules(pack: Pack, where: str) -> None:
    try:
        plan = pack.plan
    except Exception as exc:  # noqa: BLE001 - staff code: say which file failed
        raise PackError(f"{where}: importing {pack.plan_file.name} failed: {type(exc).__name__}: {exc}") from None
    groups = getattr(plan, "GROUPS", None)
    if not isinstance(groups, dict) or not all(callable(g) for g in groups.values()):
        raise PackError(f"{where}: {pack.plan_file.name} must define GROUPS, a dict of probe group functions")
    _roles(pack)
    for hook in pack.hooks:
        if not callable(pack.hook(hook)):
            raise PackError(f"{where}: hook {hook} is not a function")
    if pack.student_gold:
        named = {g for rules in pack.student_gold.values() for rule in rules.values()
                 if isinstance(rule, list) for g in rule}
        if named - set(groups):
            raise PackError(f"{where}: [student_gold] names unknown probe groups {sorted(named - set(groups))}")


def _roles(pack: Pack) -> tuple:
    from .intake.roles import CODE, DATA, SCRIPT, Role

    try:
        module = pack.module(pack.roles_file)
    except Exception as exc:  # noqa: BLE001
        raise PackError(f"{pack.name}: importing {pack.roles_file.name} failed: {type(exc).__name__}: {exc}") from None
    roles = tuple(getattr(module, "ROLES", ()))
    if not roles or not all(isinstance(r, Role) for r in roles):
        raise PackError(f"{pack.name}: {pack.roles_file.name} must define ROLES, a non-empty tuple of grader.intake.roles.Role")
    names = [r.name for r in roles]
    if len(set(names)) != len(names):
        raise PackError(f"{pack.name}: {pack.roles_file.name} has duplicate role names: {names}")
    bad = [r.name for r in roles if r.kind not in (CODE, DATA, SCRIPT)]
    if bad:
        raise PackError(f"{pack.name}: roles {bad} have an unknown kind (code, data or script)")
    return roles


def _ensure_package(pack: Pack) -> None:
    """Make `pack.package` importable: the built-in `rubric.<name>` is; any other pack folder is
    registered as a namespace-like package of its own unique name."""
    if pack.package in sys.modules:
        return
    if pack.package.startswith("rubric."):
        importlib.import_module(pack.package)
        return
    spec = importlib.util.spec_from_loader(pack.package, loader=None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(pack.root)]
    sys.modules[pack.package] = module


# --------------------------------------------------------------------------------------------------
# The worker side and the workspace
# --------------------------------------------------------------------------------------------------

def worker_modules() -> dict[str, Path]:
    """Probe modules of the packs loaded in this process: `graderworker.<name>` <- the pack's
    worker file (grader.sandbox.launcher.runtime_dir copies them in)."""
    with _LOCK:
        packs = [p for _, p in _LOADED.values()]
    return {p.name: p.worker_file for p in packs if p.worker_file is not None}


def worker_digest(assignment: str) -> str:
    """A digest of the pack's probe module (the probe cache's key must change with it); "" for a
    pack without probes of its own."""
    try:
        pack = load(assignment)
    except PackError:
        return ""
    if pack.worker_file is None:
        return ""
    return hashlib.sha256(pack.worker_file.read_bytes()).hexdigest()


def install_worker_modules(runtime_package: Path) -> None:
    """Copy the loaded packs' probe modules into a worker runtime folder (`graderworker/`); a pack
    without probes of its own gets an empty registry (its script probes are the runtime's)."""
    with _LOCK:
        packs = [p for _, p in _LOADED.values()]
    for pack in packs:
        target = runtime_package / f"{pack.name}.py"
        if pack.worker_file is None:
            text = f'"""The {pack.name} pack has no probes of its own."""\nPROBES: dict = {{}}\n'
        else:
            text = pack.worker_file.read_text()
        if not target.exists() or target.read_text() != text:
            tmp = target.with_suffix(".tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            tmp.replace(target)


def provide_files(assignment: str, sub) -> None:
    """Put the course's own files in place of the student's copies in a prepared workspace, with a
    note (a student is never failed by the course's code, e.g. a starter's `np.float`)."""
    pack = load(assignment)
    if sub.error:
        return
    for item in pack.provided:
        target = sub.workspace / item.name
        had = target.exists()
        shutil.copyfile(item.source, target)
        why = f" ({item.note})" if item.note else ""
        sub.notes.append(f"{item.name}: the course's own copy was used in place of "
                         f"{'yours' if had else 'the missing file'}{why}")
