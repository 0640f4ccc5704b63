"""The due list's case histories from SQL rows: one reading for both SQL stores. No I/O.

A due list over a caseload evaluates every open case's standards; read case by case through
the ports that is two queries per case and every event decoded whole. Here it is three
queries in all, each reading only what the standards name (`_standards.needs`): the open
cases, the records of the kinds the standards read (fields only where a condition reads them)
and the events of the triggers they read, with pauses and resumes. The store runs them in one
read snapshot and hands the rows to `histories`; the results equal the ports' reading (a test
checks it on every store).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen

from ._model import Case, Status
from ._rows import case_where, merged, status_arms
from ._standards import (
    OPEN_ROW,
    WINDOW_ROW,
    Anchored,
    CaseHistory,
    DueRow,
    Happening,
    case_number,
    needs,
    pause_triggers,
)
from .ports import CaseFilter

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "DUE_COLS",
    "HistoryQueries",
    "ReviewRow",
    "anchored_query",
    "due_changes",
    "due_histories",
    "due_open",
    "due_order",
    "due_page",
    "due_page_queries",
    "due_row",
    "due_row_params",
    "due_ties_query",
    "due_upsert",
    "histories",
    "history_queries",
    "review_query",
    "review_rows",
]

Query = tuple[str, list[Any]]


@frozen
class HistoryQueries:
    cases: Query
    records: Query | None
    events: Query | None


def _open(coach: str | None, mark: str) -> Query:
    where, params = "status <> 'closed'", []
    if coach is not None:
        where += f" AND coach = {mark}"
        params.append(coach)
    return where, params


def history_queries(
    workflow: Workflow,
    coach: str | None,
    mark: str,
    *,
    case_id: str | None = None,
    span: tuple[int, int] | None = None,
    kinds: Collection[str] | None = None,
) -> HistoryQueries:
    """The three queries, with `mark` the driver's placeholder ("?" or "%s").

    The records and events queries pick one coach's open cases by a subquery (an index seek
    per case); for the whole team they read every row of the kinds and triggers named, by
    an index on kind or trigger, and `histories` drops the closed cases' rows: cheaper than
    asking the cases table once per row. Given `case_id`, they read that one case, open or
    closed (its standards, for `show`), by the indexes on (case, kind) and (case, trigger).
    Given `span` (first, past-last case number), they read those cases, open or closed, with
    each case's closing time (rebuilding the due projection a slice at a time). `kinds`:
    read records of only those of the kinds the standards name."""
    record_kinds, field_kinds, triggers = needs(workflow.standards)
    if kinds is not None:
        record_kinds = record_kinds & frozenset(kinds)
    pause, resume = pause_triggers(workflow)
    all_triggers = sorted(triggers | pause | resume)
    where, params = _open(coach, mark) if case_id is None else (f"id = {mark}", [case_id])
    if span is not None:
        where, params = f"num >= {mark} AND num < {mark}", list(span)
    closing = ", closed_at" if span is not None else ""
    cases: Query = (f"SELECT id, coach{closing} FROM cases WHERE {where} ORDER BY num", params)
    wanted = coach is not None or span is not None
    mine = f" AND case_id IN (SELECT id FROM cases WHERE {where})" if wanted else ""
    if case_id is not None:
        mine = f" AND case_id = {mark}"
    records: Query | None = None
    if record_kinds:
        kinds = sorted(record_kinds)
        with_fields = sorted(field_kinds)
        # Fields only where a condition reads them; none at all keeps the query on the index.
        fields = (
            f"CASE WHEN kind IN ({', '.join(mark for _ in with_fields)}) THEN fields END"
            if with_fields
            else "NULL"
        )
        records = (
            f"SELECT case_id, seq, kind, substr(effective_at, 1, 10), supersedes, {fields} "
            f"FROM records WHERE kind IN ({', '.join(mark for _ in kinds)}){mine}",
            [*with_fields, *kinds, *(params if mine else [])],
        )
    events: Query | None = None
    if all_triggers:
        events = (
            "SELECT case_id, seq, kind, trigger, substr(effective_at, 1, 10) FROM events "
            f"WHERE trigger IN ({', '.join(mark for _ in all_triggers)}){mine}",
            [*all_triggers, *(params if mine else [])],
        )
    return HistoryQueries(cases, records, events)


class _Days(dict[str, dt.date]):
    """Each day's text parsed once: a caseload's events fall on few days."""

    def __missing__(self, text: str) -> dt.date:
        day = self[text] = dt.date.fromisoformat(text)
        return day


def histories(
    workflow: Workflow,
    cases: Iterable[Sequence[Any]],
    records: Iterable[Sequence[Any]],
    events: Iterable[Sequence[Any]],
) -> list[CaseHistory]:
    """Each open case's history from the rows of the three queries, in case order (with a
    closing time as a third column of `cases`, each case's, closed ones dated)."""
    pause, resume = pause_triggers(workflow)
    open_cases = list(cases)
    by_case: dict[str, list[Happening]] = {row[0]: [] for row in open_cases}
    days = _Days()
    superseded: set[int] = set()
    # Built as plain tuples: a named tuple's own constructor is a Python call, and a team's
    # list makes one per row read.
    new = tuple.__new__
    for cid, seq, kind, day, sup, fields in records:
        found = by_case.get(cid)
        if found is None:
            continue  # a closed case's (the team's query reads them all)
        if sup is not None:
            superseded.add(sup)
        values = None
        if fields is not None:
            spec = workflow.records.get(kind)
            raw = json.loads(fields)
            values = spec.from_json(raw) if spec else raw
        found.append(new(Happening, (days[day], seq, "record", None, kind, values)))
    if superseded:
        for cid, found in by_case.items():
            by_case[cid] = [h for h in found if h.seq not in superseded]
    for cid, seq, kind, trigger, day in events:
        found = by_case.get(cid)
        if found is not None:
            found.append(new(Happening, (days[day], seq, kind, trigger, None, None)))
    return [
        CaseHistory(
            case_id=row[0],
            coach=row[1],
            happenings=tuple(by_case[row[0]]),
            closed_on=_closed_on(row[2]) if len(row) > 2 else None,
            pause_triggers=pause,
            resume_triggers=resume,
        )
        for row in open_cases
    ]


