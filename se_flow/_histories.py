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
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen

from ._model import Status
from ._rows import case_order, case_where
from ._standards import CaseHistory, Happening, needs, pause_triggers
from .ports import CaseFilter

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "HistoryQueries",
    "ReviewRow",
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
    workflow: Workflow, coach: str | None, mark: str, *, case_id: str | None = None
) -> HistoryQueries:
    """The three queries, with `mark` the driver's placeholder ("?" or "%s").

    The records and events queries pick one coach's open cases by a subquery (an index seek
    per case); for the whole team they read every row of the kinds and triggers named, by
    an index on kind or trigger, and `histories` drops the closed cases' rows: cheaper than
    asking the cases table once per row. Given `case_id`, they read that one case, open or
    closed (its standards, for `show`), by the indexes on (case, kind) and (case, trigger)."""
    record_kinds, field_kinds, triggers = needs(workflow.standards)
    pause, resume = pause_triggers(workflow)
    all_triggers = sorted(triggers | pause | resume)
    where, params = _open(coach, mark) if case_id is None else (f"id = {mark}", [case_id])
    cases: Query = (f"SELECT id, coach FROM cases WHERE {where} ORDER BY num", params)
    mine = f" AND case_id IN (SELECT id FROM cases WHERE {where})" if coach is not None else ""
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
    """Each open case's history from the rows of the three queries, in case order."""
    pause, resume = pause_triggers(workflow)
    open_cases = list(cases)
    by_case: dict[str, list[Happening]] = {cid: [] for cid, _ in open_cases}
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
            case_id=cid,
            coach=coach,
            happenings=tuple(by_case[cid]),
            pause_triggers=pause,
            resume_triggers=resume,
        )
        for cid, coach in open_cases
    ]


ReviewRow = tuple[str, "str | None", bool, dt.date]


def review_query(coach: str | None, last_day: dt.date, mark: str) -> Query:
    """The open cases whose review is due by `last_day`, soonest first, as `Store.cases` picks
    and orders them for `due_by`, reading only the four columns a due item shows."""
    where = CaseFilter(coach=coach, due_by=last_day)
    clauses, params = case_where(where, mark)
    sql = "SELECT id, coach, status, review_due FROM cases WHERE " + " AND ".join(clauses)
    return sql + case_order(where), params


def review_rows(rows: Iterable[Sequence[Any]]) -> Iterator[ReviewRow]:
    days: dict[str, dt.date] = {}
    for cid, coach, status, due in rows:
        day = days.get(due)
        if day is None:
            day = days[due] = dt.date.fromisoformat(due)
        yield cid, coach, status == Status.PAUSED.value, day
