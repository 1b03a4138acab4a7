"""A term-long soak: one `grader batch` over a synthetic class, killed twice and resumed.

    python3 bench/soak.py --students 1000 [--seed 0] [--workers 2] [--probe-timeout 10]
                          [--work /tmp/soak-1000] [--json report.json]

Builds a class of N zipped submissions (`<RollNo>_Assign2.zip`) from the examples: the reference
(as scripts and as a notebook), the alternative solution, every seeded-bug mutant (notebooks
among them), broken archives (corrupt, empty, wrong file names, a syntax error), each student's
files with their own header comment, and 10% of the class taken from the adversarial suite
(`submissions/a2/adversarial/`; `memory_bomb` is left out: with the profile's 6 GiB address space,
two at once would take a shared machine's memory). Kinds are drawn with a seeded RNG. Then:

  killed   `grader batch` on the class, SIGKILLed (the grader process alone, as the OOM killer
           would) twice, after seeded random numbers of finished students, and run again until done;
  clean    the same command on the same class, uninterrupted, into another folder;
  alone    one student of every kind graded alone (`grader batch` on a class of that one student);

and reports: harness errors (grader faults, a batch that did not exit 0 at the end; target 0),
students whose verdict (status and per-item points) differs from their kind graded alone (target
0; students of a kind differ only in comments, which the grader drops), the grader's peak and final
memory (RSS) and open file descriptors in each run (flat, not growing with the class), seconds per
student over the first and last hundred results of the clean run (no drift), processes left at the
end (processes whose working folder, command line or environment names the soak's folder; target
0), and whether the gradebook (grades.csv) of the killed run equals the clean run's.

Runs use `--probe-timeout` (30 s by default, so the loops and sleeps of the adversarial cases cost
30 s per probe rather than the profile's 60 s; training probes keep the profile's train_timeout;
10 s proved too short on a machine loaded to 20 on 2 cores: an honest import then timed out in
the batch and not alone) and a TMPDIR per run under the soak folder (so leftovers can be found). Not a test: 1000 students take
about an hour on 2 cores; `tests/test_soak.py` runs 100 under the `slow` marker.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "bench"))

from batch_throughput import REF, REFERENCE_FILES, zip_folder, zipfile_bytes  # noqa: E402
from grader.examples import examples_root, list_examples, materialize, to_notebook  # noqa: E402
from grader.pack import load as load_pack  # noqa: E402

LEFT_OUT = {"memory_bomb"}
BROKEN = {"broken/corrupt zip": b"PK\x03\x04 this is not a zip",
          "broken/empty zip": zipfile_bytes({}),
          "broken/wrong file names": zipfile_bytes({"my_code.py": "print('hello')\n"}),
          "broken/syntax error": zipfile_bytes({"colourization.py": "import torch\n\ndef f(:\n    pass\n",
                                                 "min_char_rnn.py": (REF / "min_char_rnn.py").read_text()})}


# ----------------------------------------------------------------------------- the class

def kinds(scratch: Path) -> tuple[dict[str, Path | bytes], list[str]]:
    """kind -> a folder (or a zip's bytes); and which kinds are adversarial."""
    out: dict[str, Path | bytes] = {}
    for example in list_examples("a2"):
        rel = example.relative_to(examples_root("a2")).as_posix()
        if rel == "reference":
            folder = scratch / "reference"
            folder.mkdir()
            for f in REFERENCE_FILES:
                if (REF / f).exists():
                    shutil.copyfile(REF / f, folder / f)
            out[rel] = folder
            nb = scratch / "reference-notebook"
            shutil.copytree(folder, nb)
            to_notebook(nb / "colourization.py", nb / "colourization.ipynb", load_pack("a2").examples["training_cells"])
            (nb / "colourization.py").unlink()
            out["reference as a notebook"] = nb
        else:
            made = materialize(example, scratch / "m")
            out[rel] = made.read_bytes() if made.is_file() else made
    out.update(BROKEN)
    adversarial = []
    for case in sorted((examples_root("a2") / "adversarial").glob("*/mutation.toml")):
        if case.parent.name in LEFT_OUT:
            continue
        rel = f"adversarial/{case.parent.name}"
        out[rel] = materialize(case.parent, scratch / "adv")
        adversarial.append(rel)
    return out, adversarial


def build_class(root: Path, students: int, seed: int) -> dict[str, str]:
    """root/class with `students` archives; returns roll number -> kind (also in root/kinds.json)."""
    cls, scratch = root / "class", root / "scratch"
    shutil.rmtree(cls, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    cls.mkdir(parents=True)
    scratch.mkdir()
    pool, adversarial = kinds(scratch)
    honest = [k for k in pool if k not in adversarial]
    rng = random.Random(seed)
    n_adv = round(students * 0.10)
    picks = [rng.choice(adversarial) for _ in range(n_adv)]
    picks += [honest[i % len(honest)] if i < len(honest) else rng.choice(honest)
              for i in range(students - n_adv)]        # every honest kind at least once
    rng.shuffle(picks)
    made = {}
    for i, kind in enumerate(picks):
        student = f"CS{17 + i // 500}BTECH{11000 + i % 500 + 1:05d}"
        src = pool[kind]
        dest = cls / f"{student}_Assign2.zip"
        if isinstance(src, bytes):
            dest.write_bytes(src)
        else:
            folder = scratch / "student"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(src, folder)
            for path in folder.glob("*.py"):      # their own header: other bytes, same behaviour
                path.write_text(f"# {student}: CSC321 assignment 2, my own work\n" + path.read_text())
            zip_folder(folder, dest, prefix=f"{student}_Assign2/")
        made[student] = kind
    (root / "kinds.json").write_text(json.dumps(made, indent=1))
    return made


# ----------------------------------------------------------------------------- running a batch

class Sampler(threading.Thread):
    """Samples a process's RSS and open descriptors every `every` seconds until it exits."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []    # (seconds, rss MiB, fds)
        self.start_t = time.monotonic()
        self.start()

    def run(self):
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as fh:
                    status = fh.read()
                if "State:\tZ" in status:
                    return
                rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            except (OSError, StopIteration):
                return
            self.samples.append((round(time.monotonic() - self.start_t, 1), round(rss / 1024, 1), fds))
            time.sleep(self.every)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"peak_rss_mib": max(s[1] for s in self.samples), "final_rss_mib": self.samples[-1][1],
                "peak_fds": max(s[2] for s in self.samples), "final_fds": self.samples[-1][2],
                "rss_at_quarters_mib": [self.samples[int(q * (len(self.samples) - 1))][1] for q in (0.25, 0.5, 0.75, 1)],
                "fds_at_quarters": [self.samples[int(q * (len(self.samples) - 1))][2] for q in (0.25, 0.5, 0.75, 1)],
                "samples": len(self.samples)}


def batch_argv(cls: Path, out: Path, args) -> list[str]:
    return [sys.executable, "-m", "grader.cli", "batch", str(cls), "--out", str(out), "--profile", "ci",
            "--workers", str(args.workers), "--probe-timeout", str(args.probe_timeout),
            "--deadline", "2019-03-01T00:00:00Z"]


def results_in(out: Path) -> int:
    return sum(1 for _ in out.glob("*/result.json"))


def run_batch(cls: Path, out: Path, args, env: dict, log: Path, kill_after: int | None = None) -> dict:
    """One `grader batch` process; with kill_after, SIGKILL it once that many results exist."""
    started = time.monotonic()
    with log.open("a") as fh:
        proc = subprocess.Popen(batch_argv(cls, out, args), cwd=PROJECT, env=env, stdout=fh, stderr=fh,
                                start_new_session=True)
        sampler = Sampler(proc.pid)
        killed = False
        while proc.poll() is None:
            if kill_after is not None and results_in(out) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                proc.wait()
                break
            time.sleep(0.2)
        sampler.join(timeout=5)
    return {"exit": proc.returncode, "killed": killed, "seconds": round(time.monotonic() - started, 1),
            "results_after": results_in(out), **sampler.summary()}


def verdicts(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*/result.json")):
        doc = json.loads(path.read_text())
        found[path.parent.name] = {
            "status": doc.get("status"),
            "items": {i["id"]: i.get("points") for i in doc.get("items", [])},
            "fault": bool((doc.get("batch") or {}).get("grader_fault")),
            "errors": doc.get("errors", [])[:2], "mtime": path.stat().st_mtime,
            "seconds": doc.get("execution_time"),
            "cached": ((doc.get("batch") or {}).get("probes") or {}).get("run", 1) == 0}
    return found


def same(a: dict, b: dict) -> bool:
    return a["status"] == b["status"] and a["items"] == b["items"]


def leftovers(work: Path) -> list[str]:
    """Processes that belong to the soak: their working folder, command line or environment names
    `work` (a run's TMPDIR: its workspaces, runtime copy and sandboxes are there)."""
    mark = (str(work).rstrip("/") + "/").encode()     # /tmp/soak-10/ is not /tmp/soak-100/
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd").encode()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{entry.name}/status") as fh:
                if "State:\tZ" in fh.read():
                    continue
        except OSError:
            continue
        if mark in cwd + b"/" or mark in cmd or mark in environ:
            words = cmd.replace(b"\0", b" ")[:160].decode(errors="replace")
            found.append(f"{entry.name}: {words}")
    return found


def per_student_seconds(verdict: dict, started_at: float, block: int) -> dict:
    """Wall seconds per result over the first and the last `block` results; and, since the batch
    grades the longest expected first, the like-for-like figure: the mean grading time of the
    students answered wholly by the probe cache, over the first and the last fifth of them."""
    times = sorted(v["mtime"] for v in verdict.values())
    out = {f"wall_first_{block}": round((times[block - 1] - started_at) / block, 2),
           f"wall_last_{block}": round((times[-1] - times[-block - 1]) / block, 2)}
    cached = [v["seconds"] for v in sorted(verdict.values(), key=lambda v: v["mtime"])
              if v["cached"] and v["seconds"] is not None]
    if len(cached) >= 5:
        k = max(1, len(cached) // 5)
        out.update({"cached_students": len(cached),
                    f"cached_first_{k}_mean_s": round(sum(cached[:k]) / k, 2),
                    f"cached_last_{k}_mean_s": round(sum(cached[-k:]) / k, 2)})
    return out


# ----------------------------------------------------------------------------- the soak

def soak(args) -> dict:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    envs = {}
    for name in ("killed", "clean", "alone"):      # one TMPDIR per run: its leftovers name it
        (work / f"tmp-{name}").mkdir(exist_ok=True)
        envs[name] = dict(os.environ, TMPDIR=str(work / f"tmp-{name}"), PYTHONPATH=str(PROJECT))
    env = envs["alone"]
    report: dict = {"students": args.students, "seed": args.seed, "workers": args.workers,
                    "probe_timeout": args.probe_timeout, "loadavg_start": os.getloadavg()}
    t0 = time.monotonic()
    if args.alone_again:        # the same class and runs: only grade each kind alone again
        made = json.loads((work / "kinds.json").read_text())
        report.update({k: v for k, v in json.loads((work / "report.partial.json").read_text()).items()
                       if k not in ("loadavg_start",)})
    else:
        made = build_class(work, args.students, args.seed)
    report["kinds"] = len(set(made.values()))
    report["adversarial_students"] = sum(1 for k in made.values() if k.startswith("adversarial/"))
    rng = random.Random(args.seed + 1)
    n = args.students
    kill_points = sorted([rng.randint(int(0.15 * n), int(0.45 * n)), rng.randint(int(0.55 * n), int(0.85 * n))])
    report["kill_after_results"] = kill_points
    print(f"soak: {n} students, {report['kinds']} kinds, kills after {kill_points} results", flush=True)

    # killed (two SIGKILLs, then resumed to the end) and clean (uninterrupted), side by side with
    # --parallel (each then has half the machine), else one after the other
    killed_out, clean_out = work / "killed", work / "clean"
    if not args.alone_again:
        shutil.rmtree(killed_out, ignore_errors=True)
        shutil.rmtree(clean_out, ignore_errors=True)
    runs: list = report.get("killed_runs", [])
    clean_start = [0.0]

    def killed_run():
        for point in kill_points + [None]:
            runs.append(run_batch(work / "class", killed_out, args, envs["killed"], work / "killed.log",
                                  kill_after=point))
            # processes of the killed grader still alive 10 s later (its TMPDIR, its output folder)
            gone_at = None
            for tick in range(50):
                left = leftovers(work / "tmp-killed") + leftovers(killed_out)
                if not left:
                    gone_at = tick * 0.2
                    break
                time.sleep(0.2)
            runs[-1]["leftover_processes_after"] = left
            runs[-1]["all_gone_after_s"] = gone_at
            print(f"soak: killed-run segment {len(runs)}: {runs[-1]['results_after']} results, exit "
                  f"{runs[-1]['exit']}, {runs[-1]['seconds']} s", flush=True)
            time.sleep(1)

    def clean_run():
        clean_start[0] = report["clean_started_at"] = time.time()
        report["clean_run"] = run_batch(work / "class", clean_out, args, envs["clean"], work / "clean.log")
        print(f"soak: clean run: exit {report['clean_run']['exit']}, {report['clean_run']['seconds']} s",
              flush=True)

    if args.alone_again:
        first = min(verdicts(clean_out).values(), key=lambda v: v["mtime"])
        clean_start = [report.get("clean_started_at") or first["mtime"] - (first["seconds"] or 0)]
    elif args.parallel:
        threads = [threading.Thread(target=f) for f in (killed_run, clean_run)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        killed_run()
        clean_run()
    report["killed_runs"] = runs
    report["alone_no_cache"] = args.alone_no_cache
    clean_start = clean_start[0]
    partial(work, report)

    killed_v, clean_v = verdicts(killed_out), verdicts(clean_out)
    block = min(100, max(1, n // 5))
    report["seconds_per_student"] = per_student_seconds(clean_v, clean_start, block)
    report["gradebook_identical"] = ((killed_out / "grades.csv").exists() and
                                     (killed_out / "grades.csv").read_text() == (clean_out / "grades.csv").read_text())
    partial(work, report)

    # alone: one student of each kind, graded alone
    alone_root = work / "alone"
    shutil.rmtree(alone_root, ignore_errors=True)
    alone: dict[str, dict] = {}
    alone_exits = []
    by_kind: dict[str, str] = {}
    for student, kind in made.items():
        by_kind.setdefault(kind, student)
    def grade_alone(item):
        kind, student = item
        cls = alone_root / "class" / student
        cls.mkdir(parents=True)
        shutil.copyfile(work / "class" / f"{student}_Assign2.zip", cls / f"{student}_Assign2.zip")
        out = alone_root / "out" / student
        argv = batch_argv(cls, out, args)
        argv[argv.index("--workers") + 1] = "1"
        if args.alone_no_cache:       # computed afresh, not answered by what the batch stored
            argv.append("--no-cache")
        done = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True)
        alone_exits.append(done.returncode)
        if done.returncode != 0:
            report.setdefault("alone_nonzero", {})[kind] = [done.returncode, done.stderr.strip()[-300:]]
        alone[kind] = verdicts(out).get(student, {"status": "missing", "items": {}, "fault": True})

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(args.alone_jobs) as pool:   # each alone: a batch of one
        list(pool.map(grade_alone, sorted(by_kind.items())))
    print(f"soak: {len(alone)} kinds graded alone", flush=True)
    differs = []
    for name, (run, got) in {"killed": (killed_v, killed_v), "clean": (clean_v, clean_v)}.items():
        for student, kind in made.items():
            v = got.get(student)
            if v is None or not same(v, alone[kind]):
                differs.append({"run": name, "student": student, "kind": kind,
                                "got": None if v is None else {"status": v["status"], "items": v["items"]},
                                "alone": {"status": alone[kind]["status"], "items": alone[kind]["items"]}})
    report["verdicts_differing_from_alone"] = len(differs)
    report["differing_examples"] = differs[:10]
    faults = [s for s, v in list(killed_v.items()) + list(clean_v.items()) if v["fault"]]
    faults += [k for k, v in alone.items() if v["fault"]]
    report["harness_errors"] = {
        "grader_faults": len(faults), "fault_students": sorted(set(faults))[:10],
        "final_exit_killed_run": runs[-1]["exit"], "exit_clean_run": report["clean_run"]["exit"],
        "alone_nonzero_exits": sum(1 for c in alone_exits if c != 0),
        "missing_results": (n - len(killed_v)) + (n - len(clean_v))}
    report["harness_error_count"] = (len(faults) + (runs[-1]["exit"] != 0) + (report["clean_run"]["exit"] != 0)
                                     + report["harness_errors"]["alone_nonzero_exits"]
                                     + report["harness_errors"]["missing_results"])
    time.sleep(2)
    report["processes_left_at_end"] = leftovers(work)
    report["wall_seconds"] = round(time.monotonic() - t0, 1)
    report["loadavg_end"] = os.getloadavg()
    return report


def partial(work: Path, report: dict) -> None:
    (work / "report.partial.json").write_text(json.dumps(report, indent=1, default=str))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--probe-timeout", type=float, default=30.0)
    p.add_argument("--work", help="the soak's folder (default /tmp/soak-N)")
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--parallel", action="store_true",
                   help="run the killed and the clean batch side by side")
    p.add_argument("--alone-jobs", type=int, default=2, help="students graded alone at a time (default 2)")
    p.add_argument("--alone-no-cache", action="store_true",
                   help="grade each kind alone without the probe cache (every probe run afresh)")
    p.add_argument("--alone-again", action="store_true",
                   help="reuse the class and the killed/clean runs in --work; grade the kinds alone again")
    args = p.parse_args(argv)
    args.work = args.work or f"/tmp/soak-{args.students}"
    report = soak(args)
    text = json.dumps(report, indent=1, default=str)
    print(text, flush=True)
    if args.json:
        Path(args.json).write_text(text)
    (Path(args.work) / "report.json").write_text(text)
    ok = (report["harness_error_count"] == 0 and report["verdicts_differing_from_alone"] == 0
          and report["gradebook_identical"] and not report["processes_left_at_end"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
