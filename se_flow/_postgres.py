"""The PostgreSQL store: the same tables, chain and contract as SQLite, for many writers.

One global chain kept gapless by a one-row `chain_head`: the final statement of every write
updates it (`seq + 1`, and the hash computed by the server over the same canonical JSON bytes
the core hashes: Python sends the canonical text cut around `seq` and `prev_hash`) and inserts
the event from it, sent in one pipeline with the rest of the change and COMMIT, so the head's
row lock covers only server work and the commit (see `/work/shared/postgres.md` for what was
measured). READ COMMITTED, `synchronous_commit = on`; a write reads its case `FOR UPDATE`, so a
second command on the same case waits and decides on fresh state. The returned hash is checked
against the core's `seal` on every append. psycopg errors are translated into `StoreError`s here
and nowhere else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import conninfo, pq

from ._audit import (
    GENESIS,
    canonical,
    check_workflow,
    event_from_row,
    event_to_row,
    hashed_fields,
    seal,
)
from ._engine import Change, Needs, Snapshot, current
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
from ._projections import RecordRow
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
    marks_of,
    needs_of,
    picks_query,
    refuse_if_not_empty,
    restore_order,
    since_query,
    with_texts,
)
from ._rows import CASE_COLS as _CASE_COLS
from ._rows import case_columns as case_columns_checked
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
from ._standards import Anchored, CaseHistory, DueRow, DueTouch, due_touched, project
from ._texts import SALT_BYTES, fill_event, fill_record, filled_records, split
from ._urls import shown_database, without_password
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
    LogHead,
    SealKeys,
    Store,
    StoreCopy,
    TextRow,
    Tx,
)

__all__ = ["MIGRATIONS", "PostgresStore", "cut_canonical"]

_SQL_TYPES = {
    Column.INT: "BIGINT",
    Column.TEXT: 'TEXT COLLATE "C"',
    Column.TIME: 'TEXT COLLATE "C"',
    Column.JSON: "TEXT",
}


def _column_ddl(f: EventField) -> str:
    if f.name == "seq":
        return "seq BIGINT PRIMARY KEY"
    ddl = f"{f.name} {_SQL_TYPES[f.column]}" + ("" if f.nullable else " NOT NULL")
    # A second link to the same event is a fork: refused by the database itself.
    return ddl + (" UNIQUE" if f.name == "prev_hash" else "")


# The events table and its append from the one field list (`_model.EVENT_FIELDS`), as SQLite's.
# Optional fields came later: each has its own migration adding its column.
_COMMAND_FIELDS = ("command_id", "command_hash")
_EVENTS_DDL = (
    "CREATE TABLE events (\n    "
    + ",\n    ".join(_column_ddl(f) for f in EVENT_FIELDS if not f.optional)
    + "\n)"
)
_EVENT_COLS = ", ".join(EVENT_COLUMNS)
_EVENT_VALUES = ", ".join(f"%({c})s" for c in EVENT_COLUMNS)
_SEALED = ("seq", "prev_hash", "hash")
_FROM_HEAD = ", ".join(
    f"head.{c}" if c in _SEALED else f"%({c})s::{_SQL_TYPES[f.column].split()[0]}"
    for c, f in zip(EVENT_COLUMNS, EVENT_FIELDS, strict=True)
)
# The final statement of a write: the head moves on, the server hashes the canonical text with
# the new seq and the old hash put in, the event is inserted from it. Every SET expression reads
# the row as it was, so `prev_hash = hash` is the old hash.
_APPEND = f"""
WITH head AS (
    UPDATE chain_head SET
        seq = seq + 1,
        prev_hash = hash,
        hash = encode(sha256(convert_to(
            %(cut_a)s::text || '"' || hash || '"' || %(cut_b)s::text || (seq + 1)::text
            || %(cut_c)s::text, 'UTF8')), 'hex'),
        workflow_hash = se_flow_check_workflow(workflow_hash, %(workflow_hash)s::text,
                                               %(kind)s::text)
    RETURNING seq, prev_hash, hash
)
INSERT INTO events ({_EVENT_COLS}) SELECT {_FROM_HEAD} FROM head
RETURNING seq, prev_hash, hash
"""

_RAISE = """CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '{words}'; END $$"""

# The staff and case tables are projections of the log that permissions and guards read: a row
# may change only in the transaction that appends the event saying so (the event is inserted
# first, and the chain head is locked, so it is the log's last).
_THROUGH_THE_LOG = """CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM events WHERE seq = (SELECT MAX(seq) FROM events) AND {cond}) THEN
        RAISE EXCEPTION '{words}';
    END IF;
    RETURN NEW;
