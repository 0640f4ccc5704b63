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

from ._histories import due_open, due_order
from ._model import Case, Status
from ._standards import (
    _HOLE,
    OPEN_ROW,
    REVIEW,
    WINDOW_ROW,
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
    merge_rows,
    pause_triggers,
    record_command,
    verdicts_at,
)
from ._workflow import Workflow
from .errors import NotFound, quoted
from .ports import CaseFilter, Store

__all__ = ["by_cases", "case_histories", "case_standards", "due_chunks", "due_list"]


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


def _projected(store: Store, wf: Workflow, live: bool) -> bool:
    """Whether the due projection answers: asked about today or later (`live`: every
    effective date is on or before it) and kept under this very workflow (a reader with other
    stage data evaluates the log itself)."""
    return live and store.head_workflow_hash() in (None, wf.hash)


def by_cases(found: DueList, limit: int | None, after: str | None) -> DueList:
    """The page of `found` holding the `limit` cases that come after case `after` in it
    (each case where its first, most urgent, item is), with all their items, in order."""
    if limit is None and after is None:
        return found
    order = list(dict.fromkeys(i.case_id for i in found.items))
    if after is not None:
        if after not in order:
            raise _not_on_list(after)
        order = order[order.index(after) + 1 :]
    kept = set(order if limit is None else order[:limit])
    return DueList(tuple(i for i in found.items if i.case_id in kept), found.warnings)


def _not_on_list(after: str) -> NotFound:
    return NotFound(
        f"case {quoted(after)} is not on this due list (nothing due on it now): "
        "start again from the first page"
    )


def _key(item: DueItem) -> tuple[Any, ...]:
    return due_key(item.due_on, item.case_id, item.what != REVIEW, item.title, item.occurrence)


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


def _last_day(today: dt.date, within_days: int, overdue_only: bool) -> dt.date:
    """The last due date a list of `today` holds: yesterday's for what is overdue only."""
    return today - dt.timedelta(days=1) if overdue_only else today + dt.timedelta(days=within_days)


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
    after: str | None = None,
) -> DueList:
    """Reviews and open standards due by `today` + `within_days` (before `today` with
    `overdue_only`), paged by whole cases: everything due on the first `limit` cases after
    case `after` (each case placed by its first item). `live`: `today` is no earlier than
    the clock's day, so the due projection answers, a page reading only its cases' rows
    (`Store.due_page`, then each case's own); otherwise (a day in the past) every open
    case's history is evaluated as of that day and the page cut from the whole list."""
    last_day = _last_day(today, within_days, overdue_only)
    required = required_fields(wf)
    make = _Reviews(wf, required, today).item
    with _no_cycle_collection(), store.read_snapshot():
        projected = not wf.standards or _projected(store, wf, live)
        if projected and (limit is not None or after is not None):
            return _page(store, wf, today, last_day, coach, limit, after, required, make)
        reviews = [make(*row) for row in _review_rows(store, coach, last_day, None, None)]
        if not wf.standards:
            verdicts = Verdicts(())
        elif projected:
            rows = store.due_page(coach, today, last_day, None)
            found = merge_rows(reviews, rows, wf.standards, wf.calendar, today, required)
            return by_cases(found, limit, after)
        else:
            verdicts = evaluate(
                case_histories(store, wf, coach=coach),
                wf.standards,
                wf.calendar,
                today,
                open_only=True,
            )
        found = merge(reviews, verdicts, last_day, required)
    return by_cases(found, limit, after)


