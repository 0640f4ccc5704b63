"""Reports: every KPI on a small hand-built caseload, its numerator, denominator and case ids
written out from the definition; periods; the property that totals are their lists' lengths."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock
from hypothesis import given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url

import se_flow
from se_flow import MemoryStore
from se_flow._evidence import LEAST_EVIDENCE
from se_flow._loader import load_programmes, load_workflow
from se_flow._model import Case, EventKind, Status
from se_flow._report import (
    KPI,
    CaseView,
    Contact,
    EmployerContact,
    JobStart,
    Report,
    caseload_score,
    coaches,
    fidelity,
    ips_grow,
    month,
    parse_period,
    period_between,
    quarter,
    sample,
)
from se_flow._spells import Spell, Terms
from se_flow.errors import InvalidInput, StaffNotFound

__all__ = ["pg_server", "pg_url"]  # the PostgreSQL fixtures

D = dt.date
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
Q3 = "2026-Q3"


def client(
    flow: se_flow.SEFlow,
    referred: dt.date,
    *,
    in_work: str = "no",
    job: dt.date | None = None,
    second_job: dt.date | None = None,
    coach: str = "sam",
    profile: bool = True,
    start: bool = True,
    name: str = "P",
) -> str:
    """A case referred on `referred`, engaged that day; with `job`, walked with the least
    evidence (dated `referred`) to a job starting on `job` at 16 hours a week; `second_job`
    adds a further job; `start=False` stops before the job starts (its offer recorded)."""
    case = flow.refer(
        name,
        source="GP",
        referral={"programme": "ips_grow", "in_work_at_referral": in_work},
        coach=coach,
        effective_at=referred,
    ).case
    flow.advance(case.id, "engage", effective_at=referred)
    if not profile and job is None:
        return case.id
    for place in ("customer_engagement", "vocational_profiling", "employer_engagement"):
        step = LEAST_EVIDENCE[place]
        for kind, fields in step.records:
            flow.record(case.id, kind, dict(fields), effective_at=referred)
        if job is None and place == "vocational_profiling":
            return case.id
        flow.advance(case.id, step.trigger, effective_at=referred)
    if job is None:
        return case.id
    step = LEAST_EVIDENCE["job_matching"]
    for kind, fields in step.records:
        values = dict(fields)
        if kind == "job_offer":
            values.update(start_date=job.isoformat(), job="J1")
        flow.record(case.id, kind, values, effective_at=referred)
    if not start:
        return case.id
    flow.advance(case.id, "start_job", effective_at=job)
    if second_job is not None:
        flow.record(
            case.id,
            "job_start",
            employer="Cafe",
            start_date=second_job.isoformat(),
            hours_per_week="10",
            hourly_pay="13",
            job="J2",
            effective_at=second_job,
        )
    return case.id


@pytest.fixture
def flow() -> Iterator[se_flow.SEFlow]:
    with se_flow.open(":memory:", actor="sam", clock=Clock(NOW)) as f:
        yield _staffed(f)


def _staffed(f: se_flow.SEFlow) -> se_flow.SEFlow:
    f.add_staff("ada", "Ada Admin", "admin", actor="ada")
    for staff_id, name, role in (("sam", "Sam", "coach"), ("kim", "Kim", "coach")):
        f.add_staff(staff_id, name, role, actor="ada")
    f.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
    return f


def _q3(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    client(flow, D(2026, 7, 6), job=D(2026, 7, 20))
    client(flow, D(2026, 7, 8), in_work="retention", profile=False)
    client(flow, D(2026, 4, 1), job=D(2026, 5, 4), second_job=D(2026, 8, 3))
    client(flow, D(2026, 4, 1), job=D(2026, 7, 3))
    five = client(flow, D(2026, 7, 10), profile=False)
    flow.close(five, "moved_away", effective_at=D(2026, 9, 15))
    client(flow, D(2026, 4, 1), job=D(2026, 7, 2))
    return flow


@pytest.fixture
def q3(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    """C-1 out of work, referred and into work in Q3; C-2 a retention client referred in Q3;
    C-3 first job in Q2 and a second job in Q3, its 13 weeks ending 2026-08-02; C-4 first job
    2026-07-03, its 13 weeks ending 2026-10-01 (one day after Q3); C-5 referred in Q3, no job,
    closed 2026-09-15; C-6 first job 2026-07-02, its 13 weeks ending 2026-09-30."""
    return _q3(flow)


def figures(report: Report) -> dict[str, tuple[list[str], list[str] | None]]:
    return {
        k.key: (
            list(k.numerator_cases),
            None if k.denominator is None else list(k.denominator_cases),
        )
        for k in report.kpis
    }


def test_ips_grow_return_on_a_hand_built_caseload(q3: se_flow.SEFlow) -> None:
    got = figures(q3.report("ips-grow", quarter=Q3))
    assert got["referrals_accepted"] == (["C-1", "C-2", "C-5"], None)
    assert got["referrals_in_work"] == (["C-2"], ["C-1", "C-2", "C-5"])
    assert got["profiles_started"] == (["C-1"], None)
    # C-3's first job started in Q2: its second job counts in total starts only.
    assert got["clients_into_work"] == (["C-1", "C-4", "C-6"], None)
    assert got["total_job_starts"] == (["C-1/J1", "C-3/J2", "C-4/J1", "C-6/J1"], None)
    # C-4's 13 weeks end on 2026-10-01, one day after the quarter: not yet due.
    assert got["sustained_13w"] == (["C-3", "C-6"], ["C-3", "C-6"])
    # The retention client C-2 is out of both employment rates.
    assert got["employment_rate_cohort"] == (["C-1"], ["C-1", "C-5"])
    assert got["employment_rate_caseload"] == (
        ["C-1", "C-3", "C-4", "C-6"],
        ["C-1", "C-3", "C-4", "C-5", "C-6"],
    )
    assert got["carried_over"] == (["C-3", "C-4", "C-6"], None)
    assert got["discharges"] == (["C-5"], None)


@pytest.mark.parametrize("store", ["memory", "postgres"])
def test_every_store_gives_the_same_reports(
    q3: se_flow.SEFlow, store: str, request: pytest.FixtureRequest
) -> None:
    """The reports read the log through the ports: the reference store and PostgreSQL give
    every figure SQLite gives, case for case."""
    if store == "memory":
        other = se_flow.SEFlow(MemoryStore(q3.workflow), q3.workflow, actor="sam", clock=Clock(NOW))
    else:
        other = se_flow.open(request.getfixturevalue("pg_url"), actor="sam", clock=Clock(NOW))
    with other:
        _q3(_staffed(other))
        for name in ("ips-grow", "coaches", "fidelity", "standards"):
            assert figures(other.report(name, quarter=Q3)) == figures(q3.report(name, quarter=Q3))


def test_the_next_quarter_counts_the_client_whose_weeks_ended_after(q3: se_flow.SEFlow) -> None:
    got = figures(q3.report("ips-grow", quarter="2026-Q4"))
    assert got["sustained_13w"] == (["C-1", "C-4"], ["C-1", "C-4"])
    assert got["clients_into_work"] == ([], None)


def test_every_figure_says_its_definition_is_not_verified(q3: se_flow.SEFlow) -> None:
    report = q3.report("ips-grow", quarter=Q3)
    assert all(k.definition == "ips_grow@1" for k in report.kpis)
    assert all(k.warning == "definition ips_grow@1 is partial, not verified" for k in report.kpis)
    assert "partial, not verified" in (q3.report("ips-grow", quarter=Q3, fmt="html").notes[-1])


def test_a_percentage_is_its_numerator_over_its_denominator(q3: se_flow.SEFlow) -> None:
    kpi = q3.report("ips-grow", quarter=Q3).kpi("employment_rate_cohort")
    assert kpi is not None
    assert (kpi.numerator, kpi.denominator, kpi.value) == (1, 2, Decimal("50.0"))
    assert kpi.shown() == "1 of 2 (50.0%)"


def test_coaches_caseload_peak_score_and_outcomes(q3: se_flow.SEFlow) -> None:
    client(q3, D(2026, 7, 14), coach="kim", profile=False)
    got = figures(q3.report("coaches", month="2026-07"))
    # Referral, first meeting and profile records are contacts: each case is active for 28
    # days from its last; sam's peak in July is every case but the retention client's.
    assert got["caseload_max:sam"][0] == ["C-1", "C-2", "C-5"]
    assert got["caseload_max:kim"] == (["C-7"], None)
    assert got["access:kim"] == (["C-7"], None)
    assert got["job_outcomes:kim"] == ([], ["C-7"])
    report = q3.report("coaches", month="2026-07", coach="kim")
    assert {k.coach for k in report.kpis} == {"kim"}
    score = report.kpi("caseload_score:kim")
    assert score is not None and score.value == 5


def test_a_reassigned_case_counts_for_the_coach_who_held_it_each_day() -> None:
    """Three cases in July 2026. C-1 (sam, referred 20 June, first job 10 July) and C-2 (sam,
    referred 22 June, first job 20 July) pass to kim on 15 July; C-3 is kim's from its
    referral on 1 July. Every record is dated its referral day (referral, meeting and profile
    are contacts: active for 28 days), and C-1 has a review on 25 July.

    Active (open, a contact in the 28 days to the day): C-1 1-17 and 25-31 July, C-2 1-19
    July, C-3 1-28 July. A day is the coach's who held the case at its end, so sam holds C-1
    and C-2 on 1-14 July and kim from 15 July on:
    - sam: C-1 and C-2 active on 1 July, peak 2; access C-1, C-2; job outcomes: C-1's job
      began on 10 July under sam, C-2's on 20 July under kim: 1 of 2 (C-1);
    - kim: C-1, C-2, C-3 all active on 15 July, peak 3; access C-1, C-2, C-3; job
      outcomes: C-2 only, 1 of 3.
    Under the coach now (the old rule) sam would have no cases at all.
    In October the 13 weeks of both first jobs end (8 and 18 October): C-1's sustained job
    is sam's, C-2's kim's."""
    clock = Clock(dt.datetime(2026, 7, 15, 8, tzinfo=dt.UTC))
    with se_flow.open(":memory:", actor="sam", clock=clock) as f:
        flow = _staffed(f)
        one = client(flow, D(2026, 6, 20), job=D(2026, 7, 10))
        two = client(flow, D(2026, 6, 22), job=D(2026, 7, 20), start=False)
        three = client(flow, D(2026, 7, 1), coach="kim", profile=False)
        assert (one, two, three) == ("C-1", "C-2", "C-3")
        clock.now = dt.datetime(2026, 7, 15, 9, tzinfo=dt.UTC)
        flow.assign(one, "kim", actor="ada")
        flow.assign(two, "kim", actor="ada")
        clock.now = NOW
        flow.advance(two, "start_job", effective_at=D(2026, 7, 20), actor="kim")
        flow.record(one, "review", summary="s", effective_at=D(2026, 7, 25), actor="kim")
        report = flow.report("coaches", month="2026-07")
        got = figures(report)
        assert got["caseload_max:sam"] == (["C-1", "C-2"], None)
        assert got["caseload_max:kim"] == (["C-1", "C-2", "C-3"], None)
        peak = report.kpi("caseload_max:kim")
        assert peak is not None and peak.as_at == D(2026, 7, 15)
        assert got["access:sam"] == (["C-1", "C-2"], None)
        assert got["access:kim"] == (["C-1", "C-2", "C-3"], None)
        assert got["job_outcomes:sam"] == (["C-1"], ["C-1", "C-2"])
        assert got["job_outcomes:kim"] == (["C-2"], ["C-1", "C-2", "C-3"])
        outcomes = report.kpi("job_outcomes:sam")
        assert outcomes is not None and "the coach at its start day" in outcomes.method
        october = figures(flow.report("coaches", month="2026-10"))
        assert october["sustained:sam"] == (["C-1"], ["C-1"])
        assert october["sustained:kim"] == (["C-2"], ["C-2"])