END $$"""

_SCHEMA_V1 = [
    """CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)""",
    "INSERT INTO meta (key, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''))",
    """CREATE TABLE staff (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT COLLATE "C" NOT NULL
            CHECK (role IN ('coach', 'team_leader', 'auditor', 'admin')),
        active BOOLEAN NOT NULL DEFAULT true
    )""",
    """CREATE TABLE participants (
        id TEXT COLLATE "C" PRIMARY KEY, created_at TEXT COLLATE "C" NOT NULL
    )""",
    # Personal data apart from the log, keyed by the pseudonym: erasable without touching it.
    """CREATE TABLE personal_data (
        participant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES participants(id),
        name TEXT NOT NULL,
        contact TEXT,
        date_of_birth TEXT COLLATE "C",
        health_notes TEXT
    )""",
    """CREATE TABLE cases (
        id TEXT COLLATE "C" PRIMARY KEY,
        num BIGINT NOT NULL UNIQUE,
        participant_id TEXT COLLATE "C" NOT NULL REFERENCES participants(id),
        state TEXT COLLATE "C" NOT NULL,
        phase TEXT COLLATE "C",
        status TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        opened_at TEXT COLLATE "C" NOT NULL,
        stage_entered_at TEXT COLLATE "C" NOT NULL,
        coach TEXT COLLATE "C",
        episode BIGINT NOT NULL,
        previous_case_id TEXT COLLATE "C",
        last_contact_at TEXT COLLATE "C",
        review_due TEXT COLLATE "C",
        outcome TEXT COLLATE "C",
        closed_at TEXT COLLATE "C"
    )""",
    "CREATE INDEX cases_coach ON cases (coach, status, review_due)",
    "CREATE INDEX cases_due ON cases (status, review_due)",
    "CREATE INDEX cases_state ON cases (state, status)",
    "CREATE INDEX cases_participant ON cases (participant_id)",
    "CREATE INDEX cases_open_due ON cases (review_due, num) WHERE status <> 'closed'",
    _EVENTS_DDL,
    "CREATE INDEX events_case ON events (case_id, seq)",
    "CREATE INDEX events_case_trigger ON events (case_id, trigger, seq)",
    """CREATE TABLE records (
        seq BIGINT PRIMARY KEY REFERENCES events(seq),
        case_id TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        fields TEXT NOT NULL,
        effective_at TEXT COLLATE "C" NOT NULL,
        recorded_at TEXT COLLATE "C" NOT NULL,
        actor TEXT COLLATE "C" NOT NULL,
        supersedes BIGINT REFERENCES records(seq)
    )""",
    "CREATE INDEX records_case ON records (case_id, seq)",
    # The chain's head, one row: the lock every append takes in its final statement.
    """CREATE TABLE chain_head (
        one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
        seq BIGINT NOT NULL,
        prev_hash TEXT COLLATE "C",
        hash TEXT COLLATE "C" NOT NULL,
        workflow_hash TEXT COLLATE "C"
    )""",
    f"INSERT INTO chain_head (seq, hash) VALUES (0, '{GENESIS}')",
    """CREATE FUNCTION se_flow_check_workflow(logged text, loaded text, kind text)
       RETURNS text LANGUAGE plpgsql AS $$
    BEGIN
        IF logged IS NOT NULL AND logged <> loaded AND kind <> 'workflow' THEN
            RAISE EXCEPTION 'workflow mismatch' USING ERRCODE = 'SF001', DETAIL = logged;
        END IF;
        RETURN loaded;
    END $$""",
    _RAISE.format(
        name="se_flow_events_append_only",
        words="the audit log is append-only: events cannot be changed or deleted",
    ),
    _RAISE.format(
        name="se_flow_records_append_only",
        words="records are never edited or deleted: record a correction instead",
    ),
    _RAISE.format(
        name="se_flow_staff_never_deleted",
        words="staff are never deleted: deactivate them instead",
    ),
    _RAISE.format(
        name="se_flow_cases_never_deleted",
        words="cases are never deleted: close them instead",
    ),
    _THROUGH_THE_LOG.format(
        name="se_flow_staff_through_the_log",
        cond="kind = 'staff' AND payload::jsonb ->> 'staff_id' = NEW.id",
        words="staff change only through se-flow: no staff event for it",
    ),
    _THROUGH_THE_LOG.format(
        name="se_flow_cases_through_the_log",
        cond="case_id = NEW.id",
        words="cases change only through se-flow: no event for it",
    ),
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_events_append_only()",
    "CREATE TRIGGER events_never_truncated BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION se_flow_events_append_only()",
    "CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_records_append_only()",
    "CREATE TRIGGER records_never_truncated BEFORE TRUNCATE ON records "
    "FOR EACH STATEMENT EXECUTE FUNCTION se_flow_records_append_only()",
    "CREATE TRIGGER staff_through_the_log BEFORE INSERT OR UPDATE ON staff "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_staff_through_the_log()",
    "CREATE TRIGGER staff_never_deleted BEFORE DELETE ON staff "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_staff_never_deleted()",
    "CREATE TRIGGER cases_through_the_log BEFORE INSERT OR UPDATE ON cases "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_cases_through_the_log()",
    "CREATE TRIGGER cases_never_deleted BEFORE DELETE ON cases "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_cases_never_deleted()",
]

# Insiders (issue 15): staff logins, the database's settings, forward-secure seals, and the
# database login of each event. `db_login` is set by the server (a trigger, whatever the app
# sends) and kept outside the hashed fields, so old events' hashes are unchanged; it is what
# the server says, not something `verify` proves (a DBA can change it).
_SCHEMA_V2 = [
    "ALTER TABLE staff ADD COLUMN login TEXT",
    """CREATE TABLE settings (
        one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
        value TEXT NOT NULL
    )""",
    """CREATE TABLE seals (
        seq BIGINT PRIMARY KEY REFERENCES events(seq),
        epoch BIGINT NOT NULL,
        mac TEXT COLLATE "C" NOT NULL
    )""",
    _RAISE.format(name="se_flow_seals_append_only", words="seals cannot be changed or deleted"),
    "CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_seals_append_only()",
    "CREATE TRIGGER seals_never_truncated BEFORE TRUNCATE ON seals "
    "FOR EACH STATEMENT EXECUTE FUNCTION se_flow_seals_append_only()",
    "ALTER TABLE events ADD COLUMN db_login TEXT",
    """CREATE FUNCTION se_flow_db_login() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.db_login := current_user; RETURN NEW; END $$""",
    "CREATE TRIGGER events_db_login BEFORE INSERT ON events "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_db_login()",
]

# The due list over a whole caseload (`_histories`): the records of the kinds the standards
# name and the events of the triggers they name, by an index on kind or trigger that covers
# what is read. Only events that fire a trigger are in the second.
_SCHEMA_V3 = [
    "CREATE INDEX records_kind ON records (kind, case_id, seq, effective_at, supersedes)",
    "CREATE INDEX events_trigger ON events (trigger, case_id, seq, kind, effective_at) "
    "WHERE trigger IS NOT NULL",
]

_SCHEMA_V4 = [
    # A first page of cases by status or stage, in number order, without sorting them all.
    "DROP INDEX cases_due",
    "DROP INDEX cases_state",
    "CREATE INDEX cases_status ON cases (status, num)",
    "CREATE INDEX cases_state ON cases (state, num)",
]

# Free texts apart from the hashed rows (`_texts`): written only with their event, never
# deleted, cleared (salt and text NULL) only by the erasure event naming them, the log's last.
_SCHEMA_V5 = [
    "ALTER TABLE events ADD COLUMN texts TEXT",
    """CREATE TABLE texts (
        seq BIGINT NOT NULL REFERENCES events(seq),
        slot TEXT COLLATE "C" NOT NULL,
        salt TEXT,
        text TEXT,
        PRIMARY KEY (seq, slot)
    )""",
    """CREATE FUNCTION se_flow_texts_with_their_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.seq IS DISTINCT FROM (SELECT MAX(seq) FROM events) THEN
            RAISE EXCEPTION 'a text is written only with its event';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION se_flow_texts_only_erased() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.seq IS DISTINCT FROM OLD.seq OR NEW.slot IS DISTINCT FROM OLD.slot
           OR NEW.salt IS NOT NULL OR NEW.text IS NOT NULL OR NOT EXISTS (
               SELECT 1 FROM events e, jsonb_array_elements(e.payload::jsonb -> 'texts') j
               WHERE e.seq = (SELECT MAX(seq) FROM events)
                 AND e.kind IN ('text_erasure', 'erasure')
                 AND (j ->> 0)::bigint = OLD.seq AND j ->> 1 = OLD.slot) THEN
            RAISE EXCEPTION 'a text is only ever erased, by an erasure event';
        END IF;
        RETURN NEW;
    END $$""",
    _RAISE.format(
        name="se_flow_texts_never_deleted",
        words="texts are never deleted: an admin erases them",
    ),
    "CREATE TRIGGER texts_with_their_event BEFORE INSERT ON texts "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_texts_with_their_event()",
    "CREATE TRIGGER texts_only_erased BEFORE UPDATE ON texts "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_texts_only_erased()",
    "CREATE TRIGGER texts_never_deleted BEFORE DELETE ON texts "
    "FOR EACH ROW EXECUTE FUNCTION se_flow_texts_never_deleted()",
    "CREATE TRIGGER texts_never_truncated BEFORE TRUNCATE ON texts "
    "FOR EACH STATEMENT EXECUTE FUNCTION se_flow_texts_never_deleted()",
]

# Command ids (a retry appends nothing twice): in the log, and unique there.
_SCHEMA_V6 = [
    *(
        f"ALTER TABLE events ADD COLUMN {_column_ddl(f)}"
        for f in EVENT_FIELDS
        if f.name in _COMMAND_FIELDS
    ),
    "CREATE UNIQUE INDEX events_command ON events (command_id) WHERE command_id IS NOT NULL",
]

# The due projection (`_standards.project`), as in the SQLite store (its 0011_due_index): built
# from the log when the migration runs (`PostgresStore._rebuild_due`); `verify` replays it.
_SCHEMA_V7 = [
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
        num BIGINT NOT NULL,
        PRIMARY KEY (case_id, n)
    )""",
    # A due list orders cases by number, as every list does: `num` is the case id's. Both
    # indexes cover what a page reads (`_histories.DUE_COLS`): a page is one index range.
    "CREATE INDEX due_index_due ON due_index (state, due_on, num, n, case_id, standard, "
    "anchor_on, occurrence, window_start, met_on, took, coach)",
    "CREATE INDEX due_index_coach ON due_index (coach, state, due_on, num, n, case_id, "
    "standard, anchor_on, occurrence, window_start, met_on, took)",
]
_DUE_MIGRATION = "0007_due_index"
# What a command's guards read of a long case (`Needs.latest`, `since_contact`): the latest
# record of a kind by effective date (a backdated record may be the latest), or those after
# the last contact, a seek each; and whether a record is corrected, a seek on the few that
# correct (the rest are not in it, so a record's write pays nothing for it).
_SCHEMA_V8 = [
    "CREATE INDEX records_case_kind_at ON records (case_id, kind, effective_at, seq)",
    "CREATE INDEX records_superseded ON records (supersedes) WHERE supersedes IS NOT NULL",
    # Whether an auditor was granted the texts (every export asks): the grants alone, newest
    # first, not a walk back through the whole log when there are none.
    "CREATE INDEX events_text_grants ON events (seq) WHERE kind = 'text_grant'",
]

# `cases(sort=...)` and `stuck_days` on the open caseload: each run of a sort's order
# (`_rows.case_runs`) is a range of one of these (the review-date order is cases_open_due's),
# so a sorted first page, or any page after it, reads its own rows at any size.
_SCHEMA_V9 = [
    "CREATE INDEX cases_open_entered ON cases (stage_entered_at, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_seen ON cases (last_contact_at, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_coach ON cases (coach, num) WHERE status <> 'closed'",
    "CREATE INDEX cases_open_stage ON cases (state, phase, num) WHERE status <> 'closed'",
]

# Sorted lists of any status (`_rows.case_queries` reads a status at a time and merges them):
# each run of a sort's order is a range of one of these, the status first, so a page of
# closed or paused cases, or of all cases, reads its own rows as the open caseload's does.
# They replace the open cases' partial indexes of 0009_case_sorts, plus one for the review-date
# order (`cases_open_due` still serves what is due): one more index for a write to update.
_SCHEMA_V10 = [
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
_SCHEMA_V11 = ["DROP INDEX cases_open_due"]

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("0001_initial", _SCHEMA_V1),
    ("0002_insiders", _SCHEMA_V2),
    ("0003_due_reads", _SCHEMA_V3),
    ("0004_cases_by_number", _SCHEMA_V4),
    ("0005_texts", _SCHEMA_V5),
    ("0006_command_ids", _SCHEMA_V6),
    (_DUE_MIGRATION, _SCHEMA_V7),
    ("0008_case_reads", _SCHEMA_V8),
    ("0009_case_sorts", _SCHEMA_V9),
    ("0010_status_sorts", _SCHEMA_V10),
    ("0011_due_by_status", _SCHEMA_V11),
]
"""Plain SQL, applied in order; version N is `MIGRATIONS[N-1]`, recorded in `se_flow_schema`."""

