"""How a case is kept in a table row, and filters become SQL: one for both SQL stores.

Times are ISO 8601 text in UTC (text order is time order), dates ISO text, the status its
value; `CASE_COLS` is the column order `case_from_row` reads and `case_params` writes after the
id and participant. No I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import evolve, frozen

from ._model import EVENT_COLUMNS, Case, EventKind, Record, Status
from .errors import StoreNotEmpty
from .ports import READING_SKIPS, CaseFilter, CaseReading, Needs, StageRow, StoreCopy

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "AFTER_KEY",
    "AFTER_ROW",
    "CASE_COLS",
    "CURRENT",
    "ID_PREFIX_END",
    "RECORD_COLS",
    "SORT_COLS",
    "CaseRun",
    "case_columns",
    "case_from_row",
    "case_params",
    "case_queries",
    "case_query",
    "case_readings",
    "case_runs",
    "case_values",
    "case_where",
    "dt_or_none",
    "event_columns",
    "event_where",
    "guard_records",
    "latest_records",
    "marks_columns",
    "marks_of",
    "merged",
    "needs_of",
    "picks_query",
    "reading_queries",
    "record_from_row",
    "refuse_if_not_empty",
    "restore_order",
    "run_key",
    "since_query",
    "sort_row",
    "status_arms",
    "ts",
    "with_texts",
]

CASE_COLS = (
    "id, participant_id, state, phase, status, version, opened_at, stage_entered_at, coach, "
    "episode, previous_case_id, last_contact_at, review_due, outcome, closed_at"
)


def ts(value: dt.datetime | None) -> str | None:
    """`value`'s ISO text. A command writes its one `now` several times (its event's times, its
    case's stage or contact time, its records'), and an `isoformat` costs as much as the rest
    of sealing a row: the last few datetimes written are remembered, by identity (equal
    instants in other zones write other text), each kept alive so its id is not reused."""
    if value is None:
        return None
    key = id(value)
    hit = _WRITTEN.get(key)
    if hit is not None and hit[0] is value:
        return hit[1]
    text = value.isoformat()
    if len(_WRITTEN) >= 8:
        _WRITTEN.clear()
    _WRITTEN[key] = (value, text)
    return text


_WRITTEN: dict[int, tuple[dt.datetime, str]] = {}


def dt_or_none(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def case_from_row(row: Sequence[Any]) -> Case:
    # Read by every command: `dt_or_none` and `ts` written out here, a call fewer each.
    at = dt.datetime.fromisoformat
    return Case(
        id=row[0],
        participant_id=row[1],
        state=row[2],
        phase=row[3],
        status=row[4],  # the field's converter makes it a `Status`
        version=row[5],
        opened_at=at(row[6]),
        stage_entered_at=at(row[7]),
        coach=row[8],
        episode=row[9],
        previous_case_id=row[10],
        last_contact_at=at(row[11]) if row[11] else None,
        review_due=dt.date.fromisoformat(row[12]) if row[12] else None,
        outcome=row[13],
        closed_at=at(row[14]) if row[14] else None,
    )


def case_params(case: Case) -> tuple[Any, ...]:
    last_contact_at, review_due, closed_at = case.last_contact_at, case.review_due, case.closed_at
    return (
        case.state,
        case.phase,
        case.status.value,
        case.version,
        case.opened_at.isoformat(),
        case.stage_entered_at.isoformat(),
        case.coach,
        case.episode,
        case.previous_case_id,
        last_contact_at.isoformat() if last_contact_at is not None else None,
        review_due.isoformat() if review_due else None,
        case.outcome,
        closed_at.isoformat() if closed_at is not None else None,
    )


# --- filters as SQL: one WHERE for both SQL stores --------------------------------------------
# `mark` is the driver's placeholder: "?" for sqlite3, "%s" for psycopg.


def case_where(
    where: CaseFilter, mark: str, after_key: Sequence[Any] | None = None
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (joined with AND by the caller) and parameters picking `where`'s
    cases from the `cases` table; its order and limit are the caller's. With `where.after`,
    the caller reads that case's `AFTER_KEY` first and passes it as `after_key` (no such
    case: the caller picks none)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("coach", where.coach),
        ("state", where.state),
        ("status", where.status.value if where.status else None),
        ("participant_id", where.participant_id),
    ):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if where.open_only:
        clauses.append("status <> 'closed'")
    if where.id_prefix:
        # A range, not LIKE: it is a range of the primary key's index on both stores (their
        # ids compare bytewise: SQLite's BINARY, PostgreSQL's COLLATE "C"), and no character of
        # the prefix is a wildcard. U+10FFFF sorts after every character an id can hold.
        clauses.append(f"id >= {mark} AND id < {mark}")
        params.extend((where.id_prefix, where.id_prefix + ID_PREFIX_END))
    # Sorted by something else, a page reads the sort's index and keeps the rows within the
    # date: the column is wrapped so neither SQL planner takes the date's index instead (it
    # would read every case within the date, then sort them, for each page).
    sorted_by = _SORT_COLUMN.get(where.sort, "") if where.sort is not None else None
    if where.due_by is not None:
        due = "review_due" if sorted_by in (None, "review_due") else "COALESCE(review_due, NULL)"
        clauses.append(f"status <> 'closed' AND {due} <= {mark}")
        params.append(where.due_by.isoformat())
    if where.entered_before is not None:
        entered = (
            "stage_entered_at"
            if sorted_by in (None, "stage_entered_at")
            else "COALESCE(stage_entered_at, NULL)"
        )
        # Times are UTC ISO text: before the day's date is before its first instant.
        clauses.append(f"status <> 'closed' AND {entered} < {mark}")
        params.append(where.entered_before.isoformat())
    if after_key is not None:
        # The order's own key, compared as a row value: an index range, never an offset.
        # (Given as values: with a subquery in its place SQLite ranges on review_due alone.)
        if where.due_by is not None:
            clauses.append(f"(review_due, num) > ({mark}, {mark})")
            params.extend(after_key)
        else:
            clauses.append(f"num > {mark}")
            params.append(after_key[1])
    return clauses, params


# The column each sort's order starts with (the others start each run with another one).
_SORT_COLUMN = {"days": "stage_entered_at", "due": "review_due", "seen": "last_contact_at"}

ID_PREFIX_END = "\U0010ffff"
"""Appended to an `id_prefix` for the end of its range: the last code point there is."""

AFTER_KEY = "SELECT review_due, num FROM cases WHERE id = {mark}"
"""The key `case_where` pages after: the `after` case's review date and number."""


