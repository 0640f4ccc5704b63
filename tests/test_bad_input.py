"""Every kind of bad input gets a typed error naming what is at fault, and writes nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import START, Clock, Steps

import se_flow
from se_flow import Case, SEFlow


def _state(flow: SEFlow) -> tuple[Any, ...]:
    cases = flow.cases()
    return (
        len(flow.events()),
        [(c.id, c.version, c.state, c.status, c.review_due) for c in cases],
        sum(len(flow.records(c.id, include_superseded=True)) for c in cases),
    )


@contextlib.contextmanager
def nothing_written(flow: SEFlow) -> Iterator[None]:
    """The block must raise, and leave no event, case change or record behind."""
    before = _state(flow)
    yield
    assert _state(flow) == before
    assert flow.verify().ok


@pytest.fixture
def case(flow: SEFlow, steps: Steps) -> Case:
    case = steps.to("customer_engagement")
    flow.record(case.id, "note", text="first call went well")
    return flow.case(case.id)


@pytest.fixture
def closed(flow: SEFlow, steps: Steps) -> Case:
    return flow.withdraw(steps.refer("Closed Case").id, reason="moved away").case


@pytest.fixture
def paused(flow: SEFlow, steps: Steps) -> Case:
    case = steps.to("customer_engagement", steps.refer("Paused Case"))
    return flow.pause(
        case.id, reason="surgery", review_date=START.date() + dt.timedelta(days=30)
    ).case


# --- the error tree ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "builtin", "exit_code"),
    [
        (se_flow.WorkflowInvalid, ValueError, 3),
        (se_flow.CaseNotFound, LookupError, 4),
        (se_flow.StaffNotFound, LookupError, 4),
        (se_flow.UnknownTrigger, LookupError, 4),
        (se_flow.UnknownRecordKind, LookupError, 4),
        (se_flow.InvalidRecord, ValueError, 5),
        (se_flow.FutureEffectiveDate, ValueError, 5),
        (se_flow.InvalidInput, ValueError, 5),
        (se_flow.TriggerNotAvailable, se_flow.TransitionRefused, 6),
        (se_flow.CaseClosed, se_flow.TransitionRefused, 6),
        (se_flow.CasePaused, se_flow.TransitionRefused, 6),
        (se_flow.GuardsFailed, se_flow.TransitionRefused, 6),
        (se_flow.PermissionDenied, PermissionError, 7),
        (se_flow.CaseConflict, se_flow.SEFlowError, 8),
    ],
)
def test_each_error_subclasses_the_nearest_builtin_with_its_exit_code(
    error: type[se_flow.SEFlowError], builtin: type[Exception], exit_code: int
) -> None:
    assert issubclass(error, builtin)
    assert issubclass(error, se_flow.SEFlowError)
    assert error.exit_code == exit_code


# --- not found -----------------------------------------------------------------------------

ON_A_MISSING_CASE: dict[str, Callable[[SEFlow], Any]] = {
    "case": lambda f: f.case("C-404"),
    "records": lambda f: f.records("C-404"),
    "history": lambda f: f.history("C-404"),
    "check": lambda f: f.check("C-404", "engage"),
    "available": lambda f: f.available("C-404"),
    "record": lambda f: f.record("C-404", "note", text="hello").record,
    "advance": lambda f: f.advance("C-404", "engage").case,
    "pause": lambda f: f.pause("C-404", reason="x", review_date=START.date()).case,
    "resume": lambda f: f.resume("C-404").case,
    "withdraw": lambda f: f.withdraw("C-404", reason="x").case,
    "close": lambda f: f.close("C-404", "other").case,
    "reopen": lambda f: f.reopen("C-404", source="GP").case,
    "assign": lambda f: f.assign("C-404", "kim", actor="lee").case,
}


@pytest.mark.parametrize("call", list(ON_A_MISSING_CASE))
def test_unknown_case(flow: SEFlow, case: Case, call: str) -> None:
    with nothing_written(flow), pytest.raises(se_flow.CaseNotFound) as missing:
        ON_A_MISSING_CASE[call](flow)
    assert missing.value.case_id == "C-404"
    assert "C-404" in str(missing.value)
    assert missing.value.exit_code == 4
    assert isinstance(missing.value, LookupError)


@pytest.mark.parametrize("call", ["advance", "check"])
def test_unknown_trigger(flow: SEFlow, case: Case, call: str) -> None:
    with nothing_written(flow), pytest.raises(se_flow.UnknownTrigger) as unknown:
        getattr(flow, call)(case.id, "teleport")
    assert unknown.value.trigger == "teleport"
    assert {"engage", "start_job", "withdraw", "close"} <= set(unknown.value.known)
    assert "'teleport'" in str(unknown.value)
    assert unknown.value.exit_code == 4


def test_unknown_record_kind(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.UnknownRecordKind) as unknown:
        flow.record(case.id, "horoscope", sign="leo")
    assert unknown.value.kind == "horoscope"
    assert {"job_offer", "note", "consent"} <= set(unknown.value.known)
    assert "'horoscope'" in str(unknown.value)


def test_unknown_actor(flow: SEFlow, case: Case, closed: Case) -> None:
    """Someone not on the staff list is refused as a permission, for writes and reads alike,
    before anything else is looked up (a stranger does not learn whether C-404 exists)."""
    attempts: list[Callable[[], Any]] = [
        lambda: flow.record(case.id, "note", text="hi", actor="zed").record,
        lambda: flow.record("C-404", "note", text="hi", actor="zed").record,
        lambda: flow.advance(case.id, "start_profiling", actor="zed").case,
        lambda: flow.withdraw(case.id, reason="x", actor="zed").case,
        lambda: flow.refer("New Person", source="GP", actor="zed").case,
        lambda: flow.reopen(closed.id, source="GP", actor="zed").case,
        lambda: flow.assign(case.id, "kim", actor="zed").case,
        lambda: flow.check(case.id, "start_profiling", actor="zed"),
        lambda: flow.case("C-404", actor="zed"),
        lambda: flow.history("C-404", actor="zed"),
        lambda: flow.cases(actor="zed"),
    ]
    for attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.PermissionDenied) as unknown:
            attempt()
        assert unknown.value.actor == "zed"
        assert str(unknown.value) == "zed is not on the staff list"
        assert unknown.value.exit_code == 7


def test_unknown_staff_member_named_as_a_target(flow: SEFlow, case: Case) -> None:
    """A coach to assign who does not exist is not found (exit 4): the lookup failed, the
    actor is allowed."""
    attempts: list[Callable[[], Any]] = [
        lambda: flow.refer("New Person", source="GP", coach="zed").case,
        lambda: flow.assign(case.id, "zed", actor="lee").case,
        lambda: flow.staff_member("zed"),
    ]
    for attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.StaffNotFound) as unknown:
            attempt()
        assert unknown.value.staff_id == "zed"
        assert "'zed'" in str(unknown.value)


def test_no_actor_at_all(tmp_path: Path, flow: SEFlow, case: Case, clock: Clock) -> None:
    with (
        se_flow.open(tmp_path / "t.db", clock=clock) as anonymous,
        nothing_written(flow),
        pytest.raises(se_flow.InvalidInput, match="no actor"),
    ):
        anonymous.record(case.id, "note", text="who am I")


# --- invalid records -----------------------------------------------------------------------


def test_every_field_at_fault_is_named(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(
            case.id,
            "job_offer",
            employer="Corner Shop",
            start_date="next tuesday",
            hours_per_week="lots",
            salary="20000",
        )
    assert bad.value.problems == {
        "salary": "not a field of job_offer "
        "(fields: age_band, employer, hourly_pay, hours_per_week, job, kind, permanent, role, "
        "start_date)",
        "start_date": "expected a date as YYYY-MM-DD, got 'next tuesday'",
        "hours_per_week": "expected a number such as 12.50, got 'lots'",
        "hourly_pay": "required",
    }
    assert (bad.value.kind, bad.value.case_id) == ("job_offer", case.id)
    message = str(bad.value)
    for name in ("salary", "start_date", "hours_per_week", "hourly_pay", case.id):
        assert name in message
    assert bad.value.exit_code == 5


@pytest.mark.parametrize(
    ("kind", "fields", "field", "problem"),
    [
        ("consent", {"participation": "perhaps", "data_processing": True}, "participation",
         "expected yes or no (true/false), got 'perhaps'"),
        ("consent", {"participation": 1, "data_processing": True}, "participation",
         "expected yes or no (true/false), got 1"),
        ("informed_choice", {"decision": "maybe"}, "decision",
         "expected one of join, not_now, decline; got 'maybe'"),
        ("job_analysis", {"employer": "Shop", "role": "   "}, "role", "required"),
        ("note", {"text": 42}, "text", "expected text, got int"),
        ("note", {}, "text", "required"),
        ("benefits_advice", {"offered": None}, "offered", "required"),
        ("vocational_profile", {"job_goals": " ; "}, "job_goals", "must list at least one item"),
        ("vocational_profile", {"job_goals": 7}, "job_goals",
         "expected a list (or text separated by ;), got int"),
        ("vocational_profile", {"job_goals": ["a"], "preferred_hours": True}, "preferred_hours",
         "expected a number, got true/false"),
        ("vocational_profile", {"job_goals": ["a"], "preferred_hours": "-4"}, "preferred_hours",
         "must not be negative, got '-4'"),
        ("vocational_profile", {"job_goals": ["a"], "preferred_hours": "NaN"}, "preferred_hours",
         "expected a finite number, got 'NaN'"),
        ("fading_plan", {"steps": "soon: fewer visits"}, "steps",
         "each step starts with its date (YYYY-MM-DD what happens); 'soon: fewer visits' does not"),
        ("fading_plan", {"steps": ["2026-07-01"]}, "steps",
         "step '2026-07-01' has a date but says nothing about what happens"),
        ("outreach_attempt", {"channel": "pigeon"}, "channel",
         "expected one of phone, text, email, letter, visit, other; got 'pigeon'"),
    ],
)  # fmt: skip
def test_wrong_values_are_refused_naming_the_field(
    flow: SEFlow, case: Case, kind: str, fields: dict[str, Any], field: str, problem: str
) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, kind, fields)
    assert bad.value.problems == {field: problem}
    assert f"{field}: {problem}" in str(bad.value)


OFFER = {"employer": "Mill", "start_date": "2026-07-01", "hours_per_week": "16",
         "hourly_pay": "12.80"}  # fmt: skip


@pytest.mark.parametrize("field", ["hourly_pay", "hours_per_week"])
@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("1e999999999", "is too large: at most 12 digits before the point, got '1e999999999'"),
        ("1000000000000", "is too large: at most 12 digits before the point, got '1000000000000'"),
        ("1e-999999999", "has too many decimal places: at most 4, got '1e-999999999'"),
        ("12.80001", "has too many decimal places: at most 4, got '12.80001'"),
    ],
)
def test_a_huge_or_over_precise_number_is_refused_naming_the_field(
    flow: SEFlow, case: Case, field: str, given: str, problem: str
) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "job_offer", {**OFFER, field: given})
    assert bad.value.problems == {field: problem}
    assert bad.value.exit_code == 5


def test_numbers_inside_the_bounds_keep_their_value(flow: SEFlow, case: Case) -> None:
    made = flow.record(
        case.id, "job_offer", {**OFFER, "hours_per_week": "1E+1", "hourly_pay": "999999999999.5000"}
    ).record
    assert str(made.fields["hours_per_week"]) == "10"  # written out, not as an exponent
    assert made.fields["hourly_pay"] == Decimal("999999999999.5")
    assert flow.records(case.id)[-1].fields == made.fields


def test_a_bad_referral_opens_no_case(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as bad:
        flow.refer("New Person", referral={"colour": "red"})
    assert set(bad.value.problems) == {"colour", "source"}
    # The refusal names no case: the id the referral would have had was never made.
    assert bad.value.case_id is None and "C-" not in str(bad.value)
    with nothing_written(flow), pytest.raises(se_flow.PermissionDenied) as denied:
        flow.refer("New Person", source="GP", actor="ava")
    assert "C-" not in str(denied.value) and "not change cases" in str(denied.value)
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="needs a name"):
        flow.refer("  ", source="GP")
    # A refused reopening names the case being reopened.
    closed = flow.withdraw(flow.refer("Gone Away", source="GP").case.id, reason="moved").case
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as bad:
        flow.reopen(closed.id, referral={"colour": "red"})
    assert bad.value.case_id == closed.id and f"on case {closed.id}:" in str(bad.value)


# --- refused moves -------------------------------------------------------------------------


def test_trigger_not_available_lists_what_is_possible(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.TriggerNotAvailable) as refused:
        flow.advance(case.id, "start_job")
    assert (refused.value.case_id, refused.value.trigger) == (case.id, "start_job")
    assert refused.value.state == "customer_engagement"
    assert refused.value.available == (
        "start_profiling",
        "pause",
        "withdraw",
        "close_disengaged",
        "close",
    )
    assert "possible now: start_profiling, pause, withdraw" in str(refused.value)
    with nothing_written(flow), pytest.raises(se_flow.TriggerNotAvailable):
        flow.resume(case.id)


def test_a_phase_trigger_is_not_available_from_the_other_phase(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("career_development")
    with nothing_written(flow), pytest.raises(se_flow.TriggerNotAvailable) as refused:
        flow.advance(case.id, "begin_career_development")
    assert refused.value.state == "in_work_support (career_development)"
    assert "begin_career_development" not in refused.value.available
    assert {"end_job", "complete"} <= set(refused.value.available)


def test_failed_guards_write_nothing(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_profiling")
    assert refused.value.case_id == case.id
    assert len(refused.value.failed) == 4


def test_a_coach_override_writes_nothing(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("customer_engagement")
    steps.hard(case.id, "customer_engagement")
    with nothing_written(flow), pytest.raises(se_flow.PermissionDenied):
        flow.advance(case.id, "start_profiling", actor="kim", override="plan agreed")


def test_an_override_with_nothing_to_override_is_refused_not_dropped(
    flow: SEFlow, case: Case
) -> None:
    # Every guard of engage passes on a referred case: an override would be dropped from
    # the log (or show overriding nothing). Refused, naming it; the move itself then goes.
    referred = flow.refer("Dee Park", source="GP").case
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
        flow.advance(referred.id, "engage", actor="ada", override="because")
    assert refused.value.field == "override" and "nothing to override" in str(refused.value)
    assert flow.advance(referred.id, "engage", actor="ada").event.override is None


def test_future_effective_date(flow: SEFlow, case: Case, closed: Case, clock: Clock) -> None:
    later = clock.now + dt.timedelta(minutes=1)
    tomorrow = clock.now.date() + dt.timedelta(days=1)
    attempts: list[Callable[[], Any]] = [
        lambda: flow.record(case.id, "note", text="x", effective_at=later).record,
        lambda: flow.record(case.id, "note", text="x", effective_at=tomorrow).record,
        lambda: (
            flow.advance(
                case.id, "pause", reason="x", review_date=tomorrow, effective_at=later
            ).case
        ),
        lambda: flow.withdraw(case.id, reason="x", effective_at=tomorrow).case,
        lambda: flow.refer("New Person", source="GP", effective_at=tomorrow).case,
        lambda: flow.reopen(closed.id, source="GP", effective_at=later).case,
    ]
    for attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.FutureEffectiveDate) as future:
            attempt()
        assert future.value.now == clock.now.isoformat()
        assert "in the future" in str(future.value)
    # Said as a person would: a later day by its date, later today to the minute.
    with pytest.raises(se_flow.FutureEffectiveDate) as future:
        flow.record(case.id, "note", text="x", effective_at=tomorrow)
    assert f"{tomorrow.isoformat()} is in the future (today is {clock.now.date()})" in str(
        future.value
    )
    with pytest.raises(se_flow.FutureEffectiveDate) as future:
        flow.record(case.id, "note", text="x", effective_at=later)
    now, then = clock.now.isoformat(timespec="minutes"), later.isoformat(timespec="minutes")
    assert f"{then} is in the future (now is {now})" in str(future.value)
    assert ":00.000" not in str(future.value) and "." not in str(future.value).split(";")[0]
    # Today (as a date: its first moment) and now itself are fine.
    flow.record(case.id, "note", text="x", effective_at=clock.now.date())
    flow.record(case.id, "note", text="x", effective_at=clock.now)


def test_an_effective_time_needs_a_time_zone(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="no time zone"):
        flow.record(case.id, "note", text="x", effective_at=dt.datetime(2026, 5, 1, 9))


def test_acting_on_a_closed_case(flow: SEFlow, closed: Case) -> None:
    attempts: dict[str, Callable[[], Any]] = {
        "engage": lambda: flow.advance(closed.id, "engage").case,
        "withdraw": lambda: flow.withdraw(closed.id, reason="again").case,
        "close": lambda: flow.close(closed.id, "other", actor="lee").case,
        "pause": lambda: flow.pause(closed.id, reason="x", review_date=START.date()).case,
        "record note": lambda: flow.record(closed.id, "note", text="late note").record,
        "assign": lambda: flow.assign(closed.id, "kim", actor="lee").case,
    }
    for trigger, attempt in attempts.items():
        with nothing_written(flow), pytest.raises(se_flow.CaseClosed) as refused:
            attempt()
        assert (refused.value.case_id, refused.value.trigger) == (closed.id, trigger)
        assert "reopen" in str(refused.value)
    assert flow.available(closed.id) == []


def test_acting_on_a_paused_case(flow: SEFlow, steps: Steps, paused: Case) -> None:
    steps.hard(paused.id, "customer_engagement")
    steps.soft(paused.id, "customer_engagement")
    paused = flow.case(paused.id)
    for trigger in ("start_profiling", "pause", "revise_goals"):
        refusal = se_flow.TriggerNotAvailable if trigger == "revise_goals" else se_flow.CasePaused
        with nothing_written(flow), pytest.raises(refusal) as refused:
            flow.advance(paused.id, trigger, reason="x", review_date=START.date())
        assert refused.value.case_id == paused.id
    with pytest.raises(se_flow.CasePaused) as refused:
        flow.advance(paused.id, "start_profiling")
    assert f"case {paused.id} is paused: resume it before 'start_profiling'" == str(refused.value)


def test_an_auditor_cannot_write(flow: SEFlow, case: Case, closed: Case) -> None:
    attempts: list[Callable[[], Any]] = [
        lambda: flow.record(case.id, "note", text="looks fine", actor="ava").record,
        lambda: flow.advance(case.id, "start_profiling", actor="ava").case,
        lambda: flow.pause(case.id, reason="x", review_date=START.date(), actor="ava").case,
        lambda: flow.withdraw(case.id, reason="x", actor="ava").case,
        lambda: flow.close(case.id, "other", actor="ava").case,
        lambda: flow.refer("New Person", source="GP", actor="ava").case,
        lambda: flow.reopen(closed.id, source="GP", actor="ava").case,
        lambda: flow.assign(case.id, "kim", actor="ava").case,
        lambda: flow.add_staff("eve", "Eve", "coach", actor="ava"),
    ]
    for attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.PermissionDenied) as denied:
            attempt()
        assert denied.value.actor == "ava"
        assert isinstance(denied.value, PermissionError)
        assert denied.value.exit_code == 7
    # Reading and checking are what auditors are for.
    assert flow.check(case.id, "start_profiling", actor="ava").failed
    assert flow.history(case.id) and flow.verify().ok


def test_staff_who_left_cannot_write(flow: SEFlow, case: Case) -> None:
    flow.add_staff("kim", "Kim Coach", "coach", actor="ada", active=False)
    with nothing_written(flow), pytest.raises(se_flow.PermissionDenied, match="no longer active"):
        flow.record(case.id, "note", text="x", actor="kim")


def test_a_stale_version_is_a_conflict(flow: SEFlow, case: Case) -> None:
    stale = case.version - 1
    with nothing_written(flow), pytest.raises(se_flow.CaseConflict) as conflict:
        flow.record(case.id, "note", text="x", expected_version=stale)
    assert (conflict.value.case_id, conflict.value.expected_version) == (case.id, stale)
    assert conflict.value.actual_version == case.version
    with nothing_written(flow), pytest.raises(se_flow.CaseConflict):
        flow.withdraw(case.id, reason="x", expected_version=stale)
    assert flow.record(case.id, "note", text="x", expected_version=case.version).record


def test_unknown_stage_or_status_in_a_caseload_query(flow: SEFlow, case: Case) -> None:
    with pytest.raises(se_flow.InvalidInput, match="unknown stage 'limbo'"):
        flow.cases(stage="limbo")
    with pytest.raises(se_flow.InvalidInput, match="unknown status 'asleep'"):
        flow.cases(status="asleep")
    assert [c.id for c in flow.cases(stage="customer_engagement")] == [case.id]


def test_a_move_cannot_take_effect_before_the_stage_was_entered(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    entered = flow.case(case.id).stage_entered_at
    with pytest.raises(se_flow.InvalidInput, match="before the case entered Referred"):
        flow.advance(case.id, "engage", effective_at=entered - dt.timedelta(days=3))
    assert flow.case(case.id) == case


@pytest.mark.parametrize("coach", ["ava", "ada"])
def test_cases_go_only_to_coaches_and_team_leaders(flow: SEFlow, steps: Steps, coach: str) -> None:
    case = steps.refer()
    with pytest.raises(se_flow.InvalidInput, match=f"{coach} cannot hold cases"):
        flow.refer("Someone", source="GP", coach=coach)
    with pytest.raises(se_flow.InvalidInput, match=f"{coach} cannot hold cases"):
        flow.assign(case.id, coach)
    assert flow.case(case.id) == case
    assert len(flow.cases()) == 1


def test_reopen_checks_an_explicit_coach_as_refer_does(flow: SEFlow, steps: Steps) -> None:
    closed = steps.refer()
    flow.withdraw(closed.id, reason="moving away")
    flow.add_staff("kim", "Kim Coach", "coach", active=False, actor="ada")
    with nothing_written(flow), pytest.raises(se_flow.StaffNotFound) as unknown:
        flow.reopen(closed.id, source="GP", coach="zed")
    assert unknown.value.staff_id == "zed" and unknown.value.exit_code == 4
    for coach, why in (("ava", "an auditor"), ("ada", "an admin"), ("kim", "no longer active")):
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
            flow.reopen(closed.id, source="GP", coach=coach)
        assert refused.value.message == f"{coach} cannot hold cases: they are {why}"
        assert refused.value.exit_code == 5
    assert flow.reopen(closed.id, source="GP", coach="lee").case.coach == "lee"


# --- values of the wrong type from an embedding app -------------------------------------------


@pytest.mark.parametrize("given", ["2026-05-01", 20260501, 1.5])
def test_a_date_given_as_anything_but_a_date_is_refused_naming_it(
    flow: SEFlow, case: Case, given: Any
) -> None:
    calls: list[tuple[str, Callable[[], object]]] = [
        ("effective_at", lambda: flow.record(case.id, "note", text="x", effective_at=given)),
        ("effective_at", lambda: flow.advance(case.id, "start_profiling", effective_at=given)),
        ("review date", lambda: flow.pause(case.id, reason="x", review_date=given)),
        ("as_of", lambda: flow.due_items(as_of=given)),
        (
            "date of birth",
            lambda: flow.refer(se_flow.PersonalDetails(name="B", date_of_birth=given), source="GP"),
        ),
    ]
    for field, call in calls:
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
            call()
        assert refused.value.field == field
        assert f"{field} must be a date or time value" in str(refused.value)
        assert type(given).__name__ in str(refused.value)


def test_a_date_of_birth_still_to_come_is_refused(flow: SEFlow, clock: Clock) -> None:
    tomorrow = clock.now.date() + dt.timedelta(days=1)
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="in the future"):
        flow.refer(se_flow.PersonalDetails(name="B", date_of_birth=tomorrow), source="GP")
    today = se_flow.PersonalDetails(name="B", date_of_birth=clock.now.date())
    assert flow.refer(today, source="GP").case


@pytest.mark.parametrize("version", ["3", -1, True, 2.0])
def test_an_expected_version_that_is_no_version_is_bad_input_not_a_conflict(
    flow: SEFlow, case: Case, version: Any
) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
        flow.record(case.id, "note", text="x", expected_version=version)
    assert refused.value.field == "expected_version"
    assert not isinstance(refused.value, se_flow.CaseConflict)


def test_a_person_that_is_no_person_is_refused(flow: SEFlow) -> None:
    for person in (None, 5, ["Bea"]):
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="person must be"):
            flow.refer(person, source="GP")  # type: ignore[arg-type]
    with pytest.raises(se_flow.InvalidInput, match="details must be"):
        flow.duplicates(5)  # type: ignore[arg-type]


def test_a_blank_or_non_text_stage_filter_names_no_stage(flow: SEFlow, case: Case) -> None:
    for stage in ("", "   "):
        with pytest.raises(se_flow.InvalidInput, match="unknown stage"):
            flow.cases(stage=stage)
    with pytest.raises(se_flow.InvalidInput, match="stage must be text"):
        flow.cases(stage=5)  # type: ignore[arg-type]


def test_a_list_for_a_coach_nobody_knows_says_so(flow: SEFlow, case: Case) -> None:
    lists: list[Callable[[], object]] = [
        lambda: flow.cases(coach="nobody"),
        lambda: flow.due(coach="nobody"),
        lambda: flow.due_items(coach="nobody"),
        lambda: list(flow.due_pages(coach="nobody")),
    ]
    for call in lists:
        with pytest.raises(se_flow.StaffNotFound, match="no staff member 'nobody', so no cases"):
            call()
    assert flow.cases(coach=case.coach)


def test_library_arguments_of_the_wrong_type_are_refused_by_name(
    flow: SEFlow, case: Case, tmp_path: Path
) -> None:
    calls: list[tuple[str, Callable[[], object]]] = [
        ("path", lambda: se_flow.open(None, actor="ada")),  # type: ignore[arg-type]
        ("stages", lambda: se_flow.open(":memory:", stages=5)),  # type: ignore[arg-type]
        ("clock", lambda: se_flow.open(":memory:", clock=5)),  # type: ignore[arg-type]
        ("checkpoint", lambda: flow.verify(checkpoint={"seq": 1})),  # type: ignore[arg-type]
        ("out_dir", lambda: flow.export(5)),  # type: ignore[arg-type]
        ("path", lambda: flow.verify_export(5)),  # type: ignore[arg-type]
        ("after_seq", lambda: flow.events(after_seq="3")),  # type: ignore[arg-type]
        ("cases", lambda: flow.import_history(str(tmp_path / "old.jsonl"))),  # type: ignore[arg-type]
        ("lines", lambda: flow.import_lines(5)),  # type: ignore[arg-type]
        ("busy_timeout", lambda: se_flow.open(tmp_path / "new.db", busy_timeout="10")),  # type: ignore[arg-type]
        ("workflow", lambda: se_flow.open(":memory:", workflow="x")),  # type: ignore[arg-type]
        ("seal_key", lambda: se_flow.open(":memory:", seal_key=5)),  # type: ignore[arg-type]
        ("staff id", lambda: flow.staff_member(5)),  # type: ignore[arg-type]
        ("key", lambda: flow.verify(key=5)),  # type: ignore[arg-type]
        ("path", lambda: flow.append_checkpoint(5, actor="ada")),  # type: ignore[arg-type]
        ("checkpoint_file", lambda: flow.change_settings(checkpoint_file=5, actor="ada")),  # type: ignore[arg-type]
        ("participant_ids", lambda: flow.names(5)),  # type: ignore[arg-type]
        # One id alone is a string, an iterable of its letters: "no case 'C'".
        ("case_ids", lambda: flow.case_names(case.id)),
    ]
    for field, call in calls:
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
            call()
        assert refused.value.field == field, (field, refused.value)
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="name must be text"):
        flow.add_staff("x2", None, "coach")  # type: ignore[arg-type]
    assert not (tmp_path / "new.db").exists()  # a refused open leaves no empty database
    wrong = se_flow.open(":memory:", clock=lambda: "2026-01-01")  # type: ignore[arg-type, return-value]
    with pytest.raises(se_flow.InvalidInput, match="the clock must return an aware datetime"):
        wrong.add_staff("ada", "Ada", "admin", actor="setup")


def test_an_import_item_that_is_no_case_is_refused_as_a_case(flow: SEFlow) -> None:
    with nothing_written(flow), pytest.raises(se_flow.ImportRefused, match="case 1 of the import"):
        flow.import_history(["OLD-1"], by="ada")  # type: ignore[list-item]
    with nothing_written(flow), pytest.raises(se_flow.ImportRefused, match="line 1: not text"):
        flow.import_lines([5], by="ada")  # type: ignore[list-item]
    report = flow.import_history(["OLD-1"], by="ada", skip_bad=True)  # type: ignore[list-item]
    assert report.imported == () and "not an ImportedCase" in report.skipped[0].message


# --- yes-or-no arguments, empty actors, days and mappings from code ----------------------


@pytest.mark.parametrize("given", ["no", "false", 0, 1, 0.0, None])
def test_a_yes_or_no_argument_takes_only_a_bool(flow: SEFlow, case: Case, given: object) -> None:
    # "no" is truthy: taken as given, it granted an auditor every free text, turned on the
    # shared terminal and confirmed deactivating a coach with open cases.
    attempts: list[tuple[str, Callable[[], Any]]] = [
        ("granted", lambda: flow.grant_texts("ava", reason="r", granted=given, actor="ada")),  # type: ignore[arg-type]
        ("confirm", lambda: flow.edit_staff("sam", active=False, confirm=given, actor="ada")),  # type: ignore[arg-type]
        ("active", lambda: flow.add_staff("pat", "Pat", "coach", active=given, actor="ada")),  # type: ignore[arg-type]
        ("skip_bad", lambda: flow.import_history([], skip_bad=given)),  # type: ignore[arg-type]
        ("overdue", lambda: flow.cases(overdue=given)),  # type: ignore[arg-type]
    ]
    if given is not None:  # None means "as it is" for a setting
        attempts.append(
            ("shared_terminal", lambda: flow.change_settings(shared_terminal=given, actor="ada"))  # type: ignore[arg-type]
        )
    for name, attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
            attempt()
        assert refused.value.field == name and "True or False" in str(refused.value)
    assert not flow.settings().shared_terminal
    assert flow.staff_member("sam").active


def test_an_empty_actor_is_refused_not_the_default(flow: SEFlow) -> None:
    # An app passing "" for a user it could not identify must not write as the default actor.
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="no actor"):
        flow.refer("Quinn", source="GP", actor="")


def test_a_day_given_as_a_datetime_is_kept_as_its_day(flow: SEFlow, case: Case) -> None:
    # A date of birth kept as a datetime made the participant unreadable for good.
    born = dt.datetime(1990, 1, 1, 12, tzinfo=dt.UTC)
    done = flow.refer(se_flow.PersonalDetails(name="Jo Bloggs", date_of_birth=born), source="GP")
    details = flow.participant(done.case.participant_id, actor="lee").details
    assert details is not None and details.date_of_birth == dt.date(1990, 1, 1)
    assert [p.participant_id for p in flow.find("Jo Bloggs", actor="lee")]
    review = dt.datetime(2030, 1, 1, 9, tzinfo=dt.UTC)
    paused = flow.pause(case.id, reason="in hospital", review_date=review)
    assert paused.case.review_due == dt.date(2030, 1, 1)
    assert flow.verify().ok


@pytest.mark.parametrize("given", [["text", "x"], "hello", 5])
def test_fields_and_referrals_not_mappings_are_refused(
    flow: SEFlow, case: Case, closed: Case, given: object
) -> None:
    attempts: list[tuple[str, Callable[[], object]]] = [
        ("fields", lambda: flow.record(case.id, "note", given)),  # type: ignore[arg-type]
        ("referral", lambda: flow.refer("New Person", referral=given)),  # type: ignore[arg-type]
        ("referral", lambda: flow.reopen(closed.id, source="GP", referral=given)),  # type: ignore[arg-type]
    ]
    for what, attempt in attempts:
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refused:
            attempt()
        assert refused.value.field == what and "mapping" in str(refused.value)


def test_a_field_given_twice_is_refused_not_overwritten(flow: SEFlow, case: Case) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="given twice"):
        flow.record(case.id, "note", {"text": "a"}, text="b")


def test_an_imported_case_of_the_wrong_shape_is_skipped_not_a_crash(flow: SEFlow) -> None:
    # With skip_bad each chunk commits on its own: a crash on the second case lost the
    # report of the first, committed, and a retry then refused it as already imported.
    def case(ref: Any, **more: Any) -> se_flow.ImportedCase:
        values: dict[str, Any] = {
            "person": se_flow.PersonalDetails(name=f"Person {ref}"),
            "referred_at": dt.date(2026, 1, 12),
            "referral": {"source": "GP"},
            "coach": "sam",
            **more,
        }
        return se_flow.ImportedCase(ref=ref, **values)

    note = se_flow.ImportedRecord("note", ["x"], dt.date(2026, 1, 13))  # type: ignore[arg-type]
    bad = [
        case("B1", commands=(note,)),
        case("B2", referral=["x"]),
        case("B3", commands=None),
        case("B4", commands=("engage",)),
        case(""),
        case(None),
    ]
    report = flow.import_history([case("G1"), *bad], skip_bad=True, chunk=1)
    assert [ref for ref, _ in report.imported] == ["G1"]
    assert [(s.ref, s.command, s.field) for s in report.skipped] == [
        ("B1", 0, "fields"),
        ("B2", None, "referral"),
        ("B3", None, "commands"),
        ("B4", 0, None),
        (None, None, "ref"),
        (None, None, "ref"),
    ]
    assert flow.verify().ok


def test_a_dry_run_refuses_what_the_move_would(flow: SEFlow, case: Case, clock: Clock) -> None:
    # check() said a closure for `other` with no note was allowed; the close then refused.
    close = flow.workflow.trigger_for("close")
    with pytest.raises(se_flow.NoteRequired):
        flow.check(case.id, close, outcome="other")
    with pytest.raises(se_flow.NoteRequired):
        flow.advance(case.id, close, outcome="other")
    assert flow.check(case.id, close, outcome="other", reason="moved to Spain").allowed
    # Nor before the stage was entered, nor in the future.
    with pytest.raises(se_flow.InvalidInput, match="before the case entered"):
        flow.check(
            case.id,
            "start_profiling",
            effective_at=case.stage_entered_at.date() - dt.timedelta(days=1),
        )
    with pytest.raises(se_flow.FutureEffectiveDate):
        flow.check(case.id, "start_profiling", effective_at=clock.now + dt.timedelta(days=1))


def test_refusals_name_the_stage_as_the_stage_data_does(flow: SEFlow, case: Case) -> None:
    # Not "not possible from customer_engagement" or "in_work_support (in_work_support)".
    with pytest.raises(se_flow.TriggerNotAvailable) as refused:
        flow.advance(case.id, "start_job")
    assert "not possible from 1 Customer Engagement;" in str(refused.value)
    assert refused.value.state == "customer_engagement"  # the ids, for scripts
    with pytest.raises(se_flow.TriggerNotAvailable, match="it is not paused: nothing to resume"):
        flow.resume(case.id)
