"""What is due: reviews and service standards in one list, read from the store at call time.

The glue between the store and the pure evaluator (`_standards.evaluate`): nothing here keeps
a timer or writes anything; a host wanting reminders calls `SEFlow.due_items` on its own
schedule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from attrs import frozen

from ._model import Case, Status
from ._standards import (
    _HOLE,
    REVIEW,
    CaseHistory,
    DueItem,
    DueList,
    Required,
    Verdicts,
    case_number,
    due_key,
    evaluate,
    happenings,
    merge,
    pause_triggers,
    record_command,
    verdicts_at,
)
from ._workflow import Workflow
from .ports import CaseFilter, Store

__all__ = ["After", "after_item", "case_histories", "case_standards", "due_list"]


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
    store: Store,
    coach: str | None,
    last_day: dt.date,
    limit: int | None,
    since: tuple[dt.date, int] | None,
) -> Iterable[tuple[str, str | None, bool, dt.date]]:
    """(case id, coach, paused, review date) of every open case whose review is due by
    `last_day`, soonest first, past `since` (a day and case number), the first `limit`. A
    store may answer this itself, reading four columns rather than whole cases (both SQL
    stores do); any other is read through its ports."""
    own = getattr(store, "due_reviews", None)
    if own is not None:
        found: Iterable[tuple[str, str | None, bool, dt.date]] = own(coach, last_day, limit, since)
        return found
    rows = (
        (c.id, c.coach, c.status is Status.PAUSED, c.review_due)
        for c in store.cases(CaseFilter(coach=coach, due_by=last_day))
        if c.review_due is not None and (since is None or (c.review_due, case_number(c.id)) > since)
    )
    return itertools.islice(rows, limit) if limit is not None else rows


@frozen
class After:
    """Where the page before ended: its last item's `DueItem.key`, read."""

    due_on: dt.date
    case_id: str
    what: str
    name: str
    occurrence: int

    @classmethod
    def parse(cls, key: str) -> After:
        """Raises ValueError for a key that is not `DATE/CASE/WHAT/NAME/OCCURRENCE`."""
        parts = key.split("/")
        if len(parts) != 5 or not parts[4].isdigit():
            raise ValueError("expected DATE/CASE/WHAT/NAME/OCCURRENCE, a due item's key")
        day, case_id, what, name, occurrence = parts
        return cls(dt.date.fromisoformat(day), case_id, what, name, int(occurrence))

    @property
    def since(self) -> tuple[dt.date, int]:
        return self.due_on, case_number(self.case_id)

    def cut(self, wf: Workflow) -> tuple[Any, ...]:
        """Its place in a due list's order (`_standards.due_key`)."""
        titles = {s.id: s.title for s in wf.standards}
        title = {"review": "Review or contact", "pause_review": "Review the pause"}.get(
            self.name, ""
        )
        if self.what != REVIEW:
            title = titles.get(self.name, self.name)
        return due_key(self.due_on, self.case_id, self.what != REVIEW, title, self.occurrence)


def after_item(items: Iterable[DueItem], wf: Workflow, after: After | None) -> list[DueItem]:
    """`items` (in due list order) past `after`."""
    found = list(items)
    if after is None:
        return found
    cut = after.cut(wf)
    return [
        i
        for i in found
        if due_key(i.due_on, i.case_id, i.what != REVIEW, i.title, i.occurrence) > cut
    ]


def _projected(store: Store, wf: Workflow, live: bool) -> bool:
    """Whether the due projection answers: asked about today or later (`live`: every
    effective date is on or before it) and kept under this very workflow (a reader with other
    stage data evaluates the log itself)."""
    return live and store.head_workflow_hash() in (None, wf.hash)


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
    live: bool = True,
    after: After | None = None,
) -> DueList:
    """Reviews and open standards due by `today` + `within_days` (before `today` with
    `overdue_only`), the first `limit`. `live`: `today` is no earlier than the clock's day,
    so the due projection answers, reading a page's rows by index (`Store.due_page`);
    otherwise (a day in the past) every open case's history is evaluated as of that day.
    `after`: the page starts after that item."""
    last_day = (
        today - dt.timedelta(days=1) if overdue_only else today + dt.timedelta(days=within_days)
    )
    required = required_fields(wf)
    make = _Reviews(wf, required, today).item
    with _no_cycle_collection(), store.read_snapshot():
        since = after.since if after is not None else None
        reviews = [make(*row) for row in _review_rows(store, coach, last_day, limit, since)]
        if not wf.standards:
            verdicts = Verdicts(())
        elif _projected(store, wf, live):
            verdicts = verdicts_at(
                store.due_page(coach, today, last_day, limit, since),
                wf.standards,
                wf.calendar,
                today,
                open_only=True,
            )
        else:
            verdicts = evaluate(
                case_histories(store, wf, coach=coach),
                wf.standards,
                wf.calendar,
                today,
                open_only=True,
            )
        found = merge(reviews, verdicts, last_day, required)
    if after is not None:
        found = DueList(tuple(after_item(found.items, wf, after)), found.warnings)
    if limit is not None:
        return DueList(found.items[:limit], found.warnings)
    return found


def case_standards(
    store: Store, wf: Workflow, case: Case, today: dt.date, live: bool = True
) -> Verdicts:
    """Every standard's instances on one case, open or closed: from its few due projection
    rows when `today` is `live` (see `due_list`), however long the case's history."""
    if not wf.standards:
        return Verdicts(())
    if _projected(store, wf, live):
        return verdicts_at(store.due_rows(case.id), wf.standards, wf.calendar, today)
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
