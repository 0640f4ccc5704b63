"""The embedded SQLite store.

Schema through sqlite-utils `Migrations` (imported only when the schema needs work: it costs
~110 ms at start-up); the hot path is prepared SQL on the connection. WAL, synchronous=FULL,
a busy timeout and `BEGIN IMMEDIATE` for every write: a deferred BEGIN that reads then writes
fails at once with "database is locked" under contention. sqlite3 errors are translated into
`StoreError`s here and nowhere else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import operator
import os
import sqlite3
import stat
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._audit import GENESIS, check_workflow, event_from_row, json_encoding, seal
from ._engine import current
from ._histories import (
    DUE_COLS,
    ReviewRow,
    anchored_query,
    due_changes,
    due_histories,
    due_page,
    due_row,
    due_row_params,
    due_upsert,
    histories,
    history_queries,
    review_query,
    review_rows,
)
from ._import import check_appended
from ._limits import unstorable
from ._model import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    Case,
    Column,
    DatabaseSettings,
    Event,
    EventField,
    EventKind,
    Participant,
    PersonalDetails,
    Record,
    Role,
    Staff,
)
from ._rows import (
    AFTER_ROW,
    RECORD_COLS,
    SORT_COLS,
    case_queries,
    case_query,
    event_columns,
    event_where,
    guard_records,
    latest_records,
    marks_columns,
    marks_of,
    needs_of,
    picks_query,
    refuse_if_not_empty,
    restore_order,
    since_query,
    with_texts,
)
from ._rows import CASE_COLS as _CASE_COLS
from ._rows import case_columns as _case_columns
from ._rows import case_from_row as _case_from_row
from ._rows import case_params as _case_params
from ._rows import ts as _ts
from ._seal import (
    Sealing,
    SealRow,
    VerificationKey,
    begin_sealing,
    check_epoch_seconds,
    seal_event,
)
from ._standards import (
    Anchored,
    CaseHistory,
    DueEffect,
    DueRow,
    DueTouch,
    due_touched,
    project,
)
from ._texts import SALT_BYTES, fill_event, fill_record, filled_records, split
from ._workflow import Workflow
from .errors import (
    CaseConflict,
    CaseNotFound,
    CommandRepeated,
    InvalidInput,
    SealKeyUnusable,
    SEFlowError,
    StaffNotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from .ports import (
    Appended,
    CaseFilter,
    CaseReading,
    Change,
    LogHead,
    Needs,
    RecordRow,
    SealKeys,
    Snapshot,
    Store,
    StoreCopy,
    TextRow,
    Tx,
)

__all__ = ["THROUGH_THE_LOG", "SQLiteStore"]

MIGRATION_SET = "se_flow"

_SQL_TYPES = {Column.INT: "INTEGER", Column.TEXT: "TEXT", Column.TIME: "TEXT", Column.JSON: "TEXT"}


def _column_ddl(f: EventField) -> str:
    if f.name == "seq":
        return "seq INTEGER PRIMARY KEY"
    return f"{f.name} {_SQL_TYPES[f.column]}" + ("" if f.nullable else " NOT NULL")


# The events table, its INSERT and its SELECT, from the one field list (`_model.EVENT_FIELDS`).
# A new field needs a migration that adds its column: test_sqlite_store pins this table.
# Optional fields came later: each has its own migration adding its column.
_COMMAND_FIELDS = ("command_id", "command_hash")
_EVENTS_DDL = (
    "CREATE TABLE events (\n    "
    + ",\n    ".join(_column_ddl(f) for f in EVENT_FIELDS if not f.optional)
    + "\n)"
)
_EVENT_COLS = ", ".join(EVENT_COLUMNS)
# Parameters by position, the row's values in `EVENT_COLUMNS` order (`_event_params`): a
# name per parameter costs a lookup each, on every command.
_INSERT_EVENT = (
    f"INSERT INTO events ({_EVENT_COLS}) VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
_event_params: Callable[[Mapping[str, Any]], tuple[Any, ...]] = operator.itemgetter(*EVENT_COLUMNS)

_SCHEMA_V1 = [
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    "INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))",
    """CREATE TABLE staff (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('coach', 'team_leader', 'auditor', 'admin')),
        active INTEGER NOT NULL DEFAULT 1
    )""",
    """CREATE TABLE participants (id TEXT PRIMARY KEY, created_at TEXT NOT NULL)""",
    # Personal data apart from the log, keyed by the pseudonym: erasable without touching it.
    """CREATE TABLE personal_data (
        participant_id TEXT PRIMARY KEY REFERENCES participants(id),
        name TEXT NOT NULL,
        contact TEXT,
        date_of_birth TEXT,
        health_notes TEXT
    )""",
    """CREATE TABLE cases (
        id TEXT PRIMARY KEY,
        num INTEGER NOT NULL UNIQUE,
        participant_id TEXT NOT NULL REFERENCES participants(id),
        state TEXT NOT NULL,
        phase TEXT,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        opened_at TEXT NOT NULL,
        stage_entered_at TEXT NOT NULL,
        coach TEXT,
        episode INTEGER NOT NULL,
        previous_case_id TEXT,
        last_contact_at TEXT,
        review_due TEXT,
        outcome TEXT,
        closed_at TEXT
    )""",
    "CREATE INDEX cases_coach ON cases (coach, status, review_due)",
    "CREATE INDEX cases_due ON cases (status, review_due)",
    "CREATE INDEX cases_state ON cases (state, status)",
    "CREATE INDEX cases_participant ON cases (participant_id)",
    _EVENTS_DDL,
    "CREATE INDEX events_case ON events (case_id, seq)",
    """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be changed'); END""",
    """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be deleted'); END""",
    """CREATE TABLE records (
        seq INTEGER PRIMARY KEY REFERENCES events(seq),
        case_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        fields TEXT NOT NULL,
        effective_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        supersedes INTEGER REFERENCES records(seq)
    )""",
    "CREATE INDEX records_case ON records (case_id, seq)",
    """CREATE TRIGGER records_append_only_update BEFORE UPDATE ON records
       BEGIN SELECT RAISE(ABORT, 'records are never edited: record a correction instead'); END""",
    """CREATE TRIGGER records_append_only_delete BEFORE DELETE ON records
       BEGIN SELECT RAISE(ABORT, 'records are never deleted: record a correction instead'); END""",
]

_SCHEMA_V2 = [
    # Every command asks for the last seq of each trigger on its case: served from the index.
    "CREATE INDEX events_case_trigger ON events (case_id, trigger, seq)",
    # "What is due" over open cases only, in due order, without a sort.
    "CREATE INDEX cases_open_due ON cases (review_due, num) WHERE status != 'closed'",
]

# The staff and case tables are projections of the log that permissions and guards read:
# a row may change only in the transaction that appends the event saying so (the event is
# inserted first, so it is the log's last). `verify` still replays both, for a file whose
# triggers were dropped.
_LOGGED = (
    "NOT EXISTS (SELECT 1 FROM events WHERE seq = (SELECT MAX(seq) FROM events) "
    "AND kind = 'staff' AND json_extract(payload, '$.staff_id') = NEW.id)"
)
_CASE_LOGGED = (
    "NOT EXISTS (SELECT 1 FROM events WHERE seq = (SELECT MAX(seq) FROM events) "
    "AND case_id = NEW.id)"
)
_STAFF_REFUSED = "RAISE(ABORT, 'staff change only through se-flow: no staff event for it')"
_CASE_REFUSED = "RAISE(ABORT, 'cases change only through se-flow: no event for it')"
# By name, so a bulk loader that writes events and projections together (benchmarks' population)
# can lift them for the load and put them back.
THROUGH_THE_LOG = {
    "staff_through_the_log_insert": f"BEFORE INSERT ON staff WHEN {_LOGGED} "
    f"BEGIN SELECT {_STAFF_REFUSED}; END",
    "staff_through_the_log_update": f"BEFORE UPDATE ON staff WHEN {_LOGGED} "
    f"BEGIN SELECT {_STAFF_REFUSED}; END",
    "staff_never_deleted": "BEFORE DELETE ON staff "
    "BEGIN SELECT RAISE(ABORT, 'staff are never deleted: deactivate them instead'); END",
    "cases_through_the_log_insert": f"BEFORE INSERT ON cases WHEN {_CASE_LOGGED} "
    f"BEGIN SELECT {_CASE_REFUSED}; END",
    "cases_through_the_log_update": f"BEFORE UPDATE ON cases WHEN {_CASE_LOGGED} "
    f"BEGIN SELECT {_CASE_REFUSED}; END",
    "cases_never_deleted": "BEFORE DELETE ON cases "
    "BEGIN SELECT RAISE(ABORT, 'cases are never deleted: close them instead'); END",
}
_SCHEMA_V3 = [f"CREATE TRIGGER {name} {body}" for name, body in THROUGH_THE_LOG.items()]

_SCHEMA_V4 = [
    # A command's guards read the records of a few kinds: a seek per kind, however long the
    # case's history (records_case alone makes SQLite walk every record of the case).
    "CREATE INDEX records_case_kind ON records (case_id, kind, seq)",
]

