"""The records and staff tables, which guards and permissions read, are projections of the log
just as the case table is: `verify` rebuilds each from the events and names any row edited,
removed or added behind the log's back, and triggers refuse such changes made without an event.
The threat: someone with write access to the file who drops the triggers, then edits a job
offer's pay or a coach's role so the forged value drives a guard or an override."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import LEAST_EVIDENCE, Clock, Steps, drop_triggers, sqlite_conn

import se_flow
from se_flow import SEFlow


def _tampered(flow: SEFlow, sql: str, *params: Any) -> se_flow.Verification:
    assert flow.verify().ok
    drop_triggers(sqlite_conn(flow))
    sqlite_conn(flow).execute(sql, params)
    result = flow.verify()
    assert not result.ok
    assert result.problem
    return result


def _job_offer(steps: Steps, pay: str) -> tuple[se_flow.Case, se_flow.Record]:
    case = steps.to("job_matching")
    offer = {**LEAST_EVIDENCE["job_matching"].hard[0][1], "hourly_pay": pay}
    record = steps.flow.record(case.id, "job_offer", offer).record
    return case, record


# --- records ------------------------------------------------------------------------------


def test_a_forged_pay_that_would_pass_the_wage_guard_is_caught(flow: SEFlow, steps: Steps) -> None:
    case, offer = _job_offer(steps, "5.00")
    steps.soft(case.id, "job_matching")
    refused = flow.check(case.id, "start_job")
    assert "minimum_wage" in {r.guard.split(":")[0] for r in refused.failed}
    drop_triggers(sqlite_conn(flow))
    sqlite_conn(flow).execute(
        "UPDATE records SET fields = json_set(fields, '$.hourly_pay', '15.00') WHERE seq = ?",
        (offer.seq,),
    )
    assert flow.check(case.id, "start_job").allowed  # the forgery fools the guard...
    result = flow.verify()  # ...but not the auditor
    assert not result.ok
    assert result.bad_seq == offer.seq
    assert result.problem == (
        f"record {offer.seq} (case {case.id}): the records table's fields differs from the "
        "event that recorded it"
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "kim"), ("effective_at", "2020-01-01T00:00:00+00:00"), ("kind", "note")],
)
def test_a_record_edited_is_named(flow: SEFlow, steps: Steps, column: str, value: str) -> None:
    _, offer = _job_offer(steps, "12.80")
    result = _tampered(flow, f"UPDATE records SET {column} = ? WHERE seq = ?", value, offer.seq)
    assert result.bad_seq == offer.seq
    assert f"the records table's {column} differs" in (result.problem or "")


def test_a_record_deleted_is_named(flow: SEFlow, steps: Steps) -> None:
    case, offer = _job_offer(steps, "12.80")
    result = _tampered(flow, "DELETE FROM records WHERE seq = ?", offer.seq)
    assert (
        result.problem == f"record {offer.seq} (case {case.id}) is missing from the records table"
    )


def test_a_record_inserted_is_named(flow: SEFlow, steps: Steps) -> None:
    case, offer = _job_offer(steps, "12.80")
    forged = flow.store.head()[0] + 1
    result = _tampered(
        flow,
        "INSERT INTO records SELECT ?, case_id, kind, fields, effective_at, recorded_at, actor, "
        "NULL FROM records WHERE seq = ?",
        forged,
        offer.seq,
    )
    assert result.bad_seq == forged
    assert result.problem == (
        f"record {forged} (case {case.id}) is in the records table but no event recorded it"
    )


def test_a_record_slipped_between_two_others_is_named(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("customer_engagement")
    first = flow.record(case.id, "note", text="one").record
    flow.record(case.id, "note", text="two")
    # The seq of an event that made no record (the engage transition), so the forged row sits
    # between real ones.
    engaged = next(e.seq for e in flow.history(case.id) if e.trigger == "engage")
    result = _tampered(
        flow,
        "INSERT INTO records SELECT ?, case_id, kind, fields, effective_at, recorded_at, actor, "
        "NULL FROM records WHERE seq = ?",
        engaged,
        first.seq,
    )
    assert result.bad_seq == engaged


# --- staff --------------------------------------------------------------------------------


def test_a_coach_made_team_leader_behind_the_logs_back_is_named(flow: SEFlow) -> None:
    result = _tampered(flow, "UPDATE staff SET role = 'team_leader' WHERE id = 'sam'")
    assert result.problem == (
        "staff member sam: the staff table says role = 'team_leader', but the log says 'coach'"
    )


def test_a_deactivated_coach_reactivated_behind_the_logs_back_is_named(flow: SEFlow) -> None:
    flow.add_staff("kim", "Kim Coach", "coach", actor="ada", active=False)
    result = _tampered(flow, "UPDATE staff SET active = 1 WHERE id = 'kim'")
    assert "staff member kim: the staff table says active = True" in (result.problem or "")


def test_a_staff_member_deleted_or_added_is_named(flow: SEFlow) -> None:
    result = _tampered(flow, "DELETE FROM staff WHERE id = 'ava'")
    assert result.problem == "staff member ava is in the log but missing from the staff table"
    sqlite_conn(flow).execute(
        "INSERT INTO staff (id, name, role, active) VALUES('ava', 'Ava Auditor', 'auditor', 1)"
    )
    sqlite_conn(flow).execute(
        "INSERT INTO staff (id, name, role, active) VALUES('eve', 'Eve', 'admin', 1)"
    )
    assert flow.verify().problem == "staff member eve is in the staff table but no event added them"


# --- the whole case row ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("stage_entered_at", "2020-01-01T00:00:00+00:00"),
        ("last_contact_at", "2020-01-01T00:00:00+00:00"),
        ("review_due", "2099-01-01"),
        ("opened_at", "2020-01-01T00:00:00+00:00"),
        ("episode", 3),
        ("previous_case_id", "C-99"),
        ("closed_at", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_every_column_of_the_case_table_is_checked(
    flow: SEFlow, steps: Steps, column: str, value: object
) -> None:
    case = steps.to("employer_engagement")
    result = _tampered(flow, f"UPDATE cases SET {column} = ? WHERE id = ?", value, case.id)
    assert result.problem is not None
    assert result.problem.startswith(f"case {case.id}: the case table says {column} = ")


def test_a_reopened_case_replays_to_its_episode(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    flow.withdraw(case.id, reason="moving on")
    again = flow.reopen(case.id, source="self").case
    flow.withdraw(again.id, reason="moving on again")
    third = flow.reopen(again.id, source="self").case
    assert third.episode == 3
    assert flow.verify().ok
    result = _tampered(flow, "UPDATE cases SET episode = 2 WHERE id = ?", third.id)
    assert (
        result.problem == f"case {third.id}: the case table says episode = 2, but its events say 3"
    )


# --- triggers: no change without its event --------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE staff SET role = 'team_leader' WHERE id = 'sam'", "no staff event for it"),
        (
            "INSERT INTO staff (id, name, role, active) VALUES('eve', 'Eve', 'admin', 1)",
            "no staff event for it",
        ),
        ("DELETE FROM staff WHERE id = 'sam'", "staff are never deleted"),
        ("UPDATE cases SET state = 'in_work_support' WHERE id = 'C-1'", "no event for it"),
        ("DELETE FROM cases", "cases are never deleted"),
        ("UPDATE records SET actor = 'kim'", "records are never edited"),
        ("DELETE FROM records", "records are never deleted"),
    ],
)
def test_tables_change_only_with_their_event(
    flow: SEFlow, steps: Steps, sql: str, words: str
) -> None:
    steps.to("customer_engagement")
    steps.refer("Someone Else")  # the log's last event is about C-2, not C-1
    with pytest.raises(sqlite3.IntegrityError, match=words):
        sqlite_conn(flow).execute(sql)
    assert flow.verify().ok


def test_a_row_changed_right_after_its_own_event_is_still_caught(
    flow: SEFlow, steps: Steps
) -> None:
    # The triggers only ask that the log's last event be about that case; verify still
    # replays the row itself.
    case = steps.to("customer_engagement")
    result = _tampered(flow, "UPDATE cases SET coach = 'kim' WHERE id = ?", case.id)
    assert "coach" in (result.problem or "")


# --- one snapshot -----------------------------------------------------------------------------


def test_verify_while_a_coach_writes_sees_one_moment(tmp_path: Path, clock: Clock) -> None:
    """verify reads the log and the tables inside one read snapshot: a write landing while it
    walks is neither half-seen nor reported as a mismatch."""
    path = tmp_path / "busy.db"
    with se_flow.open(path, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        ids = [flow.refer(f"Person {n}", source="GP").case.id for n in range(3)]
    auditor = se_flow.open(path, clock=clock, actor="sam")
    coach = se_flow.open(path, clock=clock, actor="sam")
    events_by_case = auditor.store.events_by_case
    wrote: list[int] = []

    def walk_then_write() -> Iterator[se_flow.Event]:
        for event in events_by_case():
            yield event
            if not wrote:
                # The coach moves every case on while the auditor is part-way through.
                for case_id in ids:
                    coach.advance(case_id, "engage")
                wrote.append(coach.store.head()[0])

    auditor.store.events_by_case = walk_then_write  # type: ignore[method-assign]
    try:
        result = auditor.verify()
        assert wrote
        assert result.ok, result.problem
        assert result.head_seq < wrote[0]  # it saw the moment it started at
        assert auditor.verify().ok  # and the next run sees the writes
    finally:
        auditor.disconnect()
        coach.disconnect()
