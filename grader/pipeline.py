"""Grade one submission: intake -> worker probes -> trusted checks -> rubric -> report.

This is the one place that sequences the stages. Student faults become that student's result;
grader faults are flagged in `errors` for staff and never silently scored.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import gold as goldmod
from . import rubric as rubricmod
from .intake import tamper
from .checks.runner import run_checks
from .intake.unpack import load_submission
from .intake.roles import DATA, roles_for
from .probes.cache import ProbeCache
from .probes.client import run_plan
from .probes.reuse import reference_stands
from .records import GradeReport
from .report import notes as notesmod
from .report.results import write_reports
from .sandbox.launcher import Limits, Sandbox
from .checks.scoring import deferred_items, error_scores, score
from .probes.store import save_results


@dataclass
class Options:
    assignment: str                   # the pack's name (grader.pack); the CLI chooses a default
    profile: str = "ci"
    visible_only: bool = False
    data: Path | None = None          # a course data folder; None = the embedded default
    gold_dir: Path | None = None      # an explicit gold folder (e.g. a student bundle's)
    student: str | None = None
    always_train: bool = False        # train even a model shown to be the reference's (see reuse.py)
    probe_timeout: float | None = None  # seconds per non-training probe; None = the profile's
    cache: bool = True                # reuse probe answers known for this exact content (probecache.py)


def sandbox_for(profile: dict, hide: list[Path] | None = None, gpu: str | None = None) -> Sandbox:
    """gpu: the worker's CUDA_VISIBLE_DEVICES ("" = none); None = $GRADER_WORKER_GPU, else none."""
    limits = Limits(probe_s=profile["probe_timeout"], submission_s=profile["submission_timeout"])
    if "workspace_mib" in profile:     # the worker's workspace, /tmp and /dev/shm together
        limits.space_bytes = int(profile["workspace_mib"]) << 20
    return Sandbox(limits, hide=hide or [], gpu=gpu)


