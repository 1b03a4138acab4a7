"""Throughput of grading a class: the naive way against `grader batch` with the warm engine.

    python3 bench/batch_throughput.py [--profile ci] [--workers 2] [--no-cache-batch] [--cold-batch]
                                      [--baseline REV] [--keep DIR]
    python3 bench/batch_throughput.py --assignment hw5 [--real] [--workers 2] [--keep DIR]

(--assignment hw5: the HW5 examples, and with --real the real corpus, graded by `grader batch`;
it prints the seconds per submission, wall x workers / submissions, against issue 13's 60 s.)

Builds a class of 40 zipped submissions named like an LMS download (`<RollNo>_Assign2.zip`): the
reference, the alternative solution, every seeded-bug mutant, notebooks, students whose files are
the reference with their own header comment (other bytes, but comments are dropped when modules
are prepared, so the probe cache answers all but the first of them; --no-cache-batch times the
engine without it), two repeated common bugs, one byte-identical resubmission, and four broken
archives. Then, in one run on this machine (gold built first, untimed):

  compute  the pure compute of the probes: each submission's probe functions called in this
           process (no sandbox, no worker, no checks, one torch and one BLAS thread as in a
           worker), with the same reuse of the reference's training as the grader;
  naive    `grader grade` once per submission, sequentially, a fresh process each (no probe cache:
           the status quo before the warm engine);
  batch    `grader batch --workers W` (warm engine and probe cache, both defaults; an empty cache);
  nocache  (with --no-cache-batch) `grader batch --no-cache`: the warm engine without the probe cache;
  cold     (with --cold-batch) `grader batch --no-warm --no-cache`, the batch engine before;
  baseline (with --baseline REV) the naive way again, with the grader of git revision REV.

It prints the wall times, naive/batch, and the harness overhead of the batch: the part of its wall
time not explained by the probe compute it had to do spread perfectly over W workers,
(batch - needed / W) / batch, where `needed` leaves out the submissions the probe cache answered
(their files prepare to the same bytes as an earlier student's: byte-identical, or differing only in
comments); and the same against the compute actually run in W processes at once on this machine
(which also pays for whatever else the machine is doing). Not a test: it takes
ten minutes or more on 2 cores.
"""
from __future__ import annotations

import os

# The compute measured in this process and its pool gets a worker's threads: one for torch (set in
# _setup) and one for numpy's BLAS (read when numpy loads, so set before any import). The grader
# runs launched from here get the caller's environment unchanged (CALLER_ENV).
CALLER_ENV = dict(os.environ)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from grader.examples import examples_root, list_examples, materialize, to_notebook  # noqa: E402
from grader.pack import load as load_pack  # noqa: E402

REFERENCE_FILES = load_pack("a2").reference_files

REF = PROJECT / "reference" / "a2"


def zip_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return dest


def with_header(folder: Path, student: str) -> Path:
    """The student's own header comment on every .py (the same behaviour, other bytes)."""
    for path in folder.glob("*.py"):
        path.write_text(f"# {student}: CSC321 assignment 2, my own work\n" + path.read_text())
    return folder


