"""Every guard in the library refuses with a reason a coach can act on, and passes when the
evidence is there. Most run through `flow.check` on the default stage data; branches that
stage data cannot reach call the guard directly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from helpers import START, Steps

import se_flow
from se_flow import Check, GuardResult, Record, Role, SEFlow, Staff
from se_flow._guards import GUARDS, GuardContext

WORKFLOW = se_flow.load_workflow()
TODAY = START.date().isoformat()

TESTED = {
    "record",
    "field_equals",
    "field_nonempty",
    "any_field_true",
    "consent",
    "records_match",
    "minimum_wage",
    "disclosure_consent",
    "reason",
    "review_date",
    "close_reason",
    "role",
    "outreach",
}


def test_every_guard_in_the_library_is_tested_here() -> None:
    assert set(GUARDS) == TESTED


def result(results: Check | Sequence[GuardResult], guard: str) -> tuple[bool, str]:
    every = results.results if isinstance(results, Check) else results
    found = [r for r in every if r.guard == guard]
    assert len(found) == 1, f"{guard} not among {[r.guard for r in every]}"
    return found[0].passed, found[0].reason


def direct(
    guard: str,
    records: Sequence[Record] = (),
    *,
    marks: dict[str, int] | None = None,
    **params: Any,
) -> tuple[bool, str]:
    """Run one guard on hand-made records, for branches stage data cannot reach."""
    case = se_flow.Case(
        id="C-1",
        participant_id="P-1",
        state="job_matching",
        status="active",
        version=len(records) + 1,
        opened_at=START,
        stage_entered_at=START,
    )
    ctx = GuardContext(
        case=case,
        records=tuple(records),
        marks=marks or {},
        actor=Staff("sam", "Sam", Role.COACH),
        now=START,
        effective_at=START,
        workflow=WORKFLOW,
    )
    return GUARDS[guard](ctx, params)


def rec(seq: int, kind: str, **fields: Any) -> Record:
    return Record(
        seq=seq,
        case_id="C-1",
        kind=kind,
        fields=fields,
        effective_at=START,
        recorded_at=START,
        actor="sam",
    )


# --- evidence guards -----------------------------------------------------------------------


def test_record(flow: SEFlow, steps: Steps) -> None:
    # Referred earlier, so evidence may be back-dated (never before the referral).
    case = steps.to("customer_engagement", steps.refer(effective_at=dt.date(2026, 5, 1)))
    guard = "record:first_meeting"
    assert result(flow.check(case.id, "start_profiling"), guard) == (
        False,
        "no first meeting recorded",
    )
    flow.record(case.id, "first_meeting", effective_at=dt.date(2026, 5, 30))
    assert result(flow.check(case.id, "start_profiling"), guard) == (
        True,
        "first meeting recorded on 2026-05-30",
    )


def test_record_since_a_trigger_ignores_what_came_before_it() -> None:
    offer = rec(3, "job_offer", employer="Shop")
    assert direct("record", [offer], marks={"end_job": 5}, kind="job_offer", since=["end_job"]) == (
        False,
        "no job offer recorded since the last end_job",
    )
    assert direct("record", [offer], marks={}, kind="job_offer", since=["end_job"]) == (
        True,
        f"job offer recorded on {TODAY}",
    )
    newer = rec(7, "job_offer", employer="Library")
    assert direct(
        "record", [offer, newer], marks={"end_job": 5}, kind="job_offer", since=["end_job"]
    )[0]


def test_field_equals(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("customer_engagement", steps.refer(effective_at=dt.date(2026, 4, 1)))
    guard = "field_equals:informed_choice"
    assert result(flow.check(case.id, "start_profiling"), guard) == (
        False,
        "no informed choice recorded",
    )
    flow.record(case.id, "informed_choice", decision="not_now")
    assert result(flow.check(case.id, "start_profiling"), guard) == (
        False,
        f"informed choice of {TODAY} has decision = not_now, needs join",
    )
    flow.record(case.id, "informed_choice", decision="join")
    assert result(flow.check(case.id, "start_profiling"), guard) == (
        True,
        f"informed choice of {TODAY} has decision = join",
    )
    # The latest by when it happened counts, not the last one typed in.
    flow.record(case.id, "informed_choice", decision="decline", effective_at=dt.date(2026, 5, 1))
    assert result(flow.check(case.id, "start_profiling"), guard)[0]


def test_field_nonempty(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("vocational_profiling")
    guard = "field_nonempty:vocational_profile"
    assert result(flow.check(case.id, "start_job_search"), guard) == (
        False,
        "no vocational profile recorded",
    )
    flow.record(case.id, "vocational_profile", job_goals="retail; admin")
    assert result(flow.check(case.id, "start_job_search"), guard) == (
        True,
        f"vocational profile of {TODAY} has 2 job goals",
    )
    # The stage data requires job goals; a folder that did not would hit this.
    empty = rec(4, "vocational_profile", job_goals=())
    assert direct("field_nonempty", [empty], kind="vocational_profile", field="job_goals") == (
        False,
        f"vocational profile of {TODAY} has no job_goals",
    )


def test_any_field_true(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("career_development")
    guard = "any_field_true:final_review"
    assert result(flow.check(case.id, "complete"), guard) == (
        False,
        "no final review recorded since the last start_job",
    )
    assert result(flow.check(case.id, "complete"), "record:final_review") == (
        False,
        "no final review recorded since the last start_job",
    )
    flow.record(case.id, "final_review", summary="still fading", fading_finished=False)
    assert result(flow.check(case.id, "complete"), guard) == (
        False,
        f"final review of {TODAY} has none of fading_finished, participant_asked_to_end",
    )
    flow.record(
        case.id,
        "final_review",
        summary="wants to go it alone",
        fading_finished=False,
        participant_asked_to_end=True,
    )
    assert result(flow.check(case.id, "complete"), guard) == (
        True,
        f"final review of {TODAY} has participant_asked_to_end",
    )


def test_consent(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("customer_engagement")

    def consent() -> tuple[bool, str]:
        return result(flow.check(case.id, "start_profiling"), "consent")

    assert consent() == (False, "no consent recorded")
    flow.record(case.id, "consent", participation=True, data_processing=False)
    assert consent() == (False, f"consent of {TODAY} does not cover data processing")
    flow.record(case.id, "consent", participation=True, data_processing=True)
    assert consent() == (True, f"consent to participation, data processing given on {TODAY}")
    flow.record(case.id, "consent", participation=False, data_processing=False, withdrawn=True)
    assert consent() == (False, f"consent was withdrawn on {TODAY}")
    # Even a record that ticks every box counts as withdrawn when it says so.
    flow.record(case.id, "consent", participation=True, data_processing=True, withdrawn=True)
    assert consent() == (False, f"consent was withdrawn on {TODAY}")


def test_records_match(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("employer_engagement")
    guard = "records_match:job_analysis"

    def match() -> tuple[bool, str]:
        return result(flow.check(case.id, "propose_match"), guard)

    assert match() == (False, "no job analysis recorded")
    flow.record(case.id, "job_analysis", employer="Corner Shop", role="shop assistant")
    assert match() == (False, "no employer contact recorded")
    flow.record(case.id, "employer_contact", employer="Town Library")
    assert match() == (False, "no employer contact recorded for employer Corner Shop")
    flow.record(case.id, "employer_contact", employer="Corner Shop")
    assert match() == (True, "job analysis and employer contact for Corner Shop")


@pytest.mark.parametrize(
    ("start", "pay", "passed", "reason"),
    [
        (
            "2026-03-31",
            "12.50",
            True,
            "pay £12.50 an hour meets the minimum wage of £12.21 in force on 2026-03-31",
        ),
        (
            "2026-04-01",
            "12.50",
            False,
            "pay £12.50 an hour is below the minimum wage of £12.71 in force on 2026-04-01 "
            "(since 2026-04-01)",
        ),
        (
            "2026-04-01",
            "12.71",
            True,
            "pay £12.71 an hour meets the minimum wage of £12.71 in force on 2026-04-01",
        ),
        (
            "2025-03-31",
            "12.00",
            True,
            "pay £12.00 an hour meets the minimum wage of £11.44 in force on 2025-03-31",
        ),
        (
            "2025-04-01",
            "12.00",
            False,
            "pay £12.00 an hour is below the minimum wage of £12.21 in force on 2025-04-01 "
            "(since 2025-04-01)",
        ),
        (
            "2023-03-31",
            "20",
            False,
            "no minimum wage rate in force on 2023-03-31: add one to the stage data",
        ),
    ],
)
def test_minimum_wage_in_force_on_the_start_date(
    flow: SEFlow, steps: Steps, start: str, pay: str, passed: bool, reason: str
) -> None:
    case = steps.to("job_matching")
    guard = "minimum_wage:job_offer"
    assert result(flow.check(case.id, "start_job"), guard) == (
        False,
        "no job offer recorded to check pay against",
    )
    flow.record(
        case.id,
        "job_offer",
        employer="Corner Shop",
        start_date=start,
        hours_per_week="16",
        hourly_pay=pay,
    )
    assert result(flow.check(case.id, "start_job"), guard) == (passed, reason)


def test_the_wage_table_comes_from_the_stage_data() -> None:
    rates = {(r.effective_from.isoformat(), r.band): r.hourly for r in WORKFLOW.minimum_wage}
    assert rates["2025-04-01", "21_over"] == Decimal("12.21")
    assert rates["2026-04-01", "21_over"] == Decimal("12.71")
    assert rates["2026-04-01", "18_20"] == Decimal("10.85")
    assert rates["2026-04-01", "apprentice"] == Decimal("8.00")
    rate = WORKFLOW.minimum_wage_on(dt.date(2026, 3, 31))
    assert rate is not None and rate.hourly == Decimal("12.21")


@pytest.mark.parametrize(
    ("band", "kind", "pay", "passed", "reason"),
    [
        (
            "18_20",
            None,
            "10.00",
            True,
            "pay £10.00 an hour meets the minimum wage for 18 to 20 of £10.00 in force on "
            "2025-06-02",
        ),
        (
            "18_20",
            None,
            "9.99",
            False,
            "pay £9.99 an hour is below the minimum wage for 18 to 20 of £10.00 in force on "
            "2025-06-02 (since 2025-04-01)",
        ),
        (
            "21_over",
            "apprenticeship",
            "7.55",
            True,
            "pay £7.55 an hour meets the minimum wage for apprentices of £7.55 in force on "
            "2025-06-02",
        ),
        (
            "21_over",
            None,
            "10.00",
            False,
            "pay £10.00 an hour is below the minimum wage for 21 and over of £12.21 in force on "
            "2025-06-02 (since 2025-04-01)",
        ),
    ],
)
def test_minimum_wage_for_the_age_band_kept_with_the_job(
    flow: SEFlow, steps: Steps, band: str, kind: str | None, pay: str, passed: bool, reason: str
) -> None:
    case = steps.to("job_matching")
    offer: dict[str, str] = {
        "employer": "Corner Shop",
        "start_date": "2025-06-02",
        "hours_per_week": "16",
        "hourly_pay": pay,
        "age_band": band,
    }
    if kind is not None:
        offer["kind"] = kind
    flow.record(case.id, "job_offer", offer)
    assert result(flow.check(case.id, "start_job"), "minimum_wage:job_offer") == (passed, reason)


def test_disclosure_consent(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("job_matching")
    guard = "disclosure_consent:disclosure_preference"

    def disclosure() -> tuple[bool, str]:
        return result(flow.check(case.id, "start_job"), guard)

    assert disclosure() == (True, "no disclosure to employers planned (level: none)")
    flow.record(case.id, "disclosure_preference", level="partial")
    assert disclosure() == (
        False,
        "disclosure is 'partial' but there is no consent to talk to the employer "
        "(consent.employer_contact)",
    )
    flow.record(case.id, "consent", participation=True, data_processing=True, employer_contact=True)
    assert disclosure() == (True, "disclosure 'partial' with consent to talk to the employer")
    flow.record(
        case.id,
        "consent",
        participation=True,
        data_processing=True,
        employer_contact=True,
        withdrawn=True,
    )
    assert disclosure()[0] is False
    assert direct(
        "disclosure_consent",
        kind="disclosure_preference",
        field="level",
        unless="none",
        consent_field="employer_contact",
    ) == (True, "no disclosure to employers planned (level: not recorded)")


# --- what the actor says and who they are --------------------------------------------------


def test_reason(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("employer_engagement")
    assert result(flow.check(case.id, "revise_goals"), "reason") == (
        False,
        "a reason is required",
    )
    assert result(flow.check(case.id, "revise_goals", reason="   "), "reason")[0] is False
    assert result(flow.check(case.id, "revise_goals", reason=" wants care work "), "reason") == (
        True,
        "reason given: wants care work",
    )


def test_review_date(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()

    def review(day: dt.date | None) -> tuple[bool, str]:
        return result(flow.check(case.id, "pause", reason="ill", review_date=day), "review_date")

    assert review(None) == (False, "a review date is required")
    assert review(dt.date(2026, 5, 31)) == (False, "review date 2026-05-31 is already past")
    assert review(dt.date(2026, 6, 1)) == (True, "review on 2026-06-01")


def test_close_reason(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    reasons = "ineligible, moved_away, time_limit, transferred, deceased, other"
    assert result(flow.check(case.id, "close"), "close_reason") == (
        False,
        f"a closure reason is required (one of {reasons})",
    )
    assert result(flow.check(case.id, "close", outcome="bored"), "close_reason") == (
        False,
        f"'bored' is not a closure reason (one of {reasons})",
    )
    # Withdrawal, disengagement and completion have their own triggers.
    assert not result(flow.check(case.id, "close", outcome="withdrawn"), "close_reason")[0]
    assert result(flow.check(case.id, "close", outcome="deceased"), "close_reason") == (
        True,
        "closure reason: deceased",
    )


@pytest.mark.parametrize(
    ("actor", "outcome", "passed", "reason"),
    [
        ("sam", "ineligible", False, "only a team leader may do this; sam is a coach"),
        ("ada", "ineligible", False, "only a team leader may do this; ada is an admin"),
        ("lee", "ineligible", True, "lee is a team leader"),
        ("sam", "moved_away", True, "no team leader needed for this"),
    ],
)
def test_role(
    flow: SEFlow, steps: Steps, actor: str, outcome: str, passed: bool, reason: str
) -> None:
    case = steps.refer()
    check = flow.check(case.id, "close", outcome=outcome, actor=actor)
    assert result(check, "role") == (passed, reason)
    assert check.allowed is passed


def test_role_always_asked_when_no_outcome_is_named(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    assert result(flow.check(case.id, "close_disengaged", actor="kim"), "role") == (
        False,
        "only a team leader may do this; kim is a coach",
    )


class TestOutreach:
    """≥ 3 attempts over ≥ 2 channels spanning ≥ 14 days, all since the last contact."""

    NEEDS = "needs at least 3 attempts over 2 channels spanning 14 days"

    @pytest.fixture
    def case(self, steps: Steps) -> se_flow.Case:
        return steps.refer(effective_at=START - dt.timedelta(days=40))

    def attempt(self, flow: SEFlow, case: se_flow.Case, days_ago: int, channel: str) -> None:
        at = START - dt.timedelta(days=days_ago)
        flow.record(case.id, "outreach_attempt", channel=channel, effective_at=at)

    def outreach(self, flow: SEFlow, case: se_flow.Case) -> tuple[bool, str]:
        return result(flow.check(case.id, "close_disengaged", actor="lee"), "outreach")

    def test_none(self, flow: SEFlow, case: se_flow.Case) -> None:
        assert self.outreach(flow, case) == (
            False,
            f"0 attempt(s) over 0 channel(s) spanning 0 day(s) since the last contact; "
            f"{self.NEEDS}",
        )

    def test_too_few_attempts(self, flow: SEFlow, case: se_flow.Case) -> None:
        self.attempt(flow, case, 30, "phone")
        self.attempt(flow, case, 10, "letter")
        assert self.outreach(flow, case) == (
            False,
            f"2 attempt(s) over 2 channel(s) spanning 20 day(s) since the last contact; "
            f"{self.NEEDS}",
        )

    def test_one_channel(self, flow: SEFlow, case: se_flow.Case) -> None:
        for back in (30, 20, 10):
            self.attempt(flow, case, back, "phone")
        assert self.outreach(flow, case) == (
            False,
            f"3 attempt(s) over 1 channel(s) spanning 20 day(s) since the last contact; "
            f"{self.NEEDS}",
        )

    def test_too_short_a_span(self, flow: SEFlow, case: se_flow.Case) -> None:
        for back, channel in ((14, "phone"), (8, "email"), (1, "phone")):
            self.attempt(flow, case, back, channel)
        assert self.outreach(flow, case) == (
            False,
            f"3 attempt(s) over 2 channel(s) spanning 13 day(s) since the last contact; "
            f"{self.NEEDS}",
        )

    def test_attempts_before_the_last_contact_do_not_count(
        self, flow: SEFlow, case: se_flow.Case
    ) -> None:
        for back, channel in ((35, "phone"), (28, "email"), (20, "visit")):
            self.attempt(flow, case, back, channel)
        assert self.outreach(flow, case)[0]
        flow.record(
            case.id, "review", summary="answered at last", effective_at=START - dt.timedelta(days=5)
        )
        assert self.outreach(flow, case) == (
            False,
            f"0 attempt(s) over 0 channel(s) spanning 0 day(s) since the last contact; "
            f"{self.NEEDS}",
        )

    def test_enough(self, flow: SEFlow, case: se_flow.Case) -> None:
        for back, channel in ((21, "phone"), (14, "letter"), (7, "phone")):
            self.attempt(flow, case, back, channel)
        assert self.outreach(flow, case) == (
            True,
            "3 attempt(s) over 2 channel(s) spanning 14 day(s)",
        )


def test_every_guard_is_evaluated_and_every_failure_reported(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("job_matching")
    flow.record(case.id, "disclosure_preference", level="full")
    check = flow.check(case.id, "start_job")
    assert [(r.guard, r.passed, r.soft) for r in check.results] == [
        ("record:job_offer", False, False),
        ("minimum_wage:job_offer", False, False),
        ("record:support_plan", False, True),
        ("disclosure_consent:disclosure_preference", False, False),
    ]
    assert not check.allowed and not check.overridable
    with pytest.raises(se_flow.GuardsFailed) as refused:
        flow.advance(case.id, "start_job")
    assert refused.value.results == check.results
    for r in check.results:
        assert f"{r.label}: {r.reason}" in str(refused.value)