# Forward-secure seals (`_seal`), apart from the hashed rows. A seal is written only with the
# event it seals (the log's last), never changed or removed; the database's sealing settings,
# once there, never change (sealing cannot be turned off behind the auditor's back).
_SCHEMA_V5 = [
    """CREATE TABLE seals (
        seq INTEGER PRIMARY KEY REFERENCES events(seq),
        epoch INTEGER NOT NULL,
        mac TEXT NOT NULL
    )""",
    """CREATE TRIGGER seals_with_their_event BEFORE INSERT ON seals
       WHEN NEW.seq IS NOT (SELECT MAX(seq) FROM events)
       BEGIN SELECT RAISE(ABORT, 'a seal is written only with its event'); END""",
    """CREATE TRIGGER seals_append_only_update BEFORE UPDATE ON seals
       BEGIN SELECT RAISE(ABORT, 'seals cannot be changed'); END""",
    """CREATE TRIGGER seals_append_only_delete BEFORE DELETE ON seals
       BEGIN SELECT RAISE(ABORT, 'seals cannot be deleted'); END""",
    """CREATE TRIGGER sealing_kept_update BEFORE UPDATE ON meta WHEN OLD.key = 'sealing'
       BEGIN SELECT RAISE(ABORT, 'sealing settings cannot be changed'); END""",
    """CREATE TRIGGER sealing_kept_delete BEFORE DELETE ON meta WHEN OLD.key = 'sealing'
       BEGIN SELECT RAISE(ABORT, 'sealing cannot be turned off'); END""",
]

# The due list over a whole caseload reads the records of the kinds the standards name and the
# events of the triggers they name (`_histories`): an index seek by kind or trigger, covering
# what it reads, instead of a scan of every record and event. Only events that fire a trigger
# are in the second, so a record's write does not pay for it.
_SCHEMA_V6 = [
    "CREATE INDEX records_kind ON records (kind, case_id, seq, effective_at, supersedes)",
    "CREATE INDEX events_trigger ON events (trigger, case_id, seq, kind, effective_at) "
    "WHERE trigger IS NOT NULL",
]

_SCHEMA_V7 = [
    # A first page of `cases --status` or `--stage` at any size: the cases of that status or
    # stage in number order, read until the page is full (with (status, review_due) and
    # (state, status) SQLite sorted all of them first: 1.2 s at 100k cases). Replaced, not
    # added: every write updates each index on cases, and cases_open_due serves what is due.
    "DROP INDEX cases_due",
    "DROP INDEX cases_state",
    "CREATE INDEX cases_status ON cases (status, num)",
    "CREATE INDEX cases_state ON cases (state, num)",
]

# Free texts apart from the hashed rows (`_texts`). A text is written only with its event (the
# log's last), never deleted; it is cleared (salt and text NULL: a tombstone) only by the
# erasure event that names it, the log's last. secure_delete (set per connection) overwrites
# what is cleared.
_TEXT_ERASED_BY_LAST = (
    "EXISTS (SELECT 1 FROM events e, json_each(e.payload, '$.texts') j "
    "WHERE e.seq = (SELECT MAX(seq) FROM events) AND e.kind IN ('text_erasure', 'erasure') "
    "AND json_extract(j.value, '$[0]') = OLD.seq AND json_extract(j.value, '$[1]') = OLD.slot)"
)
_TEXTS_WITH_THEIR_EVENT = (
    "BEFORE INSERT ON texts WHEN NEW.seq IS NOT (SELECT MAX(seq) FROM events) "
    "BEGIN SELECT RAISE(ABORT, 'a text is written only with its event'); END"
)
# A bulk loader lifts this one with the others (it came with 0009, after _SCHEMA_V3 was made).
THROUGH_THE_LOG["texts_with_their_event"] = _TEXTS_WITH_THEIR_EVENT
_SCHEMA_V9 = [
    "ALTER TABLE events ADD COLUMN texts TEXT",
    """CREATE TABLE texts (
        seq INTEGER NOT NULL REFERENCES events(seq),
        slot TEXT NOT NULL,
        salt TEXT,
        text TEXT,
        PRIMARY KEY (seq, slot)
    ) WITHOUT ROWID""",
    f"CREATE TRIGGER texts_with_their_event {_TEXTS_WITH_THEIR_EVENT}",
    f"""CREATE TRIGGER texts_only_erased BEFORE UPDATE ON texts
       WHEN NEW.seq IS NOT OLD.seq OR NEW.slot IS NOT OLD.slot OR NEW.salt IS NOT NULL
         OR NEW.text IS NOT NULL OR NOT {_TEXT_ERASED_BY_LAST}
       BEGIN SELECT RAISE(ABORT, 'a text is only ever erased, by an erasure event'); END""",
    """CREATE TRIGGER texts_never_deleted BEFORE DELETE ON texts
       BEGIN SELECT RAISE(ABORT, 'texts are never deleted: an admin erases them'); END""",
]

# Command ids (a retry appends nothing twice): in the log, and unique there. ALTER TABLE ADD
# COLUMN changes no row, so the append-only triggers let it through.
_SCHEMA_V10 = [
    *(
        f"ALTER TABLE events ADD COLUMN {_column_ddl(f)}"
        for f in EVENT_FIELDS
        if f.name in _COMMAND_FIELDS
    ),
    "CREATE UNIQUE INDEX events_command ON events (command_id) WHERE command_id IS NOT NULL",
]

# The due projection (`_standards.project`): per case, each standard's instances and schedule
# occurrences with their deadline, kept by every write that can change them, so a due list's
# first page is an index range on (state, due_on) and `show` reads a case's few rows. Built
# from the log when the migration runs (`SQLiteStore._rebuild_due`); `verify` replays it.
_SCHEMA_V11 = [
    """CREATE TABLE due_index (
        case_id TEXT NOT NULL REFERENCES cases(id),
        n INTEGER NOT NULL,
        standard TEXT NOT NULL,
        anchor_on TEXT NOT NULL,
        occurrence INTEGER NOT NULL,
        window_start TEXT NOT NULL,
        due_on TEXT,
        state TEXT NOT NULL,
        met_on TEXT,
        took INTEGER,
        coach TEXT,
        num INTEGER NOT NULL,
        PRIMARY KEY (case_id, n)
    ) WITHOUT ROWID""",
    # A due list orders cases by number, as every list does: `num` is the case id's. Both
    # indexes cover what a page reads (`_histories.DUE_COLS`): a page is one index range.
    "CREATE INDEX due_index_due ON due_index (state, due_on, num, n, case_id, standard, "
    "anchor_on, occurrence, window_start, met_on, took, coach)",
    "CREATE INDEX due_index_coach ON due_index (coach, state, due_on, num, n, case_id, "
    "standard, anchor_on, occurrence, window_start, met_on, took)",
]
_DUE_MIGRATION = "0011_due_index"
# What a command's guards read of a long case (`Needs.latest`, `since_contact`): the latest
# record of a kind by effective date (a backdated record may be the latest), or those after
# the last contact, a seek each; and whether a record is corrected, a seek on the few that
# correct (the rest are not in it, so a record's write pays nothing for it).
_SCHEMA_V12 = [
    "CREATE INDEX records_case_kind_at ON records (case_id, kind, effective_at, seq)",
    "CREATE INDEX records_superseded ON records (supersedes) WHERE supersedes IS NOT NULL",
    # Whether an auditor was granted the texts (every export asks): the grants alone, newest
    # first, not a walk back through the whole log when there are none.
    "CREATE INDEX events_text_grants ON events (seq) WHERE kind = 'text_grant'",
]

# `cases(sort=...)` and `stuck_days` on the open caseload: each run of a sort's order
# (`_rows.case_runs`) is a range of one of these (the review-date order is cases_open_due's),
# so a sorted first page, or any page after it, reads its own rows at any size.
_SCHEMA_V13 = [
    "CREATE INDEX cases_open_entered ON cases (stage_entered_at, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_seen ON cases (last_contact_at, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_coach ON cases (coach, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_stage ON cases (state, phase, num) WHERE status <> 'closed'",
]

# Sorted lists of any status (`_rows.case_queries` reads a status at a time and merges them):
# each run of a sort's order is a range of one of these, the status first, so a page of
# closed or paused cases, or of all cases, reads its own rows as the open caseload's does.
# They replace the open cases' partial indexes of 0013_case_sorts, plus one for the review-date
# order (`cases_open_due` still serves what is due): one more index for a write to update.
_SCHEMA_V14 = [
    "DROP INDEX cases_open_entered",
    "DROP INDEX cases_open_seen",
    "DROP INDEX cases_open_coach",
    "DROP INDEX cases_open_stage",
    "CREATE INDEX cases_sort_entered ON cases (status, stage_entered_at, num)",
    "CREATE INDEX cases_sort_seen ON cases (status, last_contact_at, num)",
    "CREATE INDEX cases_sort_coach ON cases (status, coach, num)",
    "CREATE INDEX cases_sort_stage ON cases (status, state, phase, num)",
    "CREATE INDEX cases_sort_due ON cases (status, review_due, num)",
]