def build_class(root: Path) -> dict[str, str]:
    """The class folder root/class; returns roll number -> what it is."""
    cls, scratch = root / "class", root / "scratch"
    cls.mkdir(parents=True)
    scratch.mkdir()
    made: dict[str, str] = {}
    n = [0]

    def roll() -> str:
        n[0] += 1
        return f"CS17BTECH11{n[0]:03d}"

    def add_folder(folder: Path, what: str, student: str | None = None) -> str:
        student = student or roll()
        zip_folder(folder, cls / f"{student}_Assign2.zip", prefix=f"{student}_Assign2/")
        made[student] = what
        return student

    def reference_copy(name: str) -> Path:
        dest = scratch / name
        dest.mkdir()
        for f in REFERENCE_FILES:
            if (REF / f).exists():
                shutil.copyfile(REF / f, dest / f)
        return dest

    # the reference, the alternative and every mutant, once each
    for example in list_examples("a2"):
        rel = example.relative_to(examples_root("a2")).as_posix()
        folder = reference_copy("reference") if rel == "reference" else materialize(example, scratch / "m")
        if folder.is_file():                           # a mutant that is a zip already
            student = roll()
            shutil.copyfile(folder, cls / f"{student}_Assign2.zip")
            made[student] = rel
        else:
            add_folder(folder, rel)
    # students whose code is the reference, each with their own header: 16 scripts, 2 notebooks
    for i in range(16):
        student = roll()
        add_folder(with_header(reference_copy(f"ref{i}"), student), "reference + header", student)
    for i in range(2):
        student = roll()
        folder = with_header(reference_copy(f"nb{i}"), student)
        to_notebook(folder / "colourization.py", folder / "colourization.ipynb", load_pack("a2").examples["training_cells"])
        (folder / "colourization.py").unlink()
        add_folder(folder, "reference as a notebook + header", student)
    # two common bugs again, other students
    for name in ("mutants/unet_missing_skip", "mutants/hardcoded_24"):
        student = roll()
        folder = materialize(examples_root("a2") / name, scratch / f"again-{student}")
        add_folder(with_header(folder, student), f"{name} + header", student)
    # a byte-identical resubmission of one student's archive
    first_copy = next(s for s, w in made.items() if w == "reference + header")
    shutil.copyfile(cls / f"{first_copy}_Assign2.zip", cls / f"{first_copy}_Assign2 (1).zip")
    made[f"{first_copy}-2"] = "resubmission, byte-identical"
    # broken ones
    broken = {"corrupt zip": b"PK\x03\x04 this is not a zip",
              "empty zip": zipfile_bytes({}),
              "wrong file names": zipfile_bytes({"my_code.py": "print('hello')\n"}),
              "syntax error": zipfile_bytes({"colourization.py": "import torch\n\ndef f(:\n    pass\n",
                                              "min_char_rnn.py": (REF / "min_char_rnn.py").read_text()})}
    for what, data in broken.items():
        student = roll()
        (cls / f"{student}_Assign2.zip").write_bytes(data)
        made[student] = f"broken: {what}"
    return made


def zipfile_bytes(files: dict) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------

_COMPUTE: dict = {}


def _setup(profile_name: str):
    """Per process: one torch thread (as in a worker), the gold and the plan."""
    if "specs" not in _COMPUTE:
        import torch

        from grader import gold as goldmod
        from grader import rubric as rubricmod
        from grader.probes.reuse import reference_stands

        torch.set_num_threads(1)
        rubric = rubricmod.load("a2")
        profile = rubric.profile(profile_name)
        gold = goldmod.ensure(rubric, profile, None)
        plan = rubric.plan_module()
        groups = sorted({g for item in rubric.auto_items() for g in item.probes})
        specs = [spec for g in groups for spec in plan.GROUPS[g](profile, gold.inputs)]
        for spec in specs:     # writable copies: gold's own arrays are read-only, a worker's are not
            spec.arrays = {k: v.copy() for k, v in spec.arrays.items()}
        _COMPUTE["specs"] = specs
        _COMPUTE["reuse"] = reference_stands(gold.outputs, "a2")
    return _COMPUTE["specs"], _COMPUTE["reuse"]


def _warm(profile_name: str) -> None:
    _setup(profile_name)
    time.sleep(0.5)                           # so that each pool process gets one of these


def compute_one(path: str, profile_name: str) -> float:
    """Seconds of one submission's probe functions, called in this process (no sandbox, no worker,
    no checks), with the grader's reuse of the reference's training."""
    from grader.intake.unpack import load_submission
    from grader.records import ProbeResult
    from grader.worker.main import Context

    PROBES = load_pack("a2").probe_module().PROBES

    specs, reuse = _setup(profile_name)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        sub = load_submission(Path(path), Path(tmp) / "ws", assignment="a2")
        if sub.error:
            return 0.0
        ctx = Context(sub.workspace, {r: p.name for r, p in sub.modules.items()})
        sys.path.insert(0, str(sub.workspace))
        started = time.perf_counter()
        results: dict = {}
        for spec in specs:
            if spec.role not in sub.modules:
                continue
            reused = reuse(spec, results) if spec.reuse_if else None
            if reused is not None:
                results[spec.key] = reused
                continue
            try:
                out, meta = PROBES[spec.probe](ctx, spec.args, spec.arrays)
                results[spec.key] = ProbeResult(spec.key, True, out, meta)
            except BaseException as exc:  # noqa: BLE001 - the student's error, as in a worker
                results[spec.key] = ProbeResult(spec.key, False, error=str(exc))
        seconds = time.perf_counter() - started
        sys.path.remove(str(sub.workspace))
    return seconds


def pure_compute(cls: Path, profile_name: str) -> tuple[float, dict]:
    """Sequential, in this process: the sum of every submission's probe compute."""
    per = {p.name: compute_one(str(p), profile_name) for p in sorted(cls.iterdir())}
    return sum(per.values()), per