def _closed_on(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


ReviewRow = tuple[str, "str | None", bool, dt.date]


def review_query(
    coach: str | None,
    last_day: dt.date,
    mark: str,
    limit: int | None = None,
    after: tuple[dt.date, int] | None = None,
) -> Query:
    """The open cases whose review is due by `last_day`, soonest first, as `Store.cases` picks
    and orders them for `due_by`, reading only the four columns a due item shows; with
    `after`, those past that (review day, case number)."""
    where = CaseFilter(coach=coach, due_by=last_day, limit=limit)
    key = (after[0].isoformat(), after[1]) if after is not None else None
    clauses, params = case_where(where, mark, key)
    # Active and paused cases each a range of cases_sort_due, merged (`_rows.merged`).
    return merged(
        "id, coach, status, review_due",
        clauses,
        params,
        status_arms(where),
        "review_due, num",
        limit,
    )


def review_rows(rows: Iterable[Sequence[Any]]) -> Iterator[ReviewRow]:
    days: dict[str, dt.date] = {}
    for cid, coach, status, due, *_ in rows:
        day = days.get(due)
        if day is None:
            day = days[due] = dt.date.fromisoformat(due)
        yield cid, coach, status == Status.PAUSED.value, day


# --- the due projection's table (`_standards.DueRow`), one reading for both SQL stores ----------

DUE_COLS = (
    "case_id, n, standard, anchor_on, occurrence, window_start, due_on, state, met_on, took, coach"
)


def _day(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return _parsed_day(value)


@functools.lru_cache(maxsize=8192)
def _parsed_day(text: str) -> dt.date:
    # A team's due rows fall on few days: each parsed once.
    return dt.date.fromisoformat(text)


def due_row(row: Sequence[Any]) -> DueRow:
    """A `due_index` row (its `DUE_COLS`) as its value."""
    cid, n, standard, anchor, occurrence, start, due, state, met, took, coach = row
    return DueRow(
        cid,
        n,
        standard,
        _day(anchor) or dt.date.min,
        occurrence,
        _day(start) or dt.date.min,
        _day(due),
        state,
        _day(met),
        took,
        coach,
    )


def due_row_params(row: DueRow) -> tuple[Any, ...]:
    """A `DueRow` as the parameters of `due_upsert` (days as ISO text; its case's number
    last)."""
    return (
        row.case_id,
        row.n,
        row.standard,
        row.anchor_on.isoformat(),
        row.occurrence,
        row.window_start.isoformat(),
        row.due_on.isoformat() if row.due_on else None,
        row.state,
        row.met_on.isoformat() if row.met_on else None,
        row.took,
        row.coach,
        case_number(row.case_id),
    )


_DUE_SELECT = ", ".join(f"d.{c}" for c in DUE_COLS.split(", "))
_DUE_NUM_SELECT = _DUE_SELECT + ", d.num"


def due_page_queries(
    coach: str | None,
    today: dt.date,
    last_day: dt.date,
    mark: str,
    limit: int | None,
    after: tuple[dt.date, int] | None = None,
    *,
    num: bool = False,
) -> tuple[Query, Query]:
    """The open deadlines due by `last_day`, and the schedule windows holding `today` that
    fall due by then, each soonest first (then by case number and row), `coach`'s only if
    given, past `after` (a day and case number): one range of an index that covers what is
    read (on (state, due_on, num), or (coach, state, due_on, num)), never a walk of the
    caseload. Closed cases have no open or window rows (a case's closing ends what it
    owes). `num`: each row's case number read after its `DUE_COLS`."""
    who, who_params = ("d.coach = " + mark + " AND ", [coach]) if coach is not None else ("", [])
    since, since_params = "", []
    if after is not None:
        since = f" AND (d.due_on, d.num) > ({mark}, {mark})"
        since_params = [after[0].isoformat(), after[1]]
    tail = " ORDER BY d.due_on, d.num, d.n" + (f" LIMIT {int(limit)}" if limit else "")
    head = f"SELECT {_DUE_NUM_SELECT if num else _DUE_SELECT} FROM due_index d WHERE {who}"
    day, last = today.isoformat(), last_day.isoformat()
    deadlines: Query = (
        f"{head}d.state = '{OPEN_ROW}' AND d.due_on <= {mark}{since}{tail}",
        [*who_params, last, *since_params],
    )
    windows: Query = (
        f"{head}d.state = '{WINDOW_ROW}' AND d.due_on >= {mark} AND d.due_on <= {mark} "
        f"AND d.window_start <= {mark}{since}{tail}",
        [*who_params, day, last, day, *since_params],
    )
    return deadlines, windows


def due_ties_query(last: DueRow, mark: str, *, num: bool = False) -> Query:
    """The rows after `last` of its case that fall due on its day in its state: what a page
    cut at `last` must still take (a due list orders a case's items of one day by title).
    `num`: as for `due_page_queries`."""
    assert last.due_on is not None
    cols = _DUE_NUM_SELECT if num else _DUE_SELECT
    return (
        f"SELECT {cols} FROM due_index d WHERE d.case_id = {mark} AND d.due_on = {mark} "
        f"AND d.state = {mark} AND d.n > {mark} ORDER BY d.n",
        [last.case_id, last.due_on.isoformat(), last.state, last.n],
    )


class _RowDays(dict[Any, Any]):
    """Days as read (ISO text, or a date already), each parsed once: a team's due rows fall
    on few days."""

    def __missing__(self, value: Any) -> dt.date:
        day = self[value] = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
        return day


def _due_rows(rows: Iterable[Sequence[Any]]) -> list[DueRow]:
    """`due_row` of each row (its `DUE_COLS`, then its case number), the days parsed once
    each and no call per row: a team's list reads one or two rows a case."""
    day, start = _RowDays(), _RowDays()
    day[None], start[None] = None, dt.date.min
    make = DueRow._make
    return [
        make((cid, n, std, start[anchor], occ, start[begin], day[due], state, day[met], took, who))
        for cid, n, std, anchor, occ, begin, due, state, met, took, who, _num in rows
    ]


# The sort key of a row read with its case number last (`_DUE_NUM_SELECT`): as `due_order`,
# days as ISO text (or dates) sorting as the days do.
_raw_order = operator.itemgetter(6, 11, 0, 1)


def due_page(
    run: Callable[[Query], Iterable[Sequence[Any]]],
    coach: str | None,
    today: dt.date,
    last_day: dt.date,
    mark: str,
    limit: int | None,
    after: tuple[dt.date, int] | None = None,
) -> list[DueRow]:
    """What `Store.due_page` answers, run through the store's `run` (a query to its rows):
    the first `limit` rows of each query and the ties of the last, merged by due day."""
    found: list[Sequence[Any]] = []
    for query in due_page_queries(coach, today, last_day, mark, limit, after, num=True):
        hits = list(run(query))
        if limit is not None and hits and len(hits) >= limit:
            (last,) = _due_rows(hits[-1:])
            hits += run(due_ties_query(last, mark, num=True))
        found += hits
    # Sorted as read, before decoding: the key is columns, not a call per row.
    found.sort(key=_raw_order)
    return _due_rows(found)


def due_open(row: DueRow, today: dt.date, last_day: dt.date) -> bool:
    """Whether a due projection row is on the due list of `today` up to `last_day`."""
    due = row.due_on
    if due is None or due > last_day:
        return False
    if row.state == OPEN_ROW:
        return True
    return row.state == WINDOW_ROW and row.window_start <= today <= due


def due_order(row: DueRow) -> tuple[dt.date, int, str, int]:
    """Due projection rows in due list order: by day, case number, row."""
    assert row.due_on is not None
    return row.due_on, case_number(row.case_id), row.case_id, row.n


def due_upsert(mark: str) -> str:
    """INSERT of one `DueRow` (`due_row_params`) that replaces the case's row `n` if any."""
    cols = [*DUE_COLS.split(", "), "num"]
    keep = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
    return (
        f"INSERT INTO due_index ({', '.join(cols)}) VALUES ({', '.join(mark for _ in cols)}) "
        f"ON CONFLICT (case_id, n) DO UPDATE SET {keep}"
    )


def due_changes(old: Sequence[DueRow], new: Sequence[DueRow]) -> list[tuple[Any, ...]]:
    """The rows of `new` to write over `old` (a case's rows before and after a write): most
    writes change one row or none, so most write nothing. Rows of `old` past the end of `new`
    are the caller's to delete."""
    return [due_row_params(r) for i, r in enumerate(new) if i >= len(old) or old[i] != r]


def anchored_query(case_id: str, anchors: Anchored, mark: str) -> Query:
    """Whether the case holds any of `anchors` (one row, true or false): by the indexes on
    (case, trigger) and (case, kind), a seek or two however long its history."""
    sql, params = _anchored_sql(anchors.triggers, anchors.records, mark)
    return sql, [case_id if p is None else p for p in params]


@functools.lru_cache(maxsize=64)
def _anchored_sql(
    triggers: frozenset[str], records: frozenset[str], mark: str
) -> tuple[str, list[str | None]]:
    # None in the parameters stands for the case id: the text is made once per set of anchors.
    parts: list[str] = []
    params: list[str | None] = []
    for table, column, names in (("events", "trigger", triggers), ("records", "kind", records)):
        if names:
            marks = ", ".join(mark for _ in names)
            parts.append(
                f"EXISTS (SELECT 1 FROM {table} WHERE case_id = {mark} AND {column} IN ({marks}))"
            )
            params += [None, *sorted(names)]
    return "SELECT " + (" OR ".join(parts) or "1 = 0"), params


def due_histories(
    workflow: Workflow,
    run: Callable[[Query], Iterable[Sequence[Any]]],
    mark: str,
    *,
    case: Case | None = None,
    span: tuple[int, int] | None = None,
) -> list[CaseHistory]:
    """The histories the due projection is worked out from, read by `run` (a store's query
    to its rows): one case's (`case`, as the write that changed it left it: its id, coach and
    closing are not read again) or a slice of case numbers' (`span`, closed ones dated)."""
    if case is None:
        q = history_queries(workflow, None, mark, span=span)
        return histories(
            workflow,
            list(run(q.cases)),
            run(q.records) if q.records else (),
            run(q.events) if q.events else (),
        )
    # One case, after a write: the anchors first (few: a referral, each job start), then the
    # records that meet only the standards anchored there. A case of thousands of reviews
    # and no job start reads none of them; the result is the same, as a standard with no
    # anchor on the case has no instance whatever else the case holds.
    standards = workflow.standards
    anchors = {s.anchor.record for s in standards if s.anchor.record is not None}
    q = history_queries(workflow, None, mark, case_id=case.id, kinds=anchors)
    events = list(run(q.events)) if q.events else []
    records = list(run(q.records)) if q.records else []
    present = {("t", row[3]) for row in events} | {("r", row[2]) for row in records}
    wanted = {
        m.record
        for s in standards
        if (("t", s.anchor.trigger) if s.anchor.trigger else ("r", s.anchor.record)) in present
        for m in s.met_by
        if m.record is not None and m.record not in anchors
    }
    if wanted:
        more = history_queries(workflow, None, mark, case_id=case.id, kinds=wanted).records
        if more is not None:
            records += run(more)
    return histories(workflow, [(case.id, case.coach, case.closed_at)], records, events)