# What is due is read a status at a time too (`_rows.status_arms`), from cases_sort_due: the
# open cases' review-date index is one fewer for every write to update.
_SCHEMA_V15 = ["DROP INDEX cases_open_due"]

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("0001_initial", _SCHEMA_V1),
    ("0002_read_indexes", _SCHEMA_V2),
    ("0003_tables_through_the_log", _SCHEMA_V3),
    ("0004_records_by_kind", _SCHEMA_V4),
    ("0005_seals", _SCHEMA_V5),
    # A staff member's OS login (`Staff.login`), bound with `staff edit --login`.
    ("0006_staff_logins", ["ALTER TABLE staff ADD COLUMN login TEXT"]),
    ("0007_due_reads", _SCHEMA_V6),
    ("0008_cases_by_number", _SCHEMA_V7),
    ("0009_texts", _SCHEMA_V9),
    ("0010_command_ids", _SCHEMA_V10),
    (_DUE_MIGRATION, _SCHEMA_V11),
    ("0012_case_reads", _SCHEMA_V12),
    ("0013_case_sorts", _SCHEMA_V13),
    ("0014_status_sorts", _SCHEMA_V14),
    ("0015_due_by_status", _SCHEMA_V15),
]

# Errors after which SQLite may have rolled back the whole transaction, not just the statement
# (https://www.sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction").
_TRANSACTION_ENDERS = frozenset(
    {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_NOMEM", "SQLITE_INTERRUPT", "SQLITE_CORRUPT"}
)


def _primary(exc: sqlite3.Error) -> str:
    """The primary result code's name (SQLITE_IOERR for SQLITE_IOERR_WRITE), or ''."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    for primary in _TRANSACTION_ENDERS:
        if name == primary or name.startswith(primary + "_"):
            return primary
    return name


class _translated:
    """sqlite3's errors in the words of the store, naming the database. A class, not a
    `contextlib.contextmanager`: every write and most reads enter one, and a generator's
    set-up is most of what it costs."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, SEFlowError):
            return
        if isinstance(exc, UnicodeEncodeError):
            # The API names the field for the texts a user writes; this catches any other (an
            # id from invalid UTF-8 on a command line) before SQLite sees it.
            raise unstorable(exc) from exc
        if isinstance(exc, sqlite3.DatabaseError):
            raise _translate(self.path, exc) from exc


def _translate(path: str, exc: sqlite3.DatabaseError) -> StoreError:
    if not isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(
            f"{path} is not a usable se-flow database ({exc}); is it the right file?"
        )
    text = str(exc)
    primary = _primary(exc)
    if primary == "SQLITE_FULL":
        return StoreError(
            f"cannot write database {path}: the disk is full ({text}); "
            "nothing of the refused change was written"
        )
    if primary == "SQLITE_IOERR":
        # A file over its size limit (EFBIG) arrives as an I/O error, not as SQLITE_FULL.
        return StoreUnavailable(
            f"cannot use database {path}: the disk failed ({text}): is it full, or the "
            "file over a size limit? nothing of the refused change was written"
        )
    if "locked" in text or "busy" in text:
        return StoreBusy(
            f"database {path} is busy: another writer held it past the timeout; try again"
        )
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StoreUnavailable(f"cannot write database {path}: {text}")
    return StoreError(f"database {path}: {text}")


# A record's fields as the records table keeps them (`json.dumps(..., sort_keys=True)`'s
# text), from one encoder made once (`json_encoding`).
_fields_json = json_encoding(json.JSONEncoder(sort_keys=True))


def _staff_from_row(row: tuple[Any, ...]) -> Staff:
    return Staff(id=row[0], name=row[1], role=Role(row[2]), active=bool(row[3]), login=row[4])


class _SQLiteTx(Tx):
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._conn = store.conn

    def staff(self, staff_id: str) -> Staff:
        return self._store._staff(staff_id)

    def has_staff(self) -> bool:
        return self._conn.execute("SELECT 1 FROM staff LIMIT 1").fetchone() is not None

    def settings(self) -> DatabaseSettings:
        return self._store._settings_now()

    def count_active_admins(self) -> int:
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM staff WHERE role = ? AND active", (Role.ADMIN.value,)
        ).fetchone()
        return int(count)

    def snapshot(
        self, case_id: str, needs: Needs | Callable[[Case], Needs] | None = None
    ) -> Snapshot:
        conn = self._conn
        store = self._store
        # Needs known before the case: its marks are read with it, in the same statement.
        early = sorted(needs.triggers) if isinstance(needs, Needs) and needs.triggers else []
        sql, params = case_query("?", case_id, early)
        row = conn.execute(sql, params).fetchone()
        if row is None:
            raise CaseNotFound(case_id)
        # What this write's UPDATE compares the case it makes with (`_apply`).
        store._read_row = row
        case = _case_from_row(row)
        need = needs_of(needs, case)
        # A correction has the kind of what it corrects, so filtering by kind keeps
        # supersession whole.
        kinds = need.kinds
        whole: tuple[Record, ...] = ()
        if kinds is None or kinds:
            found = store._records(case_id, kinds)
            whole = tuple(found) if need.superseded else current(found)
        records = guard_records(
            need,
            whole,
            lambda kinds, seq: store._read_records(*picks_query("?", case_id, kinds, seq)),
            lambda kinds, at: store._read_records(*since_query("?", case_id, kinds, at)),
        )
        marks: dict[str, int] = {}
        if early:
            marks = marks_of(early, row[len(row) - len(early) :])
        elif need.triggers is None:
            marks = dict(
                conn.execute(
                    "SELECT trigger, MAX(seq) FROM events WHERE case_id = ? "
                    "AND trigger IS NOT NULL GROUP BY trigger",
                    (case_id,),
                ).fetchall()
            )
        elif need.triggers:
            triggers = sorted(need.triggers)
            cols, params = marks_columns("?", case_id, triggers)
            marks = marks_of(triggers, conn.execute(f"SELECT {cols}", params).fetchone())
        history: list[Event] = []
        for trigger in need.history:
            # One index seek per trigger (events_case_trigger), each in seq order; merged here.
            history.extend(
                event_from_row(row)
                for row in self._store.event_rows_sql(
                    f"SELECT {_EVENT_COLS} FROM events WHERE case_id = ? AND trigger = ? "
                    "ORDER BY seq",
                    [case_id, trigger],
                )
            )
        if history:
            history.sort(key=lambda e: e.seq)
        return Snapshot(case, records, marks, tuple(history))

    def new_case_id(self) -> str:
        (num,) = self._conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM cases").fetchone()
        return f"C-{num}"

    def participant(self, participant_id: str) -> Participant | None:
        row = self._conn.execute(
            "SELECT id, created_at FROM participants WHERE id = ?", (participant_id,)
        ).fetchone()
        if row is None:
            return None
        return Participant(id=row[0], created_at=dt.datetime.fromisoformat(row[1]))

    def command(self, command_id: str) -> Event | None:
        with _translated(self._store.path):
            rows = self._store.event_rows_sql(
                f"SELECT {_EVENT_COLS} FROM events WHERE command_id = ?", [command_id]
            )
            found = next(iter(rows), None)
            if found is None:
                return None
            event = event_from_row(found)
            if event.texts:
                event = fill_event(event, _texts_of(self._conn, [event.seq]).get(event.seq, {}))
        return event

    def logged(self, command_ids: Collection[str]) -> dict[str, int]:
        if not command_ids:
            return {}
        with _translated(self._store.path):
            rows = self._conn.execute(
                "SELECT command_id, seq FROM events WHERE command_id IN "
                "(SELECT value FROM json_each(?))",
                (json.dumps(list(command_ids)),),
            ).fetchall()
        return {command_id: seq for command_id, seq in rows}

    def text_slots(self, seq: int) -> Mapping[str, bool] | None:
        conn = self._conn
        if conn.execute("SELECT 1 FROM events WHERE seq = ?", (seq,)).fetchone() is None:
            return None
        rows = conn.execute("SELECT slot, text FROM texts WHERE seq = ?", (seq,)).fetchall()
        return {slot: text is not None for slot, text in rows}

    def participant_texts(self, participant_id: str) -> list[tuple[int, str]]:
        rows = self._conn.execute(
            "SELECT t.seq, t.slot FROM cases c JOIN events e ON e.case_id = c.id "
            "JOIN texts t ON t.seq = e.seq WHERE c.participant_id = ? AND t.text IS NOT NULL "
            "ORDER BY t.seq, t.slot",
            (participant_id,),
        ).fetchall()
        return [(int(seq), str(slot)) for seq, slot in rows]

    def text_granted(self, staff_id: str) -> bool:
        row = self._conn.execute(
            "SELECT json_extract(payload, '$.granted') FROM events WHERE kind = 'text_grant' "
            "AND json_extract(payload, '$.staff_id') = ? ORDER BY seq DESC LIMIT 1",
            (staff_id,),
        ).fetchone()
        return bool(row and row[0])


class _SQLiteReadTx(_SQLiteTx):
    """`SQLiteStore.read()`: a read outside any write's `decide`, its errors translated. In a
    batch a read can fail as a write does (a small page cache spills the batch's pages to the
    WAL, onto a full disk): the batch is then abandoned, as after a failed write."""

    def snapshot(
        self, case_id: str, needs: Needs | Callable[[Case], Needs] | None = None
    ) -> Snapshot:
        store = self._store
        try:
            return super().snapshot(case_id, needs)
        except sqlite3.DatabaseError as exc:
            if store._batch_depth and (
                not store.conn.in_transaction or _primary(exc) in _TRANSACTION_ENDERS
            ):
                store._abandon(exc)
            raise _translate(store.path, exc) from exc


