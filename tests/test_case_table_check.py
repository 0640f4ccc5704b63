"""`verify` also replays the log against the case table that reads trust: a case moved,
closed or removed behind the log's back is named, even though the chain itself is intact."""

from __future__ import annotations

import pytest
from helpers import Steps, drop_triggers, sqlite_conn

from se_flow import SEFlow


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE cases SET state = 'in_work_support' WHERE id = ?", "state"),
        ("UPDATE cases SET status = 'closed' WHERE id = ?", "status"),
        ("UPDATE cases SET coach = 'kim' WHERE id = ?", "coach"),
        ("UPDATE cases SET version = version + 1 WHERE id = ?", "version"),
        ("DELETE FROM cases WHERE id = ?", "missing from the case table"),
    ],
)
def test_a_case_changed_behind_the_logs_back_is_named(
    flow: SEFlow, steps: Steps, sql: str, named: str
) -> None:
    case = steps.to("employer_engagement")
    assert flow.verify().ok
    drop_triggers(sqlite_conn(flow))
    sqlite_conn(flow).execute(sql, (case.id,))
    result = flow.verify()
    assert not result.ok
    assert case.id in (result.problem or "")
    assert named in (result.problem or "")


def test_a_case_with_no_events_is_caught(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    drop_triggers(sqlite_conn(flow))
    sqlite_conn(flow).execute(
        "INSERT INTO cases SELECT 'C-99', 99, participant_id, state, phase, status, version, "
        "opened_at, stage_entered_at, coach, episode, previous_case_id, last_contact_at, "
        "review_due, outcome, closed_at FROM cases WHERE id = ?",
        (case.id,),
    )
    result = flow.verify()
    assert not result.ok
    assert "holds 2 cases but the log has events for 1" in (result.problem or "")
