"""A participant's journey through the default workflow, as a job coach and team leader live it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import pytest
from helpers import ORDER, START, Clock, Steps

import se_flow
from se_flow import GuardResult, Override, SEFlow, Status


def failures(results: Sequence[GuardResult]) -> dict[str, str]:
    return {r.guard: r.reason for r in results if not r.passed}


def days_ago(n: int) -> dt.datetime:
    return START - dt.timedelta(days=n)


def test_whole_journey_from_referral_to_completed(flow: SEFlow, steps: Steps) -> None:
    case = flow.refer("Alex Doe", source="GP", effective_at=days_ago(90)).case
    assert (case.state, case.status, case.episode, case.coach) == (
        "referred",
        Status.ACTIVE,
        1,
        "sam",
    )
    case = flow.advance(case.id, "engage", effective_at=days_ago(89)).case
    assert case.state == "customer_engagement"

    # Nothing recorded yet: the refusal names every missing piece, hard and soft.
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_profiling")
    assert failures(refused.value.results) == {
        "consent": "no consent recorded",
        "record:first_meeting": "no first meeting recorded",
        "field_equals:informed_choice": "no informed choice recorded",
        "record:action_plan": "no action plan recorded",
    }
    assert [r.soft for r in refused.value.failed] == [False, False, False, True]
    assert not refused.value.soft_only
    assert "no first meeting recorded" in str(refused.value)
    assert flow.case(case.id).version == case.version

    # The hard evidence is there; only the soft action plan is missing.
    steps.hard(case.id, "customer_engagement", effective_at=days_ago(80))
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_profiling")
    assert failures(refused.value.results) == {"record:action_plan": "no action plan recorded"}
    assert refused.value.soft_only
    with pytest.raises(se_flow.PermissionDenied) as denied:
        flow.advance(case.id, "start_profiling", actor="sam", override="agreed by phone")
    assert denied.value.actor == "sam"
    assert "only a team leader may override" in str(denied.value)
    case = flow.advance(
        case.id,
        "start_profiling",
        actor="lee",
        override="agreed by phone",
        effective_at=days_ago(79),
    ).case
    assert case.state == "vocational_profiling"
    moved = flow.history(case.id)[-1]
    assert moved.override == Override(by="lee", reason="agreed by phone")
    assert (moved.actor, moved.role, moved.trigger) == ("lee", "team_leader", "start_profiling")
    assert failures(moved.guards) == {"record:action_plan": "no action plan recorded"}

    for state in ("vocational_profiling", "employer_engagement", "job_matching"):
        case = steps.to(ORDER[ORDER.index(state) + 1], case)
    assert (case.state, case.phase) == ("in_work_support", "in_work_support")
    first_offer = flow.records(case.id)[-2]
    assert first_offer.kind == "job_offer"
    case = steps.to("career_development", case)
    assert (case.state, case.phase) == ("in_work_support", "career_development")
    assert flow.history(case.id)[-1].kind == "phase"

    # The job is lost: end_job asks for the job end first.
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "end_job")
    assert failures(refused.value.results) == {
        "record:job_end": "no job end recorded since the last start_job"
    }
    flow.record(case.id, "job_end", reason="shop closed", employer="Corner Shop")
    case = flow.advance(case.id, "end_job").case
    assert (case.state, case.phase) == ("job_matching", None)

    # The old offer belongs to the old job: it cannot start the new one.
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_job", actor="lee", override="plan to follow")
    assert failures(refused.value.results) == {
        "record:job_offer": ("no job offer recorded since the last end_job"),
        "minimum_wage:job_offer": "no job offer recorded to check pay against",
        "record:support_plan": "no in-work support plan recorded since the last end_job",
    }
    kept = {r.kind for r in flow.records(case.id)}
    assert {"job_offer", "job_end", "fading_plan"} <= kept  # the employment spell stays on record

    flow.record(
        case.id,
        "job_offer",
        employer="Town Library",
        start_date="2026-06-08",
        hours_per_week="20",
        hourly_pay="13.10",
    )
    steps.soft(case.id, "job_matching")
    case = flow.advance(case.id, "start_job").case
    assert (case.state, case.phase) == ("in_work_support", "in_work_support")

    # The fading plan of the first job does not carry over to the second.
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "begin_career_development", actor="lee", override="later")
    assert failures(refused.value.results) == {
        "field_nonempty:fading_plan": "no fading plan recorded since the last start_job",
        "record:natural_support": "no natural support at work recorded since the last start_job",
    }
    case = steps.to("closed", case)
    assert (case.status, case.outcome, case.phase, case.review_due) == (
        Status.CLOSED,
        "completed",
        None,
        None,
    )
    assert case.closed_at == START
    assert flow.available(case.id) == []

    history = flow.history(case.id)
    assert case.version == len(history)
    assert [e.trigger for e in history if e.kind in ("transition", "phase")] == [
        "engage",
        "start_profiling",
        "start_job_search",
        "propose_match",
        "start_job",
        "begin_career_development",
        "end_job",
        "start_job",
        "begin_career_development",
        "complete",
    ]
    assert flow.verify().ok


def test_a_team_leader_cannot_override_a_hard_guard(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("customer_engagement")
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_profiling", actor="lee", override="trust me")
    assert "consent" in failures(refused.value.results)
    assert flow.case(case.id).version == case.version


def test_only_a_team_leader_may_override_not_an_admin(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("vocational_profiling")
    steps.hard(case.id, "vocational_profiling")
    version = flow.case(case.id).version
    with pytest.raises(se_flow.PermissionDenied, match="only a team leader may override"):
        flow.advance(case.id, "start_job_search", actor="ada", override="advice booked")
    assert flow.case(case.id).version == version
    case = flow.advance(case.id, "start_job_search", actor="lee", override="advice booked").case
    assert flow.history(case.id)[-1].override == Override(by="lee", reason="advice booked")


def test_an_override_needs_a_reason(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("vocational_profiling")
    steps.hard(case.id, "vocational_profiling")
    version = flow.case(case.id).version
    with pytest.raises(se_flow.InvalidInput, match="override needs a reason"):
        flow.advance(case.id, "start_job_search", actor="lee", override="  ")
    assert flow.case(case.id).version == version


def test_pause_and_resume(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = steps.to("customer_engagement")
    steps.hard(case.id, "customer_engagement")
    steps.soft(case.id, "customer_engagement")
    review = START.date() + dt.timedelta(days=21)
    case = flow.pause(case.id, reason="in hospital", review_date=review).case
    assert (case.status, case.state, case.review_due) == (
        Status.PAUSED,
        "customer_engagement",
        review,
    )
    assert flow.history(case.id)[-1].payload["review_date"] == review.isoformat()

    for trigger in ("start_profiling", "pause"):
        with pytest.raises(se_flow.CasePaused, match="resume it before"):
            flow.advance(case.id, trigger, reason="again", review_date=review)
    assert [c.trigger for c in flow.available(case.id)] == [
        "resume",
        "withdraw",
        "close_disengaged",
        "close",
    ]
    # Evidence can still be kept while paused (a contact, an outreach attempt).
    flow.record(case.id, "note", text="called the ward")

    clock.advance(days=20)
    case = flow.resume(case.id, reason="out of hospital").case
    assert (case.status, case.state) == (Status.ACTIVE, "customer_engagement")
    with pytest.raises(se_flow.TriggerNotAvailable):
        flow.resume(case.id)
    case = flow.advance(case.id, "start_profiling").case
    assert case.state == "vocational_profiling"
    assert case.version == len(flow.history(case.id))


@pytest.mark.parametrize("paused", [False, True], ids=["active", "paused"])
@pytest.mark.parametrize("state", ORDER[:-1])
def test_withdraw_is_allowed_from_every_active_state(
    flow: SEFlow, steps: Steps, state: str, paused: bool
) -> None:
    case = steps.to(state)
    if paused:
        case = flow.pause(case.id, reason="holiday", review_date=START.date()).case
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.withdraw(case.id, reason=" ")
    assert failures(refused.value.results) == {"reason": "a reason is required"}
    case = flow.withdraw(case.id, reason="found work on their own", actor="kim").case
    assert (case.status, case.outcome, case.state) == (Status.CLOSED, "withdrawn", "closed")
    event = flow.history(case.id)[-1]
    assert (event.trigger, event.reason, event.actor) == (
        "withdraw",
        "found work on their own",
        "kim",
    )


@pytest.mark.parametrize(
    "reason", ["ineligible", "moved_away", "time_limit", "transferred", "deceased", "other"]
)
def test_close_with_each_reason(flow: SEFlow, steps: Steps, reason: str) -> None:
    case = steps.to("vocational_profiling")
    case = flow.close(case.id, reason, note="see file", actor="lee").case
    assert (case.status, case.outcome) == (Status.CLOSED, reason)
    event = flow.history(case.id)[-1]
    assert (event.trigger, event.reason, event.payload["outcome"]) == ("close", "see file", reason)


def test_closing_as_ineligible_needs_a_team_leader(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.close(case.id, "ineligible", actor="sam")
    assert failures(refused.value.results) == {
        "role": "only a team leader may do this; sam is a coach"
    }
    assert flow.close(case.id, "moved_away", actor="sam").case.outcome == "moved_away"


def test_close_disengaged_after_outreach(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = steps.refer(effective_at=days_ago(30))
    for back, channel in ((20, "phone"), (13, "letter"), (6, "phone")):
        flow.record(case.id, "outreach_attempt", channel=channel, effective_at=days_ago(back))
    check = flow.check(case.id, "close_disengaged", actor="lee")
    assert check.allowed
    assert check.results[0].reason == "3 attempt(s) over 2 channel(s) spanning 14 day(s)"
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "close_disengaged", actor="sam")
    assert failures(refused.value.results) == {
        "role": "only a team leader may do this; sam is a coach"
    }
    case = flow.advance(case.id, "close_disengaged", actor="lee", reason="no reply in 3 weeks").case
    assert (case.status, case.outcome) == (Status.CLOSED, "disengaged")


def test_reopen_starts_a_new_episode(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    first = steps.to("job_matching")
    first = flow.withdraw(first.id, reason="caring for a parent").case
    closed_version = first.version
    clock.advance(days=100)

    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.reopen(first.id)
    assert bad.value.problems == {"source": "required"}

    second = flow.reopen(first.id, source="self", actor="kim", coach="kim").case
    assert second.id != first.id
    assert (second.episode, second.previous_case_id, second.participant_id) == (
        2,
        first.id,
        first.participant_id,
    )
    assert (second.state, second.status, second.version, second.coach) == (
        "customer_engagement",
        Status.ACTIVE,
        1,
        "kim",
    )
    assert second.opened_at == clock.now
    event = flow.history(second.id)[0]
    assert (event.kind, event.from_state, event.to_state) == (
        "reopen",
        "closed",
        "customer_engagement",
    )
    assert event.payload["previous_case_id"] == first.id
    assert flow.records(second.id)[0]["source"] == "self"

    again = flow.case(first.id)
    assert (again.status, again.version, again.outcome) == (
        Status.CLOSED,
        closed_version,
        "withdrawn",
    )
    events = len(flow.events())
    with pytest.raises(se_flow.InvalidInput, match=f"already reopened as {second.id}"):
        flow.reopen(first.id, source="GP")
    with pytest.raises(se_flow.InvalidInput, match="only a closed case"):
        flow.reopen(second.id, source="GP")
    assert len(flow.events()) == events

    # The new episode can itself close and be reopened as a third.
    flow.withdraw(second.id, reason="moved in with family")
    third = flow.reopen(second.id, source="Jobcentre").case
    assert (third.episode, third.previous_case_id) == (3, second.id)
    mine = flow.cases(participant_id=first.participant_id)
    assert [c.episode for c in mine] == [1, 2, 3]
    assert flow.verify().ok


def test_version_counts_the_events_of_the_case(flow: SEFlow, steps: Steps) -> None:
    a = steps.to("employer_engagement")
    b = steps.refer("Bo Smith")
    flow.record(b.id, "note", text="left a voicemail")
    flow.assign(b.id, "kim", actor="lee", reason="closer to home")
    for case_id in (a.id, b.id):
        case = flow.case(case_id)
        assert case.version == len(flow.history(case_id))
        assert [e.case_id for e in flow.history(case_id)] == [case_id] * case.version
    assert flow.case(b.id).version == 3
    assert flow.case(b.id).coach == "kim"


def test_two_clocks(flow: SEFlow, clock: Clock) -> None:
    case = flow.refer("Alex Doe", source="GP", effective_at=days_ago(10)).case
    assert case.opened_at == days_ago(10)
    referral = flow.history(case.id)[0]
    assert (referral.effective_at, referral.recorded_at) == (days_ago(10), START)

    clock.advance(hours=3)
    # A date means the start of that day (UTC); other time zones are kept as the same instant.
    met = flow.record(case.id, "first_meeting", effective_at=dt.date(2026, 5, 28)).record
    assert met.effective_at == dt.datetime(2026, 5, 28, tzinfo=dt.UTC)
    assert met.recorded_at == START + dt.timedelta(hours=3)
    local = dt.timezone(dt.timedelta(hours=1))
    case = flow.advance(
        case.id, "engage", effective_at=dt.datetime(2026, 5, 29, 10, tzinfo=local)
    ).case
    event = flow.history(case.id)[-1]
    assert event.effective_at == dt.datetime(2026, 5, 29, 9, tzinfo=dt.UTC)
    assert event.recorded_at == clock.now
    assert case.stage_entered_at == event.effective_at
    assert case.last_contact_at == met.effective_at
    # Not given: it happened now.
    note = flow.record(case.id, "note", text="called").record
    assert note.effective_at == note.recorded_at == clock.now


CADENCE = {
    "referred": 2,
    "customer_engagement": 14,
    "vocational_profiling": 14,
    "employer_engagement": 7,
    "job_matching": 7,
    "in_work_support": 7,
    "career_development": 30,
}


@pytest.mark.parametrize("state", list(CADENCE))
def test_review_falls_due_by_the_stage_cadence(flow: SEFlow, steps: Steps, state: str) -> None:
    case = steps.to(state)
    assert case.review_due == START.date() + dt.timedelta(days=CADENCE[state])


def test_review_due_counts_from_the_last_contact(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = flow.refer("Alex Doe", source="GP", effective_at=days_ago(20)).case
    case = flow.advance(case.id, "engage", effective_at=days_ago(19)).case
    assert case.review_due == days_ago(19).date() + dt.timedelta(days=14)
    # A note is not contact; a review meeting is, even back-dated.
    flow.record(case.id, "note", text="x")
    assert flow.case(case.id).review_due == case.review_due
    flow.record(case.id, "review", summary="doing well", effective_at=days_ago(2))
    assert flow.case(case.id).review_due == days_ago(2).date() + dt.timedelta(days=14)
    # An older contact recorded late does not pull the date back.
    flow.record(case.id, "first_meeting", effective_at=days_ago(15))
    assert flow.case(case.id).review_due == days_ago(2).date() + dt.timedelta(days=14)


def test_due_and_overdue(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    referred = steps.refer("Ann")  # due START + 2
    searching = steps.to("employer_engagement", steps.refer("Ben", coach="kim"))  # START + 7
    paused = flow.pause(
        steps.refer("Cat").id, reason="exams", review_date=START.date() + dt.timedelta(days=20)
    ).case
    assert flow.due() == []
    assert flow.cases(overdue=True) == []

    clock.advance(days=3)
    ids = [c.id for c in flow.due()]
    assert ids == [referred.id]
    assert [c.id for c in flow.cases(overdue=True)] == [referred.id]
    assert [c.id for c in flow.due(within_days=4)] == [referred.id, searching.id]
    assert [c.id for c in flow.due(coach="kim", within_days=4)] == [searching.id]
    assert [c.id for c in flow.due(as_of=START.date() + dt.timedelta(days=20))] == [
        referred.id,
        searching.id,
        paused.id,
    ]

    clock.advance(days=5)  # START + 8: both active ones overdue, the paused one not yet
    assert [c.id for c in flow.cases(overdue=True)] == [referred.id, searching.id]
    flow.record(searching.id, "review", summary="two applications in")
    flow.withdraw(referred.id, reason="moved abroad")
    assert flow.cases(overdue=True) == []
    assert flow.case(searching.id).review_due == clock.now.date() + dt.timedelta(days=7)


# --- records -----------------------------------------------------------------------------


def test_record_fields_are_typed_from_text(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    offer = flow.record(
        case.id,
        "job_offer",
        employer=" Corner Shop ",
        start_date="2026-05-25",
        hours_per_week="16.5",
        hourly_pay="12.80",
    ).record
    assert dict(offer.fields) == {
        "employer": "Corner Shop",
        "start_date": dt.date(2026, 5, 25),
        "hours_per_week": Decimal("16.5"),
        "hourly_pay": Decimal("12.80"),
    }
    consent = flow.record(case.id, "consent", participation="yes", data_processing="No").record
    assert (consent["participation"], consent["data_processing"]) == (True, False)
    profile = flow.record(case.id, "vocational_profile", job_goals="retail; ; admin ").record
    assert profile["job_goals"] == ("retail", "admin")
    plan = flow.record(
        case.id, "fading_plan", steps="2026-07-01 fewer visits; 2026-08-01 phone"
    ).record
    assert plan["steps"] == ("2026-07-01 fewer visits", "2026-08-01 phone")
    # Read back from the store, the types are the same.
    stored = {r.seq: r for r in flow.records(case.id)}
    assert stored[offer.seq].fields == offer.fields
    assert stored[profile.seq]["job_goals"] == ("retail", "admin")


def test_record_fields_are_typed_from_python_values(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    offer = flow.record(
        case.id,
        "job_offer",
        {
            "employer": "Corner Shop",
            "start_date": dt.datetime(2026, 5, 25, 8, tzinfo=dt.UTC),
            "hours_per_week": 16,
            "hourly_pay": Decimal("12.80"),
        },
    ).record
    assert offer["start_date"] == dt.date(2026, 5, 25)
    assert offer["hours_per_week"] == Decimal(16)
    profile = flow.record(case.id, "vocational_profile", job_goals=["retail", "admin"]).record
    assert profile["job_goals"] == ("retail", "admin")
    agreed = flow.record(
        case.id, "participant_agreement", employer="Corner Shop", agrees=True
    ).record
    assert agreed["agrees"] is True


def test_a_correction_supersedes_and_both_are_kept(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("job_matching")
    offer = {"employer": "Corner Shop", "start_date": "2026-05-25", "hours_per_week": "16"}
    wrong = flow.record(case.id, "job_offer", offer, hourly_pay="9").record
    assert failures(flow.check(case.id, "start_job").results)["minimum_wage:job_offer"] == (
        "pay £9.00 an hour is below the minimum wage of £12.71 in force on 2026-05-25 "
        "(since 2026-04-01)"
    )
    right = flow.record(case.id, "job_offer", offer, hourly_pay="13", supersedes=wrong.seq).record
    assert right.supersedes == wrong.seq
    current = [r.seq for r in flow.records(case.id) if r.kind == "job_offer"]
    kept = flow.records(case.id, include_superseded=True)
    assert (current, [r.seq for r in kept if r.kind == "job_offer"]) == (
        [right.seq],
        [wrong.seq, right.seq],
    )
    assert flow.history(case.id)[-1].payload["record"]["supersedes"] == wrong.seq
    steps.soft(case.id, "job_matching")
    assert flow.check(case.id, "start_job").allowed

    # A superseded record cannot be superseded again; nor can a record of another kind.
    version = flow.case(case.id).version
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "job_offer", offer, hourly_pay="14", supersedes=wrong.seq)
    assert "no current record" in bad.value.problems["supersedes"]
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "note", text="typo", supersedes=right.seq)
    assert bad.value.problems == {"supersedes": f"record {right.seq} is a job_offer, not a note"}
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "note", text="typo", supersedes=99999)
    assert "no current record 99999" in bad.value.problems["supersedes"]
    assert flow.case(case.id).version == version


def test_the_open_caseload_is_paged_by_the_store(flow: se_flow.SEFlow, steps: Steps) -> None:
    """`status="open"` with a limit gives the first open cases, however many closed ones come
    before them (the store filters and limits; nothing is fetched to be thrown away)."""
    for n in range(3):
        flow.withdraw(steps.refer(f"Gone {n}").id, reason="moved on")
    kept = [steps.refer(f"Kept {n}").id for n in range(2)]
    assert [c.id for c in flow.cases(status="open", limit=1)] == kept[:1]
    assert [c.id for c in flow.cases(status="open")] == kept
    assert len(flow.cases(status="all")) == len(flow.cases()) == 5
    with pytest.raises(se_flow.InvalidInput, match="statuses: open, active, paused, closed, all"):
        flow.cases(status="shut")
