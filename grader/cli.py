"""The `grader` command line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import gold as goldmod
from . import pack as packmod
from . import rubric as rubricmod
from .pipeline import Options, grade
from .report.results import table


def _data(arg: str | None) -> Path | None:
    value = arg or os.environ.get("GRADER_DATA")
    return Path(value).resolve() if value else None


def _assignment(p: argparse.ArgumentParser) -> None:
    """--assignment; its default is a setting, not a name written here (grader.pack.default_assignment):
    library functions take the assignment, only the command line chooses one."""
    now = packmod.default_assignment()
    p.add_argument("--assignment", default=None,
                   help=f"the assignment's pack: a built-in name ({', '.join(packmod.builtin_names()) or 'none'}), "
                        f"a name on ${packmod.ENV_PATH}, or a pack folder's path (default: ${packmod.ENV_DEFAULT}, "
                        f"else the built-in pack whose pack.toml says default = true"
                        + (f"; now {now}" if now else "") + ")")


def _common(p: argparse.ArgumentParser) -> None:
    _assignment(p)
    p.add_argument("--profile", default="ci",
                   help="the rubric's profile (training budgets of the threshold checks; default: ci); "
                        "`grader profiles --assignment A` lists them")
    p.add_argument("--data", help="course data folder (what the pack's data_help says); "
                                  "default: $GRADER_DATA, else the pack's embedded data")


def _resolve(args) -> None:
    """--assignment as the pack's name (a pack given by its path is registered for this run and
    the processes it starts), and --profile checked against the pack's rubric."""
    if hasattr(args, "assignment"):
        if args.assignment is None:
            args.assignment = packmod.default_assignment()
            if args.assignment is None:
                raise packmod.PackError(
                    f"no --assignment given and no default pack (set ${packmod.ENV_DEFAULT}, or mark one "
                    f"built-in pack `default = true`); built-in packs: {', '.join(packmod.builtin_names())}")
        args.assignment = packmod.resolve(args.assignment)
        if getattr(args, "profile", None) is not None:
            rubricmod.load(args.assignment).profile(args.profile)


def cmd_grade(args) -> int:
    opts = Options(args.assignment, args.profile, False, _data(args.data), _gold(args), args.student,
                   args.always_train, cache=not args.no_cache)
    out = Path(args.out) if args.out else Path("out") / "grade"
    report = grade(Path(args.path), opts, out)
    print(table(report))
    print(f"wrote {out / 'result.json'} and {out / 'results.json'}")
    return 0


def cmd_check(args) -> int:
    from .selfcheck import friendly_summary

    opts = Options(args.assignment, args.profile, True, _data(args.data), _gold(args), None)
    report = grade(Path(args.path), opts, Path(args.out) if args.out else None)
    print(friendly_summary(report))
    return 0


def _gold(args) -> Path | None:
    if getattr(args, "gold", None):
        return Path(args.gold)
    from .report.bundle import bundled_gold

    return bundled_gold(args.assignment, args.profile)


def cmd_gold(args) -> int:
    rubric = rubricmod.load(args.assignment)
    profile = rubric.profile(args.profile)
    out = Path(args.out) if args.out else goldmod.default_dir(rubric, profile, _data(args.data))
    gold = goldmod.build(rubric, profile, _data(args.data), out)
    print(f"gold for {args.assignment} ({args.profile}) written to {gold.root}")
    for key, acc in sorted(gold.derived_meta.get("accuracy", {}).items()):
        print(f"  reference {key}: {acc:.1f}% validation accuracy")
    return 0


def cmd_bundle(args) -> int:
    from .report.bundle import build_student_bundle

    path = build_student_bundle(Path(args.out), args.assignment, args.profile, _data(args.data))
    print(f"student bundle written to {path}")
    return 0


def cmd_demo(args) -> int:
    from .examples import run_demo

    return run_demo(Path(args.out), args.assignment, args.profile, _data(args.data))


def cmd_batch(args) -> int:
    from .batch.classrun import Settings, run

    opt = lambda v: Path(v) if v else None
    return run(Settings(
        Path(args.input), Path(args.out), assignment=args.assignment, profile=args.profile,
        data=_data(args.data), gold_dir=_gold(args), workers=args.workers, force=args.force,
        probe_timeout=args.probe_timeout, deadline=args.deadline, late_policy=opt(args.late_policy),
        submitted_at=opt(args.submitted_at), ledger=opt(args.ledger), always_train=args.always_train,
        warm=not args.no_warm, cache=not args.no_cache, gpus=args.gpus, workers_per_gpu=args.workers_per_gpu,
        executor=args.executor, ray_address=args.ray_address, ray_num_cpus=args.ray_num_cpus,
        ray_num_gpus=args.ray_num_gpus))


def cmd_export(args) -> int:
    from .report.export import export_gradescope

    path = export_gradescope(Path(args.out), args.assignment, args.profile, _data(args.data),
                             Path(args.gold) if args.gold else None)
    print(f"Gradescope autograder written to {path} (setup.sh, run_autograder, the checks and the "
          f"hidden gold of {args.assignment}, profile {args.profile}); upload it as the assignment's "
          f"autograder")
    return 0


def cmd_merge_manual(args) -> int:
    from .batch.classrun import merge_manual

    return merge_manual(Path(args.dir), Path(args.filled))