SORT_COLS = (
    "id",
    "num",
    "state",
    "phase",
    "coach",
    "stage_entered_at",
    "last_contact_at",
    "review_due",
)
"""The columns a read's order is made of: what `sort_row` gives and `AFTER_ROW` reads."""

AFTER_ROW = f"SELECT {', '.join(SORT_COLS)} FROM cases WHERE id = {{mark}}"
"""The `after` case's `SORT_COLS`, read to page after it (`case_queries`)."""

# Never NULL in the table: a run need not say so.
_NOT_NULL = frozenset({"id", "num", "state", "stage_entered_at"})


@frozen
class CaseRun:
    """A run of a read's order: the cases whose `nulls` columns are NULL (and `keys` are
    not), in one of `states` (None: any) and none of `not_states`, by `keys` ascending. Each
    run is one index range; a NULL never takes part in the order, so the page's last case
    compares as a row value (keyset paging) on both SQL stores."""

    keys: tuple[str, ...]
    nulls: tuple[str, ...] = ()
    states: tuple[str, ...] | None = None
    not_states: tuple[str, ...] = ()

    def holds(self, row: Mapping[str, Any]) -> bool:
        state = row["state"]
        return (
            all(row[c] is None for c in self.nulls)
            and all(row[c] is not None for c in self.keys)
            and (self.states is None or state in self.states)
            and state not in self.not_states
        )

    def where(self, mark: str, *, by_state: bool = True) -> tuple[list[str], list[Any]]:
        """The run's clauses and parameters. Not `by_state`: the state is compared so that no
        planner reads the run by the state's index (for a read another index finds few
        rows of: one coach's cases)."""
        clauses = [f"{c} IS NULL" for c in self.nulls]
        clauses += [f"{c} IS NOT NULL" for c in self.keys if c not in _NOT_NULL]
        params: list[Any] = []
        state = "state" if by_state else "COALESCE(state, NULL)"
        for states, op in ((self.states, "IN"), (self.not_states or None, "NOT IN")):
            if states is None:
                continue
            if len(states) == 1:
                clauses.append(f"{state} {'=' if op == 'IN' else '<>'} {mark}")
            else:
                clauses.append(f"{state} {op} ({', '.join([mark] * len(states))})")
            params.extend(states)
        return clauses, params