_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS se_flow_schema (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

# Advisory lock keys (two int4): one for migrations, one for handing out case numbers.
_MIGRATION_LOCK = (0x5EF10, 1)
_CASE_NUM_LOCK = (0x5EF10, 2)

_PAGE = 2000
"""Rows per keyset page when streaming the log: seq is gapless and committed in order."""


def _new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def cut_canonical(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The canonical JSON text `row_hash` hashes, cut around the values of `prev_hash` and
    `seq`: `a + json(prev_hash) + b + str(seq) + c` is that text, for any seq and prev_hash."""
    keys = hashed_fields(row)
    parts: list[list[str]] = [[], [], []]
    at = 0
    for k in keys:
        if k == "prev_hash":
            parts[at].append(canonical(k) + ":")
            at = 1
        elif k == "seq":
            parts[at].append(canonical(k) + ":")
            at = 2
        else:
            parts[at].append(canonical(k) + ":" + canonical(row[k]))
    # Items are joined by ","; a cut falls after a "key:" and before the next ",".
    a = "{" + ",".join(parts[0])
    b = "," + ",".join(parts[1])
    c = ("," + ",".join(parts[2]) if parts[2] else "") + "}"
    return a, b, c


def _diag(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary if exc.diag is not None else None
    if primary:
        return primary
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _translate(name: str, exc: BaseException, url: str) -> SEFlowError:
    """`exc` in the store's words, naming the database as `name`; nothing of the driver's
    text may show the password of `url` (libpq quotes a URL it cannot parse)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreBusy(f"database {name} is busy: no connection came free in time; try again")
    if isinstance(exc, psycopg.DataError) and "NUL" in str(exc):
        return InvalidInput("a value given holds a NUL character, which cannot be stored")
    if not isinstance(exc, psycopg.Error):
        return StoreError(f"database {name}: {without_password(str(exc), url)}")
    text = without_password(_diag(exc), url)
    if isinstance(
        exc,
        psycopg.errors.LockNotAvailable
        | psycopg.errors.DeadlockDetected
        | psycopg.errors.SerializationFailure
        | psycopg.errors.QueryCanceled,
    ):
        return StoreBusy(
            f"database {name} is busy: another writer held it past the timeout ({text}); try again"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreError(f"database {name}: the database role may not do this ({text})")
    if isinstance(exc, psycopg.errors.DiskFull):
        return StoreError(
            f"cannot write database {name}: the disk is full ({text}); "
            "nothing of the refused change was written"
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"cannot use database {name}: {text}")
    return StoreError(f"database {name}: {text}")


_STAFF_SELECT = "SELECT id, name, role, active, login FROM staff"


def _staff_from_row(r: tuple[Any, ...]) -> Staff:
    return Staff(id=r[0], name=r[1], role=Role(r[2]), active=bool(r[3]), login=r[4])


class _Local(threading.local):
    """The connection a thread's write, batch or read snapshot holds."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self.depth = 0
        self.failed: str | None = None
        self.snapshot = False
        self.pipeline_failed = False
        """A pipeline of this connection was aborted: psycopg may then believe statements
        prepared that never were ("prepared statement ... does not exist" next time)."""
        self.close_after = False
        """A batch's pipeline was aborted: its connection is closed when the batch ends, for
        the pool to replace (DEALLOCATE ALL alone did not always leave psycopg in step)."""


class _PgTx(Tx):
    """Reads for a command. `locking` (inside a write) reads the case `FOR UPDATE`, the active
    admins `FOR UPDATE` and hands out case numbers under a lock, so concurrent writers decide
    on fresh state."""

    def __init__(self, store: PostgresStore, locking: bool) -> None:
        self._store = store
        self._locking = locking
        self.versions: dict[str, int] = {}
        """Versions of the cases this transaction holds locked, as read."""

    def _all(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return self._store._all(sql, params)

    def staff(self, staff_id: str) -> Staff:
        rows = self._all(f"{_STAFF_SELECT} WHERE id = %s", (staff_id,))
        if not rows:
            raise StaffNotFound(staff_id)
        return _staff_from_row(rows[0])

    def has_staff(self) -> bool:
        return bool(self._all("SELECT 1 FROM staff LIMIT 1"))

    def settings(self) -> DatabaseSettings:
        rows = self._all("SELECT value FROM settings")
        return DatabaseSettings.from_json(json.loads(rows[0][0])) if rows else DatabaseSettings()

    def count_active_admins(self) -> int:
        # Locked: of two concurrent demotions, the second waits and counts without the first's.
        lock = " FOR UPDATE" if self._locking else ""
        rows = self._all(
            f"SELECT id FROM staff WHERE role = %s AND active{lock}", (Role.ADMIN.value,)
        )
        return len(rows)

    def snapshot(
        self, case_id: str, needs: Needs | Callable[[Case], Needs] | None = None
    ) -> Snapshot:
        lock = " FOR UPDATE" if self._locking else ""
        store = self._store
        # Needs known before the case: its marks are read with it, in the same statement.
        early = sorted(needs.triggers) if isinstance(needs, Needs) and needs.triggers else []
        sql, params = case_query("%s", case_id, early)
        rows = self._all(sql + lock, params)
        if not rows:
            raise CaseNotFound(case_id)
        row = rows[0]
        case = _case_from_row(row)
        if self._locking:
            self.versions[case.id] = case.version
        need = needs_of(needs, case)
        kinds = need.kinds
        found = store._records(case_id, kinds) if kinds is None or kinds else []
        records = guard_records(
            need,
            tuple(found) if need.superseded else current(found),
            lambda kinds, seq: store._read_records(*picks_query("%s", case_id, kinds, seq)),
            lambda kinds, at: store._read_records(*since_query("%s", case_id, kinds, at)),
        )
        marks: dict[str, int] = {}
        if early:
            marks = marks_of(early, row[len(row) - len(early) :])
        elif need.triggers is None:
            marks = dict(
                self._all(
                    "SELECT trigger, MAX(seq) FROM events WHERE case_id = %s "
                    "AND trigger IS NOT NULL GROUP BY trigger",
                    (case_id,),
                )
            )
        elif need.triggers:
            marks = dict(
                self._all(
                    "SELECT trigger, MAX(seq) FROM events WHERE case_id = %s "
                    "AND trigger = ANY(%s) GROUP BY trigger",
                    (case_id, sorted(need.triggers)),
                )
            )
        history: tuple[Event, ...] = ()
        if need.history:
            history = tuple(
                event_from_row(dict(zip(EVENT_COLUMNS, row, strict=True)))
                for row in self._all(
                    f"SELECT {_EVENT_COLS} FROM events WHERE case_id = %s "
                    "AND trigger = ANY(%s) ORDER BY seq",
                    (case_id, sorted(need.history)),
                )
            )
        return Snapshot(case=case, records=tuple(records), marks=marks, history=history)

    def new_case_id(self) -> str:
        if self._locking:
            # Held to the commit: the next referral reads MAX after this one committed, so
            # numbers stay dense (a sequence would burn one on every rollback).
            self._all("SELECT pg_advisory_xact_lock(%s, %s)", _CASE_NUM_LOCK)
        ((num,),) = self._all("SELECT COALESCE(MAX(num), 0) + 1 FROM cases")
        return f"C-{num}"

    def participant(self, participant_id: str) -> Participant | None:
        rows = self._all("SELECT id, created_at FROM participants WHERE id = %s", (participant_id,))
        if not rows:
            return None
        return Participant(id=rows[0][0], created_at=dt.datetime.fromisoformat(rows[0][1]))

    def command(self, command_id: str) -> Event | None:
        rows = self._all(f"SELECT {_EVENT_COLS} FROM events WHERE command_id = %s", (command_id,))
        if not rows:
            return None
        event = event_from_row(dict(zip(EVENT_COLUMNS, rows[0], strict=True)))
        if event.texts:
            held = self._all("SELECT slot, text FROM texts WHERE seq = %s", (event.seq,))
            event = fill_event(event, dict(held))
        return event

    def logged(self, command_ids: Collection[str]) -> dict[str, int]:
        if not command_ids:
            return {}
        rows = self._all(
            "SELECT command_id, seq FROM events WHERE command_id = ANY(%s)", (list(command_ids),)
        )
        return {command_id: int(seq) for command_id, seq in rows}

    def text_slots(self, seq: int) -> Mapping[str, bool] | None:
        if not self._all("SELECT 1 FROM events WHERE seq = %s", (seq,)):
            return None
        rows = self._all("SELECT slot, text FROM texts WHERE seq = %s", (seq,))
        return {slot: text is not None for slot, text in rows}

    def participant_texts(self, participant_id: str) -> list[tuple[int, str]]:
        rows = self._all(
            "SELECT t.seq, t.slot FROM cases c JOIN events e ON e.case_id = c.id "
            "JOIN texts t ON t.seq = e.seq WHERE c.participant_id = %s AND t.text IS NOT NULL "
            "ORDER BY t.seq, t.slot",
            (participant_id,),
        )
        return [(int(seq), str(slot)) for seq, slot in rows]

    def text_granted(self, staff_id: str) -> bool:
        rows = self._all(
            "SELECT payload::jsonb ->> 'granted' FROM events WHERE kind = 'text_grant' "
            "AND payload::jsonb ->> 'staff_id' = %s ORDER BY seq DESC LIMIT 1",
            (staff_id,),
        )
        return bool(rows) and rows[0][0] == "true"


class PostgresStore(Store):
    """A store in a PostgreSQL database named by `url` (`postgresql://user@host/db`).

    `create` lets a database without tables become an se-flow database (migrating it under an
    advisory lock); a database holding other tables is never adopted. `read_only` changes
    nothing (no migration) and refuses writes. `busy_timeout` bounds waiting for a lock or a
    pooled connection; `pool_size` is the most connections this process opens."""

    def __init__(
        self,
        url: str,
        workflow: Workflow,
        *,
        busy_timeout: float = 10.0,
        create: bool = True,
        read_only: bool = False,
        pool_size: int = 4,
        seal_keys: SealKeys | None = None,
    ) -> None:
        self.url = url
        self.seal_keys = seal_keys
        self._sealing: Sealing | None = None
        self.name = shown_database(url)
        self.workflow = workflow
        self._due_touch = DueTouch.of(workflow)
        self.read_only = read_only
        self._local = _Local()
        self._lock_ms = max(1, int(busy_timeout * 1000))
        self._begin = (
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on; "
            f"SET LOCAL lock_timeout = {self._lock_ms}"
        )
        try:
            port = str(conninfo.conninfo_to_dict(url).get("port") or "0")
        except psycopg.ProgrammingError as exc:
            raise InvalidInput(
                f"not a usable PostgreSQL URL: {without_password(_diag(exc), url)}"
            ) from None
        if not all(p.isdigit() for p in port.split(",")):
            raise InvalidInput(f"not a usable PostgreSQL URL: the port {port!r} is not a number")
        with self._translated():
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                self._set_up(conn, create)
            self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
                psycopg_pool.ConnectionPool(
                    url,
                    min_size=1,
                    max_size=max(1, pool_size),
                    kwargs={"autocommit": True},
                    timeout=busy_timeout,
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=True,
                )
            )

    # --- set-up ----------------------------------------------------------------------------

    def _set_up(self, conn: psycopg.Connection[Any], create: bool) -> None:
        encoding = conn.execute("SHOW server_encoding").fetchone()
        if encoding is None or encoding[0] != "UTF8":
            raise StoreUnavailable(
                f"{self.name} is not a UTF8 database ({encoding[0] if encoding else '?'}): the "
                "audit hash covers UTF-8 bytes; create it with ENCODING 'UTF8'"
            )
        version = self._version(conn)
        latest = len(MIGRATIONS)
        if version > latest:
            raise StoreUnavailable(
                f"{self.name} has schema version {version}, newer than this se-flow knows "
                f"({latest}); upgrade se-flow"
            )
        if version == latest:
            return
        if version == 0:
            tables = self._tables(conn)
            if tables:
                shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
                raise StoreUnavailable(
                    f"{self.name} is not an se-flow database: it holds tables of another "
                    f"application ({shown}); nothing was changed"
                )
            if not create or self.read_only:
                raise StoreUnavailable(f"no se-flow database at {self.name}; run `se-flow init`")
        elif self.read_only:
            raise StoreUnavailable(
                f"{self.name} is from an older se-flow and must be upgraded before it can be "
                "read; open it once for writing (any write command upgrades it)"
            )
        self._migrate(conn)

    def _version(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('se_flow_schema') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM se_flow_schema").fetchone()
        return int(found[0]) if found else 0

    def _tables(self, conn: psycopg.Connection[Any]) -> list[str]:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name <> 'se_flow_schema' "
            "ORDER BY table_name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        # Session lock: a second process starting now waits here, then finds nothing to do.
        conn.execute("SELECT pg_advisory_lock(%s, %s)", _MIGRATION_LOCK)
        try:
            with conn.transaction():
                conn.execute(_SCHEMA_TABLE)
                version = self._version(conn)
                if version == 0 and self._tables(conn):
                    raise StoreUnavailable(f"{self.name}: tables appeared while migrating")
                for number, (name, statements) in enumerate(MIGRATIONS, start=1):
                    if number <= version:
                        continue
                    for sql in statements:
                        conn.execute(sql.encode())
                    if name == _DUE_MIGRATION:
                        self._rebuild_due(conn)  # an existing database's log, projected
                    conn.execute(
                        "INSERT INTO se_flow_schema (version, name) VALUES (%s, %s)",
                        (number, name),
                    )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", _MIGRATION_LOCK)

    # --- connections -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SEFlowError:
            raise
        except UnicodeEncodeError as exc:
            raise unstorable(exc) from exc
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise _translate(self.name, exc, self.url) from exc

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        held = self._local.conn
        if held is not None:
            yield held
            return
        with self._pool.connection() as conn:
            yield conn

    def _all(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._translated(), self._conn() as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise StoreUnavailable(
                f"the database {self.name} was opened for reading only; nothing was written"
            )

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        # A failing ROLLBACK (a lost connection) must not hide the error that caused it.
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        self._forget_prepared(conn)

    def _forget_prepared(self, conn: psycopg.Connection[Any]) -> None:
        """After an aborted pipeline psycopg may believe statements prepared that the server
        skipped ("prepared statement ... does not exist" on a later command): a connection
        of its own is closed, for the pool to replace; a batch's drops every prepared
        statement (psycopg forgets its own record of them when it sees DEALLOCATE ALL)."""
        if not self._local.pipeline_failed:
            return
        self._local.pipeline_failed = False
        if self._local.depth:
            self._local.close_after = True
            with contextlib.suppress(psycopg.Error):
                conn.execute("DEALLOCATE ALL")
        else:
            conn.close()

    # --- writes ------------------------------------------------------------------------------

    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        self._refuse_if_read_only()
        loc = self._local
        with self._translated():
            if loc.depth:
                return self._batch_write(decide)
            with self._pool.connection() as conn:
                loc.conn = conn
                try:
                    conn.execute(self._begin)
                    tx = _PgTx(self, locking=True)
                    change = decide(tx)
                    event = self._apply(conn, tx, change, "COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
                finally:
                    loc.conn = None
        return change.case, event

    def _batch_write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        conn = self._local.conn
        assert conn is not None
        self._check_batch(conn)
        # Each command its own savepoint: a refused one undoes only itself.
        conn.execute("SAVEPOINT se_flow_command")
        try:
            tx = _PgTx(self, locking=True)
            change = decide(tx)
            event = self._apply(conn, tx, change, "RELEASE SAVEPOINT se_flow_command")
        except BaseException as exc:
            if conn.closed or conn.info.transaction_status not in (
                pq.TransactionStatus.INTRANS,
                pq.TransactionStatus.INERROR,
            ):
                self._abandon(conn, exc)
                raise
            try:
                conn.execute("ROLLBACK TO SAVEPOINT se_flow_command")
                conn.execute("RELEASE SAVEPOINT se_flow_command")
                self._forget_prepared(conn)
            except psycopg.Error as undo:
                self._abandon(conn, undo)
                raise exc from None
            raise
        return change.case, event

    def _abandon(self, conn: psycopg.Connection[Any], cause: BaseException) -> None:
        self._local.failed = (
            _translate(self.name, cause, self.url).message
            if isinstance(cause, psycopg.Error)
            else str(cause)
        )
        self._rollback(conn)

    def _check_batch(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse every command of a batch whose transaction was lost, naming why."""
        loc = self._local
        if loc.failed is None and (
            conn.closed or conn.info.transaction_status != pq.TransactionStatus.INTRANS
        ):
            loc.failed = "its transaction ended unexpectedly"
        if loc.failed is not None:
            raise StoreError(
                f"database {self.name}: the batch was abandoned after an earlier command "
                f"failed ({loc.failed}); nothing of the batch was written"
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        loc = self._local
        if loc.depth:
            loc.depth += 1
            try:
                yield
            finally:
                loc.depth -= 1
            return
        self._refuse_if_read_only()
        with self._translated():
            conn = self._pool.getconn()
            try:
                conn.execute(self._begin)
            except BaseException:
                self._pool.putconn(conn)
                raise
        loc.conn, loc.depth, loc.failed = conn, 1, None
        try:
            yield
            with self._translated():
                self._check_batch(conn)
                conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            loc.conn, loc.depth, loc.failed = None, 0, None
            if loc.close_after:
                loc.close_after = False
                conn.close()
            self._pool.putconn(conn)

    def _apply(
        self, conn: psycopg.Connection[Any], tx: _PgTx, change: Change, finish: str
    ) -> Event:
        """Append `change`: the checks that need a lock first, then one pipeline (the append,
        the tables, `finish`) in one round trip."""
        draft, record = change.event, change.record
        kept = split(draft, record.fields if record is not None else None, self.workflow, _new_salt)
        texts = kept.texts
        case = change.case
        if case is not None and change.expected_version is not None:
            actual = tx.versions.get(case.id)
            if actual is None:
                rows = conn.execute(
                    "SELECT version FROM cases WHERE id = %s FOR UPDATE", (case.id,)
                ).fetchall()
                actual = int(rows[0][0]) if rows else -1
            if actual != change.expected_version:
                raise CaseConflict(case.id, change.expected_version, actual)
        sealing = self._sealing_now()
        # A write that can change the due projection reads the case's history after the
        # pipeline, so its transaction ends after that (as a sealed one's does).
        rebuild = draft.kind == EventKind.WORKFLOW
        effect = rebuild or due_touched(self._due_touch, draft.kind, draft.trigger, record, case)
        if isinstance(effect, Anchored):
            # The write adds no anchor (`DueTouch`): the case holds one after it exactly when
            # it held one before, so asked here, and a write it cannot touch stays one round
            # trip.
            assert case is not None
            ((effect,),) = self._runner(conn)(anchored_query(case.id, effect, "%s"))
        due = bool(effect)
        row = event_to_row(draft, 0, GENESIS, kept.stored)
        cut_a, cut_b, cut_c = cut_canonical(row)
        params = {**row, "cut_a": cut_a, "cut_b": cut_b, "cut_c": cut_c}
        try:
            with conn.pipeline():
                head = conn.execute(_APPEND.encode(), params)
                for t in texts:
                    conn.execute(
                        b"INSERT INTO texts (seq, slot, salt, text) "
                        b"SELECT seq, %s, %s, %s FROM chain_head",
                        (t.slot, t.salt.hex(), t.text),
                    )
                for seq_slot in change.erase_texts:
                    conn.execute(
                        b"UPDATE texts SET salt = NULL, text = NULL WHERE seq = %s AND slot = %s",
                        seq_slot,
                    )
                self._write_tables(conn, change)
                moved = None
                if case is not None and change.expected_version is not None:
                    moved = conn.execute(
                        b"UPDATE cases SET state = %s, phase = %s, status = %s, version = %s, "
                        b"opened_at = %s, stage_entered_at = %s, coach = %s, episode = %s, "
                        b"previous_case_id = %s, last_contact_at = %s, review_due = %s, "
                        b"outcome = %s, closed_at = %s WHERE id = %s AND version = %s",
                        (*_case_params(case), case.id, change.expected_version),
                    )
                if record is not None and case is not None:
                    spec = self.workflow.records[record.kind]
                    # The record's fields as kept: without its texts.
                    assert kept.fields is not None
                    conn.execute(
                        b"INSERT INTO records (seq, case_id, kind, fields, effective_at, "
                        b"recorded_at, actor, supersedes) "
                        b"SELECT seq, %s, %s, %s, %s, %s, %s, %s FROM chain_head",
                        (
                            case.id,
                            record.kind,
                            json.dumps(spec.to_json(kept.fields), sort_keys=True),
                            row["effective_at"],
                            row["recorded_at"],
                            row["actor"],
                            record.supersedes,
                        ),
                    )
                if sealing is None and not due:
                    conn.execute(finish.encode())
        except psycopg.Error as exc:
            self._local.pipeline_failed = True
            if exc.sqlstate == "SF001":
                check_workflow(exc.diag.message_detail, draft)
            if (
                isinstance(exc, psycopg.errors.UniqueViolation)
                and exc.diag.constraint_name == "events_command"
                and draft.command_id is not None
            ):
                # A retry raced its first attempt, which committed first: the index waited
                # for it, then refused this one.
                raise CommandRepeated(draft.command_id) from None
            raise
        appended = head.fetchone()
        assert appended is not None
        seq, prev, server_hash = appended
        if moved is not None and moved.rowcount != 1:
            # Cannot happen: the case row is locked and its version was checked above.
            raise StoreError(f"database {self.name}: case {case and case.id} moved while locked")
        event, _ = seal(draft, seq, prev, kept.stored, row)
        if event.hash != server_hash:
            raise StoreError(
                f"database {self.name}: event {seq} was hashed by the server as "
                f"{server_hash[:12]}, not {event.hash[:12]} as se-flow seals it; the audit chain "
                "will not verify: stop writing and report this"
            )
        if rebuild:
            self._rebuild_due(conn)
        elif due:
            assert case is not None
            self._project_due(conn, case)
        if due and sealing is None:
            conn.execute(finish.encode())
        if sealing is not None:
            # A second round trip, for sealed databases only: the seal needs the hash, which
            # needs the seq the server handed out; the key never leaves this process.
            keys, own = self._keys(), self.store_id()
            found = seal_event(
                sealing,
                lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                seq,
                event.hash,
                event.recorded_at,
            )
            with conn.pipeline():
                conn.execute(
                    b"INSERT INTO seals (seq, epoch, mac) VALUES (%s, %s, %s)",
                    (found.seq, found.epoch, found.mac),
                )
                conn.execute(finish.encode())
        return event

    # --- the due projection ---------------------------------------------------------------

    @staticmethod
    def _runner(
        conn: psycopg.Connection[Any],
    ) -> Callable[[tuple[str, list[Any]]], list[tuple[Any, ...]]]:
        return lambda q: conn.execute(q[0].encode(), q[1]).fetchall()

    def _project_due(self, conn: psycopg.Connection[Any], case: Case) -> None:
        """The case's due rows worked out again from its history, written where they moved."""
        (history,) = due_histories(self.workflow, self._runner(conn), "%s", case=case)
        new = project(history, self.workflow.standards, self.workflow.calendar)
        old = [
            due_row(r)
            for r in conn.execute(
                f"SELECT {DUE_COLS} FROM due_index WHERE case_id = %s ORDER BY n".encode(),
                (case.id,),
            ).fetchall()
        ]
        if len(old) > len(new):
            conn.execute(
                b"DELETE FROM due_index WHERE case_id = %s AND n >= %s", (case.id, len(new))
            )
        changed = due_changes(old, new)
        if changed:
            with conn.cursor() as cur:
                cur.executemany(due_upsert("%s").encode(), changed)

    def _rebuild_due(self, conn: psycopg.Connection[Any]) -> None:
        """The whole due projection from the log, a slice of cases at a time (memory flat)."""
        conn.execute(b"DELETE FROM due_index")
        if not self.workflow.standards:
            return
        ((top,),) = conn.execute(b"SELECT COALESCE(MAX(num), 0) FROM cases").fetchall()
        step = 5000
        for lo in range(1, int(top) + 1, step):
            found = due_histories(self.workflow, self._runner(conn), "%s", span=(lo, lo + step))
            rows = [
                due_row_params(r)
                for h in found
                for r in project(h, self.workflow.standards, self.workflow.calendar)
            ]
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(due_upsert("%s").encode(), rows)

    def due_rows(self, case_id: str) -> list[DueRow]:
        return [
            due_row(r)
            for r in self._all(
                f"SELECT {DUE_COLS} FROM due_index WHERE case_id = %s ORDER BY n", (case_id,)
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
        with self.read_snapshot():
            return due_page(lambda q: self._all(*q), coach, today, last_day, "%s", limit, after)

    def count_due_rows(self) -> int:
        ((n,),) = self._all("SELECT COUNT(*) FROM due_index")
        return int(n)

    def _write_tables(self, conn: psycopg.Connection[Any], change: Change) -> None:
        """The projections a change writes besides the event (after it: see the triggers)."""
        if change.staff is not None:
            s = change.staff
            conn.execute(
                b"INSERT INTO staff (id, name, role, active, login) VALUES (%s, %s, %s, %s, %s) "
                b"ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, "
                b"active = EXCLUDED.active, login = EXCLUDED.login",
                (s.id, s.name, s.role.value, s.active, s.login),
            )
        if change.settings is not None:
            conn.execute(
                b"INSERT INTO settings (one, value) VALUES (true, %s) "
                b"ON CONFLICT (one) DO UPDATE SET value = EXCLUDED.value",
                (json.dumps(change.settings.to_json()),),
            )
        if change.participant is not None:
            p = change.participant
            conn.execute(
                b"INSERT INTO participants (id, created_at) VALUES (%s, %s)",
                (p.id, _ts(p.created_at)),
            )
            if p.details is not None:
                d = p.details
                conn.execute(
                    b"INSERT INTO personal_data (participant_id, name, contact, date_of_birth, "
                    b"health_notes) VALUES (%s, %s, %s, %s, %s)",
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
                b"DELETE FROM personal_data WHERE participant_id = %s",
                (change.erase_personal_data_of,),
            )
        case = change.case
        if case is not None and change.expected_version is None:
            conn.execute(
                f"INSERT INTO cases ({_CASE_COLS}, num) VALUES ({', '.join(['%s'] * 16)})".encode(),
                (case.id, case.participant_id, *_case_params(case), int(case.id.split("-", 1)[1])),
            )

    # --- rows appended in bulk (an import) ---------------------------------------------------

    def append(self, build: Callable[[Tx, LogHead], Appended]) -> Appended:
        self._refuse_if_read_only()
        loc = self._local
        with self._translated():
            if loc.depth:
                conn = loc.conn
                assert conn is not None
                self._check_batch(conn)
                # Inside a batch, its own savepoint: a refused append undoes only itself.
                conn.execute("SAVEPOINT se_flow_append")
                try:
                    rows = self._append_rows(conn, build)
                except BaseException as exc:
                    if conn.closed or conn.info.transaction_status not in (
                        pq.TransactionStatus.INTRANS,
                        pq.TransactionStatus.INERROR,
                    ):
                        self._abandon(conn, exc)
                        raise
                    try:
                        conn.execute("ROLLBACK TO SAVEPOINT se_flow_append")
                        conn.execute("RELEASE SAVEPOINT se_flow_append")
                        self._forget_prepared(conn)
                    except psycopg.Error as undo:
                        self._abandon(conn, undo)
                        raise exc from None
                    raise
                conn.execute("RELEASE SAVEPOINT se_flow_append")
                return rows
            with self._pool.connection() as conn:
                loc.conn = conn
                try:
                    conn.execute(self._begin)
                    rows = self._append_rows(conn, build)
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
                finally:
                    loc.conn = None
        return rows

    def _append_rows(
        self, conn: psycopg.Connection[Any], build: Callable[[Tx, LogHead], Appended]
    ) -> Appended:
        # Under the head's lock and the case numbers' (as a referral takes it): nobody appends
        # or numbers a case meanwhile.
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _CASE_NUM_LOCK)
        found = conn.execute(
            "SELECT seq, hash, workflow_hash FROM chain_head FOR UPDATE"
        ).fetchone()
        assert found is not None
        ((num,),) = conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM cases").fetchall()
        head = LogHead(int(found[0]), found[1], found[2], int(num))
        rows = build(_PgTx(self, locking=True), head)
        if not rows.events:
            return rows
        check_appended(head, rows)
        commands = [r["command_id"] for r in rows.events if r.get("command_id")]
        if commands:
            logged = conn.execute(
                "SELECT command_id FROM events WHERE command_id = ANY(%s) LIMIT 1", (commands,)
            ).fetchone()
            if logged is not None:
                raise CommandRepeated(logged[0])
        seals: dict[int, SealRow] = {}
        sealing = self._sealing_now()
        if sealing is not None:
            keys, own = self._keys(), self.store_id()
            for r in rows.events:
                seals[r["seq"]] = seal_event(
                    sealing,
                    lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                    r["seq"],
                    r["hash"],
                    dt.datetime.fromisoformat(r["recorded_at"]),
                )
        texts: dict[int, list[TextRow]] = {}
        for t in rows.texts:
            texts.setdefault(t.seq, []).append(t)
        cases = {c.id: c for c in rows.cases}
        insert_event = f"INSERT INTO events ({_EVENT_COLS}) VALUES ({_EVENT_VALUES})".encode()
        try:
            with conn.pipeline() as pipeline, conn.cursor() as cur:
                cur.executemany(
                    b"INSERT INTO participants (id, created_at) VALUES (%s, %s)",
                    [(p.id, _ts(p.created_at)) for p in rows.participants],
                )
                cur.executemany(
                    b"INSERT INTO personal_data (participant_id, name, contact, date_of_birth, "
                    b"health_notes) VALUES (%s, %s, %s, %s, %s)",
                    [
                        (
                            p.id,
                            p.details.name,
                            p.details.contact,
                            p.details.date_of_birth.isoformat()
                            if p.details.date_of_birth
                            else None,
                            p.details.health_notes,
                        )
                        for p in rows.participants
                        if p.details is not None
                    ],
                )
                # Each text, seal and new case row right after its event, as the triggers
                # want them (the log's last event is theirs), all in one pipeline.
                for written, r in enumerate(rows.events, 1):
                    conn.execute(insert_event, {c: r.get(c) for c in EVENT_COLUMNS})
                    for t in texts.get(r["seq"], ()):
                        conn.execute(
                            b"INSERT INTO texts (seq, slot, salt, text) VALUES (%s, %s, %s, %s)",
                            (t.seq, t.slot, t.salt, t.text),
                        )
                    sealed = seals.get(r["seq"])
                    if sealed is not None:
                        conn.execute(
                            b"INSERT INTO seals (seq, epoch, mac) VALUES (%s, %s, %s)",
                            (sealed.seq, sealed.epoch, sealed.mac),
                        )
                    case = cases.pop(r["case_id"], None) if r["case_id"] is not None else None
                    if case is not None:
                        conn.execute(
                            f"INSERT INTO cases ({_CASE_COLS}, num) "
                            f"VALUES ({', '.join(['%s'] * 16)})".encode(),
                            (
                                case.id,
                                case.participant_id,
                                *_case_params(case),
                                int(case.id.split("-", 1)[1]),
                            ),
                        )
                    if written % _PAGE == 0:
                        pipeline.sync()
                if cases:
                    raise InvalidInput(
                        f"case {next(iter(cases))} has no event among the rows appended"
                    )
                cur.executemany(
                    b"INSERT INTO records (seq, case_id, kind, fields, effective_at, "
                    b"recorded_at, actor, supersedes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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
                last = rows.events[-1]
                conn.execute(
                    b"UPDATE chain_head SET seq = %s, prev_hash = %s, hash = %s, "
                    b"workflow_hash = %s",
                    (last["seq"], last["prev_hash"], last["hash"], last["workflow_hash"]),
                )
        except psycopg.Error as exc:
            self._local.pipeline_failed = True
            if (
                isinstance(exc, psycopg.errors.UniqueViolation)
                and exc.diag.constraint_name == "events_command"
            ):
                raise CommandRepeated(str(exc.diag.message_detail or "")) from None
            raise
        # The due table, as the commands one by one would have left it (`_apply`): the new
        # cases' rows, projected as their events were made.
        if rows.due:
            with conn.cursor() as cur:
                cur.executemany(due_upsert("%s").encode(), [due_row_params(r) for r in rows.due])
        return rows

    # --- a whole store copied in (`store copy`) ---------------------------------------------

    def restore(self, copy: StoreCopy) -> int:
        self._refuse_if_read_only()
        loc = self._local
        with self._translated():
            if loc.depth:
                assert loc.conn is not None
                return self._restore(loc.conn, copy)
            with self._pool.connection() as conn:
                loc.conn = conn
                try:
                    conn.execute(self._begin)
                    written = self._restore(conn, copy)
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
                finally:
                    loc.conn = None
        return written

    def _restore(self, conn: psycopg.Connection[Any], copy: StoreCopy) -> int:
        # Under the head's lock, as an append: nobody writes while the log is poured in.
        head = conn.execute("SELECT seq FROM chain_head FOR UPDATE").fetchone()
        has_staff = conn.execute("SELECT 1 FROM staff LIMIT 1").fetchone() is not None
        refuse_if_not_empty(self.name, int(head[0]) if head else 0, has_staff)
        conn.execute("UPDATE meta SET value = %s WHERE key = 'store_id'", (copy.store_id,))
        if copy.sealing is not None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('sealing', %s)",
                (json.dumps(copy.sealing.to_json()),),
            )
        if copy.settings is not None:
            conn.execute(
                "INSERT INTO settings (one, value) VALUES (true, %s)",
                (json.dumps(copy.settings.to_json()),),
            )
        written, last = 0, None
        insert_event = f"INSERT INTO events ({_EVENT_COLS}) VALUES ({_EVENT_VALUES})".encode()
        try:
            with conn.pipeline() as pipeline:
                for table, row in restore_order(copy):
                    if table == "event":
                        conn.execute(insert_event, {c: row.get(c) for c in EVENT_COLUMNS})
                        written, last = written + 1, row
                        if written % _PAGE == 0:
                            pipeline.sync()
                    elif table == "participant":
                        conn.execute(
                            b"INSERT INTO participants (id, created_at) VALUES (%s, %s)",
                            (row.id, _ts(row.created_at)),
                        )
                        if row.details is not None:
                            d = row.details
                            born = d.date_of_birth.isoformat() if d.date_of_birth else None
                            conn.execute(
                                b"INSERT INTO personal_data (participant_id, name, contact, "
                                b"date_of_birth, health_notes) VALUES (%s, %s, %s, %s, %s)",
                                (row.id, d.name, d.contact, born, d.health_notes),
                            )
                    elif table == "case":
                        conn.execute(
                            f"INSERT INTO cases ({_CASE_COLS}, num) "
                            f"VALUES ({', '.join(['%s'] * 16)})".encode(),
                            (
                                row.id,
                                row.participant_id,
                                *_case_params(row),
                                int(row.id.split("-", 1)[1]),
                            ),
                        )
                    elif table == "staff":
                        conn.execute(
                            b"INSERT INTO staff (id, name, role, active, login) "
                            b"VALUES (%s, %s, %s, %s, %s)",
                            (row.id, row.name, row.role.value, row.active, row.login),
                        )
                    elif table == "seal":
                        conn.execute(
                            b"INSERT INTO seals (seq, epoch, mac) VALUES (%s, %s, %s)",
                            (row.seq, row.epoch, row.mac),
                        )
                    elif table == "text":
                        conn.execute(
                            b"INSERT INTO texts (seq, slot, salt, text) VALUES (%s, %s, %s, %s)",
                            (row.seq, row.slot, row.salt, row.text),
                        )
                    elif table == "record":
                        conn.execute(
                            b"INSERT INTO records (seq, case_id, kind, fields, effective_at, "
                            b"recorded_at, actor, supersedes) "
                            b"VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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
                if last is not None:
                    conn.execute(
                        b"UPDATE chain_head SET seq = %s, prev_hash = %s, hash = %s, "
                        b"workflow_hash = %s",
                        (last["seq"], last["prev_hash"], last["hash"], last["workflow_hash"]),
                    )
        except psycopg.Error:
            self._local.pipeline_failed = True
            raise
        # The copy carries the log, not the due projection: worked out here from it.
        self._rebuild_due(conn)
        self._sealing = None
        return written

    # --- sealing (`_seal`, `_keyfile`) --------------------------------------------------------

    def _sealing_now(self) -> Sealing | None:
        """Once on, sealing stays on: read until found, then kept."""
        if self._sealing is None:
            self._sealing = self.sealing()
        return self._sealing

    def _keys(self) -> SealKeys:
        if self.seal_keys is None:
            raise SealKeyUnusable(
                "(none given)",
                "this database seals its events, but no key file was given (--seal-key FILE)",
            )
        return self.seal_keys

    def sealing(self) -> Sealing | None:
        rows = self._all("SELECT value FROM meta WHERE key = 'sealing'")
        return Sealing.from_json(json.loads(rows[0][0])) if rows else None

    def seal_rows(self) -> Iterator[SealRow]:
        last = 0
        while True:
            rows = self._all(
                "SELECT seq, epoch, mac FROM seals WHERE seq > %s ORDER BY seq LIMIT %s",
                (last, _PAGE),
            )
            for seq, epoch, mac in rows:
                yield SealRow(int(seq), int(epoch), str(mac))
            if len(rows) < _PAGE:
                return
            last = int(rows[-1][0])

    def seal_of(self, seq: int) -> SealRow | None:
        rows = self._all("SELECT seq, epoch, mac FROM seals WHERE seq = %s", (seq,))
        return SealRow(int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def db_logins(self, after_seq: int = 0) -> Iterator[tuple[int, str | None]]:
        """Each event's database login (`current_user` when it was inserted; None for events
        from before it was recorded), in seq order. Not hashed and not proved by `verify`."""
        for seq, login in self._all(
            "SELECT seq, db_login FROM events WHERE seq > %s ORDER BY seq", (after_seq,)
        ):
            yield int(seq), login

    def start_sealing(self, now: dt.datetime, epoch_seconds: int) -> VerificationKey:
        self._refuse_if_read_only()
        check_epoch_seconds(epoch_seconds)
        keys = self._keys()
        with self._translated(), self._pool.connection() as conn:
            try:
                conn.execute(self._begin)
                # The chain head locked: no event slips in between the head read and the start.
                ((head,),) = conn.execute("SELECT seq FROM chain_head FOR UPDATE").fetchall()
                if conn.execute("SELECT 1 FROM meta WHERE key = 'sealing'").fetchall():
                    raise InvalidInput(f"{self.name} already seals its events")
                store_id = self.store_id()
                key, state = begin_sealing(keys.new_seed(), int(head), now, epoch_seconds, store_id)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('sealing', %s)",
                    (json.dumps(state.to_json()),),
                )
                keys.create(store_id, key.seed, key.start_epoch, epoch_seconds)
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    keys.discard()
                    raise
            except BaseException:
                self._rollback(conn)
                raise
        self._sealing = state
        return key

    # --- reads -------------------------------------------------------------------------------

    def read(self) -> Tx:
        return _PgTx(self, locking=False)

    def case(self, case_id: str) -> Case:
        rows = self._all(f"SELECT {_CASE_COLS} FROM cases WHERE id = %s", (case_id,))
        if not rows:
            raise CaseNotFound(case_id)
        return _case_from_row(rows[0])

    def cases(self, where: CaseFilter) -> Iterator[Case]:
        after = None
        if where.after is not None:
            found = self._all(AFTER_ROW.format(mark="%s"), (where.after,))
            if not found:
                return
            after = dict(zip(SORT_COLS, found[0], strict=True))
        left = where.limit
        for query in case_queries(where, "%s", after, self.workflow.stage_groups):
            if left is not None and left <= 0:
                return
            sql, params = query(left)
            for row in self._all(sql, params):
                yield _case_from_row(row)
                if left is not None:
                    left -= 1

    def case_histories(
        self, workflow: Workflow, *, coach: str | None = None, case_id: str | None = None
    ) -> Iterator[CaseHistory]:
        q = history_queries(workflow, coach, "%s", case_id=case_id)
        with self.read_snapshot():
            found = histories(
                workflow,
                self._all(*q.cases),
                self._all(*q.records) if q.records else (),
                self._all(*q.events) if q.events else (),
            )
        return iter(found)

    def due_reviews(
        self,
        coach: str | None,
        last_day: dt.date,
        limit: int | None = None,
        after: tuple[dt.date, int] | None = None,
    ) -> Iterator[ReviewRow]:
        return review_rows(self._all(*review_query(coach, last_day, "%s", limit, after)))

    def _records(self, case_id: str, kinds: Collection[str] | None = None) -> list[Record]:
        sql = f"SELECT {RECORD_COLS} FROM records WHERE case_id = %s"
        params: list[Any] = [case_id]
        if kinds is not None:
            sql += " AND kind = ANY(%s)"
            params.append(sorted(kinds))
        return self._read_records(with_texts(sql) + " ORDER BY p.seq, t.slot", params)

    def _read_records(self, sql: str, params: list[Any]) -> list[Record]:
        """The records of a `_rows.with_texts` statement, their texts put back."""
        return filled_records(self._all(sql, params), self.workflow)

    def texts_of(self, seqs: Collection[int]) -> dict[int, dict[str, str | None]]:
        found: dict[int, dict[str, str | None]] = {}
        if not seqs:
            return found
        for seq, slot, text in self._all(
            "SELECT seq, slot, text FROM texts WHERE seq = ANY(%s)", (sorted(set(seqs)),)
        ):
            found.setdefault(int(seq), {})[slot] = text
        return found

    def text_rows(self) -> Iterator[TextRow]:
        sql = (
            "SELECT seq, slot, salt, text FROM texts WHERE (seq, slot) > (%s, %s) "
            f"ORDER BY seq, slot LIMIT {_PAGE}"
        )
        last: tuple[int, str] = (0, "")
        while True:
            rows = self._all(sql, last)
            for seq, slot, salt, text in rows:
                yield TextRow(int(seq), slot, salt, text)
            if len(rows) < _PAGE:
                return
            last = (int(rows[-1][0]), rows[-1][1])

    def records(self, case_id: str) -> list[Record]:
        self.case(case_id)
        return self._records(case_id)

    def latest_records(
        self, case_id: str, limit: int, *, include_superseded: bool = False
    ) -> list[Record]:
        def page(before: int | None, size: int) -> list[tuple[Any, ...]]:
            sql = f"SELECT {RECORD_COLS} FROM records WHERE case_id = %s"
            params: list[Any] = [case_id]
            if before is not None:
                sql += " AND seq < %s"
                params.append(before)
            return self._all(sql + " ORDER BY seq DESC LIMIT %s", [*params, size])

        with self.read_snapshot():
            self.case(case_id)
            found = latest_records(page, limit, include_superseded, self.workflow)
            texts = self.texts_of([r.seq for r in found]) if found else {}
        return [fill_record(r, texts[r.seq]) if r.seq in texts else r for r in found]

    def case_events(
        self, case_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[Event]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE case_id = %s"
        params: list[Any] = [case_id]
        if before_seq is not None:
            sql += " AND seq < %s"
            params.append(before_seq)
        rows = self._all(sql + " ORDER BY seq DESC LIMIT %s", [*params, limit])
        events = [event_from_row(dict(zip(EVENT_COLUMNS, r, strict=True))) for r in reversed(rows)]
        with_texts = [e.seq for e in events if e.texts]
        if not with_texts:
            return events
        texts = self.texts_of(with_texts)
        return [fill_event(e, texts.get(e.seq, {})) if e.texts else e for e in events]

    def count_case_events(self, case_id: str, before_seq: int) -> int:
        ((count,),) = self._all(
            "SELECT COUNT(*) FROM events WHERE case_id = %s AND seq < %s", [case_id, before_seq]
        )
        return int(count)

    def record_rows(self) -> Iterator[RecordRow]:
        sql = (
            "SELECT seq, case_id, kind, fields, effective_at, recorded_at, actor, supersedes "
            f"FROM records WHERE seq > %s ORDER BY seq LIMIT {_PAGE}"
        )
        last = 0
        while True:
            rows = self._all(sql, (last,))
            for seq, cid, kind, fields, eff, rec, actor, sup in rows:
                yield RecordRow(seq, cid, kind, json.loads(fields), eff, rec, actor, sup)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def _event_rows(
        self, clauses: list[str], params: list[Any], cols: str = _EVENT_COLS
    ) -> Iterator[tuple[Any, ...]]:
        """Event rows matching `clauses`, in seq order, a keyset page at a time."""
        where = " AND ".join(clauses) if clauses else "TRUE"
        sql = (
            f"SELECT seq, {cols} FROM events WHERE {where} AND seq > %s ORDER BY seq LIMIT {_PAGE}"
        )
        last = 0
        while True:
            rows = self._all(sql, [*params, last])
            for r in rows:
                yield r[1:]
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def _event_rows_by_case(
        self, clauses: list[str], params: list[Any], cols: str = _EVENT_COLS
    ) -> Iterator[tuple[Any, ...]]:
        """Event rows of cases matching `clauses`, by case number then seq (events of no case
        left out), a keyset page at a time."""
        where = " AND ".join(clauses) if clauses else "TRUE"
        sql = (
            f"SELECT c.num, events.seq, {cols} FROM events "
            f"JOIN cases c ON c.id = events.case_id WHERE {where} "
            f"AND (c.num, events.seq) > (%s, %s) ORDER BY c.num, events.seq LIMIT {_PAGE}"
        )
        last: tuple[int, int] = (0, 0)
        while True:
            rows = self._all(sql, [*params, *last])
            for r in rows:
                yield r[2:]
            if len(rows) < _PAGE:
                return
            last = (rows[-1][0], rows[-1][1])

    def events(self, case_id: str | None = None, after_seq: int = 0) -> Iterator[Event]:
        clauses: list[str] = ["seq > %s"]
        params: list[Any] = [after_seq]
        if case_id is not None:
            clauses.append("case_id = %s")
            params.append(case_id)
        for row in self._event_rows(clauses, params):
            event = event_from_row(dict(zip(EVENT_COLUMNS, row, strict=True)))
            if event.texts:
                event = fill_event(event, self.texts_of([event.seq]).get(event.seq, {}))
            yield event

    def events_by_case(self) -> Iterator[Event]:
        sql = (
            f"SELECT {_EVENT_COLS} FROM events WHERE case_id IS NOT NULL AND "
            f"(case_id, seq) > (%s, %s) ORDER BY case_id, seq LIMIT {_PAGE}"
        )
        last: tuple[str, int] = ("", 0)
        while True:
            rows = self._all(sql, list(last))
            for r in rows:
                yield event_from_row(dict(zip(EVENT_COLUMNS, r, strict=True)))
            if len(rows) < _PAGE:
                return
            last = (rows[-1][1], rows[-1][0])

    def count_cases(self) -> int:
        ((count,),) = self._all("SELECT COUNT(*) FROM cases")
        return int(count)

    def event_rows(self, after_seq: int = 0) -> Iterator[Mapping[str, Any]]:
        for row in self._event_rows(["seq > %s"], [after_seq]):
            yield dict(zip(EVENT_COLUMNS, row, strict=True))

    def head(self) -> tuple[int, str]:
        rows = self._all("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    def head_workflow_hash(self) -> str | None:
        rows = self._all("SELECT workflow_hash FROM events ORDER BY seq DESC LIMIT 1")
        return str(rows[0][0]) if rows else None

    def list_staff(self) -> list[Staff]:
        rows = self._all(f"{_STAFF_SELECT} ORDER BY id")
        return [_staff_from_row(r) for r in rows]

    def personal_details(self, participant_id: str) -> PersonalDetails | None:
        rows = self._all(
            "SELECT name, contact, date_of_birth, health_notes FROM personal_data "
            "WHERE participant_id = %s",
            (participant_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return PersonalDetails(
            name=r[0],
            contact=r[1],
            date_of_birth=dt.date.fromisoformat(r[2]) if r[2] else None,
            health_notes=r[3],
        )

    def names_of(self, participant_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(participant_ids))
        if not ids:
            return {}
        rows = self._all(
            "SELECT participant_id, name FROM personal_data WHERE participant_id = ANY(%s)",
            (ids,),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def people(self) -> Iterator[tuple[str, PersonalDetails]]:
        rows = self._all(
            "SELECT participant_id, name, contact, date_of_birth, health_notes "
            "FROM personal_data ORDER BY participant_id"
        )
        return iter(
            [
                (
                    str(r[0]),
                    PersonalDetails(
                        name=r[1],
                        contact=r[2],
                        date_of_birth=dt.date.fromisoformat(r[3]) if r[3] else None,
                        health_notes=r[4],
                    ),
                )
                for r in rows
            ]
        )

    def store_id(self) -> str:
        ((value,),) = self._all("SELECT value FROM meta WHERE key = 'store_id'")
        return str(value)

    def close(self) -> None:
        self._pool.close()

    # --- exports -----------------------------------------------------------------------------

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
        clauses, params = event_where(
            "%s", case_id=case_id, cases=cases, since=since, before=before, kinds=kinds
        )
        cols = ", ".join(f"events.{c}" for c in names)
        if case_columns:
            if as_json or not by_case:
                raise ValueError("case_columns come with by_case, not as_json")
            cols = ", ".join(f"c.{c}" for c in case_columns_checked(case_columns)) + ", " + cols
        rows = self._event_rows_by_case if by_case else self._event_rows
        for row in rows(clauses, params, cols):
            if as_json:
                ordered = dict(zip(names, row, strict=True))
                yield (json.dumps(ordered, ensure_ascii=False, separators=(",", ":")),)
            else:
                yield row

    # --- reports (issue 14): every case as the reports read it -------------------------------

    def case_readings(self, kinds: Collection[str] | None = None) -> Iterator[CaseReading]:
        from ._rows import case_readings, reading_queries

        cases, events, records, params, picked = reading_queries(
            "%s", "(e.payload::jsonb ->> '{key}')", kinds
        )
        with self._translated(), self.read_snapshot(), self._conn() as conn:
            # Server-side cursors in the snapshot's transaction: three ordered scans streamed
            # side by side, a few thousand rows fetched at a time.
            def scan(name: str, sql: str, args: list[Any]) -> Iterator[tuple[Any, ...]]:
                # Closed when read to the end, so a second reading in one snapshot can
                # declare the same names again.
                with conn.cursor(name=name) as cur:
                    cur.itersize = _PAGE
                    cur.execute(sql.encode(), args)
                    yield from cur

            yield from case_readings(
                self.workflow,
                (_case_from_row(row) for row in scan("reading_cases", cases, [])),
                scan("reading_events", events, params),
                scan("reading_records", records, picked),
            )

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        loc = self._local
        if loc.conn is not None:
            yield
            return
        with self._translated():
            conn = self._pool.getconn()
            try:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except BaseException:
                self._pool.putconn(conn)
                raise
        loc.conn = conn
        try:
            yield
        finally:
            loc.conn = None
            self._rollback(conn)
            self._pool.putconn(conn)