@pytest.mark.parametrize(
    ("active", "score"),
    [(0, 5), (20, 5), (21, 4), (25, 4), (26, 3), (30, 3), (31, 2), (40, 2), (41, 1), (90, 1)],
)
def test_the_ips25_caseload_anchors(active: int, score: int) -> None:
    assert caseload_score(active) == score


def test_fidelity_evidence(flow: se_flow.SEFlow) -> None:
    one = client(flow, D(2026, 7, 6), profile=False)
    two = client(flow, D(2026, 7, 6), profile=False)
    client(flow, D(2026, 7, 6), profile=False)
    flow.record(
        one, "employer_contact", employer="Shop", face_to_face=True, effective_at=D(2026, 7, 16)
    )
    flow.record(
        two, "employer_contact", employer="Cafe", face_to_face=True, effective_at=D(2026, 8, 15)
    )
    flow.record(two, "employer_contact", employer="Cafe", effective_at=D(2026, 7, 7), by="kim")
    flow.record(one, "review", summary="s", location="community", effective_at=D(2026, 7, 20))
    flow.record(one, "review", summary="s", location="office", effective_at=D(2026, 7, 27))
    flow.record(two, "review", summary="s", location="community", effective_at=D(2026, 7, 28))
    report = flow.report("fidelity", since="2026-07-01", until="2026-09-30")
    got = figures(report)
    # Days from entry: 10 (C-1) and 40 (C-2; its first contact was not face to face).
    assert got["rapid_job_search"] == (["C-1"], ["C-1", "C-2", "C-3"])
    mean, median = report.kpi("rapid_job_search_mean"), report.kpi("rapid_job_search_median")
    assert mean is not None and median is not None
    assert (mean.value, median.value, mean.numerator) == (Decimal("25.0"), Decimal("25.0"), 2)
    assert len(got["job_development:sam"][0]) == 2
    assert len(got["job_development:kim"][0]) == 1
    community = got["community_contact"]
    assert len(community[0]) == 2 and community[1] is not None and len(community[1]) == 3