def case_runs(where: CaseFilter, stage_groups: Sequence[Sequence[str]] = ()) -> tuple[CaseRun, ...]:
    """The runs `where`'s cases are read in, one after another (`CASE_SORTS` says each
    order; `stage_groups` is the workflow's, `Workflow.stage_groups`). Raises `ValueError`
    for a sort that is none of them."""
    sort = where.sort
    if sort is None:
        if where.due_by is not None:
            return (CaseRun(("review_due", "num")),)
        return (CaseRun(("id",)),) if where.id_prefix is not None else (CaseRun(("num",)),)
    if sort == "days":
        return (CaseRun(("stage_entered_at", "num")),)
    if sort == "due":
        return (CaseRun(("review_due", "num")), CaseRun(("num",), nulls=("review_due",)))
    if sort == "seen":
        return (CaseRun(("num",), nulls=("last_contact_at",)), CaseRun(("last_contact_at", "num")))
    if sort == "coach":
        return (CaseRun(("coach", "num")), CaseRun(("num",), nulls=("coach",)))
    if sort == "stage":
        known = tuple(s for group in stage_groups for s in group)
        runs: list[CaseRun] = []
        for states, others in [*((tuple(g), ()) for g in stage_groups), (None, known)]:
            runs.append(CaseRun(("num",), nulls=("phase",), states=states, not_states=others))
            runs.append(CaseRun(("phase", "num"), states=states, not_states=others))
        return tuple(runs)
    raise ValueError(f"unknown sort {sort!r}")


def sort_row(case: Case) -> dict[str, Any]:
    """`case`'s `SORT_COLS` as the SQL stores keep them (`case_params`)."""
    review_due, last_contact_at = case.review_due, case.last_contact_at
    digits = case.id.rpartition("-")[2]
    return {
        "id": case.id,
        "num": int(digits) if digits.isdigit() else 0,
        "state": case.state,
        "phase": case.phase,
        "coach": case.coach,
        "stage_entered_at": case.stage_entered_at.isoformat(),
        "last_contact_at": last_contact_at.isoformat() if last_contact_at is not None else None,
        "review_due": review_due.isoformat() if review_due else None,
    }


def run_key(runs: Sequence[CaseRun], row: Mapping[str, Any]) -> tuple[int, tuple[Any, ...]]:
    """Where `row` (`sort_row`, or `AFTER_ROW`'s) falls in the order `runs` make: its run and
    its keys there."""
    for i, run in enumerate(runs):
        if run.holds(row):
            return i, tuple(row[c] for c in run.keys)
    raise ValueError(f"case {row['id']} is in no run of the order")  # the runs cover every row


