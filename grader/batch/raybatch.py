"""`grader batch --executor ray`: each submission a Ray task, results written by the driver.

    grader batch INPUT --out DIR --executor ray [--ray-address ADDR] [--ray-num-cpus N] [--ray-num-gpus F]

The driver (this process) does everything a local batch does around the grading: it lists and
extracts the entries (a class zip is extracted here, under the same limits), decides who is
already graded, and writes every result, picture, gradebook and summary with the same code as the
local executor (`Batch.record`). A Ray task gets the submission's bytes, the options and the gold
(shipped once through Ray's object store and unpacked into each node's cache when that node does
not have it), grades it with `executor.grade_submission` (the local executor's own function) in that
node's sandbox, and returns the report, the batch info and the picture.

Each Ray worker process keeps a warm engine (a zygote and a check server) across the tasks it runs,
so a cluster pays start-up costs once per Ray worker, not per student. `--ray-num-cpus` and
`--ray-num-gpus` are each task's resources (fractional GPUs let several submissions share one);
a task given GPUs runs its workers on `ray.get_gpu_ids()`.

Nodes need what a local grader needs: the project installed (the same version), root and
bubblewrap for the isolated sandbox. Without --ray-address a local Ray instance is started with
`--workers` CPUs (default: min(4, CPUs)) and stopped at the end.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path


WINDOW_PER_WORKER = 2           # tasks in flight per parallel slot: bounds the driver's memory
_STATE: dict = {}


def available() -> str | None:
    """None if Ray can be imported here, else why not."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        return f"--executor ray needs Ray (pip install 'dl-grader[ray]'): {exc}"
    return None


# --------------------------------------------------------------------------------------------------
# Packing what a task needs
# --------------------------------------------------------------------------------------------------

def pack_path(path: Path) -> dict:
    """A submission (file or folder) as plain data: names, bytes and symlinks, nothing followed."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        if path.is_symlink():
            return {"name": path.name, "kind": "file", "files": [("", None, os.readlink(path))]}
        return {"name": path.name, "kind": "file", "files": [("", path.read_bytes(), None)]}
    files = []
    for top, dirs, names in os.walk(path, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + names):
            full = Path(top) / name
            rel = str(full.relative_to(path))
            if full.is_symlink():
                files.append((rel, None, os.readlink(full)))
            elif full.is_file():
                files.append((rel, full.read_bytes(), None))
            elif full.is_dir():
                files.append((rel + "/", None, None))
    return {"name": path.name, "kind": "dir", "files": files}


def unpack_path(packed: dict, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / packed["name"]
    if packed["kind"] == "file":
        _, data, link = packed["files"][0]
        if link is not None:
            os.symlink(link, root)
        else:
            root.write_bytes(data)
        return root
    root.mkdir()
    for rel, data, link in packed["files"]:
        target = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            continue
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if link is not None:
            os.symlink(link, target)
        else:
            target.write_bytes(data)
    return root


def pack_gold(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    return buf.getvalue()


def gold_key(root: Path) -> str:
    return hashlib.sha256((Path(root) / "manifest.json").read_bytes()).hexdigest()


def local_gold(driver_root: str, key: str, holder: list) -> Path:
    """The gold folder on this node: the driver's own if it is here and the same, else the
    shipped copy unpacked (once per node) into this node's cache."""
    driver = Path(driver_root)
    if (driver / "manifest.json").exists() and gold_key(driver) == key:
        return driver
    from ..gold import cache_root

    dest = cache_root() / "gold-shipped" / key[:32]
    if not (dest / "manifest.json").exists():
        import ray

        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".gold-", dir=dest.parent))
        with zipfile.ZipFile(io.BytesIO(ray.get(holder[0]))) as zf:
            zf.extractall(staging)
        try:
            staging.rename(dest)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)      # another task unpacked it first
    return dest


# --------------------------------------------------------------------------------------------------
# The task (runs in a Ray worker process)
# --------------------------------------------------------------------------------------------------

def _worker_state(assignment: str, profile: dict, hide: list[str], gpu: str | None, warm: bool,
                  cache: bool):
    """This Ray worker process's engine and sandbox, kept warm across the tasks it runs."""
    from ..sandbox.engine import Engine
    from ..pipeline import sandbox_for
    from ..probes.cache import ProbeCache

    key = (assignment, repr(sorted(profile.items())), tuple(hide), warm, cache)
    if key not in _STATE:
        engine = Engine(assignment, warm=warm, cache=ProbeCache() if cache else None, log=None)
        _STATE[key] = (engine, {})
        atexit.register(engine.close)
    engine, sandboxes = _STATE[key]
    if gpu not in sandboxes:
        sandboxes[gpu] = engine.sandbox(sandbox_for(profile, hide=[Path(p) for p in hide], gpu=gpu))
    return engine, sandboxes[gpu]