def test_standards_met_per_standard(q3: se_flow.SEFlow) -> None:
    got = figures(q3.report("standards", quarter=Q3))
    # Engaged on the referral day: acknowledged within 2 working days, for the Q3 referrals
    # whose deadline fell in Q3.
    assert got["ipes_acknowledge_referral"] == (["C-1", "C-2", "C-5"], ["C-1", "C-2", "C-5"])
    assert set(got) == {s.id for s in q3.workflow.standards}


# --- periods -----------------------------------------------------------------------------------


def test_standards_read_from_case_readings_as_from_the_whole_log(q3: se_flow.SEFlow) -> None:
    """The standards report's histories (from the store's readings, records of the kinds
    read) give every standard's results that the events themselves give."""
    from se_flow._standards import CaseHistory, happenings, pause_triggers
    from se_flow._standards import evaluate as judge

    wf = q3.workflow
    q3.record("C-1", "note", text="called", effective_at=D(2026, 7, 9))
    views = q3._views(q3.programme("ips_grow"), D(2026, 9, 30), with_history=True)
    pause, resume = pause_triggers(wf)
    whole = [
        CaseHistory(
            case_id=v.id,
            coach=v.case.coach,
            happenings=happenings(q3.store.events(case_id=v.id), wf.records),
            closed_on=v.closed_on,
            pause_triggers=pause,
            resume_triggers=resume,
        )
        for v in views
    ]
    mine = [v.history for v in views if v.history is not None]
    assert len(mine) == len(whole) == 6
    on = D(2026, 9, 30)
    assert (
        judge(mine, wf.standards, wf.calendar, on).results
        == judge(whole, wf.standards, wf.calendar, on).results
    )


