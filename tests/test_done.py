"""Every write returns what it made (`se_flow.Done`): the case as written, the event it logged
and the record it added, equal to what the reads then show, on every store; and the CLI's write
commands print from it, never reading a case's history back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LEAST_EVIDENCE, Clock, Steps, staffed_db
from typer.testing import CliRunner

import se_flow
from se_flow.cli import app
from se_flow.contract import WORKFLOW
from se_flow.ports import Store


@pytest.fixture(params=["sqlite", "memory"])
def any_flow(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[se_flow.SEFlow]:
    store: Store
    if request.param == "sqlite":
        store = se_flow.SQLiteStore(tmp_path / "t.db", WORKFLOW)
    else:
        store = se_flow.MemoryStore(WORKFLOW)
    with se_flow.SEFlow(store, WORKFLOW, actor="sam", clock=clock) as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        flow.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
        yield flow


def _as_read(flow: se_flow.SEFlow, done: se_flow.Done[se_flow.Case, se_flow.Record | None]) -> None:
    """`done` is exactly what the reads show after the write: the case, and the event last in
    its history."""
    assert done.case == flow.case(done.case.id)
    assert done.event == flow.history(done.case.id)[-1]
    assert done.event.case_id == done.case.id


def test_a_referral_returns_its_case_event_and_referral_record(any_flow: se_flow.SEFlow) -> None:
    done = any_flow.refer("Alex Doe", source="GP")
    _as_read(any_flow, done)
    assert done.event.kind == "referral" and done.case.state == "referred"
    assert done.record == any_flow.records(done.case.id)[-1]
    assert done.record.kind == "referral" and done.record["source"] == "GP"
    assert done.record.seq == done.event.seq


def test_a_record_returns_the_record_as_stored_and_its_correction_names_it(
    any_flow: se_flow.SEFlow,
) -> None:
    case = any_flow.refer("Alex Doe", source="GP", effective_at=dt.date(2026, 4, 1)).case
    first = any_flow.record(case.id, "note", text="first try", effective_at=dt.date(2026, 5, 1))
    _as_read(any_flow, first)
    assert first.record == any_flow.records(case.id)[-1]
    assert first.record.effective_at.date() == dt.date(2026, 5, 1)
    assert first.case.version == case.version + 1
    fixed = any_flow.record(case.id, "note", text="second try", supersedes=first.record.seq)
    assert fixed.record.supersedes == first.record.seq
    assert any_flow.records(case.id)[-1] == fixed.record
    assert first.record not in any_flow.records(case.id)  # superseded, kept below
    assert any_flow.records(case.id, include_superseded=True)[-2:] == [first.record, fixed.record]


def test_every_move_returns_the_case_as_moved_and_its_event(any_flow: se_flow.SEFlow) -> None:
    steps = Steps(any_flow)
    case = steps.to("customer_engagement")
    paused = any_flow.pause(case.id, reason="away", review_date=dt.date(2026, 7, 1))
    _as_read(any_flow, paused)
    assert paused.case.status is se_flow.Status.PAUSED and paused.record is None
    assert paused.event.reason == "away"
    resumed = any_flow.resume(paused.case.id)
    _as_read(any_flow, resumed)
    assigned = any_flow.assign(case.id, "kim", reason="caseload", actor="lee")
    _as_read(any_flow, assigned)
    assert assigned.case.coach == "kim" and assigned.event.actor == "lee"
    steps.record(case.id, LEAST_EVIDENCE["customer_engagement"].records, actor="kim")
    moved = any_flow.advance(case.id, LEAST_EVIDENCE["customer_engagement"].trigger, actor="kim")
    _as_read(any_flow, moved)
    assert moved.event.from_state == "customer_engagement"
    assert moved.event.to_state == moved.case.state
    withdrawn = any_flow.withdraw(case.id, reason="moved away", actor="kim")
    _as_read(any_flow, withdrawn)
    assert not withdrawn.case.is_open
    again = any_flow.reopen(case.id, source="self", actor="kim")
    _as_read(any_flow, again)
    assert again.case.previous_case_id == case.id and again.record.seq == again.event.seq
    assert again.record == any_flow.records(again.case.id)[-1]
    closed = any_flow.close(again.case.id, "moved_away", actor="kim")
    _as_read(any_flow, closed)
    assert closed.case.outcome == "moved_away"


def test_an_override_is_on_the_returned_event(any_flow: se_flow.SEFlow) -> None:
    steps = Steps(any_flow)
    case = steps.to("customer_engagement")
    steps.hard(case.id, "customer_engagement")
    trigger = LEAST_EVIDENCE["customer_engagement"].trigger
    assert any_flow.check(case.id, trigger).overridable
    done = any_flow.advance(case.id, trigger, override="agreed by phone", actor="lee")
    assert done.event.override == se_flow.Override(by="lee", reason="agreed by phone")
    assert done.event == any_flow.history(case.id)[-1]


def test_an_erasure_returns_its_event_and_no_case(any_flow: se_flow.SEFlow) -> None:
    case = any_flow.refer("Alex Doe", source="GP").case
    done = any_flow.erase_personal_data(case.participant_id, reason="asked", actor="ada")
    assert done.case is None and done.record is None
    assert done.event == any_flow.events()[-1]
    assert done.event.actor == "ada" and done.event.reason == "asked"


def test_writes_in_a_batch_return_the_events_the_batch_commits(any_flow: se_flow.SEFlow) -> None:
    with any_flow.batch():
        referred = any_flow.refer("Alex Doe", source="GP")
        noted = any_flow.record(referred.case.id, "note", text="in a batch")
    assert any_flow.history(referred.case.id) == [referred.event, noted.event]
    assert any_flow.records(referred.case.id) == [referred.record, noted.record]


def test_the_cli_prints_a_write_from_what_it_returned_not_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = staffed_db(tmp_path / "caseload.db")
    with se_flow.open(db, actor="sam") as flow:
        case = flow.refer("Alex Doe", source="GP", coach="sam").case
    review = (dt.date.today() + dt.timedelta(days=30)).isoformat()

    def no_history(*_args: object, **_kw: object) -> list[se_flow.Event]:
        raise AssertionError("a write command read the case's history back")

    monkeypatch.setattr(se_flow.SEFlow, "history", no_history)
    monkeypatch.setattr(se_flow.SEFlow, "events", no_history)
    runner = CliRunner()
    env = {"COLUMNS": "200", "SE_FLOW_DB": None, "SE_FLOW_ACTOR": None}
    head = ["--db", str(db), "--as", "sam"]
    for args in (
        ["advance", case.id, "engage"],
        ["record", case.id, "note", "text=called"],
        ["pause", case.id, "--reason", "away", "--review", review],
        ["resume", case.id],
    ):
        result = runner.invoke(app, [*head, *args], env=env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert result.output.startswith(f"{case.id}: "), result.output