def case_queries(
    where: CaseFilter,
    mark: str,
    after: Mapping[str, Any] | None = None,
    stage_groups: Sequence[Sequence[str]] = (),
) -> list[Callable[[int | None], tuple[str, list[Any]]]]:
    """The SELECTs of `CASE_COLS` that read `where`'s cases, a run each (`case_runs`), to be
    read in turn: each called with how many cases the page still needs (None: all) for its
    SQL and parameters. With `after` (the `after` case's `AFTER_ROW`), only what comes after
    it."""
    # A sorted run (and what is due) is read per status, each a range of that order's
    # `(status, keys)` index, and the ranges merged in the run's order: so a page of any
    # status, or of all of them, reads its own rows (one index for all statuses could not
    # skip the closed cases, which in a long-lived database are most of them, without a
    # merge).
    arms = status_arms(where)
    if arms != (None,):
        # The status is the arm's, as a literal; asked again as a parameter, SQLite takes
        # it for another column's term and may pick the status index instead.
        where = evolve(where, status=None)
    base, base_params = case_where(where, mark)
    runs = case_runs(where, stage_groups)
    start, key = run_key(runs, after) if after is not None else (0, None)
    queries: list[Callable[[int | None], tuple[str, list[Any]]]] = []
    for i in range(start, len(runs)):
        run = runs[i]
        clauses, params = run.where(mark, by_state=not _one(where))
        clauses, params = base + clauses, base_params + params
        if i == start and key is not None:
            # The order's own key, compared as a row value: an index range, never an offset.
            clauses.append(f"({', '.join(run.keys)}) > ({', '.join([mark] * len(key))})")
            params.extend(key)
        queries.append(
            functools.partial(merged, CASE_COLS, clauses, params, arms, ", ".join(run.keys))
        )
    return queries


def merged(
    columns: str,
    clauses: list[str],
    params: list[Any],
    arms: Sequence[str | None],
    order: str,
    limit: int | None = None,
) -> tuple[str, list[Any]]:
    """A SELECT of `columns` from cases where `clauses`, by `order` (columns of the table),
    the first `limit` (None: all), read a status of `arms` at a time (`status_arms`; None:
    not by status) and merged."""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    selects: list[str] = []
    for status in arms:
        # The status as a literal (an enum's value): SQLite picks a partial or prefixed index
        # by the query's text, not by a parameter's value.
        mine = clauses if status is None else [*clauses, f"status = '{status}'"]
        # `num` as a column of its own: a compound's ORDER BY names result columns.
        sql = f"SELECT {columns}" + (", num" if len(arms) > 1 else "") + " FROM cases"
        selects.append(sql + (" WHERE " + " AND ".join(mine) if mine else ""))
    if len(selects) > 1 and limit is not None:
        # Each status's first `limit` by its index, then those merged: PostgreSQL plans a
        # compound's ORDER BY as a sort of everything its arms give (no Merge Append), so an
        # arm unlimited would read the whole status. SQLite sorts the few rows kept.
        selects = [
            f"SELECT * FROM ({sql} ORDER BY {order}{tail}) AS arm{i}"
            for i, sql in enumerate(selects)
        ]
    return " UNION ALL ".join(selects) + " ORDER BY " + order + tail, params * len(arms)


def _one(where: CaseFilter) -> bool:
    """Whether `where` picks one coach's or one participant's cases: few, by their index."""
    return where.coach is not None or where.participant_id is not None


def status_arms(where: CaseFilter) -> tuple[str | None, ...]:
    """The statuses a sorted or due read of `where` reads one by one: its own, the open ones
    (for the open caseload, what is due and `stuck_days`) or all three. (None,): not by
    status, for a read in number order, or of one coach's or participant's cases (their
    own index finds their few cases, sorted after; a status's range of the order's index
    would be read through every case in it to find theirs)."""
    if _one(where) or (where.sort is None and where.due_by is None):
        return (None,)
    if where.status is not None:
        return (where.status.value,)
    if where.open_only or where.due_by is not None or where.entered_before is not None:
        return (Status.ACTIVE.value, Status.PAUSED.value)
    return tuple(s.value for s in Status)


def event_columns(columns: tuple[str, ...] | None) -> tuple[str, ...]:
    """`LogReads.event_table`'s `columns`, checked (they are written into SQL): every column
    when None."""
    if columns is None:
        return EVENT_COLUMNS
    unknown = [c for c in columns if c not in EVENT_COLUMNS]
    if unknown or not columns:
        raise ValueError(f"not event columns: {unknown or 'none given'}")
    return columns


# The case columns an event row may carry (`LogReads.event_table`'s `case_columns`): plain
# text and numbers, the same in every store.
_CASE_VALUES: dict[str, Callable[[Case], Any]] = {
    "participant_id": lambda c: c.participant_id,
    "episode": lambda c: c.episode,
    "coach": lambda c: c.coach,
    "state": lambda c: c.state,
    "phase": lambda c: c.phase,
    "status": lambda c: c.status.value,
}