_SET_COLS = tuple(c.strip() for c in _CASE_COLS.split(","))[2:]
"""The columns `_case_params` gives, in its order: `CASE_COLS` after the id and participant."""


def _case_update(
    case: Case, expected: int | None, read: Sequence[Any] | None
) -> tuple[str, Sequence[Any]]:
    """The UPDATE writing `case` over its row at version `expected`. Given the row the write
    read (`read`, `CASE_COLS` first), only the columns whose text changes (and `version`):
    the row ends byte for byte as a whole-row UPDATE leaves it, and SQLite updates only the
    indexes of those columns (the sorts' four among them)."""
    params = _case_params(case)
    if read is None or read[0] != case.id or read[5] != expected:
        return _update_sql(_SET_COLS), (*params, case.id, expected)
    cols, values = [], []
    for i, (col, value) in enumerate(zip(_SET_COLS, params, strict=True)):
        old = read[i + 2]
        if col == "version" or value != old or type(value) is not type(old):
            cols.append(col)
            values.append(value)
    return _update_sql(tuple(cols)), (*values, case.id, expected)


@functools.cache
def _update_sql(cols: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = ?" for c in cols)
    return f"UPDATE cases SET {sets} WHERE id = ? AND version = ?"


def _new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def _texts_of(conn: sqlite3.Connection, seqs: Collection[int]) -> dict[int, dict[str, str | None]]:
    found: dict[int, dict[str, str | None]] = {}
    wanted = sorted(set(seqs))
    # In chunks: SQLite caps the parameters of one statement.
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ", ".join("?" for _ in chunk)
        for seq, slot, text in conn.execute(
            f"SELECT seq, slot, text FROM texts WHERE seq IN ({marks})", chunk
        ):
            found.setdefault(seq, {})[slot] = text
    return found


_SQLITE_HEADER = b"SQLite format 3\x00"
_first = operator.itemgetter(0)

# Migrations that only add what reads do not need (indexes): a read-only open of a database
# still without them reads it as it is, since it may not migrate it.
# A database from before these reads as before: no read index, and one that never sealed.
# One from before staff logins reads as one where nobody is bound.
_READ_COMPATIBLE = frozenset(
    {
        "0002_read_indexes",
        "0004_records_by_kind",
        "0005_seals",
        "0006_staff_logins",
        "0007_due_reads",
    }
)
# (0009_texts adds a column every read names: a database from before it is upgraded first.)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


_TAKE_A_COPY = (
    'take a copy where you may write (`sqlite3 live.db ".backup copy.db"`, or ask whoever '
    "writes it) and run se-flow on the copy"
)


def _frozen(path: Path) -> bool:
    """Whether nobody can change the database file: it is on a read-only file system, or
    neither it nor its folder has any write permission (owner, group or others; a writer's
    -wal needs the folder, a checkpoint the file). Only then is an immutable open right."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
        modes = (path.stat().st_mode, path.resolve().parent.stat().st_mode)
    except (OSError, AttributeError):  # no statvfs on Windows: assume it may change
        return False
    return not any(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for mode in modes)


def _create_private(path: Path) -> None:
    """Make the new database file readable by its owner only, before anything is in it
    (sqlite would make it 0644 under the usual umask; its -wal and -shm copy its mode)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def _exposure(path: Path) -> str | None:
    """Why every local user can read the database, or None."""
    try:
        mode = path.stat().st_mode
        folder = path.parent.stat().st_mode
    except OSError:
        return None
    if mode & stat.S_IROTH and folder & stat.S_IXOTH:
        return (
            f"{path} holds personal data and is readable by every local user "
            f"(mode {stat.S_IMODE(mode):o}); make it private with `chmod 600 {path}`"
        )
    return None


class SQLiteStore(Store):
    """`create` lets a missing or empty file become a new se-flow database; a file holding
    anything else (another application's tables, not SQLite at all) is never adopted.
    `read_only` (or a file or folder this process cannot write) opens it for reading only:
    nothing about the file changes, and writes are refused. Opened `immutable` (no -shm) only
    when nobody can change the file (`_frozen`); a file someone may still write, in a folder
    where no -shm can be made, is refused with the advice to read a copy."""

    def __init__(
        self,
        path: str | Path,
        workflow: Workflow,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        create: bool = True,
        read_only: bool = False,
        seal_keys: SealKeys | None = None,
    ) -> None:
        self.path = str(path)
        self.workflow = workflow
        # Rows as last read, valid while `_cache_key` is the database's state (`_fresh`); None:
        # nothing cached. Staff members by id, the settings, that the database does not seal
        # (once it does, `_sealing` is kept for good), and the log's head.
        self._cache_key: tuple[int, int] | None = None
        self._staff_cache: dict[str, Staff] = {}
        self._settings: DatabaseSettings | None = None
        self._unsealed = False
        self._head: tuple[int, str, str | None] | None = None
        # Inside one write, once `_fresh` has checked the key: nobody else can commit until
        # it ends.
        self._checked = False
        self._writing = False
        self._due_touch = DueTouch.of(workflow)
        self._batch_depth = 0
        # The case row the running write's snapshot read (`_apply` writes what changed).
        self._read_row: Sequence[Any] | None = None
        self._batch_failed: str | None = None
        self.read_only = read_only
        self._read_only_why = "it was opened for reading only"
        self._exposure: str | None = None
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidInput(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}"
            )
        memory = self.path == ":memory:"
        self.seal_keys = seal_keys
        self._sealing: Sealing | None = None
        self._store_id: str | None = None
        fresh, target, is_uri = memory, self.path, False
        if not memory:
            fresh, target, is_uri = self._prepare(Path(self.path).expanduser(), create)
        with _translated(self.path):
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self.conn = sqlite3.connect(
                target,
                isolation_level=None,
                timeout=busy_timeout,
                check_same_thread=False,
                uri=is_uri,
            )
            try:
                self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                applied = self._identify(fresh)
                if not self.read_only:
                    self._configure(memory, synchronous)
                    self._migrate(applied)
                else:
                    self._check_readable(applied)
                columns = {r[1] for r in self.conn.execute("PRAGMA table_info(staff)")}
                login = "login" if "login" in columns else "NULL"
                self._staff_select = f"SELECT id, name, role, active, {login} FROM staff"
            except BaseException:
                self.conn.close()
                raise

    # --- set-up --------------------------------------------------------------------------

    def _prepare(self, path: Path, create: bool) -> tuple[bool, str, bool]:
        """Look at the file before SQLite touches it: is it new, empty, SQLite at all, and may
        it be written here? Returns whether it is to become a new database, and what to
        connect to (a file name, or a URI)."""
        parent = path.resolve().parent
        if not parent.is_dir():
            raise StoreUnavailable(
                f"cannot create database {self.path}: folder {parent} does not exist"
            )
        fresh = False
        if not path.exists():
            if not create or self.read_only:
                raise StoreUnavailable(f"no database at {self.path}; run `se-flow init` first")
            try:
                _create_private(path)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create database {self.path}: {exc}") from exc
            fresh = True
        elif not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            raise StoreUnavailable(f"unable to open {self.path}: it is {what}, not a database")
        else:
            try:
                with path.open("rb") as f:
                    header = f.read(len(_SQLITE_HEADER))
            except OSError as exc:
                raise StoreUnavailable(f"cannot read database {self.path}: {exc}") from exc
            if not header:
                if not create or self.read_only:
                    raise StoreUnavailable(
                        f"{self.path} is an empty file, not an se-flow database; "
                        "`se-flow init` makes one"
                    )
                fresh = True
                # Becoming a database of personal data: private, as one made new would be.
                with contextlib.suppress(OSError):
                    path.chmod(0o600)
            elif header != _SQLITE_HEADER:
                raise StoreUnavailable(
                    f"{self.path} is not a usable se-flow database: not an SQLite database; "
                    "is it the right file?"
                )
            self._exposure = _exposure(path)
        folder_writable = _writable(parent)
        if not self.read_only and not (_writable(path) and folder_writable):
            self.read_only = True
            self._read_only_why = "the file or its folder is not writable"
        if not self.read_only:
            return fresh, str(path), False
        query = "mode=ro"
        if not folder_writable:
            # A WAL database is read through its -shm; where none can be made here, SQLite can
            # read it only as immutable, which is right only for a file nobody can change
            # (on a file still being written it gives wrong answers or SQLITE_CORRUPT).
            wal = Path(f"{path}-wal")
            shm = Path(f"{path}-shm")
            if wal.exists() and wal.stat().st_size and not shm.exists():
                # Immutable would show the database without the -wal's changes.
                raise StoreUnavailable(
                    f"cannot read {self.path}: its -wal file holds changes that cannot be read "
                    f"in this read-only folder without its -shm file; {_TAKE_A_COPY}"
                )
            if not shm.exists():
                if not _frozen(path):
                    raise StoreUnavailable(
                        f"cannot read {self.path} safely here: it may still be changing (it "
                        "or its folder has write permission for someone), and reading a "
                        "changing database needs a -shm file beside it, which this folder does "
                        f"not let se-flow make; {_TAKE_A_COPY}"
                    )
                query += "&immutable=1"
        return fresh, f"{path.resolve().as_uri()}?{query}", True

    def _identify(self, fresh: bool) -> set[str]:
        """The se-flow migrations applied to the file; refuses a file that is not se-flow's.
        Only a file that was missing or empty (`fresh`) may be given the schema: an SQLite
        file without tables still belongs to whoever made it."""
        tables = sorted(
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        )
        applied = self._applied() if "_sqlite_migrations" in tables else set()
        if applied:
            return applied
        if tables:
            shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
            raise StoreUnavailable(
                f"{self.path} is not an se-flow database: it is an SQLite database of another "
                f"application (tables: {shown}); nothing was changed"
            )
        if not fresh:
            raise StoreUnavailable(
                f"{self.path} is an empty SQLite database, not an se-flow database; "
                "`se-flow init` makes one"
            )
        return applied

    def _check_readable(self, applied: set[str]) -> None:
        pending = {name for name, _ in MIGRATIONS} - applied
        if pending - _READ_COMPATIBLE:
            raise StoreUnavailable(
                f"{self.path} is from an older se-flow and must be upgraded before it can be "
                "read; open it once where it is writable (any write command upgrades it)"
            )
        self.conn.execute("PRAGMA foreign_keys = ON")

    def _configure(self, memory: bool, synchronous: str) -> None:
        conn = self.conn
        if not memory:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreUnavailable(f"{self.path}: could not switch to WAL journal ({mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        # An erased text must not linger in a free page of the file.
        conn.execute("PRAGMA secure_delete = ON")

    def exposure(self) -> str | None:
        return self._exposure

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise StoreUnavailable(
                f"the database {self.path} is read-only here ({self._read_only_why}); "
                "nothing was written"
            )

    def _applied(self) -> set[str]:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
        ).fetchone()
        if not exists:
            return set()
        rows = self.conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,)
        ).fetchall()
        return {r[0] for r in rows}

    def _migrate(self, applied: set[str]) -> None:
        if {name for name, _ in MIGRATIONS} <= applied:
            return
        # Only now pay for importing sqlite-utils.
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations

        migrations = Migrations(MIGRATION_SET)
        for name, statements in MIGRATIONS:

            def apply(db: Database, statements: list[str] = statements, name: str = name) -> None:
                for sql in statements:
                    db.execute(sql)
                if name == _DUE_MIGRATION:
                    self._rebuild_due()  # an existing database's log, projected

            migrations(name=name)(apply)
        db = Database(self.conn, execute_plugins=False)
        migrations.apply(db)

    # --- the cache of staff, settings, sealing and head -------------------------------------

    def _state_key(self) -> tuple[int, int]:
        """Changes whenever anything may have changed a row: `data_version` moves when another
        connection commits, `total_changes` counts every row this connection changed (raw SQL
        on it included, triggers included)."""
        (version,) = self.conn.execute("PRAGMA data_version").fetchone()
        return int(version), self.conn.total_changes

    def _fresh(self) -> bool:
        """Forget every row cached here if anything may have changed in the database since it
        was read (by anyone, through any connection). Returns whether a row read now may be
        kept: inside someone else's transaction on this connection it may yet be rolled back
        without this store knowing (our own writes forget it on rollback)."""
        conn = self.conn
        # In our own write transaction nobody else can commit: once the key is checked in
        # it, only this connection's own changes can move it.
        if (
            self._checked
            and self._cache_key is not None
            and self._cache_key[1] == conn.total_changes
        ):
            return True
        key = self._state_key()
        if key != self._cache_key:
            self._forget()
            self._cache_key = key
        return self._writing or not conn.in_transaction

    def _staff(self, staff_id: str) -> Staff:
        # Every command and read asks who is acting: a SELECT and a Staff each time, unless
        # nothing has changed in the database since that member was last read. A member
        # deactivated or demoted by anyone, through any connection, is read again.
        keep = self._fresh()
        found = self._staff_cache.get(staff_id)
        if found is not None:
            return found
        row = self.conn.execute(f"{self._staff_select} WHERE id = ?", (staff_id,)).fetchone()
        if row is None:
            raise StaffNotFound(staff_id)
        found = _staff_from_row(row)
        if keep:
            self._staff_cache[staff_id] = found
        return found

    def _settings_now(self) -> DatabaseSettings:
        # Read by every write on a case (is a checkpoint due?) and by commands: kept as
        # `_staff` is.
        keep = self._fresh()
        if self._settings is not None:
            return self._settings
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        found = DatabaseSettings.from_json(json.loads(row[0])) if row else DatabaseSettings()
        if keep:
            self._settings = found
        return found

    def _head_now(self) -> tuple[int, str, str | None]:
        """The log's last (seq, hash, workflow_hash); (0, GENESIS, None) when it is empty.
        Inside a write: sqlite3's errors pass untranslated, as `_batch_write` needs them."""
        keep = self._fresh()
        if self._head is not None:
            return self._head
        row = self.conn.execute(
            "SELECT seq, hash, workflow_hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        found: tuple[int, str, str | None] = (row[0], row[1], row[2]) if row else (0, GENESIS, None)
        if keep:
            self._head = found
        return found

    def _forget(self) -> None:
        self._cache_key = None
        self._staff_cache.clear()
        self._settings = None
        self._unsealed = False
        self._head = None

    def _wrote(self, changed_before: int, head: tuple[int, str, str | None] | None) -> None:
        """After this connection's own write, which changed only what the caches are told
        here (its event, now the `head`; None: the head moved otherwise): they stay valid,
        without reading anything. The key's data_version part is kept as it was, so a commit
        by another connection since then is still seen."""
        if self._cache_key is None or self._cache_key[1] != changed_before:
            return
        self._cache_key = (self._cache_key[0], self.conn.total_changes)
        self._head = head

    # --- writes --------------------------------------------------------------------------

    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        conn = self.conn
        self._refuse_if_read_only()
        with _translated(self.path):
            if self._batch_depth:
                return self._batch_write(decide)
            conn.execute("BEGIN IMMEDIATE")
            self._writing = True
            try:
                self._fresh()
                self._checked = True
                self._read_row = None
                change = decide(_SQLiteTx(self))
                event = self._apply(change)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            finally:
                self._writing = self._checked = False
        return change.case, event

    def _rollback(self) -> None:
        # Rows read (or cached as written) in the transaction may be undone with it.
        self._forget()
        # After an error SQLite may already have rolled back (then ROLLBACK fails, harmlessly);
        # a failing ROLLBACK must not hide the error that caused it.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def _batch_write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        self._check_batch()
        with self._own_savepoint("se_flow_command"):
            self._fresh()
            self._checked = True
            self._read_row = None
            try:
                change = decide(_SQLiteTx(self))
                event = self._apply(change)
            finally:
                self._checked = False
        return change.case, event

    @contextlib.contextmanager
    def _own_savepoint(self, name: str) -> Iterator[None]:
        """Inside a batch, one write as its own savepoint: a refused write undoes only itself,
        and the batch commits (one fsync) at the end."""
        conn = self.conn
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, sqlite3.Error) and (
                not conn.in_transaction or _primary(exc) in _TRANSACTION_ENDERS
            ):
                # The batch's transaction is gone, or cannot be trusted to commit: a
                # savepoint now would start a new transaction outside the batch and commit
                # its commands one by one.
                self._abandon(exc)
                raise
            try:
                self._forget()
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            except sqlite3.Error as undo:
                self._abandon(undo)
                raise exc from None
            raise
        conn.execute(f"RELEASE {name}")

    def _abandon(self, cause: sqlite3.Error) -> None:
        self._batch_failed = (
            _translate(self.path, cause).message
            if isinstance(cause, sqlite3.DatabaseError)
            else str(cause)
        )
        self._rollback()

    def _check_batch(self) -> None:
        """Refuse every command of a batch whose transaction was lost, naming why."""
        if self._batch_failed is None and not self.conn.in_transaction:
            self._batch_failed = "its transaction ended unexpectedly"
        if self._batch_failed is not None:
            raise StoreError(
                f"database {self.path}: the batch was abandoned after an earlier command "
                f"failed ({self._batch_failed}); nothing of the batch was written"
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if self._batch_depth:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
            return
        conn = self.conn
        self._refuse_if_read_only()
        with _translated(self.path):
            conn.execute("BEGIN IMMEDIATE")
        self._batch_depth = 1
        self._batch_failed = None
        self._writing = True
        try:
            yield
            with _translated(self.path):
                self._check_batch()
                conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._writing = False
            self._batch_depth = 0
            self._batch_failed = None

    def _apply(self, change: Change) -> Event:
        conn = self.conn
        changed_before = conn.total_changes
        event = self._append(change)
        if change.staff is not None or change.settings is not None:
            self._forget()
        else:
            # Only this command's own rows changed, none of them staff or settings: the
            # cache stays valid, its head the event just written.
            self._wrote(changed_before, (event.seq, event.hash, event.workflow_hash))
        return event

    def _append(self, change: Change) -> Event:
        conn = self.conn
        last, prev, logged = self._head_now()
        seq = last + 1
        # Checked here, inside the write transaction, so no writer under another workflow can
        # slip in between the check and the write.
        draft = change.event
        check_workflow(logged, draft)
        command_id = draft.command_id
        if (
            command_id is not None
            and conn.execute("SELECT 1 FROM events WHERE command_id = ?", (command_id,)).fetchone()
        ):
            raise CommandRepeated(command_id)
        # Read before anything is written, while the cache is known to be valid.
        sealing = self._sealing_now()
        record = change.record
        kept = split(draft, record.fields if record is not None else None, self.workflow, _new_salt)
        texts = kept.texts
        event, event_row = seal(draft, seq, prev, kept.stored)

        # The event first: the triggers on staff and cases ask for it (see _SCHEMA_V3).
        conn.execute(_INSERT_EVENT, _event_params(event_row))
        if texts:
            conn.executemany(
                "INSERT INTO texts (seq, slot, salt, text) VALUES (?, ?, ?, ?)",
                [(seq, t.slot, t.salt.hex(), t.text) for t in texts],
            )
        if change.erase_texts:
            conn.executemany(
                "UPDATE texts SET salt = NULL, text = NULL WHERE seq = ? AND slot = ?",
                change.erase_texts,
            )
        if sealing is not None:
            keys, own = self._keys(), self._own_id()
            found = seal_event(
                sealing,
                lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                seq,
                event.hash,
                event.recorded_at,
            )
            conn.execute(
                "INSERT INTO seals (seq, epoch, mac) VALUES (?, ?, ?)",
                (found.seq, found.epoch, found.mac),
            )
        if change.staff is not None:
            s = change.staff
            conn.execute(
                "INSERT INTO staff (id, name, role, active, login) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, "
                "active = excluded.active, login = excluded.login",
                (s.id, s.name, s.role.value, int(s.active), s.login),
            )
        if change.settings is not None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('settings', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(change.settings.to_json()),),
            )
        if change.participant is not None:
            p = change.participant
            conn.execute(
                "INSERT INTO participants (id, created_at) VALUES (?, ?)", (p.id, _ts(p.created_at))
            )
            if p.details is not None:
                d = p.details
                conn.execute(
                    "INSERT INTO personal_data (participant_id, name, contact, date_of_birth, "
                    "health_notes) VALUES (?, ?, ?, ?, ?)",
                    (
                        p.id,
                        d.name,
                        d.contact,
                        d.date_of_birth.isoformat() if d.date_of_birth else None,
                        d.health_notes,
                    ),
                )
        if change.erase_personal_data_of is not None:
            conn.execute(
                "DELETE FROM personal_data WHERE participant_id = ?",
                (change.erase_personal_data_of,),
            )
        case = change.case
        if case is not None and change.expected_version is None:
            num = int(case.id.split("-", 1)[1])
            conn.execute(
                f"INSERT INTO cases ({_CASE_COLS}, num) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (case.id, case.participant_id, *_case_params(case), num),
            )
        elif case is not None:
            cur = conn.execute(*_case_update(case, change.expected_version, self._read_row))
            if cur.rowcount != 1:
                (actual,) = conn.execute(
                    "SELECT version FROM cases WHERE id = ?", (case.id,)
                ).fetchone() or (-1,)
                raise CaseConflict(case.id, change.expected_version or 0, actual)
        if record is not None and case is not None:
            kind = self.workflow.records[record.kind]
            # The record's fields as kept: without its texts.
            assert kept.fields is not None
            conn.execute(
                "INSERT INTO records (seq, case_id, kind, fields, effective_at, recorded_at, "
                "actor, supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    case.id,
                    record.kind,
                    _fields_json(kind.to_json(kept.fields)),
                    event_row["effective_at"],
                    event_row["recorded_at"],
                    event_row["actor"],
                    record.supersedes,
                ),
            )
        if draft.kind == EventKind.WORKFLOW:
            self._rebuild_due()
        else:
            effect = due_touched(self._due_touch, draft.kind, event.trigger, record, case)
            if effect:
                assert case is not None
                self._project_due(case, effect)
        return event

    # --- the due projection ---------------------------------------------------------------

    def _run(self, query: tuple[str, list[Any]]) -> Iterator[Sequence[Any]]:
        return iter(self.conn.execute(*query))

    def _project_due(self, case: Case, effect: DueEffect = True) -> None:
        """The case's due rows worked out again from its history, written where they moved;
        not at all when the write's `effect` (`DueTouch`) needs anchors the case lacks."""
        conn = self.conn
        if isinstance(effect, Anchored):
            ((anchored,),) = conn.execute(*anchored_query(case.id, effect, "?"))
            if not anchored:
                return
        (history,) = due_histories(self.workflow, self._run, "?", case=case)
        new = project(history, self.workflow.standards, self.workflow.calendar)
        old = [
            due_row(r)
            for r in conn.execute(
                f"SELECT {DUE_COLS} FROM due_index WHERE case_id = ? ORDER BY n", (case.id,)
            )
        ]
        if len(old) > len(new):
            conn.execute("DELETE FROM due_index WHERE case_id = ? AND n >= ?", (case.id, len(new)))
        changed = due_changes(old, new)
        if changed:
            conn.executemany(due_upsert("?"), changed)

    def _rebuild_due(self) -> None:
        """The whole due projection from the log, a slice of cases at a time (memory flat)."""
        conn = self.conn
        conn.execute("DELETE FROM due_index")
        if not self.workflow.standards:
            return
        (top,) = conn.execute("SELECT COALESCE(MAX(num), 0) FROM cases").fetchone()
        step = 5000
        for lo in range(1, top + 1, step):
            found = due_histories(self.workflow, self._run, "?", span=(lo, lo + step))
            rows = [
                due_row_params(r)
                for h in found
                for r in project(h, self.workflow.standards, self.workflow.calendar)
            ]
            conn.executemany(due_upsert("?"), rows)

    def due_rows(self, case_id: str) -> list[DueRow]:
        with _translated(self.path):
            return [
                due_row(r)
                for r in self.conn.execute(
                    f"SELECT {DUE_COLS} FROM due_index WHERE case_id = ? ORDER BY n", (case_id,)
                )
            ]

    def due_page(
        self,
        coach: str | None,
        today: dt.date,
        last_day: dt.date,
        limit: int | None,
        after: tuple[dt.date, int] | None = None,
    ) -> list[DueRow]:
        with _translated(self.path), self.read_snapshot():
            return due_page(self._run, coach, today, last_day, "?", limit, after)

    def count_due_rows(self) -> int:
        with _translated(self.path):
            (n,) = self.conn.execute("SELECT COUNT(*) FROM due_index").fetchone()
        return int(n)

    # --- rows appended in bulk (an import) ---------------------------------------------------

    def append(self, build: Callable[[Tx, LogHead], Appended]) -> Appended:
        conn = self.conn
        self._refuse_if_read_only()
        with _translated(self.path):
            if not self._batch_depth:
                conn.execute("BEGIN IMMEDIATE")
                self._writing = True
                try:
                    rows = self._append_rows(build)
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
                finally:
                    self._writing = False
                return rows
            self._check_batch()
            with self._own_savepoint("se_flow_append"):
                rows = self._append_rows(build)
            return rows

    def _append_rows(self, build: Callable[[Tx, LogHead], Appended]) -> Appended:
        conn = self.conn
        last, prev, logged = self._head_now()
        (num,) = conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM cases").fetchone()
        head = LogHead(last, prev, logged, num)
        rows = build(_SQLiteTx(self), head)
        if not rows.events:
            return rows
        check_appended(head, rows)
        commands = [r["command_id"] for r in rows.events if r.get("command_id")]
        if commands:
            logged = conn.execute(
                "SELECT command_id FROM events WHERE command_id IN "
                "(SELECT value FROM json_each(?)) LIMIT 1",
                (json.dumps(commands),),
            ).fetchone()
            if logged is not None:
                raise CommandRepeated(logged[0])
        seals: list[tuple[int, int, str]] = []
        sealing = self._sealing_now()
        if sealing is not None:
            keys, own = self._keys(), self._own_id()
            for r in rows.events:
                found = seal_event(
                    sealing,
                    lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                    r["seq"],
                    r["hash"],
                    dt.datetime.fromisoformat(r["recorded_at"]),
                )
                seals.append((found.seq, found.epoch, found.mac))
        changed_before = conn.total_changes
        # The triggers that want each case row, text and seal written while its own event is
        # the log's last check one statement at a time what holds here for the whole
        # transaction: every row comes with its event, all chained and checked above. Lifted
        # for the bulk write and put back, as they were, before the transaction ends: no
        # other connection ever sees the schema without them (and a failure undoes both).
        lifted = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN "
            "('cases_through_the_log_insert', 'texts_with_their_event', "
            "'seals_with_their_event')"
        ).fetchall()
        for name, _ in lifted:
            conn.execute(f"DROP TRIGGER {name}")
        conn.executemany(
            "INSERT INTO participants (id, created_at) VALUES (?, ?)",
            [(p.id, _ts(p.created_at)) for p in rows.participants],
        )
        conn.executemany(
            "INSERT INTO personal_data (participant_id, name, contact, date_of_birth, "
            "health_notes) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    p.id,
                    p.details.name,
                    p.details.contact,
                    p.details.date_of_birth.isoformat() if p.details.date_of_birth else None,
                    p.details.health_notes,
                )
                for p in rows.participants
                if p.details is not None
            ],
        )
        conn.executemany(_INSERT_EVENT, [tuple(map(r.get, EVENT_COLUMNS)) for r in rows.events])
        conn.executemany(
            "INSERT INTO texts (seq, slot, salt, text) VALUES (?, ?, ?, ?)",
            [(t.seq, t.slot, t.salt, t.text) for t in rows.texts],
        )
        conn.executemany("INSERT INTO seals (seq, epoch, mac) VALUES (?, ?, ?)", seals)
        conn.executemany(
            "INSERT INTO records (seq, case_id, kind, fields, effective_at, recorded_at, "
            "actor, supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.seq,
                    r.case_id,
                    r.kind,
                    json.dumps(r.fields, sort_keys=True),
                    r.effective_at,
                    r.recorded_at,
                    r.actor,
                    r.supersedes,
                )
                for r in rows.records
            ],
        )
        conn.executemany(
            f"INSERT INTO cases ({_CASE_COLS}, num) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (c.id, c.participant_id, *_case_params(c), int(c.id.split("-", 1)[1]))
                for c in rows.cases
            ],
        )
        for _, sql in lifted:
            conn.execute(sql)
        # The due table, as the commands one by one would have left it (`_apply`): the new
        # cases' rows, projected as their events were made.
        conn.executemany(due_upsert("?"), [due_row_params(r) for r in rows.due])
        # No staff row or setting changed: the cache stays valid but for the head (`_apply`).
        self._wrote(changed_before, None)
        return rows

    # --- a whole store copied in (`store copy`) ---------------------------------------------

    def restore(self, copy: StoreCopy) -> int:
        self._refuse_if_read_only()
        conn = self.conn
        with _translated(self.path):
            if self._batch_depth:
                return self._restore(copy)
            conn.execute("BEGIN IMMEDIATE")
            try:
                written = self._restore(copy)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return written

    def _restore(self, copy: StoreCopy) -> int:
        conn = self.conn
        (head,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        has_staff = conn.execute("SELECT 1 FROM staff LIMIT 1").fetchone() is not None
        refuse_if_not_empty(self.path, head, has_staff)
        # The same log: a checkpoint (and the seals' check) of the source proves the copy.
        conn.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (copy.store_id,))
        if copy.sealing is not None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('sealing', ?)",
                (json.dumps(copy.sealing.to_json()),),
            )
        if copy.settings is not None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('settings', ?)",
                (json.dumps(copy.settings.to_json()),),
            )
        written = 0
        for table, row in restore_order(copy):
            if table == "event":
                conn.execute(_INSERT_EVENT, [row.get(c) for c in EVENT_COLUMNS])
                written += 1
            elif table == "seal":
                conn.execute(
                    "INSERT INTO seals (seq, epoch, mac) VALUES (?, ?, ?)",
                    (row.seq, row.epoch, row.mac),
                )
            elif table == "text":
                conn.execute(
                    "INSERT INTO texts (seq, slot, salt, text) VALUES (?, ?, ?, ?)",
                    (row.seq, row.slot, row.salt, row.text),
                )
            elif table == "participant":
                conn.execute(
                    "INSERT INTO participants (id, created_at) VALUES (?, ?)",
                    (row.id, _ts(row.created_at)),
                )
                if row.details is not None:
                    d = row.details
                    conn.execute(
                        "INSERT INTO personal_data (participant_id, name, contact, "
                        "date_of_birth, health_notes) VALUES (?, ?, ?, ?, ?)",
                        (
                            row.id,
                            d.name,
                            d.contact,
                            d.date_of_birth.isoformat() if d.date_of_birth else None,
                            d.health_notes,
                        ),
                    )
            elif table == "case":
                conn.execute(
                    f"INSERT INTO cases ({_CASE_COLS}, num) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.id, row.participant_id, *_case_params(row), int(row.id.split("-", 1)[1])),
                )
            elif table == "staff":
                conn.execute(
                    "INSERT INTO staff (id, name, role, active, login) VALUES (?, ?, ?, ?, ?)",
                    (row.id, row.name, row.role.value, int(row.active), row.login),
                )
            else:
                conn.execute(
                    "INSERT INTO records (seq, case_id, kind, fields, effective_at, "
                    "recorded_at, actor, supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.seq,
                        row.case_id,
                        row.kind,
                        json.dumps(row.fields, sort_keys=True),
                        row.effective_at,
                        row.recorded_at,
                        row.actor,
                        row.supersedes,
                    ),
                )
        # The copy carries the log, not the due projection: worked out here from it.
        self._rebuild_due()
        self._forget()
        self._store_id = None
        self._sealing = None
        return written

    # --- sealing (`_seal`, `_keyfile`) ----------------------------------------------------

    def _sealing_now(self) -> Sealing | None:
        """Inside a write: sqlite3's errors pass untranslated, as `_batch_write` needs them.
        Once on, sealing stays on (a trigger keeps the setting), so once found it is kept;
        that it is off is kept only while nothing changed (`_fresh`): sealing started through
        another connection is honoured by the next write here."""
        if self._sealing is not None:
            return self._sealing
        keep = self._fresh()
        if self._unsealed:
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'sealing'").fetchone()
        if row is not None:
            self._sealing = Sealing.from_json(json.loads(row[0]))
        elif keep:
            self._unsealed = True
        return self._sealing

    def _own_id(self) -> str:
        if self._store_id is None:
            (found,) = self.conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            self._store_id = str(found)
        return self._store_id

    def _keys(self) -> SealKeys:
        if self.seal_keys is None:
            raise SealKeyUnusable(
                "(none given)", "this database seals its events, but no key file was given"
            )
        return self.seal_keys

    def sealing(self) -> Sealing | None:
        with _translated(self.path):
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'sealing'").fetchone()
            except sqlite3.OperationalError as exc:
                # A database from before seals (read-only: not migrated) never sealed.
                if "no such table" in str(exc):
                    return None
                raise
        return Sealing.from_json(json.loads(row[0])) if row else None

    def seal_of(self, seq: int) -> SealRow | None:
        with _translated(self.path):
            try:
                row = self.conn.execute(
                    "SELECT seq, epoch, mac FROM seals WHERE seq = ?", (seq,)
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise
        return SealRow(*row) if row else None

    def seal_rows(self) -> Iterator[SealRow]:
        with _translated(self.path):
            try:
                cur = self.conn.execute("SELECT seq, epoch, mac FROM seals ORDER BY seq")
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return
                raise
            for seq, epoch, mac in cur:
                yield SealRow(seq, epoch, mac)

    def start_sealing(self, now: dt.datetime, epoch_seconds: int) -> VerificationKey:
        """Begin sealing with the next event: a new seed, the key file written (never over
        one), the settings kept. Returns the verification key, which is kept nowhere."""
        self._refuse_if_read_only()
        check_epoch_seconds(epoch_seconds)
        keys = self._keys()
        conn = self.conn
        with _translated(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self.sealing() is not None:
                    raise InvalidInput(f"{self.path} already seals its events")
                (head,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
                seed = keys.new_seed()
                store_id = self.store_id()
                key, state = begin_sealing(seed, head, now, epoch_seconds, store_id)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('sealing', ?)",
                    (json.dumps(state.to_json()),),
                )
                keys.create(store_id, seed, key.start_epoch, epoch_seconds)
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    keys.discard()
                    raise
            except BaseException:
                self._rollback()
                raise
        self._sealing = state
        return key

    # --- reads ---------------------------------------------------------------------------

    def read(self) -> Tx:
        return _SQLiteReadTx(self)

    def case(self, case_id: str) -> Case:
        with _translated(self.path):
            row = self.conn.execute(
                f"SELECT {_CASE_COLS} FROM cases WHERE id = ?", (case_id,)
            ).fetchone()
        if row is None:
            raise CaseNotFound(case_id)
        return _case_from_row(row)

    def cases(self, where: CaseFilter) -> Iterator[Case]:
        after = None
        if where.after is not None:
            with _translated(self.path):
                row = self.conn.execute(AFTER_ROW.format(mark="?"), (where.after,)).fetchone()
            if row is None:
                return
            after = dict(zip(SORT_COLS, row, strict=True))
        left = where.limit
        for query in case_queries(where, "?", after, self.workflow.stage_groups):
            if left is not None and left <= 0:
                return
            sql, params = query(left)
            with _translated(self.path):
                for row in self.conn.execute(sql, params):
                    yield _case_from_row(row)
                    if left is not None:
                        left -= 1

    def case_histories(
        self, workflow: Workflow, *, coach: str | None = None, case_id: str | None = None
    ) -> Iterator[CaseHistory]:
        q = history_queries(workflow, coach, "?", case_id=case_id)
        conn = self.conn
        with _translated(self.path), self.read_snapshot():
            found = histories(
                workflow,
                conn.execute(*q.cases).fetchall(),
                conn.execute(*q.records) if q.records else (),
                conn.execute(*q.events) if q.events else (),
            )
        return iter(found)

    def due_reviews(
        self,
        coach: str | None,
        last_day: dt.date,
        limit: int | None = None,
        after: tuple[dt.date, int] | None = None,
    ) -> Iterator[ReviewRow]:
        with _translated(self.path):
            rows = self.conn.execute(*review_query(coach, last_day, "?", limit, after)).fetchall()
        return review_rows(rows)

    def _records(self, case_id: str, kinds: Collection[str] | None = None) -> list[Record]:
        sql = f"SELECT {RECORD_COLS} FROM records WHERE case_id = ?"
        params: list[Any] = [case_id]
        if kinds is None:
            # The join keeps records_case's order: no sort.
            return self._read_records(with_texts(sql) + " ORDER BY p.seq", params)
        # One index seek per kind (records_case_kind), each in seq order; merged here, as an
        # ORDER BY would make SQLite sort them in a temporary B-tree (a stable sort: each
        # record's texts stay together, in slot order).
        sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
        params.extend(kinds)
        rows = self.conn.execute(with_texts(sql), params).fetchall()
        rows.sort(key=_first)
        return filled_records(rows, self.workflow)

    def _read_records(self, sql: str, params: list[Any]) -> list[Record]:
        """The records of a `_rows.with_texts` statement, their texts put back."""
        return filled_records(self.conn.execute(sql, params), self.workflow)

    def records(self, case_id: str) -> list[Record]:
        with _translated(self.path):
            self.case(case_id)
            return self._records(case_id)

    def latest_records(
        self, case_id: str, limit: int, *, include_superseded: bool = False
    ) -> list[Record]:
        def page(before: int | None, size: int) -> list[Any]:
            sql = f"SELECT {RECORD_COLS} FROM records WHERE case_id = ?"
            params: list[Any] = [case_id]
            if before is not None:
                sql += " AND seq < ?"
                params.append(before)
            return self.conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, size]).fetchall()

        with _translated(self.path), self.read_snapshot():
            self.case(case_id)
            found = latest_records(page, limit, include_superseded, self.workflow)
            texts = _texts_of(self.conn, [r.seq for r in found]) if found else {}
        return [fill_record(r, texts[r.seq]) if r.seq in texts else r for r in found]

    def case_events(
        self, case_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[Event]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE case_id = ?"
        params: list[Any] = [case_id]
        if before_seq is not None:
            sql += " AND seq < ?"
            params.append(before_seq)
        rows = list(self.event_rows_sql(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]))
        events = [event_from_row(row) for row in reversed(rows)]
        with_texts = [e.seq for e in events if e.texts]
        if not with_texts:
            return events
        with _translated(self.path):
            texts = _texts_of(self.conn, with_texts)
        return [fill_event(e, texts.get(e.seq, {})) if e.texts else e for e in events]

    def count_case_events(self, case_id: str, before_seq: int) -> int:
        with _translated(self.path):
            (count,) = self.conn.execute(
                "SELECT COUNT(*) FROM events WHERE case_id = ? AND seq < ?", [case_id, before_seq]
            ).fetchone()
        return int(count)

    def record_rows(self) -> Iterator[RecordRow]:
        with _translated(self.path):
            for seq, cid, kind, fields, eff, rec, actor, sup in self.conn.execute(
                "SELECT seq, case_id, kind, fields, effective_at, recorded_at, actor, supersedes "
                "FROM records ORDER BY seq"
            ):
                yield RecordRow(seq, cid, kind, json.loads(fields), eff, rec, actor, sup)

    def events(self, case_id: str | None = None, after_seq: int = 0) -> Iterator[Event]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if case_id is not None:
            sql += " AND case_id = ?"
            params.append(case_id)
        sql += " ORDER BY seq"
        for row in self.event_rows_sql(sql, params):
            event = event_from_row(row)
            if event.texts:
                with _translated(self.path):
                    event = fill_event(event, _texts_of(self.conn, [event.seq]).get(event.seq, {}))
            yield event

    def text_rows(self) -> Iterator[TextRow]:
        with _translated(self.path):
            for seq, slot, salt, text in self.conn.execute(
                "SELECT seq, slot, salt, text FROM texts ORDER BY seq, slot"
            ):
                yield TextRow(seq, slot, salt, text)

    def texts_of(self, seqs: Collection[int]) -> dict[int, dict[str, str | None]]:
        with _translated(self.path):
            return _texts_of(self.conn, seqs)

    def event_rows_sql(self, sql: str, params: list[Any]) -> Iterator[Mapping[str, Any]]:
        with _translated(self.path):
            cur = self.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            for row in cur:
                yield dict(zip(names, row, strict=True))

    def events_by_case(self) -> Iterator[Event]:
        rows = self.event_rows_sql(
            f"SELECT {_EVENT_COLS} FROM events WHERE case_id IS NOT NULL ORDER BY case_id, seq", []
        )
        return (event_from_row(row) for row in rows)

    def count_cases(self) -> int:
        with _translated(self.path):
            (count,) = self.conn.execute("SELECT COUNT(*) FROM cases").fetchone()
        return int(count)

    def event_rows(self, after_seq: int = 0) -> Iterator[Mapping[str, Any]]:
        return self.event_rows_sql(
            f"SELECT {_EVENT_COLS} FROM events WHERE seq > ? ORDER BY seq", [after_seq]
        )

    def head(self) -> tuple[int, str]:
        with _translated(self.path):
            row = self.conn.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def head_workflow_hash(self) -> str | None:
        with _translated(self.path):
            row = self.conn.execute(
                "SELECT workflow_hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return str(row[0]) if row else None

    def list_staff(self) -> list[Staff]:
        with _translated(self.path):
            rows = self.conn.execute(f"{self._staff_select} ORDER BY id").fetchall()
        return [_staff_from_row(r) for r in rows]

    def personal_details(self, participant_id: str) -> PersonalDetails | None:
        with _translated(self.path):
            row = self.conn.execute(
                "SELECT name, contact, date_of_birth, health_notes FROM personal_data "
                "WHERE participant_id = ?",
                (participant_id,),
            ).fetchone()
        return None if row is None else _details(row)

    def names_of(self, participant_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(participant_ids))
        names: dict[str, str] = {}
        with _translated(self.path):
            # In slices: SQLite bounds the number of parameters of one statement.
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ", ".join("?" * len(part))
                names.update(
                    self.conn.execute(
                        "SELECT participant_id, name FROM personal_data "
                        f"WHERE participant_id IN ({marks})",
                        part,
                    ).fetchall()
                )
        return names

    def people(self) -> Iterator[tuple[str, PersonalDetails]]:
        with _translated(self.path):
            rows = self.conn.execute(
                "SELECT participant_id, name, contact, date_of_birth, health_notes "
                "FROM personal_data ORDER BY participant_id"
            ).fetchall()
        return iter([(r[0], _details(r[1:])) for r in rows])

    def store_id(self) -> str:
        with _translated(self.path):
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        return str(row[0])

    def close(self) -> None:
        self.conn.close()

    # --- exports (issue 4) ---------------------------------------------------------------

    def event_table(
        self,
        *,
        case_id: str | None = None,
        cases: CaseFilter | None = None,
        since: dt.datetime | None = None,
        before: dt.datetime | None = None,
        kinds: tuple[str, ...] | None = None,
        as_json: bool = False,
        by_case: bool = False,
        columns: tuple[str, ...] | None = None,
        case_columns: tuple[str, ...] = (),
    ) -> Iterator[tuple[Any, ...]]:
        names = event_columns(columns)
        cols = ", ".join(f"events.{c}" for c in names)
        if case_columns:
            if as_json or not by_case:
                raise ValueError("case_columns come with by_case, not as_json")
            cols = ", ".join(f"cases.{c}" for c in _case_columns(case_columns)) + ", " + cols
        if as_json:
            # SQLite builds the JSON text ~2x faster than json.dumps per row; TEXT columns
            # (guards, payload...) stay strings, exactly as stored.
            cols = "json_object(" + ", ".join(f"'{c}', events.{c}" for c in names) + ")"
        clauses, params = event_where(
            "?", case_id=case_id, cases=cases, since=since, before=before, kinds=kinds
        )
        sql = f"SELECT {cols} FROM events"
        if by_case:
            # Cases in number order, each one's events through the events_case index: no sort.
            sql += " JOIN cases ON cases.id = events.case_id"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY cases.num, events.seq" if by_case else " ORDER BY events.seq"
        with _translated(self.path):
            yield from self.conn.execute(sql, params)

    # --- reports (issue 14): every case as the reports read it -------------------------------

    def case_readings(self, kinds: Collection[str] | None = None) -> Iterator[CaseReading]:
        from ._rows import case_readings, reading_queries

        cases, events, records, params, picked = reading_queries(
            "?", "json_extract(e.payload, '$.{key}')", kinds, "CROSS JOIN"
        )
        conn = self.conn
        with _translated(self.path), self.read_snapshot():
            # Three cursors at once on one connection, in one snapshot, merged in case order.
            yield from case_readings(
                self.workflow,
                (_case_from_row(row) for row in conn.execute(cases)),
                conn.execute(events, params),
                conn.execute(records, picked),
            )

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        conn = self.conn
        if conn.in_transaction:
            yield
            return
        with _translated(self.path):
            # A deferred BEGIN takes its WAL snapshot at the first read and holds it to the end.
            conn.execute("BEGIN")
        try:
            yield
        finally:
            # A reader left unfinished (its output's reader gone) may be closed only after the
            # store was: closing the connection ended the snapshot already.
            with contextlib.suppress(sqlite3.ProgrammingError):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")


def _details(row: Sequence[Any]) -> PersonalDetails:
    """A personal_data row (name, contact, date of birth, health notes) as its value."""
    return PersonalDetails(
        name=row[0],
        contact=row[1],
        date_of_birth=dt.date.fromisoformat(row[2]) if row[2] else None,
        health_notes=row[3],
    )