def parallel_compute(cls: Path, profile_name: str, workers: int) -> float:
    """Wall time of the same probe compute spread over `workers` processes (a pool that hands out
    submissions one at a time, longest-first unknown): what a harness with no overhead at all
    would take on this machine, under the same load."""
    import concurrent.futures as futures
    import multiprocessing

    paths = [str(p) for p in sorted(cls.iterdir())]
    ctx = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_warm, [profile_name] * workers))           # start every process first
        started = time.monotonic()
        list(pool.map(compute_one, paths, [profile_name] * len(paths)))
        return time.monotonic() - started


def timed(argv: list[str], env: dict, log: Path) -> tuple[float, int]:
    started = time.monotonic()
    with open(log, "a") as fh:
        code = subprocess.run(argv, cwd=PROJECT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    return time.monotonic() - started, code


def scores(folder: Path) -> dict[str, tuple[str, float]]:
    out = {}
    for path in sorted(folder.glob("*/result.json")):
        doc = json.loads(path.read_text())
        out[path.parent.name] = (doc["status"], doc["auto_score"])
    return out


def revision() -> str:
    """The checkout's git revision (with `+changes` when its tracked files differ), for the record."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------------
# HW5: seconds per submission of `grader batch` (issue 13's target: <= 60 s on 2 cores, ci profile)
# --------------------------------------------------------------------------------------------------

REAL_HW5 = PROJECT.parent / "shared" / "real-hw5"


def build_hw5_class(root: Path, real: bool) -> dict[str, str]:
    """root/class: every HW5 example as a zip (the reference, the alternative, the seeded bugs; the
    starters where ../shared has them), and with `real` the real corpus folders too."""
    from grader.examples import ExampleError

    cls, scratch = root / "class", root / "scratch"
    cls.mkdir(parents=True)
    scratch.mkdir()
    made = {}
    for example in list_examples("hw5"):
        name = example.relative_to(examples_root("hw5")).as_posix().replace("/", "-")
        try:
            folder = materialize(example, scratch / name, "hw5")
        except ExampleError:
            continue                                   # a starter under ../shared, absent here
        zip_folder(folder, cls / f"{name}.zip")
        made[name] = "example"
    if real and REAL_HW5.is_dir():
        for folder in sorted(p for p in REAL_HW5.iterdir() if p.is_dir()):
            zip_folder(folder, cls / f"real-{folder.name}.zip")
            made[f"real-{folder.name}"] = "real"
    return made


def hw5_main(args) -> int:
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-hw5-"))
    if root.exists() and any(root.iterdir()):
        sys.exit(f"{root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    env = dict(CALLER_ENV, GRADER_CACHE=str(root / "cache"), PYTHONPATH=str(PROJECT))
    log = root / "bench.log"
    made = build_hw5_class(root, args.real)
    rev = revision()
    print(f"HW5 class: {len(made)} submissions; revision {rev}; machine: {os.cpu_count()} CPUs, load {loadavg()}",
          flush=True)
    took, code = timed([sys.executable, "-m", "grader.cli", "gold", "--assignment", "hw5", "--profile",
                        args.profile], env, log)
    print(f"gold built in {took:.0f} s (untimed below; exit {code})", flush=True)
    load_before = loadavg()
    batch_s, code = timed([sys.executable, "-m", "grader.cli", "batch", str(root / "class"), "--assignment", "hw5",
                           "--out", str(root / "batch"), "--profile", args.profile, "--workers", str(args.workers)],
                          env, log)
    each = {}
    for path in sorted((root / "batch").glob("*/result.json")):
        doc = json.loads(path.read_text())
        each[(doc.get("batch") or {}).get("source", path.parent.name)] = (doc["execution_time"], doc["auto_score"])
    times = sorted(t for t, _ in each.values())
    per = batch_s * args.workers / max(1, len(made))
    print(f"batch ({args.workers} workers): {batch_s:.1f} s wall for {len(made)} submissions (exit {code}; load "
          f"{load_before} -> {loadavg()})")
    print(f"seconds per HW5 submission      {per:8.1f} s  (wall x workers / submissions; target <= 60)")
    if times:
        print(f"  each one's own grading time   median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s")
    for source, (t, score) in sorted(each.items(), key=lambda kv: -kv[1][0])[:10]:
        print(f"  {source:40s} {t:7.1f} s  {score:g} points")
    (root / "bench.json").write_text(json.dumps({"assignment": "hw5", "revision": rev, "submissions": len(made),
                                                 "batch_s": batch_s, "load": [load_before, loadavg()],
                                                 "workers": args.workers, "seconds_per_submission": per,
                                                 "each": each}, indent=1, default=str))
    print(f"details: {root / 'bench.json'}; log: {log}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assignment", default="a2", choices=("a2", "hw5"),
                    help="hw5: time `grader batch` on the HW5 examples (seconds per submission)")
    ap.add_argument("--real", action="store_true", help="hw5: add the real corpus (../shared/real-hw5)")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--cold-batch", action="store_true", help="also time `grader batch --no-warm --no-cache`")
    ap.add_argument("--no-cache-batch", action="store_true", help="also time `grader batch --no-cache` (warm)")
    ap.add_argument("--keep", help="keep the class and the outputs in this folder")
    ap.add_argument("--baseline", metavar="REV",
                    help="also time the naive way with the grader of git revision REV (e.g. the commit "
                         "this work started from), exported with `git archive`")
    args = ap.parse_args()
    if args.assignment == "hw5":
        return hw5_main(args)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    if root.exists() and any(root.iterdir()):
        sys.exit(f"{root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    env = dict(CALLER_ENV, GRADER_CACHE=str(root / "cache"), PYTHONPATH=str(PROJECT))
    os.environ.update(GRADER_CACHE=env["GRADER_CACHE"])
    python = sys.executable
    log = root / "bench.log"
    made = build_class(root)
    cls = root / "class"
    print(f"class: {len(made)} submissions in {cls}; machine: {os.cpu_count()} CPUs, load {loadavg()}", flush=True)

    took, code = timed([python, "-m", "grader.cli", "gold", "--assignment", "a2", "--profile", args.profile],
                       env, log)
    print(f"gold built in {took:.0f} s (untimed below)", flush=True)

    compute, per = pure_compute(cls, args.profile)
    print(f"compute: {compute:.1f} s of probe functions in-process (all {len(per)} submissions, sequential)",
          flush=True)
    compute_par = parallel_compute(cls, args.profile, args.workers)
    print(f"compute: {compute_par:.1f} s wall in {args.workers} processes (load {loadavg()})", flush=True)

    probe_cache = root / "probe-cache"
    batch_env = dict(env, GRADER_PROBE_CACHE=str(probe_cache))
    load_before = loadavg()
    batch_s, code = timed([python, "-m", "grader.cli", "batch", str(cls), "--out", str(root / "batch"),
                           "--profile", args.profile, "--workers", str(args.workers)], batch_env, log)
    print(f"batch (warm engine, {args.workers} workers): {batch_s:.1f} s (exit {code}; load {load_before} -> {loadavg()})",
          flush=True)

    nocache_s = None
    if args.no_cache_batch:
        nocache_s, code = timed([python, "-m", "grader.cli", "batch", str(cls), "--out", str(root / "nocache"),
                                 "--profile", args.profile, "--workers", str(args.workers), "--no-cache"], env, log)
        print(f"batch --no-cache (warm engine): {nocache_s:.1f} s (exit {code})", flush=True)

    cold_s = None
    if args.cold_batch:
        cold_s, code = timed([python, "-m", "grader.cli", "batch", str(cls), "--out", str(root / "cold"),
                              "--profile", args.profile, "--workers", str(args.workers), "--no-warm",
                              "--no-cache"], env, log)
        print(f"batch --no-warm --no-cache: {cold_s:.1f} s (exit {code})", flush=True)

    load_before = loadavg()
    naive_s = 0.0
    for path in sorted(cls.iterdir()):
        took, code = timed([python, "-m", "grader.cli", "grade", str(path), "--profile", args.profile,
                            "--out", str(root / "naive" / path.name), "--no-cache"], env, log)
        naive_s += took
    print(f"naive (`grader grade` x {len(made)}, sequential): {naive_s:.1f} s (load {load_before} -> {loadavg()})",
          flush=True)

    base_s = None
    if args.baseline:
        base = root / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", args.baseline], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        base_env = dict(CALLER_ENV, GRADER_CACHE=str(root / "cache-baseline"), PYTHONPATH=str(base),
                        PYTHONDONTWRITEBYTECODE="1")
        subprocess.run([python, "-m", "grader.cli", "gold", "--assignment", "a2", "--profile", args.profile],
                       cwd=base, env=base_env, capture_output=True)
        load_before = loadavg()
        base_s = 0.0
        for path in sorted(cls.iterdir()):
            started = time.monotonic()
            with open(log, "a") as fh:
                subprocess.run([python, "-m", "grader.cli", "grade", str(path), "--profile", args.profile, "--out",
                                str(root / "naive-baseline" / path.name)], cwd=base, env=base_env, stdout=fh,
                               stderr=subprocess.STDOUT)
            base_s += time.monotonic() - started
        print(f"naive with the grader at {args.baseline}: {base_s:.1f} s (load {load_before} -> {loadavg()})",
              flush=True)

    batch_scores = scores(root / "batch")
    source_of = {s["source"]: s["student"] for s in json.loads((root / "batch" / "batch.json").read_text())["students"]}
    naive_scores = {}
    for path in sorted((root / "naive").glob("*/result.json")):
        doc = json.loads(path.read_text())
        naive_scores[source_of.get(path.parent.name, path.parent.name)] = (doc["status"], doc["auto_score"])
    differ = {s: (naive_scores.get(s), batch_scores.get(s)) for s in set(naive_scores) | set(batch_scores)
              if naive_scores.get(s) != batch_scores.get(s)}

    # The probe compute the batch really had to do: a submission whose answers came from the probe
    # cache (another student's identical prepared files) ran none of it.
    needed = 0.0
    for path in sorted((root / "batch").glob("*/result.json")):
        info = json.loads(path.read_text()).get("batch") or {}
        probes = info.get("probes") or {}
        asked = probes.get("run", 0) + probes.get("from_cache", 0)
        needed += per.get(info.get("source"), 0.0) * (probes.get("run", 0) / asked if asked else 1.0)
    ideal = needed / args.workers
    overhead = (batch_s - ideal) / batch_s
    overhead_par = (batch_s - compute_par * needed / compute) / batch_s if compute else 0.0
    print()
    print(f"submissions                     {len(made)}")
    print(f"naive, sequential               {naive_s:8.1f} s  ({naive_s / len(made):.1f} s per submission)")
    print(f"batch, warm engine              {batch_s:8.1f} s  ({batch_s / len(made):.2f} s per submission)")
    if nocache_s is not None:
        print(f"batch, warm, --no-cache         {nocache_s:8.1f} s  (ratio {naive_s / nocache_s:.2f} x; overhead "
              f"{(nocache_s - compute / args.workers) / nocache_s * 100:.1f} % of it against all the compute / "
              f"{args.workers})")
    if cold_s is not None:
        print(f"batch, --no-warm --no-cache     {cold_s:8.1f} s")
    if base_s is not None:
        print(f"naive, grader at {args.baseline[:10]:<10}     {base_s:8.1f} s  ({base_s / len(made):.1f} s per submission)")
    print(f"ratio naive / batch             {naive_s / batch_s:8.2f} x   (target >= 4)")
    if base_s is not None:
        print(f"ratio naive at {args.baseline[:10]:<10} / batch {base_s / batch_s:6.2f} x")
    print(f"probe compute, in-process       {compute:8.1f} s  (every submission, sequential)")
    print(f"  ... in {args.workers} processes at once   {compute_par:8.1f} s wall")
    print(f"  ... that the batch had to do  {needed:8.1f} s  (not answered by the probe cache; "
          f"/ {args.workers} workers = {ideal:.1f} s)")
    print(f"harness overhead of the batch   {overhead * 100:8.1f} %   (batch - needed compute/{args.workers}, of the "
          f"batch; target <= 25%)")
    print(f"  ... against the parallel run  {overhead_par * 100:8.1f} %   (batch - the parallel run's wall for the "
          f"needed share, of the batch)")
    print(f"scores naive vs batch           {'identical' if not differ else f'DIFFER: {differ}'}")
    (root / "bench.json").write_text(json.dumps({
        "submissions": len(made), "naive_s": naive_s, "batch_s": batch_s, "cold_batch_s": cold_s,
        "nocache_batch_s": nocache_s,
        "baseline": args.baseline, "naive_baseline_s": base_s,
        "compute_s": compute, "compute_parallel_s": compute_par, "compute_needed_s": needed,
        "workers": args.workers,
        "ratio": naive_s / batch_s, "overhead": overhead, "overhead_vs_parallel": overhead_par,
        "scores_differ": {k: [list(a) if a else None, list(b) if b else None] for k, (a, b) in differ.items()},
        "per_submission_compute": per, "class": made}, indent=1, default=str))
    print(f"details: {root / 'bench.json'}; log: {log}")
    if not args.keep:
        shutil.rmtree(root / "class", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
