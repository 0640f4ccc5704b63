"""The SQLite store keeps what every write asks (whether the database seals, its settings, the
log's head) between commands, and must never let that memory outlive a change: sealing
started, a setting changed or an event written through another connection, or behind
se-flow's back on its own, is honoured by the next command; a write undone is forgotten."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from helpers import Clock, Steps, drop_triggers, sqlite_conn

import se_flow
from se_flow.errors import CaseConflict

SUMMARY = "Called: interview on Tuesday"


def _db(flow: se_flow.SEFlow) -> Path:
    return Path(sqlite_conn(flow).execute("PRAGMA database_list").fetchone()[2])


def test_sealing_started_through_another_connection_seals_the_next_write(
    flow: se_flow.SEFlow, steps: Steps, clock: Clock
) -> None:
    case = steps.refer()
    flow.record(case.id, "note", text=SUMMARY)  # written unsealed: that is now remembered
    with se_flow.open(_db(flow), clock=clock, actor="ada") as other:
        key = other.start_sealing()
    event = flow.record(case.id, "note", text=SUMMARY).event
    assert flow.store.seal_of(event.seq) is not None
    checked = flow.verify(key=key, actor="ada")
    assert checked.ok, checked.problem
    assert checked.seals is not None and "verified" in checked.seals


def test_a_setting_changed_through_another_connection_is_read(
    flow: se_flow.SEFlow, clock: Clock
) -> None:
    assert not flow.settings().shared_terminal  # now remembered
    with se_flow.open(_db(flow), clock=clock, actor="ada") as other:
        other.change_settings(shared_terminal=True)
    assert flow.settings().shared_terminal
    # And a change on this connection is read back by the next command.
    flow.change_settings(shared_terminal=False, actor="ada")
    assert not flow.settings(actor="ada").shared_terminal


def test_a_setting_changed_behind_se_flows_back_on_its_own_connection_is_read(
    flow: se_flow.SEFlow,
) -> None:
    assert not flow.settings().shared_terminal
    wanted = attrs.evolve(flow.settings(), shared_terminal=True)
    sqlite_conn(flow).execute(
        "INSERT INTO meta (key, value) VALUES ('settings', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (json.dumps(wanted.to_json()),),
    )
    assert flow.settings().shared_terminal


def test_events_written_through_another_connection_are_chained_after(
    flow: se_flow.SEFlow, steps: Steps, clock: Clock
) -> None:
    case = steps.refer()
    flow.record(case.id, "note", text=SUMMARY)  # the head now remembered
    with se_flow.open(_db(flow), clock=clock, actor="sam") as other:
        written = other.record(case.id, "note", text=SUMMARY).event
    event = flow.record(case.id, "note", text=SUMMARY).event
    assert (event.seq, event.prev_hash) == (written.seq + 1, written.hash)
    checked = flow.verify(actor="ada")
    assert checked.ok, checked.problem


def test_an_event_removed_behind_se_flows_back_is_not_chained_onto(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    last = flow.record(case.id, "note", text=SUMMARY).event
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("DELETE FROM texts WHERE seq = ?", (last.seq,))
    conn.execute("DELETE FROM records WHERE seq = ?", (last.seq,))
    conn.execute("DELETE FROM events WHERE seq = ?", (last.seq,))
    event = flow.record(case.id, "note", text=SUMMARY).event
    assert (event.seq, event.prev_hash) == (last.seq, last.prev_hash)


def test_a_write_undone_in_a_batch_leaves_no_head_behind(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    with flow.batch():
        first = flow.record(case.id, "note", text=SUMMARY).event
        # Refused after its event was written (the case moved): only it is undone.
        with pytest.raises(CaseConflict):
            flow.record(case.id, "note", text=SUMMARY, expected_version=0)
        after = flow.record(case.id, "note", text=SUMMARY).event
    assert (after.seq, after.prev_hash) == (first.seq + 1, first.hash)
    with pytest.raises(RuntimeError, match="stopped"), flow.batch():
        flow.record(case.id, "note", text=SUMMARY)
        raise RuntimeError("stopped")  # the whole batch is rolled back
    event = flow.record(case.id, "note", text=SUMMARY).event
    assert (event.seq, event.prev_hash) == (after.seq + 1, after.hash)
    checked = flow.verify(actor="ada")
    assert checked.ok, checked.problem