def grade(path: Path, opts: Options, out: Path | None = None, sandbox: Sandbox | None = None,
          log=print, keep=None, engine=None) -> GradeReport:
    """`keep(results, gold)`, if given, is called with the probe answers before the run folder is
    removed (the batch keeps the arrays of its feedback pictures this way).

    `engine` (grader.sandbox.engine.Engine), if given, supplies the warm check server and the probe cache;
    `sandbox` may then be a WarmSandbox, whose workspaces live under its `workspace_parent`."""
    started = time.monotonic()
    rubric = rubricmod.load(opts.assignment)
    profile = rubric.profile(opts.profile)
    gold = goldmod.ensure(rubric, profile, opts.data, opts.gold_dir, log=log)
    if opts.probe_timeout:            # after gold: the gold cache key keeps the profile's own value
        profile = dict(profile, probe_timeout=opts.probe_timeout)
    items = rubric.auto_items(visible_only=opts.visible_only)
    sandbox = sandbox or sandbox_for(profile, hide=[p for p in (out, gold.root) if p])
    if engine is not None:
        cache, checks_runner = engine.cache, engine.checks
        check_memo = getattr(engine, "check_memo", None)
    else:
        cache, checks_runner, check_memo = (ProbeCache() if opts.cache else None), None, None
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp, \
            tempfile.TemporaryDirectory(prefix="grader-", dir=getattr(sandbox, "workspace_parent", None)) as wtmp:
        tmp = Path(tmp)
        sub = load_submission(Path(path), Path(wtmp) / "workspace", student=opts.student,
                              assignment=opts.assignment)
        report = GradeReport(rubric.assignment, sub.student, [], profile=opts.profile,
                             notes=list(sub.notes), isolation=getattr(sandbox, "description", ""))
        if sub.error:
            report.status, report.errors = "error", [sub.error]
            report.items = error_scores(rubric, sub.error, opts.visible_only)
        else:
            run_dir = tmp / "run"
            # Copies of what the checks read from the submission, taken before student code runs: the
            # worker can write its workspace (answers.toml included, or a link in its place).
            sources = _keep_sources(sub, run_dir / "sources")
            answers = _keep_answers(sub, run_dir / "answers.toml")
            tampering = [str(f) for f in tamper.scan_files(sub.workspace.glob("*.py"))]
            if tampering:
                report.notes.append("flagged for staff review: the code reaches into the grader's worker ("
                                    + "; ".join(tampering[:5]) + (", ..." if len(tampering) > 5 else "")
                                    + "), so no marks come from facts its worker reported")
            plan = rubric.plan_module()
            groups = sorted({g for item in items for g in item.probes})
            # groups only manual items name feed the TA's notes: last, so they never delay a scored probe
            notes_groups = [] if opts.visible_only else [g for g in rubric.note_groups() if g not in groups]
            groups += notes_groups
            specs = [spec for g in groups
                     for spec in plan.GROUPS[g](profile, _note_inputs(gold) if g in notes_groups else gold.inputs)]
            reuse = None if opts.always_train else reference_stands(gold.outputs, rubric.assignment)
            results = run_plan(specs, sub.workspace, sub.modules, rubric.assignment, sandbox, reuse, cache,
                               unusable=sub.role_errors)
            if keep is not None:
                keep(results, gold)
            report.notes += [f"{key}: your model computes the same function, with the same initial "
                             f"parameters and parameter gradients, as the reference, so the reference's "
                             f"training result under the same budget stands (--always-train trains it "
                             f"anyway)"
                             for key, r in results.items() if r.meta.get("reused_reference")]
            # what the worker did to run the code (a shim used, a constant set, a folder made)
            report.notes += list(dict.fromkeys(n for r in results.values() for n in r.meta.get("notes", [])
                                               if isinstance(n, str) and n not in report.notes))
            save_results(run_dir / "answers", results)
            context = {"profile": profile, "gold": str(gold.root), "sources": sources,
                       "params": {i.id: i.params for i in items},
                       "answers_file": answers, "tampering": tampering}
            (run_dir / "context.json").write_text(json.dumps(context, indent=1))
            # Items that read a file the submission does not have go to a TA (answered in the report).
            data = {r.name for r in roles_for(rubric.assignment) if r.kind == DATA} if sub.answers else set()
            present = set(sub.modules) | set(sub.role_errors) | data
            absent = {i.manual_without for i in items if i.manual_without} - present
            later = deferred_items(rubric, absent)
            checks = run_checks(rubric.checks_dir, run_dir,
                                [c.name for i in items if i.id not in later for c in i.checks],
                                runner=checks_runner, memo=check_memo)
            report.items = score(rubric, checks, opts.visible_only, absent)
            if not opts.visible_only:        # a self-check has no manual items
                noted = {i.id for i in rubric.items if i.manual and i.probes}
                notesmod.attach(report.items, notesmod.manual_notes(rubric.assignment, results, gold, noted))
            report.errors = [f"grader fault in probe {r.key}: {r.error}" for r in results.values()
                             if r.fault == "grader"]
    report.execution_time = time.monotonic() - started
    if out is not None:
        write_reports(report, out)
    return report


class _WithDerived(Mapping):
    """Gold's input arrays and its derived arrays as `derived/<name>`, each read when asked for."""

    def __init__(self, arrays, derived):
        self.arrays, self.derived = arrays, derived

    def __getitem__(self, name):
        if name.startswith("derived/") and name[len("derived/"):] in self.derived:
            return self.derived[name[len("derived/"):]]
        return self.arrays[name]

    def __iter__(self):
        yield from self.arrays
        yield from (f"derived/{k}" for k in self.derived)

    def __len__(self):
        return len(self.arrays) + len(self.derived)


def _note_inputs(gold) -> goldmod.Inputs:
    """What a group that only manual items name is built from: gold's inputs and, since it never
    runs for gold itself, gold's derived arrays too, as `derived/<name>` (e.g. the reference's
    trained weights, for a script that needs them)."""
    return goldmod.Inputs(_WithDerived(gold.inputs.arrays, gold.derived), gold.inputs.meta)


def _keep_answers(sub, dest: Path) -> str | None:
    if not sub.answers:
        return None
    shutil.copyfile(sub.answers, dest)
    return str(dest)


def _keep_sources(sub, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True)
    kept = {}
    for role, path in sub.modules.items():
        dest = folder / f"{role}.py"
        shutil.copyfile(path, dest)
        kept[role] = str(dest)
    return kept