def grade_task(payload: dict, gold_holder: list) -> dict:
    from .. import rubric as rubricmod
    from .executor import grade_submission

    gpu = None
    if payload["num_gpus"]:
        import ray

        gpu = ",".join(str(g) for g in ray.get_gpu_ids())
    gold_dir = local_gold(payload["gold_root"], payload["gold_key"], gold_holder)
    opts = dataclasses.replace(payload["opts"], gold_dir=gold_dir)
    engine, sandbox = _worker_state(opts.assignment, payload["profile"], payload["hide"], gpu,
                                    payload["warm"], payload["cache"])
    rubric = rubricmod.load(opts.assignment)
    with tempfile.TemporaryDirectory(prefix="grader-ray-") as tmp:
        source = unpack_path(payload["submission"], Path(tmp) / "in")
        pictures = Path(tmp) / "picture"
        pictures.mkdir()
        report, info = grade_submission(source, opts, sandbox, engine, pictures, rubric, log=lambda m: None)
        name = info.get("picture")
        picture = (pictures / name).read_bytes() if name and (pictures / name).exists() else None
    return {"report": report, "info": info, "picture": picture, "node": os.uname().nodename}


# --------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------

def run_ray(jobs, todo, outcomes: dict, profile: dict, gold, hide: list[Path], gpus: list[str],
            workers: int) -> bool:
    """Grade `todo` as Ray tasks; False if interrupted (finished students are kept). `jobs`: the
    batch driver's side (grader.batch.executor.Jobs)."""
    import ray

    s = jobs.settings
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if s.ray_address:
            ray.init(address=s.ray_address, **kwargs)
        else:
            project = str(Path(__file__).resolve().parent.parent.parent)
            ray.init(num_cpus=workers, num_gpus=len(gpus) or None,
                     runtime_env={"env_vars": {"PYTHONPATH": project,    # and the packs named by path
                                               "GRADER_PACKS": os.environ.get("GRADER_PACKS", "")}}, **kwargs)
    jobs.describe(f"ray ({'cluster at ' + s.ray_address if s.ray_address else 'a local instance'}; "
                         f"{s.ray_num_cpus:g} CPU and {s.ray_num_gpus:g} GPU per submission; "
                  f"{'warm engine per Ray worker' if s.warm else 'cold workers'})")
    remote = ray.remote(grade_task).options(num_cpus=s.ray_num_cpus, num_gpus=s.ray_num_gpus,
                                            max_retries=0)
    holder = [ray.put(pack_gold(gold.root))]
    key = gold_key(gold.root)
    base = {"profile": profile, "hide": [str(p) for p in hide], "gold_root": str(gold.root),
            "gold_key": key, "warm": s.warm, "cache": s.cache, "num_gpus": s.ray_num_gpus}
    window = max(4, WINDOW_PER_WORKER * max(1, workers))
    pending = list(todo)
    inflight: dict = {}
    try:
        while pending or inflight:
            while pending and len(inflight) < window:
                entry = pending.pop(0)
                submitted = _submit(jobs, entry, remote, base, holder)
                if submitted is not None:
                    inflight[submitted[0]] = submitted[1:]
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                entry, folder, old, info, t0 = inflight.pop(ref)
                try:
                    out = ray.get(ref)
                    if out["picture"]:
                        (folder / out["info"]["picture"]).write_bytes(out["picture"])
                    jobs.merge_extra(folder, info, out["info"])
                    report = out["report"]
                    t0 = time.monotonic() - report.execution_time
                except Exception as exc:  # noqa: BLE001 - a failed task is ours, never the student's
                    report = jobs.fault(folder, info, exc)
                result = jobs.record(entry, report, info, old, t0)
                outcomes[entry.student] = result
                jobs.done(entry, result)
        return True
    except KeyboardInterrupt:
        jobs.message("interrupted: cancelling the submissions in flight; run the same "
                               "command again to resume")
        for ref in inflight:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        return False
    finally:
        if started_here:
            ray.shutdown()


def _submit(jobs, entry, remote, base: dict, holder: list):
    """Start one student's task (or record at once a student who cannot be graded)."""
    t0 = time.monotonic()
    folder, old, info = jobs.prepare(entry)
    work = jobs.work / entry.student
    jobs.started()
    try:
        source, report = jobs.source(entry, work)
        if source is not None:
            payload = dict(base, opts=jobs.options(entry.student), submission=pack_path(source))
            return remote.remote(payload, holder), entry, folder, old, info, t0
    except Exception as exc:  # noqa: BLE001
        report = jobs.fault(folder, info, exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = jobs.record(entry, report, info, old, t0)
    jobs.done(entry, result)
    return None
