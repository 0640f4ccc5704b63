"""The SQLite store: the shared contract, plus what only SQLite can be asked."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from helpers import sqlite_conn

import se_flow
from se_flow._sqlite import SQLiteStore
from se_flow.contract import COACH, WORKFLOW, StoreContract, _add_staff, _engage, _refer
from se_flow.ports import CaseFilter, Store


class TestSQLiteFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "contract.db", WORKFLOW)
        yield s
        s.close()


class TestSQLiteMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = SQLiteStore(":memory:", WORKFLOW)
        yield s
        s.close()


def test_durability_settings(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d.db", WORKFLOW)
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    store.close()


def test_audit_log_and_records_are_append_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db", WORKFLOW)
    _add_staff(store, COACH)
    case = _refer(store)
    for sql in (
        "UPDATE events SET reason = 'x' WHERE seq = 1",
        "DELETE FROM events WHERE seq = 1",
        "UPDATE records SET kind = 'note'",
        "DELETE FROM records",
    ):
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|never"):
            store.conn.execute(sql)
    assert store.case(case.id) == case
    store.close()


def test_reopening_keeps_everything_and_skips_migrations(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path, WORKFLOW)
    _add_staff(store, COACH)
    case = _refer(store)
    store_id = store.store_id()
    store.close()
    again = SQLiteStore(path, WORKFLOW)
    assert again.case(case.id) == case
    assert again.store_id() == store_id
    again.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite, it is a shopping list" * 100)
    with pytest.raises(se_flow.StoreUnavailable, match="not a usable se-flow database"):
        se_flow.open(path)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(se_flow.StoreUnavailable, match="does not exist"):
        se_flow.open(tmp_path / "no" / "such" / "x.db")


def test_create_false_refuses_a_new_file(tmp_path: Path) -> None:
    with pytest.raises(se_flow.StoreUnavailable, match="init"):
        se_flow.open(tmp_path / "new.db", create=False)
    assert not (tmp_path / "new.db").exists()


def test_a_held_lock_becomes_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    flow = se_flow.open(path, actor="sam", busy_timeout=0.2)
    flow.add_staff("sam", "Sam", "coach")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(se_flow.StoreBusy, match="busy"):
            flow.refer("Alex", source="GP")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert flow.cases() == []
    flow.disconnect()


def test_personal_data_is_kept_apart_from_the_log(tmp_path: Path) -> None:
    flow = se_flow.open(tmp_path / "p.db", actor="sam")
    flow.add_staff("sam", "Sam", "coach")
    details = se_flow.PersonalDetails(
        name="Alexandra Unique-Name", contact="alex@example.org", health_notes="epilepsy"
    )
    case = flow.refer(details, source="GP").case
    log = "\n".join(str(row) for row in flow.store.event_rows())
    for secret in ("Alexandra", "alex@example.org", "epilepsy"):
        assert secret not in log
    assert case.participant_id in log
    assert flow.participant(case.participant_id).details == details
    flow.disconnect()


def test_an_older_database_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path, WORKFLOW)
    _add_staff(store, COACH)
    case = _refer(store)
    # Make it look like a database from before the read indexes.
    store.conn.execute("DROP INDEX events_case_trigger")
    store.conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0002_read_indexes'")
    store.close()
    again = SQLiteStore(path, WORKFLOW)
    indexes = {
        r[0] for r in again.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert "events_case_trigger" in indexes
    assert again.case(case.id) == case
    again.close()


def _handles_on(path: Path) -> list[str]:
    """What this process holds open on the database file or its WAL and shared-memory files,
    as the kernel sees it (Linux /proc), not as a Python object claims."""
    names = {os.path.realpath(f"{path}{end}") for end in ("", "-wal", "-shm", "-journal")}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd listdir itself used, closed since
            continue
        if target in names:
            found.append(target)
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="Linux /proc")


@needs_proc
def test_an_open_flow_holds_the_file_and_disconnect_lets_it_go(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    flow = se_flow.open(path, actor="sam")
    flow.add_staff("sam", "Sam", "coach", actor="setup")
    assert _handles_on(path)  # the observation sees a handle when there is one
    conn = sqlite_conn(flow)
    flow.disconnect()
    assert _handles_on(path) == []
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")


@needs_proc
def test_a_bad_durability_setting_is_refused_and_leaves_no_open_handle(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    # The raised error (kept by pytest.raises) holds the frames that made the connection: only
    # an explicit close, not garbage collection, can have let the file go.
    with pytest.raises(se_flow.InvalidInput, match="synchronous must be") as refused:
        se_flow.open(path, synchronous="SOMETIMES")
    assert _handles_on(path) == []
    assert refused.value is not None
    assert not path.exists()


@needs_proc
def test_a_database_refused_after_it_was_opened_leaves_no_open_handle(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE invoices (id INTEGER)")
    other.close()
    with pytest.raises(se_flow.StoreUnavailable, match="another application") as refused:
        se_flow.open(path)
    assert _handles_on(path) == []
    assert refused.value is not None


def _commits_during(store: SQLiteStore, work: Callable[[], object]) -> list[str]:
    """The transaction statements SQLite ran during `work`, as its trace callback saw them."""
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    try:
        work()
    finally:
        store.conn.set_trace_callback(None)
    # Savepoints (a command undoing only itself) are inside the transaction: not counted.
    said = [s.strip().upper() for s in seen]
    return [s for s in said if s.split()[0] in ("BEGIN", "COMMIT", "END") or s == "ROLLBACK"]


def test_a_batch_commits_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.db", WORKFLOW)
    _add_staff(store, COACH)

    def three_writes_and_a_refusal() -> None:
        with store.batch():
            first = _refer(store, "P-1")
            with pytest.raises(se_flow.TriggerNotAvailable):
                _engage(store, _engage(store, first.id).id)
            _refer(store, "P-2")

    statements = _commits_during(store, three_writes_and_a_refusal)
    assert statements == ["BEGIN IMMEDIATE", "COMMIT"]
    assert [c.participant_id for c in store.cases(CaseFilter())] == ["P-1", "P-2"]
    store.close()


def test_without_a_batch_each_write_commits_on_its_own(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db", WORKFLOW)
    _add_staff(store, COACH)
    statements = _commits_during(store, lambda: [_refer(store, "P-1"), _refer(store, "P-2")])
    assert statements == ["BEGIN IMMEDIATE", "COMMIT"] * 2
    store.close()


def test_a_clock_without_a_time_zone_is_refused(tmp_path: Path) -> None:
    import datetime as dt

    flow = se_flow.open(tmp_path / "c.db", actor="sam", clock=lambda: dt.datetime(2026, 1, 1))
    with pytest.raises(se_flow.InvalidInput, match="aware datetime"):
        flow.add_staff("sam", "Sam", "coach")
    assert flow.store.list_staff() == []
    flow.disconnect()


# --- one event schema -------------------------------------------------------------------------

# The events table as se-flow 0.1 created it (name, type, NOT NULL). Databases made then have
# exactly this table; a new field needs a migration that adds its column, and a change here.
EVENTS_TABLE_V1 = [
    ("seq", "INTEGER", 0),
    ("case_id", "TEXT", 0),
    ("kind", "TEXT", 1),
    ("trigger", "TEXT", 0),
    ("from_state", "TEXT", 0),
    ("to_state", "TEXT", 0),
    ("from_phase", "TEXT", 0),
    ("to_phase", "TEXT", 0),
    ("actor", "TEXT", 1),
    ("role", "TEXT", 1),
    ("effective_at", "TEXT", 1),
    ("recorded_at", "TEXT", 1),
    ("reason", "TEXT", 0),
    ("guards", "TEXT", 1),
    ("override", "TEXT", 1),
    ("workflow_hash", "TEXT", 1),
    ("payload", "TEXT", 1),
    ("prev_hash", "TEXT", 1),
    ("hash", "TEXT", 1),
]
# Added later, each by its migration (0009_texts, 0010_command_ids), after logs were written:
# nullable, at the end, optional (out of the hash when NULL, as in every older row).
EVENTS_TABLE = [
    *EVENTS_TABLE_V1,
    ("texts", "TEXT", 0),
    ("command_id", "TEXT", 0),
    ("command_hash", "TEXT", 0),
]


def test_the_events_table_is_made_from_the_one_field_list() -> None:
    from se_flow._model import EVENT_COLUMNS, Event

    store = SQLiteStore(":memory:", WORKFLOW)
    try:
        table = [
            (name, kind, notnull)
            for _, name, kind, notnull, _, _ in store.conn.execute("PRAGMA table_info(events)")
        ]
    finally:
        store.close()
    assert table == EVENTS_TABLE
    assert tuple(name for name, _, _ in table) == EVENT_COLUMNS
    assert {a.name for a in attrs.fields(Event)} == set(EVENT_COLUMNS)


def test_a_sealed_event_is_its_stored_row(tmp_path: Path) -> None:
    """What a write returns is exactly what reading the row back gives."""
    with se_flow.open(tmp_path / "s.db", actor="sam") as flow:
        flow.add_staff("sam", "Sam", "coach")
        case = flow.refer("Alex", source="GP").case
        flow.advance(case.id, "engage", reason="first contact")
        written = flow.store.write  # the next write's returned event, kept
        made: list[se_flow.Event] = []

        def keep(decide: Any) -> Any:
            result = written(decide)
            made.append(result[1])
            return result

        flow.store.write = keep  # type: ignore[method-assign]
        flow.record(case.id, "note", text="hello")
        (stored,) = [e for e in flow.history(case.id) if e.seq == made[0].seq]
        assert stored == made[0]


def test_a_write_updates_only_the_columns_it_changes(tmp_path: Path) -> None:
    """So SQLite touches only those columns' indexes (a review, none of the sorts' but the
    contact's); the row ends as a whole-row UPDATE would leave it (the golden bytes test)."""
    from test_query_plans import traced

    with se_flow.open(tmp_path / "t.db", actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        case = flow.refer("Alex", source="GP", coach="sam", actor="sam").case
        conn = sqlite_conn(flow)
        with traced(conn) as seen:
            flow.record(case.id, "review", summary="met", actor="sam")
        (review,) = {s for s in seen if s.startswith("UPDATE cases")}
        sets = review.split(" SET ")[1].split(" WHERE ")[0]
        assert "version" in sets and "last_contact_at" in sets
        assert not any(c in sets for c in ("state", "stage_entered_at", "coach", "opened_at"))
        with traced(conn) as seen:
            flow.advance(case.id, "engage", actor="sam")
        (moved,) = {s for s in seen if s.startswith("UPDATE cases")}
        assert "state = " in moved and "stage_entered_at" in moved and "coach" not in moved
        whole = flow.case(case.id)
        assert (whole.state, whole.version) == ("customer_engagement", 3)
        assert flow.verify().ok