def due_chunks(
    store: Store,
    wf: Workflow,
    *,
    today: dt.date,
    coach: str | None,
    within_days: int,
    overdue_only: bool,
    size: int,
    live: bool = True,
) -> Iterator[DueList]:
    """`due_list`'s whole list (no `limit`) in consecutive pieces, in its order: joined,
    their items are its items. When the due projection answers (see `due_list`), each piece
    is read from the three index ranges `size` rows at a time after the one before, so the
    list of a caseload of any size is never held whole; otherwise it is one piece. A piece's
    `warnings` are those of what it read (one may come again in a later piece). Reads in
    one snapshot of the store, until the last piece is taken."""
    last_day = _last_day(today, within_days, overdue_only)
    required = required_fields(wf)
    make = _Reviews(wf, required, today).item
    with _no_cycle_collection(), store.read_snapshot():
        if wf.standards and not _projected(store, wf, live):
            yield due_list(
                store,
                wf,
                today=today,
                coach=coach,
                within_days=within_days,
                overdue_only=overdue_only,
                limit=None,
                live=live,
            )
            return
        since: tuple[dt.date, int] | None = None
        while True:
            reviews = [make(*row) for row in _review_rows(store, coach, last_day, size, since)]
            rows = store.due_page(coach, today, last_day, size, since) if wf.standards else []
            # Each range read in (day, case number) order up to `size` rows: below where the
            # first of them to stop early stopped, every item of the list has been read.
            ends = []
            if len(reviews) >= size:
                ends.append((reviews[-1].due_on, case_number(reviews[-1].case_id)))
            for state in (OPEN_ROW, WINDOW_ROW):
                mine = [r for r in rows if r.state == state]
                if len(mine) >= size:
                    end = max(mine, key=due_order)
                    assert end.due_on is not None
                    ends.append((end.due_on, case_number(end.case_id)))
            found = merge_rows(reviews, rows, wf.standards, wf.calendar, today, required)
            if not ends:
                yield found
                return
            bound = min(ends)
            kept = tuple(i for i in found.items if (i.due_on, case_number(i.case_id)) < bound)
            if not kept:
                # One (day, case) holds more than `size` rows: read further at once.
                size *= 4
                continue
            yield DueList(kept, found.warnings)
            since = (kept[-1].due_on, case_number(kept[-1].case_id))


def _case_items(
    store: Store,
    wf: Workflow,
    case_ids: Iterable[str],
    today: dt.date,
    last_day: dt.date,
    required: Required,
    make: Any,
) -> DueList:
    """Everything due on these cases, from their own rows (a few each)."""
    reviews: list[DueItem] = []
    rows = []
    for cid in case_ids:
        case = store.case(cid)
        if case.status is Status.CLOSED:
            continue
        if case.review_due is not None and case.review_due <= last_day:
            reviews.append(make(cid, case.coach, case.status is Status.PAUSED, case.review_due))
        rows += [r for r in store.due_rows(cid) if due_open(r, today, last_day)]
    verdicts = verdicts_at(rows, wf.standards, wf.calendar, today, open_only=True)
    return merge(reviews, verdicts, last_day, required)


def _page(
    store: Store,
    wf: Workflow,
    today: dt.date,
    last_day: dt.date,
    coach: str | None,
    limit: int | None,
    after: str | None,
    required: Required,
    make: Any,
) -> DueList:
    """`by_cases` of the whole list, reading only what the page needs: the list's items in
    order from the three index ranges (reviews, deadlines, schedule windows), read further
    until `limit` cases are found, then those cases' own rows."""
    cut: tuple[Any, ...] | None = None
    since: tuple[dt.date, int] | None = None
    if after is not None:
        mine = _case_items(store, wf, [after], today, last_day, required, make).items
        if coach is not None and store.case(after).coach != coach:
            mine = ()
        if not mine:
            raise _not_on_list(after)
        cut = _key(mine[0])
        since = (mine[0].due_on, case_number(after))
    size = max(2 * (limit or 0), 64)
    while True:
        reviews = [make(*row) for row in _review_rows(store, coach, last_day, size, since)]
        rows = store.due_page(coach, today, last_day, size, since) if wf.standards else []
        # Each range is read in order up to `size`: the merged list is whole up to the first
        # range's end that was reached.
        ends = []
        if len(reviews) >= size:
            ends.append(_key(reviews[-1]))
        if rows and len(rows) >= size:
            last = max(rows, key=due_order)
            assert last.due_on is not None
            ends.append((last.due_on, case_number(last.case_id), last.case_id))
        bound = min(ends) if ends else None
        verdicts = verdicts_at(rows, wf.standards, wf.calendar, today, open_only=True)
        items = merge(reviews, verdicts, last_day, required)
        chosen: list[str] = []
        seen: set[str] = set()
        complete = True
        for item in items.items:
            key = _key(item)
            if bound is not None and key[:3] > bound[:3]:
                complete = False
                break
            if item.case_id in seen or (cut is not None and key <= cut):
                seen.add(item.case_id)
                continue
            seen.add(item.case_id)
            if cut is not None:
                # A case met here first may have come earlier in the list: it was then on
                # an earlier page (its first item is where it stands).
                own = _case_items(store, wf, [item.case_id], today, last_day, required, make)
                if own.items and _key(own.items[0]) <= cut:
                    continue
            chosen.append(item.case_id)
            if limit is not None and len(chosen) >= limit:
                break
        else:
            complete = bound is None
        if (limit is not None and len(chosen) >= limit) or complete or bound is None:
            page = _case_items(store, wf, chosen, today, last_day, required, make)
            return DueList(page.items, items.warnings or page.warnings)
        size *= 4


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