def test_periods_parse() -> None:
    assert quarter("2026-Q3").start == D(2026, 7, 1) and quarter("2026-Q3").end == D(2026, 9, 30)
    assert month("2026-02").end == D(2026, 2, 28)
    assert parse_period("2026-11").label == "2026-11"
    assert parse_period("2026-07-01..2026-07-01").days == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-Q5", "quarters Q1 to Q4"),
        ("2026-Q0", "quarters Q1 to Q4"),
        ("2026-13", "months run from 01 to 12"),
        ("2026-00", "months run from 01 to 12"),
        ("", "the period is empty"),
        ("  ", "the period is empty"),
        ("2026-09-30..2026-07-01", "the period is empty"),
        ("2026-02-30..2026-03-01", "not a day of the calendar"),
        ("last week", "does not parse"),
    ],
)
def test_bad_periods_are_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_period(text)


def test_bad_report_requests_write_nothing(q3: se_flow.SEFlow, tmp_path: Path) -> None:
    before = len(q3.events())
    with pytest.raises(InvalidInput, match="quarters Q1 to Q4"):
        q3.report("ips-grow", quarter="2026-Q5")
    with pytest.raises(InvalidInput, match="months run"):
        q3.report("coaches", month="2026-13")
    with pytest.raises(InvalidInput, match="empty"):
        q3.report("fidelity", since="2026-09-01", until="2026-08-01")
    with pytest.raises(StaffNotFound):
        q3.report("coaches", month="2026-07", coach="nobody")
    existing = tmp_path / "r.json"
    existing.write_text("mine")
    with pytest.raises(InvalidInput, match="exists"):
        q3.report("ips-grow", quarter=Q3, out=existing)
    assert existing.read_text() == "mine"
    with pytest.raises(InvalidInput, match="unknown report"):
        q3.report("nope", quarter=Q3)
    assert len(q3.events()) == before
    assert list(tmp_path.iterdir()) == [existing]


