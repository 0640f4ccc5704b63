"""Verifying the audit log: every tamper pattern is caught, and a checkpoint proves the log was
only appended to since (a truncated or consistently rewritten history included)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import START, Steps

import se_flow
from se_flow import Checkpoint, SEFlow
from se_flow._audit import FIELDS, event_to_row, row_hash, verify_chain
from se_flow._model import EventDraft


@pytest.fixture
def db(flow: SEFlow, steps: Steps, tmp_path: Path) -> Path:
    """The flow's database, holding a case walked into in-work support (~20 events)."""
    steps.to("in_work_support")
    assert flow.verify().ok
    return tmp_path / "t.db"


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection as a forger with file access has it: the append-only triggers dropped."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
        conn.execute("DROP TRIGGER IF EXISTS records_append_only_delete")
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")


def rows(path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")]


def set_row(conn: sqlite3.Connection, seq: int, row: dict[str, Any]) -> None:
    sets = ", ".join(f"{k} = :{k}" for k in FIELDS if k != "seq")
    conn.execute(f"UPDATE events SET {sets} WHERE seq = :seq", {**row, "seq": seq})


def failed(result: se_flow.Verification) -> str:
    assert not result.ok and not bool(result)
    assert result.problem
    return result.problem


# --- the checkpoint value ------------------------------------------------------------------


def test_a_checkpoint_is_the_chain_head_and_survives_json(flow: SEFlow, db: Path) -> None:
    cp = flow.checkpoint()
    assert (cp.store_id, cp.seq, cp.hash, cp.taken_at) == (
        flow.store.store_id(),
        *flow.store.head(),
        START,
    )
    text = json.dumps(cp.to_json())
    assert Checkpoint.from_json(text) == cp == Checkpoint.from_json(json.loads(text))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"store_id": ""}, "store_id"),
        ({"seq": -1}, "seq"),
        ({"seq": "7"}, "seq"),
        ({"seq": True}, "seq"),
        ({"hash": "abc"}, "hash"),
        ({"seq": 0}, "genesis"),
        ({"taken_at": "yesterday"}, "taken_at"),
        ({"taken_at": "2026-06-01T09:00:00"}, "taken_at"),
    ],
)
def test_a_bad_checkpoint_is_refused_naming_the_field(
    flow: SEFlow, db: Path, change: dict[str, Any], named: str
) -> None:
    data = {**flow.checkpoint().to_json(), **change}
    with pytest.raises(se_flow.InvalidInput, match=named) as refused:
        Checkpoint.from_json(data)
    assert refused.value.exit_code == 5


@pytest.mark.parametrize("text", ["not json", "[1, 2]", ""])
def test_checkpoint_text_that_is_not_a_json_object_is_refused(text: str) -> None:
    with pytest.raises(se_flow.InvalidInput, match="checkpoint"):
        Checkpoint.from_json(text)


# --- verifying with a checkpoint -----------------------------------------------------------


def test_a_log_only_appended_to_since_the_checkpoint_verifies(
    flow: SEFlow, steps: Steps, db: Path
) -> None:
    cp = flow.checkpoint()
    steps.to("employer_engagement")
    result = flow.verify(cp)
    assert result.ok and result.head_seq > cp.seq
    assert flow.verify(flow.checkpoint()).ok


def test_an_empty_log_checkpoints_and_verifies(tmp_path: Path) -> None:
    # Below the facade: with no staff yet, nobody may ask it for a checkpoint.
    from se_flow._audit import take_checkpoint, verify_log

    with se_flow.open(tmp_path / "empty.db", clock=lambda: START) as flow:
        cp = take_checkpoint(flow.store, START)
        assert (cp.seq, cp.hash) == (0, se_flow.GENESIS)
        assert Checkpoint.from_json(cp.to_json()) == cp
        assert verify_log(flow.store, flow.workflow, cp).ok
        with pytest.raises(se_flow.InvalidInput, match="no actor"):
            flow.checkpoint()
        with pytest.raises(se_flow.PermissionDenied, match="not on the staff list"):
            flow.checkpoint(actor="ada")


