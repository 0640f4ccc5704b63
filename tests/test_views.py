"""The views: one API call for each screen (`case_view`, `history_page`, `caseload`,
`next_steps`, `due_for`), each equal to what the single reads give, paged from the newest back,
with every rule (who sees a name, whose caseload is the default) applied by the API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import hypothesis.strategies as st
import pytest
from helpers import LEAST_EVIDENCE, Steps, staffed_db
from hypothesis import HealthCheck, given, settings
from test_cli import CLI, ok, refused, walk
from test_cli import refer as cli_refer

import se_flow
from se_flow import SEFlow


@pytest.fixture
def noted(flow: SEFlow, steps: Steps) -> se_flow.Case:
    """A case at customer engagement with 30 notes, the 10th corrected, beside another case."""
    case = steps.to("customer_engagement")
    steps.refer("Someone Else")
    seqs = [flow.record(case.id, "note", text=f"note {n}").record.seq for n in range(30)]
    flow.record(case.id, "note", text="note 9, corrected", supersedes=seqs[9])
    return flow.case(case.id)


def test_a_case_view_is_the_single_reads_in_one(flow: SEFlow, noted: se_flow.Case) -> None:
    view = flow.case_view(noted.id, limit=None)
    assert view.case == flow.case(noted.id)
    assert view.participant == flow.participant(noted.participant_id)
    assert view.participant.details is not None and view.participant.details.name == "Alex Doe"
    assert list(view.records) == flow.records(noted.id)
    assert not view.more_records
    assert list(view.history.events) == flow.history(noted.id)
    assert view.history.earlier == 0
    assert view.standards == flow.standards(noted.id)
    assert view.today == flow.now().date()
    every = flow.case_view(noted.id, limit=None, include_superseded=True)
    assert list(every.records) == flow.records(noted.id, include_superseded=True)


def test_a_case_view_shows_the_latest_page_and_says_what_it_left_out(
    flow: SEFlow, noted: se_flow.Case
) -> None:
    view = flow.case_view(noted.id, limit=5)
    assert list(view.records) == flow.records(noted.id)[-5:]
    assert view.more_records
    history = flow.history(noted.id)
    assert list(view.history.events) == history[-5:]
    assert view.history.earlier == len(history) - 5
    assert view.history.case_id == noted.id
    whole = flow.case_view(noted.id, limit=len(flow.records(noted.id)))
    assert not whole.more_records


def test_personal_details_are_left_out_of_the_view_for_an_auditor(
    flow: SEFlow, noted: se_flow.Case
) -> None:
    view = flow.case_view(noted.id, actor="ava")
    assert view.participant.details is None
    assert view.participant.id == noted.participant_id


def test_history_pages_walk_back_to_the_referral(flow: SEFlow, noted: se_flow.Case) -> None:
    history = flow.history(noted.id)
    pages: list[tuple[se_flow.Event, ...]] = []
    page = flow.history_page(noted.id, limit=7)
    while True:
        pages.insert(0, page.events)
        assert page.earlier == history.index(page.events[0])
        if not page.earlier:
            break
        page = flow.history_page(noted.id, limit=7, before_seq=page.events[0].seq)
    assert [e for p in pages for e in p] == history
    assert flow.history_page(noted.id, limit=None).events == tuple(history)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(1, 60), back=st.integers(0, 40))
def test_any_page_is_a_slice_of_the_history(
    flow: SEFlow, noted: se_flow.Case, limit: int, back: int
) -> None:
    history = flow.history(noted.id)
    before = history[min(back, len(history) - 1)].seq
    page = flow.history_page(noted.id, limit=limit, before_seq=before)
    older = [e for e in history if e.seq < before]
    assert list(page.events) == older[-limit:]
    assert page.earlier == len(older) - len(page.events)


def test_views_refuse_what_reads_refuse(flow: SEFlow, noted: se_flow.Case) -> None:
    for bad in (0, -1):
        with pytest.raises(se_flow.InvalidInput, match="limit"):
            flow.case_view(noted.id, limit=bad)
        with pytest.raises(se_flow.InvalidInput, match="limit"):
            flow.history_page(noted.id, limit=bad)
    with pytest.raises(se_flow.InvalidInput, match="before_seq"):
        flow.history_page(noted.id, before_seq=0)
    with pytest.raises(se_flow.CaseNotFound):
        flow.case_view("C-404")
    with pytest.raises(se_flow.CaseNotFound):
        flow.history_page("C-404")
    with pytest.raises(se_flow.PermissionDenied):
        flow.case_view(noted.id, actor="mallory")
    with pytest.raises(se_flow.PermissionDenied):
        flow.next_steps(noted.id, actor="mallory")


def test_the_caseload_and_next_steps_are_the_single_reads(
    flow: SEFlow, noted: se_flow.Case
) -> None:
    load = flow.caseload(status="all", limit=1)
    assert list(load.cases) == flow.cases(status="all", limit=1)
    assert load.today == flow.now().date()
    assert list(flow.caseload().cases) == flow.cases(status="open")
    steps = flow.next_steps(noted.id)
    assert steps.case == flow.case(noted.id)
    assert list(steps.checks) == flow.available(noted.id)
    trigger = LEAST_EVIDENCE["customer_engagement"].trigger
    assert trigger in [c.trigger for c in steps.checks]
    # Read only what the open triggers' guards look at, each check is what `check` says.
    assert steps.checks == tuple(flow.check(noted.id, c.trigger) for c in steps.checks)
    assert any(not c.allowed for c in steps.checks)


def test_a_coach_s_due_list_is_their_own_unless_they_ask_for_all(
    flow: SEFlow, steps: Steps
) -> None:
    mine = steps.refer("Mine", coach="sam")
    theirs = steps.refer("Theirs", coach="kim")
    ahead = 30
    view = flow.due_for(within_days=ahead, actor="sam")
    assert view.coach == "sam" and view.today == flow.now().date()
    assert {i.case_id for i in view.items} == {mine.id}
    assert view.items == flow.due_items(coach="sam", within_days=ahead, actor="sam")
    everyone = flow.due_for(within_days=ahead, everyone=True, actor="sam")
    assert everyone.coach is None
    assert {i.case_id for i in everyone.items} == {mine.id, theirs.id}
    # A team leader sees everyone's; anyone may name a coach.
    assert flow.due_for(within_days=ahead, actor="lee").coach is None
    named = flow.due_for(coach="kim", within_days=ahead, actor="lee")
    assert named.coach == "kim" and {i.case_id for i in named.items} == {theirs.id}


# --- the CLI's paged show and history ------------------------------------------------------


def test_show_and_history_print_a_page_and_say_how_to_see_it_all(tmp_path: Path) -> None:
    db = staffed_db(tmp_path / "caseload.db")
    case_id = cli_refer(db)
    walk(db, case_id, "customer_engagement")
    with se_flow.open(db, actor="sam") as flow:
        for n in range(25):
            flow.record(case_id, "note", text=f"note {n}", effective_at=dt.date.today())
        total = len(flow.history(case_id))
    run = CLI(db)
    out = ok(run("history", case_id, "--limit", "5"))
    assert f"{total - 5} earlier event(s) not shown: se-flow history {case_id} --all" in out
    everything = ok(run("history", case_id, "--all"))
    assert "earlier event" not in everything
    assert len(run.json("history", case_id)) == 20
    assert len(run.json("history", case_id, "--all")) == total
    shown = ok(run("show", case_id))
    assert f"{total - 20} earlier event(s) and older records not shown" in shown
    assert f"se-flow show {case_id} --all" in shown
    assert "not shown" not in ok(run("show", case_id, "--all"))
    data = run.json("show", case_id, "--limit", "3")
    assert data["earlier_events"] == total - 3 and data["more_records"] is True
    assert [r["fields"]["text"] for r in data["records"]] == ["note 22", "note 23", "note 24"]
    refused(run("show", case_id, "--limit", "0"), 5, "--limit")


def test_set_up_adds_the_first_staff_member_once_and_seals_when_asked(tmp_path: Path) -> None:
    with se_flow.open(tmp_path / "new.db", actor="ada") as flow:
        done = flow.set_up("  Ada Admin ", seal=True)
        assert done.staff == se_flow.Staff(id="ada", name="Ada Admin", role=se_flow.Role.ADMIN)
        assert done.key is not None
        assert flow.staff() == [done.staff]
        events = flow.events()
        with pytest.raises(se_flow.InvalidInput, match="already set up"):
            flow.set_up(actor="eve")
        assert flow.events() == events
        assert flow.verify(key=done.key).ok
    with se_flow.open(tmp_path / "plain.db") as flow:
        with pytest.raises(se_flow.InvalidInput, match="no actor"):
            flow.set_up()
        assert not flow.has_staff()
        plain = flow.set_up(role="coach", actor="sam")
        assert plain.key is None and plain.staff.name == "sam"
        assert plain.staff.role is se_flow.Role.COACH