def test_a_report_is_an_audit_event(q3: se_flow.SEFlow, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    q3.report("ips-grow", quarter=Q3, out=out, fmt="html", actor="ava")
    event = q3.events()[-1]
    assert event.kind == EventKind.REPORT and event.actor == "ava"
    assert event.payload["period"]["label"] == Q3
    assert event.payload["figures"]["total_job_starts"] == [4, None]
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert q3.verify().ok
    q3.report("ips-grow", quarter=Q3, out=out, fmt="json", force=True)
    assert json.loads(out.read_text())["report"] == "ips-grow"


def test_seqf_pack_records_its_seed_and_redraws(q3: se_flow.SEFlow, tmp_path: Path) -> None:
    made = q3.report("seqf", quarter=Q3, out=tmp_path / "pack", sample=3, seed=7)
    pack = json.loads((tmp_path / "pack" / "seqf.json").read_text())
    assert pack["seed"] == 7 and pack["sample"] == list(made.sample)
    clients = [c["case_id"] for c in pack["clients"]]
    assert clients == ["C-1", "C-2", "C-3", "C-4", "C-6"]
    assert made.sample == sample(list(reversed(clients)), 3, 7)
    assert len(made.sample) == 3
    again = q3.report("seqf", quarter=Q3, out=tmp_path / "pack", sample=3, seed=7, force=True)
    assert again.sample == made.sample
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "clients.csv",
        "kpis.csv",
        "report.html",
        "sample.csv",
        "seqf.json",
    ]


def test_seqf_shows_a_job_s_end_reason_from_the_texts_never_a_name(
    flow: se_flow.SEFlow, tmp_path: Path
) -> None:
    """A job's end reason is a free text, kept in the text table: the client list reads it
    from there; erased it reads (erased), to an auditor without a grant (withheld), and the
    participant's own name in it is their pseudonymous id in every file of the pack."""
    robin = client(flow, D(2026, 7, 6), job=D(2026, 7, 20), name="Robin Fox")
    gale = client(flow, D(2026, 7, 6), job=D(2026, 7, 21), name="Gale Ash")
    said = flow.record(
        robin,
        "job_end",
        reason="Robin Fox found the early shifts hard; robin asked to stop",
        end_date="2026-08-10",
        effective_at=D(2026, 8, 10),
    ).event
    gone = flow.record(
        gale, "job_end", reason="Gale Ash moved away", effective_at=D(2026, 8, 12)
    ).event
    flow.erase_text(gone.seq, "record.reason", reason="asked to", actor="ada")
    pid = flow.case(robin).participant_id
    # Kept apart from the log (the event and the records table hold its hash only).
    kept = flow.store.texts_of([said.seq])[said.seq]["record.reason"]
    assert kept is not None and kept.startswith("Robin Fox")

    def jobs(made: Report) -> dict[str, str]:
        return {c["case_id"]: c["jobs"] for c in made.clients}

    made = flow.report("seqf", quarter=Q3, out=tmp_path / "pack", sample=2, seed=1)
    assert jobs(made)[robin] == (
        "J1 Corner Shop from 2026-07-20 to 2026-08-10, 16 h/week at £12.80, "
        f"ended: {pid} found the early shifts hard; {pid} asked to stop"
    )
    assert jobs(made)[gale].endswith("ended: (erased)")
    for f in (tmp_path / "pack").iterdir():
        text = f.read_text()
        assert "Robin" not in text and "Fox" not in text and "Gale" not in text, f.name
        assert "moved away" not in text, f.name
    audited = flow.report("seqf", quarter=Q3, out=tmp_path / "pack2", sample=2, seed=1, actor="ava")
    assert jobs(audited)[robin].endswith("ended: (withheld)")
    assert jobs(audited)[gale].endswith("ended: (erased)")


# --- totals are the lengths of their lists (any caseload) ---------------------------------------

WF = load_workflow()
GROW = next(p for p in load_programmes() if p.id == "ips_grow")
days = st.dates(min_value=D(2026, 1, 1), max_value=D(2026, 12, 31))


