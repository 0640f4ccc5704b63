"""Outcomes: spells, the shipped funder definitions, and the evaluator at the edges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock, Steps
from hypothesis import given, settings
from hypothesis import strategies as st

import se_flow
from se_flow import SEFlow
from se_flow._loader import load_programmes, load_workflow
from se_flow._outcomes import (
    CaseFacts,
    Milestone,
    MilestoneState,
    Programme,
    evaluate,
    parse_programme,
)
from se_flow._spells import Break, Employment, Spell, Terms, WorkPeriod
from se_flow.errors import ProgrammeInvalid

D = dt.date
WAGES = load_workflow().minimum_wage
PROGRAMMES = {p.id: p for p in load_programmes()}
A = MilestoneState.ACHIEVED
P = MilestoneState.PROVISIONAL
N = MilestoneState.NOT_YET
X = MilestoneState.EXCLUDED


def spell(
    job: str,
    start: dt.date,
    end: dt.date | None = None,
    hours: str = "18",
    pay: str = "12.71",
    kind: str = "employee",
    age_band: str | None = None,
) -> Spell:
    return Spell(
        job=job,
        employer="Corner Shop",
        start=start,
        end=end,
        kind=kind,
        age_band=age_band,
        terms=(Terms(start, Decimal(hours), Decimal(pay), 1),),
    )


def weekly(job: str, start: dt.date, weeks: int, hours: str, pay: str = "0") -> list[WorkPeriod]:
    """A timesheet per 7-day week from `start`."""
    return [
        WorkPeriod(
            job=job,
            start=start + dt.timedelta(days=7 * w),
            end=start + dt.timedelta(days=7 * w + 6),
            hours=Decimal(hours),
            gross_pay=Decimal(pay),
            evidence="timesheet",
            seq=100 + w,
        )
        for w in range(weeks)
    ]


def facts(
    spells: Sequence[Spell],
    work: Sequence[WorkPeriod] = (),
    breaks: Sequence[Break] = (),
    start: dt.date = D(2026, 1, 5),
    **more: Any,
) -> CaseFacts:
    return CaseFacts(
        employment=Employment(spells=tuple(spells), work=tuple(work), breaks=tuple(breaks)),
        programme_start=start,
        wages=WAGES,
        **more,
    )


def one(programme: str, milestone: str, f: CaseFacts, on: dt.date) -> Milestone:
    found = [m for m in evaluate(PROGRAMMES[programme], f, on) if m.id == milestone]
    assert len(found) == 1, found
    return found[0]


def custom(*milestones: str) -> Programme:
    text = (
        '[programme]\nid = "t"\nversion = "1"\ntitle = "t"\nsource = "test"\n'
        'status = "unverified"\n' + "\n".join(milestones)
    )
    import tomllib

    return parse_programme("t.toml", tomllib.loads(text))


# --- the conventions, on the worked example of outcomes.md ---------------------------------

J = D(2026, 3, 4)  # a Wednesday


def test_the_worked_example_of_the_conventions() -> None:
    f = facts([spell("J1", J, hours="18")])
    start = one("ips_grow", "job_start", f, D(2026, 7, 1))
    assert (start.state, start.achieved_on) == (P, D(2026, 3, 5))
    sustained = one("mhep", "sustain_13w", f, D(2026, 7, 1))
    assert (sustained.state, sustained.achieved_on, sustained.band) == (P, D(2026, 6, 2), "ge16")


# --- duration at its edges -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_worked", "state", "needed"),
    [(91, P, None), (90, N, 1)],
)
def test_duration_needs_exactly_91_days(
    days_worked: int, state: MilestoneState, needed: int | None
) -> None:
    end = J + dt.timedelta(days=days_worked - 1)
    m = one("mhep", "sustain_13w", facts([spell("J1", J, end)]), D(2026, 12, 1))
    assert m.state is state
    assert (m.needed.days if m.needed else None) == needed
    if state is P:
        assert m.achieved_on == end


@pytest.mark.parametrize(
    ("gap", "state", "achieved_on"),
    # 60 days, a gap of `gap` days, then 60 more: 14 days bridged (not counted), 15 not.
    [(14, P, J + dt.timedelta(days=60 + 14 + 30)), (15, N, None)],
)
def test_a_gap_of_the_tolerance_is_bridged_and_one_more_is_not(
    gap: int, state: MilestoneState, achieved_on: dt.date | None
) -> None:
    first = spell("J1", J, J + dt.timedelta(days=59))
    second = spell("J2", J + dt.timedelta(days=60 + gap), J + dt.timedelta(days=60 + gap + 59))
    m = one("mhep", "sustain_13w", facts([first, second]), D(2027, 1, 1))
    assert (m.state, m.achieved_on) == (state, achieved_on)


def test_a_bridged_gap_that_does_not_count_does_not_lower_the_band() -> None:
    # 71 days at 16 hours, 11 days' gap, then 20 hours: over the 91 days counted the mean is
    # 16.9 hours a week (upper band); over the 102 calendar days it would be 15.1.
    first = spell("J1", J, J + dt.timedelta(days=70), hours="16")
    second = spell("J2", J + dt.timedelta(days=82), None, hours="20")
    m = one("mhep", "sustain_13w", facts([first, second]), D(2027, 1, 1))
    assert (m.band, m.mean_weekly_hours) == ("ge16", Decimal("16.9"))


def test_gap_days_count_when_the_definition_says_so() -> None:
    p = custom(
        '[[milestones]]\nid = "d"\ntest = "duration"\ndays = 91\ngap_tolerance_days = 14\n'
        "gap_counts_toward_duration = true"
    )
    first = spell("J1", J, J + dt.timedelta(days=59))
    second = spell("J2", J + dt.timedelta(days=70), None)
    (m,) = evaluate(p, facts([first, second]), D(2027, 1, 1))
    assert m.achieved_on == J + dt.timedelta(days=90)


def test_overlapping_jobs_count_their_days_once() -> None:
    first = spell("J1", J, J + dt.timedelta(days=59))
    second = spell("J2", J + dt.timedelta(days=30), J + dt.timedelta(days=89))
    m = one("us_vr", "rehabilitated", facts([first, second]), D(2027, 1, 1))
    assert (m.state, m.achieved_on) == (P, J + dt.timedelta(days=89))
    assert set(m.jobs) == {"J1", "J2"}


# --- hours bands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "mhep_band", "dwp_state"),
    [("16.0", "ge16", N), ("15.9", "lt16", N), ("16.1", "ge16", P)],
)
def test_16_hours_is_the_upper_band_and_not_over_16(
    hours: str, mhep_band: str, dwp_state: MilestoneState
) -> None:
    f = facts([spell("J1", J, hours=hours)])
    assert one("mhep", "sustain_13w", f, D(2026, 12, 1)).band == mhep_band
    assert one("dwp_poc", "sustained_13w_over16", f, D(2026, 12, 1)).state is dwp_state


def test_the_band_is_the_mean_over_the_evidence() -> None:
    work = weekly("J1", J, 13, "16")
    m = one("mhep", "sustain_13w", facts([spell("J1", J, hours="10")], work), D(2026, 7, 1))
    assert (m.state, m.band, m.mean_weekly_hours) == (A, "ge16", Decimal("16.0"))


# --- qualifying weeks ----------------------------------------------------------------------


def _weeks(flags: Sequence[bool]) -> list[WorkPeriod]:
    work = []
    for w, ok in enumerate(flags):
        work += [
            WorkPeriod(
                job="J1",
                start=J + dt.timedelta(days=7 * w),
                end=J + dt.timedelta(days=7 * w + 6),
                hours=Decimal("7" if ok else "6.9"),
                gross_pay=Decimal("90"),
                evidence="payslip",
                seq=100 + w,
            )
        ]
    return work


def test_13_qualifying_weeks_inside_16() -> None:
    flags = [False] * 3 + [True] * 13
    m = one(
        "ips_primary_care", "job_outcome", facts([spell("J1", J)], _weeks(flags)), D(2027, 1, 1)
    )
    assert (m.state, m.achieved_on) == (A, J + dt.timedelta(days=7 * 16 - 1))


def test_the_13th_qualifying_week_in_week_17_is_too_late() -> None:
    flags = [True] * 12 + [False] * 4 + [True]
    work = _weeks(flags)
    f = facts([spell("J1", J, J + dt.timedelta(days=7 * 17 - 1))], work)
    m = one("ips_primary_care", "job_outcome", f, D(2027, 1, 1))
    assert m.state is N
    assert m.needed is not None and m.needed.weeks == 1


def test_qualifying_weeks_need_the_minimum_wage_for_the_age_band() -> None:
    low = spell("J1", J, pay="11.00")
    assert one("ips_primary_care", "job_outcome", facts([low]), D(2027, 1, 1)).state is N
    young = spell("J1", J, pay="11.00", age_band="18_20")
    assert one("ips_primary_care", "job_outcome", facts([young]), D(2027, 1, 1)).state is P


# --- earnings ------------------------------------------------------------------------------

WHP_START = D(2026, 1, 5)
# 416 hours at the adult rate in force on the programme start (12.21).
WHP_THRESHOLD = Decimal(416) * Decimal("12.21")


@pytest.mark.parametrize(
    ("offset", "state"),
    # The window is 638 days from the programme start: its last day is start + 637.
    [(637, A), (638, N)],
)
def test_earnings_reach_the_threshold_inside_the_window_or_one_day_late(
    offset: int, state: MilestoneState
) -> None:
    day = WHP_START + dt.timedelta(days=offset)
    job = spell("J1", day - dt.timedelta(days=10), day)
    pay = WorkPeriod(
        job="J1",
        start=day,
        end=day,
        hours=Decimal(416),
        gross_pay=WHP_THRESHOLD,
        evidence="hmrc",
        seq=7,
    )
    f = facts([job], [pay], start=WHP_START)
    m = one("whp", "employed_outcome", f, D(2028, 1, 1))
    assert m.state is (state if state is N else P)  # the 10 days before rest on estimates
    if state is not N:
        assert m.achieved_on == day


def test_earnings_fully_evidenced_are_achieved_and_exclude_self_employment() -> None:
    day = WHP_START + dt.timedelta(days=100)
    job = spell("J1", day, day)
    pay = WorkPeriod("J1", day, day, Decimal(416), WHP_THRESHOLD, "hmrc", 7)
    own = spell("S1", WHP_START, None, kind="self_employed")
    f = facts([job, own], [pay], start=WHP_START)
    out = {m.id: m for m in evaluate(PROGRAMMES["whp"], f, D(2027, 6, 1))}
    assert (out["employed_outcome"].state, out["employed_outcome"].achieved_on) == (A, day)
    assert out["self_employed_outcome"].state is X


# --- provisional turning evidenced ---------------------------------------------------------


def test_provisional_turns_evidenced_when_work_records_arrive() -> None:
    job = spell("J1", J)
    assert one("ips_grow", "job_start", facts([job]), D(2026, 4, 1)).state is P
    first_week = weekly("J1", J, 1, "18")
    m = one("ips_grow", "job_start", facts([job], first_week), D(2026, 4, 1))
    assert (m.state, m.achieved_on, m.evidence) == (A, D(2026, 3, 5), (100,))


def test_what_is_still_needed_and_when_at_the_current_hours() -> None:
    m = one("mhep", "sustain_13w", facts([spell("J1", J)]), D(2026, 4, 30))
    assert m.state is N
    assert m.needed is not None and m.needed.days == 33
    assert m.projected_on == D(2026, 6, 2)
    assert "33 more days" in m.reason
    earn = one("whp", "employed_outcome", facts([spell("J1", J)]), D(2026, 4, 30))
    assert earn.needed is not None and earn.needed.earnings is not None
    assert earn.projected_on is not None and earn.projected_on > D(2026, 4, 30)


# --- through the API: records make spells, refusals name the field -------------------------


def in_work(flow: SEFlow, steps: Steps, programme: str | None = "mhep") -> se_flow.Case:
    referral = {"programme": programme} if programme else {}
    case = steps.to("in_work_support", steps.refer(referral=referral))
    return case


def test_outcomes_from_the_records_of_a_case(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = in_work(flow, steps)
    out = flow.outcomes(case.id, on=D(2026, 6, 1))
    assert out.programme is not None and out.programme.ref == "mhep@1"
    (job,) = out.spells
    assert (job.start, job.end, job.employer) == (D(2026, 5, 25), None, "Corner Shop")
    states = {m.id: m.state for m in out.milestones}
    # The steps record one contact (first meeting) and a vocational profile not marked completed.
    assert states == {"engagement": N, "job_start": P, "sustain_13w": N}
    flow.record(case.id, "vocational_profile", job_goals="retail", completed=True)
    flow.record(
        case.id,
        "work_evidence",
        period_start="2026-05-25",
        period_end="2026-05-31",
        hours="16",
        gross_pay="204.80",
        evidence="payslip",
        reference="PS-1",
    )
    out = flow.outcomes(case.id, on=D(2026, 6, 1))
    states = {m.id: m.state for m in out.milestones}
    assert states == {"engagement": A, "job_start": A, "sustain_13w": N}


def test_a_job_end_names_its_job_and_last_day(flow: SEFlow, steps: Steps) -> None:
    case = in_work(flow, steps)
    flow.record(
        case.id,
        "job_start",
        employer="Cafe",
        start_date="2026-05-28",
        hours_per_week="8",
        hourly_pay="12.80",
        job="CAFE",
    )
    flow.record(case.id, "job_end", reason="seasonal", job="CAFE", end_date="2026-05-30")
    out = flow.outcomes(case.id, on=D(2026, 6, 1))
    ends = {s.job: s.end for s in out.spells}
    assert ends["CAFE"] == D(2026, 5, 30)
    assert [e for j, e in ends.items() if j != "CAFE"] == [None]


def test_a_case_on_no_programme_says_so(flow: SEFlow, steps: Steps) -> None:
    case = in_work(flow, steps, programme=None)
    out = flow.outcomes(case.id)
    assert out.programme is None and out.milestones == ()
    assert "no programme" in out.note


def test_an_unknown_programme_is_refused_by_name_and_nothing_is_written(
    flow: SEFlow, steps: Steps
) -> None:
    with pytest.raises(se_flow.UnknownProgramme, match="unknown programme 'nope'"):
        steps.refer(referral={"programme": "nope"})
    assert flow.cases() == [] and {e.kind for e in flow.events()} == {"staff"}


WORK = {
    "period_start": "2026-05-25",
    "period_end": "2026-05-31",
    "hours": "16",
    "gross_pay": "204.80",
    "evidence": "payslip",
}


@pytest.mark.parametrize(
    ("kind", "values", "field", "words"),
    [
        (
            "work_evidence",
            {**WORK, "period_end": "2026-05-24"},
            "period_end",
            "before the period starts",
        ),
        ("work_evidence", {**WORK, "period_start": "2026-05-01"}, "period_start", "before job"),
        ("work_evidence", {**WORK, "hours": "-1"}, "hours", "must not be negative"),
        ("work_evidence", {**WORK, "gross_pay": "-5"}, "gross_pay", "must not be negative"),
        ("work_evidence", {**WORK, "job": "J99"}, "job", "no job 'J99'"),
        ("job_end", {"reason": "x", "end_date": "2026-05-01"}, "end_date", "before job"),
        (
            "job_terms",
            {"from_date": "2026-05-01", "hours_per_week": "20"},
            "from_date",
            "before job",
        ),
        (
            "work_break",
            {"reason": "sick", "start_date": "2026-05-28", "end_date": "2026-05-27"},
            "end_date",
            "before the break starts",
        ),
    ],
)
def test_bad_work_records_are_refused_naming_the_field(
    flow: SEFlow, steps: Steps, kind: str, values: dict[str, str], field: str, words: str
) -> None:
    case = in_work(flow, steps)
    before = len(flow.records(case.id, include_superseded=True))
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, kind, values)
    assert list(bad.value.problems) == [field]
    assert words in bad.value.problems[field]
    assert len(flow.records(case.id, include_superseded=True)) == before


def test_overlapping_work_evidence_must_supersede(flow: SEFlow, steps: Steps) -> None:
    case = in_work(flow, steps)
    first = flow.record(case.id, "work_evidence", WORK).record
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "work_evidence", {**WORK, "period_start": "2026-05-31"})
    assert f"supersede record {first.seq}" in bad.value.problems["period_start"]
    fixed = flow.record(
        case.id, "work_evidence", {**WORK, "hours": "15"}, supersedes=first.seq
    ).record
    out = flow.outcomes(case.id, on=D(2026, 6, 1))
    assert any(fixed.seq in m.evidence for m in out.milestones)


def test_a_job_end_with_no_open_job_is_refused(flow: SEFlow, steps: Steps) -> None:
    case = in_work(flow, steps)
    flow.record(case.id, "job_end", reason="closed")
    with pytest.raises(se_flow.InvalidRecord) as bad:
        flow.record(case.id, "job_end", reason="again")
    assert list(bad.value.problems) == ["job"]


# --- each shipped definition on a worked example from its source ---------------------------


def test_ips_grow_counts_every_job_start_and_leaves_out_those_in_work_at_referral() -> None:
    jobs = [spell("J1", J, J + dt.timedelta(days=20)), spell("J2", J + dt.timedelta(days=30))]
    starts = [
        m
        for m in evaluate(PROGRAMMES["ips_grow"], facts(jobs), D(2026, 9, 1))
        if m.id == "job_start"
    ]
    assert [m.jobs for m in starts] == [("J1",), ("J2",)]
    f = facts(jobs, in_work_at_referral="retention")
    assert one("ips_grow", "sustained_13w", f, D(2026, 9, 1)).state is X


def test_mhep_sustained_13_weeks_part_time() -> None:
    work = weekly("J1", J, 13, "12")
    m = one("mhep", "sustain_13w", facts([spell("J1", J, hours="12")], work), D(2026, 7, 1))
    assert (m.state, m.achieved_on, m.band) == (A, D(2026, 6, 2), "lt16")


def test_dwp_poc_over_16_hours_for_13_weeks() -> None:
    work = weekly("J1", J, 13, "20")
    m = one(
        "dwp_poc", "sustained_13w_over16", facts([spell("J1", J, hours="20")], work), D(2026, 7, 1)
    )
    assert (m.state, m.achieved_on, m.band) == (A, D(2026, 6, 2), "over16")


def test_ips_primary_care_7_hours_13_of_16_weeks_with_16_plus_band() -> None:
    work = weekly("J1", J, 13, "20")
    m = one(
        "ips_primary_care", "job_outcome", facts([spell("J1", J, hours="20")], work), D(2026, 7, 1)
    )
    assert (m.state, m.achieved_on, m.band) == (A, J + dt.timedelta(days=90), "ge16")


def test_whp_self_employment_182_days_overlaps_once() -> None:
    first = spell("S1", WHP_START, WHP_START + dt.timedelta(days=99), kind="self_employed")
    again = spell(
        "S2",
        WHP_START + dt.timedelta(days=50),
        WHP_START + dt.timedelta(days=250),
        kind="self_employed",
    )
    out = {
        m.id: m
        for m in evaluate(PROGRAMMES["whp"], facts([first, again], start=WHP_START), D(2027, 1, 1))
    }
    assert out["self_employed_outcome"].achieved_on == WHP_START + dt.timedelta(days=181)
    assert out["employed_outcome"].state is N


def test_us_vr_90_days() -> None:
    m = one(
        "us_vr", "rehabilitated", facts([spell("J1", J, J + dt.timedelta(days=89))]), D(2027, 1, 1)
    )
    assert (m.state, m.achieved_on) == (P, J + dt.timedelta(days=89))


# --- definitions as data: the named checks -------------------------------------------------


@pytest.mark.parametrize(
    ("milestone", "check", "key"),
    [
        ('id = "a"\ntest = "vibes"', "tests_known", "milestones.a.test"),
        ('id = "a"\ntest = "duration"', "params_present", "milestones.a.days"),
        (
            'id = "a"\ntest = "duration"\ndays = 91\nflavour = 1',
            "params_known",
            "milestones.a.flavour",
        ),
        (
            'id = "a"\ntest = "duration"\ndays = 91\n'
            "bands = { lo = { under = 16 }, hi = { at_least = 15 } }",
            "band_edges_valid",
            "milestones.a.bands.hi",
        ),
        (
            'id = "a"\ntest = "duration"\ndays = 91\nexclusive_with = ["ghost"]',
            "milestones_exist",
            "milestones.a.exclusive_with",
        ),
    ],
)
def test_a_bad_definition_names_its_check_file_and_key(
    milestone: str, check: str, key: str
) -> None:
    with pytest.raises(ProgrammeInvalid) as bad:
        custom("[[milestones]]\n" + milestone)
    assert [f.check for f in bad.value.faults] == [check]
    assert f"t.toml: {key}:" in bad.value.faults[0].message


def test_every_shipped_definition_loads_with_its_source_and_status() -> None:
    assert set(PROGRAMMES) == {"ips_grow", "mhep", "dwp_poc", "ips_primary_care", "whp", "us_vr"}
    for p in PROGRAMMES.values():
        assert p.source and p.status in ("verified", "partial", "unverified")
    assert [m.id for m in PROGRAMMES["mhep"].milestones] == [
        "engagement",
        "job_start",
        "sustain_13w",
    ]


def test_a_folder_of_definitions_reports_every_fault(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[programme]\nid = "a"\n')
    (tmp_path / "b.toml").write_text("not toml [")
    with pytest.raises(ProgrammeInvalid) as bad:
        load_programmes(tmp_path)
    checks = {f.check for f in bad.value.faults}
    assert {"programme_described", "status_known", "files_readable"} <= checks


# --- the evaluator is a function -----------------------------------------------------------


@st.composite
def employment(draw: st.DrawFn) -> tuple[list[Spell], list[WorkPeriod]]:
    spells, work = [], []
    for i in range(draw(st.integers(0, 3))):
        start = J + dt.timedelta(days=draw(st.integers(0, 200)))
        length = draw(st.none() | st.integers(0, 200))
        end = None if length is None else start + dt.timedelta(days=length)
        job = f"J{i}"
        spells.append(spell(job, start, end, hours=str(draw(st.integers(0, 40)))))
        at = start
        for k in range(draw(st.integers(0, 4))):
            days = draw(st.integers(1, 30))
            work.append(
                WorkPeriod(
                    job,
                    at,
                    at + dt.timedelta(days=days - 1),
                    Decimal(draw(st.integers(0, 200))),
                    Decimal(draw(st.integers(0, 2000))),
                    "payslip",
                    1000 + 10 * i + k,
                )
            )
            at += dt.timedelta(days=days + draw(st.integers(0, 10)))
    return spells, work


@settings(max_examples=60, deadline=None)
@given(employment(), st.sampled_from(sorted(PROGRAMMES)), st.randoms(use_true_random=False))
def test_evaluating_twice_or_in_another_order_changes_nothing(
    made: tuple[list[Spell], list[WorkPeriod]], programme: str, rnd: Any
) -> None:
    spells, work = made
    on = D(2027, 6, 1)
    first = evaluate(PROGRAMMES[programme], facts(spells, work), on)
    assert evaluate(PROGRAMMES[programme], facts(spells, work), on) == first
    rnd.shuffle(spells)
    rnd.shuffle(work)
    assert evaluate(PROGRAMMES[programme], facts(spells, work), on) == first