def case_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    """`LogReads.event_table`'s `case_columns`, checked (they are written into SQL)."""
    unknown = [c for c in columns if c not in _CASE_VALUES]
    if unknown:
        raise ValueError(f"not case columns an event row may carry: {unknown}")
    return columns


def case_values(case: Case, columns: tuple[str, ...]) -> tuple[Any, ...]:
    """The case's `columns` as the case table keeps them (for a store that keeps no table)."""
    return tuple(_CASE_VALUES[c](case) for c in columns)


def event_where(
    mark: str,
    *,
    case_id: str | None,
    cases: CaseFilter | None,
    since: dt.datetime | None,
    before: dt.datetime | None,
    kinds: tuple[str, ...] | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and parameters of `LogReads.event_table`'s filters, over `events`."""
    clauses: list[str] = []
    params: list[Any] = []
    if case_id is not None:
        clauses.append(f"events.case_id = {mark}")
        params.append(case_id)
    if cases is not None:
        picks, pick_params = case_where(
            CaseFilter(
                coach=cases.coach,
                state=cases.state,
                status=cases.status,
                participant_id=cases.participant_id,
            ),
            mark,
        )
        inner = (" WHERE " + " AND ".join(picks)) if picks else ""
        clauses.append(f"events.case_id IN (SELECT id FROM cases{inner})")
        params.extend(pick_params)
    # effective_at is kept as UTC ISO text, whose order is time order.
    if since is not None:
        clauses.append(f"events.effective_at >= {mark}")
        params.append(since.astimezone(dt.UTC).isoformat())
    if before is not None:
        clauses.append(f"events.effective_at < {mark}")
        params.append(before.astimezone(dt.UTC).isoformat())
    if kinds is not None:
        clauses.append(f"events.kind IN ({', '.join(mark for _ in kinds)})")
        params.extend(kinds)
    return clauses, params


RECORD_COLS = "seq, case_id, kind, fields, effective_at, recorded_at, actor, supersedes"


def record_from_row(
    row: Sequence[Any], workflow: Workflow, texts: Mapping[str, str] | None = None
) -> Record:
    """A records-table row (in `RECORD_COLS` order) as a typed `Record`: its fields decoded by
    the workflow's record kind (kept as stored when the kind is unknown to it), then `texts`
    (its free-text fields, as `_texts` puts them back) after them."""
    seq, case_id, kind, fields, effective_at, recorded_at, actor, supersedes = row[:8]
    spec = workflow.records.get(kind)
    values = _fields_of(fields)
    if spec is not None:
        values = spec.from_json(values)
    if texts:
        values.update(texts)
    at = dt.datetime.fromisoformat(effective_at)
    # Positional, in `RECORD_COLS` order, which is the record's own. Most records are recorded
    # when they take effect: one instant, read once.
    return Record(
        seq,
        case_id,
        kind,
        values,
        at,
        at if recorded_at == effective_at else dt.datetime.fromisoformat(recorded_at),
        actor,
        supersedes,
    )


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _fields_of(text: Any) -> Any:
    """`json.loads(text)`: a record's stored fields, as the stores wrote them (`json.dumps`: no
    whitespace around), read by the decoder's C scanner alone, without `loads`' whitespace
    matching around it; anything else (whitespace, bytes, bad JSON) goes by `loads` itself."""
    if type(text) is str:
        try:
            value, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            return json.loads(text)
        if end == len(text):
            return value
    return json.loads(text)


def refuse_if_not_empty(name: str, head_seq: int, has_staff: bool) -> None:
    """A copy goes only into an empty store: never merged into another log."""
    if head_seq or has_staff:
        raise StoreNotEmpty(
            f"{name} is not empty (it holds {head_seq} events"
            + (" and staff" if has_staff else "")
            + "): a copy goes only into an empty database; nothing was copied"
        )


def restore_order(copy: StoreCopy) -> Iterator[tuple[str, Any]]:
    """The rows of `copy` in the order a store with the log's guards accepts them, as
    (table, row): participants (and their personal data) first; each event, then its seal and
    its free texts (`TextRow`, erased ones as tombstones), then the case or staff row it first
    speaks of (a case or staff row may change only while the log's last event is about it);
    the records last (each refers to its event). The case and staff rows are their final
    values: the log, re-verified after, explains them."""
    for participant in copy.participants.values():
        yield "participant", participant
    seals = iter(copy.seals)
    seal = next(seals, None)
    cases = dict(copy.cases)
    staff = {s.id: s for s in copy.staff}
    texts = iter(copy.texts)
    text = next(texts, None)
    for row in copy.events:
        yield "event", row
        while seal is not None and seal.seq <= row["seq"]:
            if seal.seq == row["seq"]:
                yield "seal", seal
            seal = next(seals, None)
        # A text is kept only while its event is the log's last (erased ones too).
        while text is not None and text.seq <= row["seq"]:
            yield "text", text
            text = next(texts, None)
        case = cases.pop(row["case_id"], None) if row["case_id"] is not None else None
        if case is not None:
            yield "case", case
        if row["kind"] == EventKind.STAFF:
            member = staff.pop(json.loads(row["payload"]).get("staff_id"), None)
            if member is not None:
                yield "staff", member
    # Rows no event explains: offered last, where the store's guards refuse them.
    for case in cases.values():
        yield "case", case
    for member in staff.values():
        yield "staff", member
    # Texts of no event: offered last, where the store's guards refuse them.
    while text is not None:
        yield "text", text
        text = next(texts, None)
    for record in copy.records:
        yield "record", record


RecordPage = Callable[[int | None, int], Sequence[Sequence[Any]]]
"""A store's query for a case's record rows (in `RECORD_COLS` order) before a seq (None: from
the newest), newest first, at most so many."""


def latest_records(
    page: RecordPage, limit: int, include_superseded: bool, workflow: Workflow
) -> list[Record]:
    """The last `limit` records `page` reads, oldest first, skipping corrected ones unless
    `include_superseded`. Reads newest first, in pages: a correction always comes after what
    it corrects, so by the time a record is read, whatever corrects it has been."""
    kept: list[Sequence[Any]] = []
    gone: set[int] = set()
    before: int | None = None
    size = limit + 1
    while len(kept) < limit:
        rows = page(before, size)
        for row in rows:
            if row[7] is not None:
                gone.add(row[7])
            if include_superseded or row[0] not in gone:
                kept.append(row)
                if len(kept) == limit:
                    break
        if len(rows) < size:
            break
        before = rows[-1][0]
        size *= 2
    return [record_from_row(row, workflow) for row in reversed(kept)]


CURRENT = "NOT EXISTS (SELECT 1 FROM records s WHERE s.supersedes = r.seq)"
"""A record (read as `r`) that no other corrects: one seek (`records_superseded`)."""

_TEXTS_JOIN = ", t.slot, t.text FROM ({picked}) p LEFT JOIN texts t ON t.seq = p.seq"


def with_texts(picked: str) -> str:
    """The records `picked` selects (in `RECORD_COLS` order), each row followed by one of its
    texts' slot and text (None, None for a record of none): its texts in the same statement,
    one seek of the texts table each."""
    cols = ", ".join(f"p.{c.strip()}" for c in RECORD_COLS.split(","))
    return f"SELECT {cols}{_TEXTS_JOIN.format(picked=picked)}"


def picks_query(
    mark: str, case_id: str, kinds: Sequence[str], record: int | None
) -> tuple[str, list[Any]]:
    """One statement for the records a snapshot picks by seeks (`guard_records`' `picks`):
    the latest current record of each of `kinds` (by effective time, then seq: one seek each
    on records_case_kind_at) and the case's current record at seq `record`, with their texts
    (`with_texts`)."""
    params: list[Any] = []
    for kind in kinds:
        params.extend((case_id, kind))
    if record is not None:
        params.extend((record, case_id))
    return _picks_sql(mark, len(kinds), record is not None), params


# Every command asks for one of a few shapes of each statement: each written once.
@functools.cache
def _picks_sql(mark: str, kinds: int, record: bool) -> str:
    # A member of a compound SELECT takes no ORDER BY or LIMIT of its own: a subquery does.
    parts = [
        f"SELECT * FROM (SELECT {RECORD_COLS} FROM records r WHERE case_id = {mark} "
        f"AND kind = {mark} AND {CURRENT} ORDER BY effective_at DESC, seq DESC LIMIT 1) l{n}"
        for n in range(kinds)
    ]
    if record:
        parts.append(
            f"SELECT {RECORD_COLS} FROM records r WHERE seq = {mark} AND case_id = {mark} "
            f"AND {CURRENT}"
        )
    return with_texts(" UNION ALL ".join(parts))


def since_query(
    mark: str, case_id: str, kinds: Sequence[str], at: str | None
) -> tuple[str, list[Any]]:
    """One statement for the current records of `kinds` effective after `at` (all of them
    for None; `guard_records`' `effective_after`), with their texts: a seek per kind on
    records_case_kind_at, from `at` on."""
    params: list[Any] = [case_id, *kinds]
    if at is not None:
        params.append(at)
    return _since_sql(mark, len(kinds), at is not None), params


@functools.cache
def _since_sql(mark: str, kinds: int, after: bool) -> str:
    sql = (
        f"SELECT {RECORD_COLS} FROM records r WHERE case_id = {mark} "
        f"AND kind IN ({', '.join(mark for _ in range(kinds))})"
    )
    if after:
        sql += f" AND effective_at > {mark}"
    return with_texts(f"{sql} AND {CURRENT}")


def marks_columns(mark: str, case_id: str, triggers: Sequence[str]) -> tuple[str, list[Any]]:
    """The seq of the case's last event of each of `triggers` (NULL for none), as columns of
    one row (a select list to add to): one index seek each, however long the case's history."""
    params: list[Any] = []
    for trigger in triggers:
        params.extend((case_id, trigger))
    return _marks_sql(mark, len(triggers)), params


@functools.cache
def _marks_sql(mark: str, triggers: int) -> str:
    one = f"(SELECT MAX(seq) FROM events WHERE case_id = {mark} AND trigger = {mark})"
    return ", ".join(one for _ in range(triggers))


def case_query(mark: str, case_id: str, triggers: Sequence[str]) -> tuple[str, list[Any]]:
    """The case's row (`CASE_COLS`), then its marks of `triggers` (`marks_columns`)."""
    params: list[Any] = []
    for trigger in triggers:
        params.extend((case_id, trigger))
    params.append(case_id)
    return _case_sql(mark, len(triggers)), params


@functools.cache
def _case_sql(mark: str, triggers: int) -> str:
    marks = f", {_marks_sql(mark, triggers)}" if triggers else ""
    return f"SELECT {CASE_COLS}{marks} FROM cases WHERE id = {mark}"


def marks_of(triggers: Sequence[str], values: Sequence[Any]) -> dict[str, int]:
    """The marks `marks_columns` read: the triggers the case has an event of."""
    return {t: v for t, v in zip(triggers, values, strict=True) if v is not None}


def needs_of(needs: Needs | Callable[[Case], Needs] | None, case: Case) -> Needs:
    """What `Tx.snapshot`'s `needs` asks of `case`."""
    if isinstance(needs, Needs):
        return needs
    return needs(case) if needs is not None else Needs()


RecordPicks = Callable[[Sequence[str], int | None], Iterable[Record]]
"""A store's query for a case's latest current record of each of some kinds and its current
record at a seq (None: none), in any order (`picks_query`)."""

RecordsSince = Callable[[Sequence[str], str | None], Iterable[Record]]
"""A store's query for a case's current records of some kinds effective after a time (UTC ISO
text, which sorts as the times do; None: all of them), in any order (`since_query`)."""


def guard_records(
    need: Needs, whole: tuple[Record, ...], picks: RecordPicks, effective_after: RecordsSince
) -> tuple[Record, ...]:
    """The records a snapshot holds: `whole` (the records of `need.kinds` read whole) and
    those `need.latest`, `contacts`, `since_contact` and `record` pick of the other kinds, in
    seq order. Asks `picks` once (if anything is to be picked), then `effective_after` once
    (if anything is read since the last contact): each is one statement."""
    if need.kinds is None or not (
        need.latest or need.contacts or need.since_contact or need.record is not None
    ):
        return whole
    picked = {r.seq: r for r in whole}
    record = need.record if need.record is not None and need.record not in picked else None
    kinds = sorted((need.latest | need.contacts) - need.kinds)
    if kinds or record is not None:
        for r in picks(kinds, record):
            picked[r.seq] = r
    since = sorted(need.since_contact - need.kinds)
    if since:
        contacts = need.contacts
        last = max((r.effective_at for r in picked.values() if r.kind in contacts), default=None)
        for r in effective_after(since, ts(last)):
            picked[r.seq] = r
    return tuple(picked[seq] for seq in sorted(picked))


# --- what a report reads of every case (`LogReads.case_readings`) ------------------------------


def reading_queries(
    mark: str, payload_coach: str, kinds: Collection[str] | None, join: str = "JOIN"
) -> tuple[str, str, str, list[Any], list[Any]]:
    """The three ordered scans of `case_readings`, with `mark` the driver's placeholder and
    `payload_coach` the SQL that reads a JSON key (`{key}`) of the payload: the cases, their
    events but `READING_SKIPS`, their records (`RECORD_COLS`), each by case number then seq
    (the `events_case` and `records_case` indexes, no sort), and the parameters of the
    events' and the records' queries (`kinds`: only records of those kinds). `join` is how
    the records join the cases: SQLite's `CROSS JOIN` keeps its planner on cases by number
    then `records_case` (with `kinds` it would take `records_kind` and sort them all)."""
    cases = f"SELECT {CASE_COLS} FROM cases ORDER BY num"
    coach = (
        f"CASE WHEN e.kind = 'assign' THEN {payload_coach.format(key='to_coach')} "
        f"WHEN e.kind IN ('referral', 'reopen') THEN {payload_coach.format(key='coach')} END"
    )
    events = (
        f"SELECT e.case_id, e.seq, e.kind, e.trigger, e.to_state, e.effective_at, e.actor, "
        f"{coach} FROM events e JOIN cases c ON c.id = e.case_id "
        f"WHERE e.kind NOT IN ({', '.join(mark for _ in READING_SKIPS)}) ORDER BY c.num, e.seq"
    )
    cols = ", ".join(f"r.{c.strip()}" for c in RECORD_COLS.split(","))
    picked = sorted(kinds) if kinds is not None else []
    where = ""
    if kinds is not None:
        where = (
            f" WHERE r.kind IN ({', '.join(mark for _ in picked)})" if picked else " WHERE 1 = 0"
        )
    records = (
        f"SELECT {cols} FROM cases c {join} records r ON r.case_id = c.id{where} "
        "ORDER BY c.num, r.seq"
    )
    return cases, events, records, list(READING_SKIPS), picked


def _moment(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def case_readings(
    workflow: Workflow,
    cases: Iterable[Case],
    events: Iterable[Sequence[Any]],
    records: Iterable[Sequence[Any]],
) -> Iterator[CaseReading]:
    """Each case with its rows, from the three scans of `reading_queries` (all in case
    order): events as (case_id, seq, kind, trigger, to_state, effective_at, actor, coach),
    records in `RECORD_COLS` order. Streamed: one case's rows in memory at a time."""
    new = tuple.__new__
    ev, rec = iter(events), iter(records)
    e_row = next(ev, None)
    r_row = next(rec, None)
    for case in cases:
        cid = case.id
        mine: list[StageRow] = []
        while e_row is not None and e_row[0] == cid:
            seq, kind, trigger, to_state, at, actor, coach = e_row[1:]
            mine.append(new(StageRow, (seq, kind, trigger, to_state, _moment(at), actor, coach)))
            e_row = next(ev, None)
        kept: list[Record] = []
        while r_row is not None and r_row[1] == cid:
            kept.append(record_from_row(r_row, workflow))
            r_row = next(rec, None)
        yield CaseReading(case, tuple(mine), tuple(kept))