@st.composite
def views(draw: Any) -> list[CaseView]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        referred = draw(days)
        closed = draw(st.none() | st.dates(min_value=referred, max_value=D(2026, 12, 31)))
        starts = []
        spells = []
        for j in range(draw(st.integers(0, 3))):
            start = draw(st.dates(min_value=referred, max_value=D(2026, 12, 31)))
            starts.append(
                JobStart(
                    f"J{j}", start, start + dt.timedelta(days=1), draw(st.sampled_from("AB")), None
                )
            )
            spells.append(
                Spell(
                    f"J{j}",
                    "A",
                    start,
                    (Terms(start, Decimal(16), Decimal(draw(st.sampled_from(["5", "13"]))), 1),),
                )
            )
        case = Case(
            id=f"C-{i + 1}",
            participant_id=f"P-{i}",
            state="referred",
            status=Status.CLOSED if closed else Status.ACTIVE,
            version=1,
            opened_at=dt.datetime.combine(referred, dt.time(9), dt.UTC),
            stage_entered_at=dt.datetime.combine(referred, dt.time(9), dt.UTC),
            coach=draw(st.sampled_from(["sam", "kim"])),
            closed_at=dt.datetime.combine(closed, dt.time(9), dt.UTC) if closed else None,
        )
        contacts = tuple(
            Contact(d, k, "review", draw(st.sampled_from([None, "community", "office"])), None)
            for k, d in enumerate(sorted(draw(st.lists(days, max_size=4))))
        )
        first = min((s.started for s in starts), default=None)
        coach = case.coach
        handovers = sorted(
            draw(st.lists(st.tuples(days, st.sampled_from(["sam", "kim"])), max_size=2))
        )
        out.append(
            CaseView(
                case=case,
                referred_on=referred,
                closed_on=closed,
                in_work_at_referral=draw(st.sampled_from([None, "no", "retention", "new_job"])),
                engaged_on=draw(st.none() | st.just(referred)),
                profiled_on=draw(st.none() | days),
                stages=((referred, "customer_engagement"),),
                contacts=contacts,
                employer_contacts=tuple(
                    EmployerContact(d, 100 + k, "A", draw(st.booleans()), "sam")
                    for k, d in enumerate(draw(st.lists(days, max_size=3)))
                ),
                spells=tuple(spells),
                starts=tuple(sorted(starts, key=lambda s: s.on)),
                sustained_on=draw(st.none() | st.just(first + dt.timedelta(days=90)))
                if first
                else None,
                coaches=((referred, coach), *((d, c) for d, c in handovers if d >= referred)),
            )
        )
    return out


def _consistent(k: KPI) -> None:
    assert k.numerator == len(k.numerator_cases), k.key
    if k.denominator is not None:
        assert k.denominator == len(k.denominator_cases), k.key
    if k.unit == "percent":
        # What is counted is always among what it is counted out of.
        assert set(k.numerator_cases) <= set(k.denominator_cases), k.key


@settings(max_examples=60, deadline=None)
@given(views(), st.sampled_from(["2026-Q1", "2026-Q2", "2026-Q3", "2026-07", "2026-12"]))
def test_totals_equal_the_lengths_of_their_case_lists(cases: list[CaseView], text: str) -> None:
    p = parse_period(text)
    on = p.end
    reports = [
        ips_grow(cases, p, on, GROW, WF),
        coaches(cases, p, on, GROW, WF, ["sam", "kim"]),
        fidelity(cases, p, on, GROW, WF),
    ]
    for r in reports:
        for k in r.kpis:
            _consistent(k)
    grow = {k.id: k for k in reports[0].kpis}
    assert grow["total_job_starts"].numerator >= grow["clients_into_work"].numerator
    assert period_between(p.start, p.end) == p or p.label != f"{p.start}..{p.end}"


@settings(max_examples=60, deadline=None)
@given(views(), st.sampled_from(["2026-Q1", "2026-07", "2026-12"]))
def test_peak_caseload_is_the_most_active_on_any_one_day(cases: list[CaseView], text: str) -> None:
    """The peak found from stretches equals a count day by day of the definition itself, each
    day's cases those its coach held at the end of it (reassignments replayed)."""
    p = parse_period(text)
    report = coaches(cases, p, p.end, GROW, WF, ["sam", "kim"])
    for coach in ("sam", "kim"):
        most = 0
        day = p.start
        while day <= p.end:
            active = [
                v
                for v in cases
                if v.coach_on(day) == coach
                and v.open_on(day)
                and any(day - dt.timedelta(days=27) <= c.on <= day for c in v.contacts)
            ]
            most = max(most, len(active))
            day += dt.timedelta(days=1)
        peak = report.kpi(f"caseload_max:{coach}")
        assert peak is not None and peak.numerator == most
