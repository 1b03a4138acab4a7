"""Map check outcomes to item scores with the rubric: points, status and feedback per item."""
from __future__ import annotations

from ..records import CheckResult, ItemScore
from ..rubric import Item, Rubric


def score_item(item: Item, checks: dict[str, CheckResult]) -> ItemScore:
    got = [(c, checks[c.name]) for c in item.checks]
    points = round(sum(c.points for c, r in got if r.outcome == "passed"), 4)
    errors = [r for _, r in got if r.outcome == "error"]
    failures = [r.message for _, r in got if r.outcome == "failed" and r.message]
    if errors:
        status = "error"
        feedback = ("This item could not be graded automatically and is flagged for staff: "
                    + "; ".join(r.message.splitlines()[0] if r.message else r.name for r in errors))
    elif points >= item.points - 1e-9:
        status, feedback = "passed", "All checks passed."
    else:
        status = "partial" if points > 0 else "failed"
        feedback = "\n".join(dict.fromkeys(failures)) or "failed"
    return ItemScore(item.id, item.title, points, item.points, status, item.visibility, feedback, item.bonus)


def _manual(item: Item) -> ItemScore:
    return ItemScore(item.id, item.title, 0.0, item.points, "manual", item.visibility,
                     "Graded by a TA from your report.", item.bonus, manual=True)


def deferred(item: Item) -> ItemScore:
    """An automatic item handed to a TA because its file is absent (`manual_without`): pending, not 0."""
    what = f"no {item.manual_without} file" if item.manual_without != "answers" else "no answers.toml"
    return ItemScore(item.id, item.title, 0.0, item.points, "manual", item.visibility,
                     f"Graded by a TA from your report: the submission has {what}, so the answer is "
                     f"expected in your write-up (hand in answers.toml to have it checked "
                     f"automatically; `grader answers-template` shows the format).", item.bonus, manual=True)


def deferred_items(rubric: Rubric, absent: set[str] | frozenset = frozenset()) -> set[str]:
    """Ids of the automatic items that go to a TA because the role they read is absent."""
    return {i.id for i in rubric.items if not i.manual and i.manual_without and i.manual_without in absent}


def _selected(rubric: Rubric, visible_only: bool) -> list[Item]:
    """Manual items go to TAs, not to a student's self-check; hidden items are neither run nor named
    in a self-check."""
    if visible_only:
        return [i for i in rubric.items if not i.manual and i.visibility == "visible"]
    return list(rubric.items)


def score(rubric: Rubric, checks: dict[str, CheckResult], visible_only: bool = False,
          absent: set[str] | frozenset = frozenset()) -> list[ItemScore]:
    """`absent`: roles the submission has no file for (e.g. "answers"): items that read them
    (`manual_without`) go to a TA instead of scoring 0."""
    later = deferred_items(rubric, absent)
    return [_manual(i) if i.manual else deferred(i) if i.id in later else score_item(i, checks)
            for i in _selected(rubric, visible_only)]


def error_scores(rubric: Rubric, message: str, visible_only: bool = False) -> list[ItemScore]:
    """Every automatic item at zero with the same student-facing message (e.g. a corrupt zip)."""
    return [_manual(i) if i.manual else
            ItemScore(i.id, i.title, 0.0, i.points, "error", i.visibility, message, i.bonus)
            for i in _selected(rubric, visible_only)]