def test_a_checkpoint_from_another_database_fails_naming_both(flow: SEFlow, db: Path) -> None:
    with se_flow.open(db.parent / "other.db", clock=lambda: START, actor="x") as other:
        other.add_staff("x", "X", "admin")
        theirs = other.checkpoint()
    problem = failed(flow.verify(theirs))
    assert theirs.store_id in problem and flow.store.store_id() in problem


# --- tamper patterns -----------------------------------------------------------------------


def test_an_edited_field_is_caught(flow: SEFlow, db: Path) -> None:
    cp = flow.checkpoint()
    with raw(db) as conn:
        conn.execute("UPDATE events SET actor = 'lee' WHERE seq = 8")
    for result in (flow.verify(), flow.verify(cp)):
        assert "altered" in failed(result) and result.bad_seq == 8
        assert result.head_seq == 7 and result.events == 7


def test_a_deleted_event_is_caught(flow: SEFlow, db: Path) -> None:
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE seq = 9")
    result = flow.verify()
    assert "event 9 is missing" in failed(result) and result.bad_seq == 10


def test_an_inserted_forged_event_is_caught(flow: SEFlow, db: Path) -> None:
    before = rows(db)
    at = 9
    case_id = before[at - 1]["case_id"]
    forged = EventDraft(
        case_id=case_id,
        kind="record",
        actor="sam",
        role="coach",
        effective_at=START - dt.timedelta(days=30),
        recorded_at=START,
        workflow_hash=flow.workflow.hash,
        payload={"record": {"kind": "note", "fields": {"text": "met, all fine"}}},
    )
    # Its own hash is right and it links to the event before it; the rest is shifted on.
    row = event_to_row(forged, at, before[at - 2]["hash"])
    with raw(db) as conn:
        conn.execute("UPDATE events SET seq = -seq WHERE seq >= ?", (at,))
        conn.execute("UPDATE events SET seq = 1 - seq WHERE seq < 0")
        names = ", ".join(FIELDS)
        conn.execute(f"INSERT INTO events ({names}) VALUES (:{names.replace(', ', ', :')})", row)
    result = flow.verify()
    assert failed(result) and result.bad_seq == at + 1
    assert "prev_hash does not match" in (result.problem or "")


def test_two_swapped_events_are_caught(flow: SEFlow, db: Path) -> None:
    before = rows(db)
    with raw(db) as conn:
        set_row(conn, 10, before[10])
        set_row(conn, 11, before[9])
    result = flow.verify()
    assert failed(result) and result.bad_seq == 10


def test_a_truncated_tail_is_caught_only_with_a_checkpoint(flow: SEFlow, db: Path) -> None:
    cp = flow.checkpoint()
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (cp.seq - 3,))
    # What is left is a perfectly consistent chain (only the case table, replayed against the
    # log, still gives the game away)...
    assert verify_chain(flow.store.event_rows()).ok
    # ...but not the log the auditor saw.
    result = flow.verify(cp)
    problem = failed(result)
    assert "truncated" in problem and f"{cp.seq - 2} to {cp.seq}" in problem
    assert result.bad_seq == cp.seq - 2


def test_a_truncated_then_regrown_log_is_caught_with_a_checkpoint(
    flow: SEFlow, steps: Steps, db: Path
) -> None:
    cp = flow.checkpoint()
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (cp.seq - 3,))
        conn.execute("DELETE FROM records WHERE seq > ?", (cp.seq - 3,))
    steps.to("employer_engagement")  # new events take the removed numbers and more
    assert verify_chain(flow.store.event_rows()).ok and flow.store.head()[0] > cp.seq
    result = flow.verify(cp)
    assert "rewritten" in failed(result) and result.bad_seq == cp.seq


def test_a_history_rewritten_and_rechained_is_caught_only_with_a_checkpoint(
    flow: SEFlow, db: Path
) -> None:
    cp = flow.checkpoint()
    history = rows(db)
    history[4]["actor"] = "lee"  # an edit, then every later hash recomputed to match
    with raw(db) as conn:
        prev = history[3]["hash"]
        for row in history[4:]:
            row["prev_hash"] = prev
            row["hash"] = prev = row_hash(row)
            set_row(conn, row["seq"], row)
    assert flow.verify().ok
    result = flow.verify(cp)
    assert "rewritten" in failed(result) and result.bad_seq == cp.seq
