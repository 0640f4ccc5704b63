"""What is due: reviews and service standards in one list, read from the store at call time.

The glue between the store and the pure evaluator (`_standards.evaluate`): nothing here keeps
a timer or writes anything; a host wanting reminders calls `SEFlow.due_items` on its own
schedule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Iterable, Iterator

import attrs

from ._model import Case, Status
from ._standards import (
    _HOLE,
    REVIEW,
    CaseHistory,
    DueItem,
    DueList,
    Required,
    Verdicts,
    evaluate,
    happenings,
    merge,
    pause_triggers,
    record_command,
)
from ._workflow import Workflow
from .ports import CaseFilter, Store

__all__ = ["case_histories", "case_standards", "due_list"]


def case_histories(
    store: Store, wf: Workflow, *, coach: str | None = None
) -> Iterator[CaseHistory]:
    """Every open case's history as service standards read it, `coach`'s cases only if given.

    A store may answer this itself, reading less (only what `_standards.needs` names, plus
    pauses and resumes: the SQLite store does, with three queries); any other store is read
    case by case through its ports. The results must be the same."""
    own = getattr(store, "case_histories", None)
    if own is not None:
        found: Iterator[CaseHistory] = own(wf, coach=coach)
        return found
    return _histories(store, wf, coach)


def _histories(store: Store, wf: Workflow, coach: str | None) -> Iterator[CaseHistory]:
    pause, resume = pause_triggers(wf)
    for case in store.cases(CaseFilter(coach=coach, open_only=True)):
        yield CaseHistory(
            case_id=case.id,
            coach=case.coach,
            happenings=happenings(store.events(case_id=case.id), wf.records),
            pause_triggers=pause,
            resume_triggers=resume,
        )


def required_fields(wf: Workflow) -> Required:
    """Each record kind's required fields and types, for the commands a due item prints."""
    return {
        k.name: tuple((f.name, f.type) for f in k.fields if f.required) for k in wf.records.values()
    }


class _Reviews:
    """Review items, with the words and command each shares worked out once per list (a team's
    list has one per open case)."""

    def __init__(self, wf: Workflow, required: Required, today: dt.date) -> None:
        self.today = today
        contact = sorted(k.name for k in wf.records.values() if k.contact)
        self.does_it = (f"a contact record ({', '.join(contact)})",)
        # The case id is the only part of the command that changes from case to case.
        self.command = (
            record_command(_HOLE, "review", required).split(_HOLE)
            if "review" in wf.records
            else None
        )

    def item(self, case_id: str, coach: str | None, paused: bool, due_on: dt.date) -> DueItem:
        if paused:
            return DueItem(
                case_id=case_id,
                coach=coach,
                what=REVIEW,
                name="pause_review",
                title="Review the pause",
                due_on=due_on,
                overdue=due_on < self.today,
                does_it=("trigger resume, or a new pause with a later review date",),
                commands=(f"se-flow resume {case_id}",),
            )
        command = self.command
        return DueItem(
            case_id=case_id,
            coach=coach,
            what=REVIEW,
            name=REVIEW,
            title="Review or contact",
            due_on=due_on,
            overdue=due_on < self.today,
            does_it=self.does_it,
            commands=(command[0] + case_id + command[1],) if command else (),
        )


def _review_rows(
    store: Store, coach: str | None, last_day: dt.date
) -> Iterable[tuple[str, str | None, bool, dt.date]]:
    """(case id, coach, paused, review date) of every open case whose review is due by
    `last_day`, soonest first. A store may answer this itself, reading four columns rather
    than whole cases (both SQL stores do); any other is read through its ports."""
    own = getattr(store, "due_reviews", None)
    if own is not None:
        found: Iterable[tuple[str, str | None, bool, dt.date]] = own(coach, last_day)
        return found
    return (
        (c.id, c.coach, c.status is Status.PAUSED, c.review_due)
        for c in store.cases(CaseFilter(coach=coach, due_by=last_day))
        if c.review_due is not None
    )


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cycle collector off while a list is built. A team's list makes millions of small
    objects, none in a cycle; each collection walks them all again, and they took more than
    half of the time (measured at 100k cases). Reference counting frees as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def due_list(
    store: Store,
    wf: Workflow,
    *,
    today: dt.date,
    coach: str | None,
    within_days: int,
    overdue_only: bool,
    limit: int | None,
) -> DueList:
    last_day = (
        today - dt.timedelta(days=1) if overdue_only else today + dt.timedelta(days=within_days)
    )
    required = required_fields(wf)
    make = _Reviews(wf, required, today).item
    with _no_cycle_collection():
        reviews = [make(*row) for row in _review_rows(store, coach, last_day)]
        verdicts = (
            evaluate(
                case_histories(store, wf, coach=coach),
                wf.standards,
                wf.calendar,
                today,
                open_only=True,
            )
            if wf.standards
            else Verdicts(())
        )
        found = merge(reviews, verdicts, last_day, required)
    if limit is not None:
        return DueList(found.items[:limit], found.warnings)
    return found


def case_standards(store: Store, wf: Workflow, case: Case, today: dt.date) -> Verdicts:
    """Every standard's instances on one case, open or closed."""
    if not wf.standards:
        return Verdicts(())
    closed_on = case.closed_at.date() if case.closed_at else None
    own = getattr(store, "case_histories", None)
    if own is not None:
        # What the standards name and no more (as for the due list): on a case of thousands
        # of records, their kinds and days, not every event decoded.
        (found,) = own(wf, case_id=case.id)
        ordered = tuple(sorted(found.happenings, key=lambda h: h.seq))
        history = attrs.evolve(found, happenings=ordered, closed_on=closed_on)
    else:
        pause, resume = pause_triggers(wf)
        history = CaseHistory(
            case_id=case.id,
            coach=case.coach,
            happenings=happenings(store.events(case_id=case.id), wf.records),
            closed_on=closed_on,
            pause_triggers=pause,
            resume_triggers=resume,
        )
    return evaluate([history], wf.standards, wf.calendar, today)
