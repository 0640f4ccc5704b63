"""The SQLite store keeps the acting staff member between commands (it is asked on every one),
and must never let that memory outlive a change: a member deactivated or demoted by anyone,
through any connection, even behind se-flow's back, cannot act on the next command."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Clock, Steps, drop_triggers, sqlite_conn

import se_flow
from se_flow.errors import PermissionDenied

SUMMARY = "Called: interview on Tuesday"


def _db(flow: se_flow.SEFlow) -> Path:
    return Path(sqlite_conn(flow).execute("PRAGMA database_list").fetchone()[2])


def test_a_member_deactivated_through_another_connection_cannot_act(
    flow: se_flow.SEFlow, steps: Steps, clock: Clock
) -> None:
    case = steps.refer()
    flow.record(case.id, "note", text=SUMMARY, actor="sam")  # sam now remembered
    with se_flow.open(_db(flow), clock=clock, actor="ada") as other:
        other.add_staff("sam", "Sam Coach", "coach", active=False)
    with pytest.raises(PermissionDenied, match="sam is no longer active"):
        flow.record(case.id, "note", text=SUMMARY, actor="sam")
    with pytest.raises(PermissionDenied, match="sam is no longer active"):
        flow.case(case.id, actor="sam")


def test_a_member_demoted_through_another_connection_loses_the_override(
    flow: se_flow.SEFlow, steps: Steps, clock: Clock
) -> None:
    case = steps.refer()
    flow.case(case.id, actor="lee")  # lee, a team leader, now remembered
    with se_flow.open(_db(flow), clock=clock, actor="ada") as other:
        other.add_staff("lee", "Lee Leader", "coach")
    assert flow.staff_member("lee", actor="lee").role is se_flow.Role.COACH


def test_a_member_deactivated_on_the_same_connection_cannot_act(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    flow.record(case.id, "note", text=SUMMARY, actor="sam")
    flow.add_staff("sam", "Sam Coach", "coach", active=False, actor="ada")
    with pytest.raises(PermissionDenied, match="sam is no longer active"):
        flow.record(case.id, "note", text=SUMMARY, actor="sam")


def test_a_member_changed_behind_se_flows_back_on_its_own_connection_cannot_act(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    # data_version does not move for a connection's own writes: the cache must see them too.
    case = steps.refer()
    flow.record(case.id, "note", text=SUMMARY, actor="sam")
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("UPDATE staff SET active = 0 WHERE id = 'sam'")
    with pytest.raises(PermissionDenied, match="sam is no longer active"):
        flow.record(case.id, "note", text=SUMMARY, actor="sam")


def test_a_member_added_in_a_batch_that_failed_is_not_remembered(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    with pytest.raises(RuntimeError, match="the import stopped"), flow.batch():
        flow.add_staff("zed", "Zed Coach", "coach", actor="ada")
        flow.record(case.id, "note", text=SUMMARY, actor="zed")  # zed remembered
        raise RuntimeError("the import stopped")  # the whole batch is rolled back
    with pytest.raises(PermissionDenied, match="zed is not on the staff list"):
        flow.record(case.id, "note", text=SUMMARY, actor="zed")


def test_a_member_reactivated_in_a_transaction_rolled_back_behind_se_flows_back_cannot_act(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    flow.add_staff("sam", "Sam Coach", "coach", active=False, actor="ada")
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("BEGIN")
    conn.execute("UPDATE staff SET active = 1 WHERE id = 'sam'")
    flow.case(case.id, actor="sam")  # read inside the transaction: sam looks active
    conn.execute("ROLLBACK")
    with pytest.raises(PermissionDenied, match="sam is no longer active"):
        flow.record(case.id, "note", text=SUMMARY, actor="sam")
