"""The order a batch grades its students in: the longest expected first (trusted side, static).

A batch of N students on W worker slots ends when its last student does. Handed out in the class's
own order, a long submission (one whose models train) that comes late runs on alone while the other
slots sit idle; handed out longest first, the short ones fill the slots at the end instead (the
classic longest-processing-time rule). The cost of a submission is not known before it runs, so it
is estimated from what intake gives, without running anything:

- a submission intake refuses, or one prepared to the same workspace bytes as an earlier student's
  (the probe cache answers it), costs next to nothing;
- the pack's cost hook (grader/pack.py) says what the rest costs, e.g. a model class that is not
  the reference's, as parsed (`model_code`), is expected to train (one equal to the reference's
  usually has the reference's training result reused, see grader/probes/reuse.py);
- without a hook, the cost grows with the roles the submission fills.

The estimate only orders the students: every student is graded the same way whatever the order
(the probe cache's answers are exact), so a wrong guess costs time, never marks. A planning thread
runs intake ahead of the graders into a scratch folder (the prepared files are memoised, so the
grader's own intake of the same files is nearly free) and hands out the highest estimate planned so
far; planning runs far ahead of grading, so after the first few students the order is the class's.
"""
from __future__ import annotations

import ast
import heapq
import shutil
import threading
from pathlib import Path

from ..intake.unpack import load_submission
from ..probes.cache import workspace_digest

TRAINS = 10.0          # one model expected to train, against ...
ROLE = 1.0             # ... one role's quick probes


def _definitions(source: str) -> dict[str, ast.AST]:
    """The module's top-level classes and functions, without docstrings."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for fn in [node] + [n for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                if len(fn.body) > 1 and isinstance(fn.body[0], ast.Expr) and \
                        isinstance(fn.body[0].value, ast.Constant) and isinstance(fn.body[0].value.value, str):
                    fn.body = fn.body[1:]
            defs[node.name] = node
    return defs


def model_code(source: str, name: str) -> dict[str, str] | None:
    """What class `name` does, as parsed (no positions, comments or docstrings), together with the
    module's classes and functions it names, transitively. None if absent."""
    defs = _definitions(source)
    if name not in defs:
        return None
    out, todo = {}, [name]
    while todo:
        n = todo.pop()
        if n in out or n not in defs:
            continue
        out[n] = ast.dump(defs[n], include_attributes=False)
        todo += [x.id for x in ast.walk(defs[n]) if isinstance(x, ast.Name)]
    return out


class CostModel:
    """The planner's estimate: nothing for a refused submission or a copy of one already planned,
    else the pack's cost hook, else one unit per role filled."""

    def __init__(self, assignment: str):
        from .. import pack as packmod

        pack = packmod.load(assignment)
        hook = pack.hook("cost")
        self.estimate = hook(pack) if hook is not None else None
        self.seen: set[str] = set()

    def cost(self, sub) -> float:
        if sub.error:
            return 0.0
        key = workspace_digest(sub.workspace) + repr(sorted((r, p.name) for r, p in sub.modules.items()))
        if key in self.seen:
            return 0.0                      # the probe cache will answer it from the earlier copy
        self.seen.add(key)
        if self.estimate is not None:
            return float(self.estimate.cost(sub))
        return ROLE * len(sub.modules)


class Planner:
    """Estimates each entry's cost in a thread (intake into `scratch`) and hands out entries
    highest estimate first, among those planned so far; ties keep the class's order."""

    def __init__(self, entries: list, source, scratch: Path, assignment: str, stop: threading.Event):
        """`source(entry, work) -> (path or None, error report or None)`: the batch's own."""
        self.entries, self.source, self.scratch, self.stop = list(entries), source, Path(scratch), stop
        self.model = CostModel(assignment)
        self.assignment = assignment
        self.heap: list[tuple[float, int]] = []
        self.planned = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._plan, name="grade-planner", daemon=True)
        self.thread.start()

    def _estimate(self, i: int, entry) -> float:
        work = self.scratch / f"{i}"
        try:
            path, _ = self.source(entry, work / "entry")
            if path is None:
                return 0.0
            return self.model.cost(load_submission(path, work / "ws", student=entry.student,
                                                   assignment=self.assignment))
        except Exception:  # noqa: BLE001 - a guess only; the grader meets the problem itself
            return ROLE
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _plan(self) -> None:
        for i, entry in enumerate(self.entries):
            cost = ROLE if self.stop.is_set() else self._estimate(i, entry)
            with self.cond:
                heapq.heappush(self.heap, (-cost, i))
                self.planned += 1
                self.cond.notify()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)

    def next(self):
        """The next entry to grade (blocks until one is planned); None when all were handed out."""
        with self.cond:
            while not self.heap and self.planned < len(self.entries):
                self.cond.wait()
            if not self.heap:
                return None
            return self.entries[heapq.heappop(self.heap)[1]]
