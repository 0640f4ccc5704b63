"""Command ids: a retry after an ambiguous commit appends nothing twice, at the terminal and in
the library; the id is in the log, so `verify` catches a log holding one command twice; and a
log written before command ids verifies byte for byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest
from helpers import drop_triggers, sqlite_conn, staffed_db
from typer.testing import CliRunner

import se_flow
from se_flow._audit import canonical_body, event_to_row, row_hash
from se_flow._model import EventDraft
from se_flow.cli import app

runner = CliRunner()


def _cli(db: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--db", str(db), "--as", "sam", *args])
    return result.exit_code, result.output


def test_the_same_command_id_at_the_terminal_writes_once(tmp_path: Path) -> None:
    db = staffed_db(tmp_path / "c.db")
    code, _ = _cli(db, "--command-id", "ref-1", "refer", "Alex Doe", "--source", "GP")
    assert code == 0
    again, out = _cli(db, "--command-id", "ref-1", "refer", "Alex Doe", "--source", "GP")
    assert again == 0, out
    assert "C-1" in out
    for _ in range(2):
        code, out = _cli(db, "--command-id", "n-1", "record", "C-1", "note", "text=called")
        assert code == 0, out
    with se_flow.open(db, actor="sam") as flow:
        assert [c.id for c in flow.cases()] == ["C-1"]
        assert [r.kind for r in flow.records("C-1")] == ["referral", "note"]
        seqs = {e.command_id: e.seq for e in flow.events() if e.command_id}
        assert set(seqs) == {"ref-1", "n-1"}
    # Another record (here: one correcting the note) under the same id is refused.
    code, out = _cli(
        db,
        "--command-id",
        "n-1",
        "record",
        "C-1",
        "note",
        "text=x",
        "--supersedes",
        str(seqs["n-1"]),
    )
    assert code == 5
    assert out.strip().count("\n") == 0
    assert "command id 'n-1' was already used for another command" in out
    code, out = _cli(db, "--command-id", "-x", "record", "C-1", "note", "text=other")
    assert code in (2, 5), out


def test_another_actor_under_the_same_id_is_another_command(tmp_path: Path) -> None:
    with se_flow.open(staffed_db(tmp_path / "c.db")) as flow:
        case = flow.refer("Alex", source="GP", actor="sam", command_id="r-1")
        with pytest.raises(se_flow.CommandIdReused):
            flow.refer("Alex", source="GP", actor="kim", command_id="r-1")
        assert flow.refer("Alex", source="GP", actor="sam", command_id="r-1") == case
        member = flow.add_staff("zoe", "Zoe", "coach", actor="ada", command_id="s-1")
        assert flow.add_staff("zoe", "Zoe", "coach", actor="ada", command_id="s-1") == member
        assert len([e for e in flow.events(actor="ada") if e.kind == "staff"]) == 6


def test_verify_names_a_command_appended_twice(tmp_path: Path) -> None:
    with se_flow.open(staffed_db(tmp_path / "c.db"), actor="sam") as flow:
        case = flow.refer("Alex", source="GP").case
        flow.record(case.id, "note", text="one", command_id="n-1")
        conn = sqlite_conn(flow)
        # A forger re-chaining the log, with the unique index dropped, appends it again.
        drop_triggers(conn)
        conn.execute("DROP INDEX events_command")
        (seq, prev) = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC").fetchone()
        event = flow.store.read().command("n-1")
        assert event is not None
        draft = EventDraft(
            **{
                k: getattr(event, k)
                for k in ("case_id", "kind", "actor", "role", "effective_at", "recorded_at")
            },
            workflow_hash=event.workflow_hash,
            payload=event.payload,
            command_id="n-1",
            command_hash=event.command_hash,
        )
        row = event_to_row(draft, seq + 1, prev)
        cols = ", ".join(row)
        conn.execute(
            f"INSERT INTO events ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
        conn.execute(
            "INSERT INTO records SELECT ?, case_id, kind, fields, effective_at, recorded_at, "
            "actor, supersedes FROM records WHERE seq = ?",
            (seq + 1, seq),
        )
        conn.commit()
        result = flow.verify()
        assert not result.ok
        assert result.bad_seq == seq + 1
        assert "repeats command id 'n-1'" in (result.problem or "")


def test_a_row_without_command_fields_hashes_as_before_them() -> None:
    """An event written before command ids existed has no such fields; one written now under
    no command id hashes the very same bytes."""
    import datetime as dt

    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    draft = EventDraft(
        case_id="C-1",
        kind="record",
        actor="sam",
        role="coach",
        effective_at=now,
        recorded_at=now,
        workflow_hash="w" * 64,
    )
    row = event_to_row(draft, 1, "0" * 64)
    old = {k: v for k, v in row.items() if k not in ("command_id", "command_hash")}
    assert row_hash(old) == row_hash(row) == row["hash"]
    assert "command" not in canonical_body(row)
    named = attrs.evolve(draft, command_id="x-1", command_hash="c" * 64)
    assert '"command_id":"x-1"' in canonical_body(event_to_row(named, 1, "0" * 64))


def test_an_old_database_gains_command_ids_and_still_verifies(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with se_flow.open(staffed_db(db), actor="sam") as flow:
        flow.refer("Alex", source="GP")
    # As a database from before migration 0010 holds it: no command columns.
    conn = sqlite3.connect(db)
    drop_triggers(conn)
    conn.execute("DROP INDEX events_command")
    conn.execute("ALTER TABLE events DROP COLUMN command_hash")
    conn.execute("ALTER TABLE events DROP COLUMN command_id")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0010_command_ids'")
    conn.commit()
    conn.close()
    with se_flow.open(db, actor="sam") as flow:
        assert flow.verify().ok
        flow.record("C-1", "note", text="after", command_id="n-1")
        flow.record("C-1", "note", text="after", command_id="n-1")
        assert flow.verify().ok
        assert len(flow.records("C-1")) == 2


def test_a_referral_that_enrols_is_retried_whole(flow: se_flow.SEFlow) -> None:
    first = flow.refer("Alex", source="GP", programme="mhep", command_id="r-9")
    head = flow.store.head()
    # The retry after an ambiguous commit: neither the referral nor its enrolment again.
    again = flow.refer("Alex", source="GP", programme="mhep", command_id="r-9")
    assert flow.store.head() == head
    assert again.event == first.event and again.case.id == first.case.id
    assert [e.kind for e in flow.history(first.case.id)].count("enrol") == 1
    assert flow.verify().ok


def test_free_text_is_never_fingerprinted_in_the_log(tmp_path: Path) -> None:
    # An admin may erase a text; an unsalted hash of it in `command_hash` would let anyone
    # confirm a guess. So words are left out: a retry differing only in them is the same
    # command, while any other argument still makes it another one.
    with se_flow.open(staffed_db(tmp_path / "c.db"), actor="sam") as flow:
        case = flow.refer("Alex", source="GP").case
        first = flow.record(case.id, "note", {"text": "lives with Jane"}, command_id="n-1")
        again = flow.record(case.id, "note", {"text": "something else"}, command_id="n-1")
        assert again == first
        logged = flow.store.read().command("n-1")
        assert logged is not None
        other = flow.record(case.id, "note", {"text": "a third"}, command_id="n-2")
        # The fingerprint holds no trace of the words: two notes' are the same.
        assert other.event.command_hash == logged.command_hash
        moved = flow.advance(case.id, "engage", reason="met Jane at the centre", command_id="a-1")
        assert flow.advance(case.id, "engage", reason="other words", command_id="a-1") == moved
        with pytest.raises(se_flow.CommandIdReused):
            flow.record(
                case.id, "note", {"text": "x"}, supersedes=first.record.seq, command_id="n-1"
            )