def cmd_new(args) -> int:
    from .scaffold import new_pack

    out = new_pack(args.name, Path(args.out))
    print(f"pack {args.name} written to {out}; next: grader gold --assignment {out}, then "
          f"grader grade {out / 'submissions' / 'reference'} --assignment {out} (docs/authoring.md)")
    return 0


def cmd_profiles(args) -> int:
    pack = packmod.load(args.assignment)
    rubric = rubricmod.load(args.assignment)
    print(f"{rubric.title} ({pack.root})" + (f": {pack.profile_help}" if pack.profile_help else ""))
    for name, profile in rubric.profiles.items():
        print(f"  {name:<8} {profile.get('description', '')}")
    return 0


def cmd_answers_template(args) -> int:
    from .examples import answers_template

    text = answers_template(args.assignment)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Autograder for deep-learning assignments")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("grade", help="grade one submission (folder, .zip, .py or .ipynb)")
    p.add_argument("path")
    _common(p)
    p.add_argument("--out", help="output folder (default out/grade)")
    p.add_argument("--student", help="student id (default: from the file name)")
    p.add_argument("--gold", help="a gold folder built by `grader gold` (default: cache, built if missing)")
    p.add_argument("--always-train", action="store_true",
                   help="train every model, even one shown to be the reference's")
    p.add_argument("--no-cache", action="store_true",
                   help="run every probe, even one whose answer is known for this exact submission")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("check", help="students: self-check your work on the visible tests")
    p.add_argument("path")
    _common(p)
    p.add_argument("--out")
    p.add_argument("--gold")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("gold", help="build gold outputs by running the reference through the probes")
    _common(p)
    p.add_argument("--out", help="gold folder (default: the cache)")
    p.set_defaults(func=cmd_gold)

    p = sub.add_parser("bundle", help="build the student bundle (visible checks, no reference, no hidden gold)")
    p.add_argument("--student", action="store_true", required=True)
    _common(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("demo", help="grade the bundled example submissions on the embedded default")
    _common(p)
    p.add_argument("--out", default="out/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("batch", help="TAs: grade a class (a folder or zip of submissions) into a gradebook")
    p.add_argument("input", help="a folder of submissions, or a zip of them (e.g. the LMS's download)")
    _common(p)
    p.add_argument("--out", required=True, help="the batch folder: per-student results, grades.csv, manual.csv")
    p.add_argument("--workers", type=int, default=0,
                   help="sandboxed workers running at once (default: min(4, CPUs)); on CPUs or one GPU, twice "
                        "as many students are in progress, their trusted-side work overlapping the probes")
    p.add_argument("--force", action="store_true", help="regrade students that already have a result")
    p.add_argument("--deadline", help="ISO-8601 deadline, e.g. 2019-03-01T23:59:00+05:30 (overrides the policy's)")
    p.add_argument("--late-policy", help="late policy TOML (deadline, penalty, grace days); see docs/ta-workflow.md")
    p.add_argument("--submitted-at", help="CSV with columns student,submitted_at (else the archives' times)")
    p.add_argument("--ledger", help="grace-day ledger JSON (default: grace_days.json beside the late policy)")
    p.add_argument("--probe-timeout", type=float, help="seconds per non-training probe (default: the profile's)")
    p.add_argument("--gold", help="a gold folder built by `grader gold` (default: cache, built if missing)")
    p.add_argument("--always-train", action="store_true",
                   help="train every model, even one shown to be the reference's")
    p.add_argument("--no-warm", action="store_true",
                   help="no warm engine: a fresh sandboxed worker and a fresh pytest per submission")
    p.add_argument("--no-cache", action="store_true",
                   help="run every probe, even one whose answer is known for this exact submission")
    p.add_argument("--gpus", help="GPUs for the workers: auto (default; also: all), none, or indices such as 0,1")
    p.add_argument("--workers-per-gpu", type=int, default=1,
                   help="workers sharing each GPU (default 1); --workers defaults to GPUs x this")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local (default): this machine; ray: each submission a Ray task")
    p.add_argument("--ray-address", help="a running Ray cluster (default: start a local instance)")
    p.add_argument("--ray-num-cpus", type=float, default=1.0, help="CPUs per submission task (default 1)")
    p.add_argument("--ray-num-gpus", type=float, default=0.0,
                   help="GPUs per submission task; fractions share a GPU (default 0)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("export", help="package the checks and hidden gold for another runner (Gradescope)")
    p.add_argument("target", choices=("gradescope",))
    _common(p)
    p.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    p.add_argument("--gold", help="a gold folder to ship (default: the cache, built if missing)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("merge-manual", help="TAs: fold a filled manual.csv into a batch's results")
    p.add_argument("dir", help="the batch folder (--out of `grader batch`)")
    p.add_argument("filled", help="the filled sheet (a copy of DIR/manual.csv with points and comments)")
    p.set_defaults(func=cmd_merge_manual)

    p = sub.add_parser("new", help="course staff: write a working pack for a tiny assignment to start from")
    p.add_argument("name", help="the pack's name (a Python identifier, e.g. hw1)")
    p.add_argument("--out", required=True, help="the pack folder to write (must not exist or be empty)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("profiles", help="list the profiles of an assignment's rubric")
    _assignment(p)
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("answers-template", help="print the answers.toml template for students")
    _assignment(p)
    p.add_argument("--out")
    p.set_defaults(func=cmd_answers_template)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .scaffold import ScaffoldError

    try:
        _resolve(args)
        return args.func(args)
    except (rubricmod.RubricError, goldmod.GoldError, packmod.PackError, ScaffoldError) as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
