"""Enrolment on a programme, milestones in the audit trail, and claims (issue 13, items 2, 4, 5).

A case is on the definition version its last `enrol` event names; every write to an enrolled
case appends, in the same transaction, a `milestone` event per change the evidence makes; a
claimed milestone is never rewritten (a change is flagged); `verify` recomputes them all.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock, Steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import se_flow
from se_flow import SEFlow
from se_flow._milestones import instance_key, read_kinds

D = dt.date
WORK = {
    "period_start": "2026-05-25",
    "period_end": "2026-05-31",
    "hours": "16",
    "gross_pay": "204.80",
    "evidence": "payslip",
    "reference": "PS-1",
}


def in_work(steps: Steps, **refer: Any) -> se_flow.Case:
    return steps.to("in_work_support", steps.refer(**refer))


def kinds(flow: SEFlow, case_id: str) -> list[str]:
    return [e.kind for e in flow.history(case_id)]


def milestone_events(flow: SEFlow, case_id: str) -> list[tuple[str, str, str]]:
    return [
        (e.payload["change"], e.payload["key"], e.payload["state"])
        for e in flow.history(case_id)
        if e.kind == "milestone"
    ]


def held(flow: SEFlow, case_id: str) -> dict[str, str]:
    return {m.key: m.state for m in flow.milestones(case_id)}


# --- enrolment ------------------------------------------------------------------------------


def test_refer_with_a_programme_enrols_the_case_on_its_latest_version(
    flow: SEFlow, steps: Steps
) -> None:
    case = steps.refer(programme="mhep")
    (enrol,) = [e for e in flow.history(case.id) if e.kind == "enrol"]
    assert (enrol.payload["programme"], enrol.payload["version"], enrol.actor) == (
        "mhep",
        "1",
        "sam",
    )
    out = flow.outcomes(case.id)
    assert out.enrolment is not None and out.enrolment.ref == "mhep@1"
    assert out.programme is not None and out.programme.ref == "mhep@1"


def test_enrol_later_and_only_a_team_leader_moves_a_case(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    assert flow.outcomes(case.id).programme is None
    flow.enrol(case.id, "ips_grow@1")
    assert flow.outcomes(case.id).programme.ref == "ips_grow@1"  # type: ignore[union-attr]
    with pytest.raises(se_flow.PermissionDenied, match="only a team leader may move it"):
        flow.enrol(case.id, "mhep")
    with pytest.raises(se_flow.InvalidInput, match="already on ips_grow@1"):
        flow.enrol(case.id, "ips_grow", actor="lee")
    flow.enrol(case.id, "mhep", actor="lee", reason="commissioned under the SIB")
    enrols = [e.payload for e in flow.history(case.id) if e.kind == "enrol"]
    assert [p["from"] for p in enrols] == [None, "ips_grow@1"]
    assert flow.outcomes(case.id).programme.ref == "mhep@1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("actor", "programme", "error", "words"),
    [
        ("ada", "mhep", se_flow.PermissionDenied, "only a coach or team leader"),
        ("ava", "mhep", se_flow.PermissionDenied, "auditor"),
        ("sam", "nope", se_flow.UnknownProgramme, "unknown programme 'nope'"),
        ("sam", "mhep@9", se_flow.UnknownProgramme, "mhep@9"),
    ],
)
def test_a_refused_enrolment_writes_nothing(
    flow: SEFlow, steps: Steps, actor: str, programme: str, error: type[Exception], words: str
) -> None:
    case = steps.refer()
    before = flow.history(case.id)
    with pytest.raises(error, match=words):
        flow.enrol(case.id, programme, actor=actor)
    assert flow.history(case.id) == before


def test_a_closed_case_cannot_be_enrolled(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    flow.withdraw(case.id, reason="moved away")
    with pytest.raises(se_flow.CaseClosed):
        flow.enrol(case.id, "mhep")


# --- milestones in the log ------------------------------------------------------------------


def test_a_write_that_reaches_a_milestone_logs_it_in_the_same_transaction(
    flow: SEFlow, steps: Steps
) -> None:
    case = in_work(steps, programme="mhep")
    # The job started on 2026-05-25 at 16 hours a week (16 / 7 a day): 4 hours by the 26th.
    assert ("reached", "job_start", "provisional") in milestone_events(flow, case.id)
    history = flow.history(case.id)
    start = next(e for e in history if e.trigger == "start_job")
    after = history[history.index(start) + 1]
    assert after.kind == "milestone" and after.recorded_at == start.recorded_at
    assert after.payload["programme"] == "mhep@1" and after.payload["achieved_on"] == "2026-05-26"
    assert held(flow, case.id) == {"job_start": "provisional"}
    assert flow.verify()


def test_provisional_turns_evidenced_when_work_records_arrive(flow: SEFlow, steps: Steps) -> None:
    case = in_work(steps, programme="mhep")
    work = flow.record(case.id, "work_evidence", WORK).record
    assert milestone_events(flow, case.id)[-1] == ("changed", "job_start", "achieved")
    last = [e for e in flow.history(case.id) if e.kind == "milestone"][-1]
    assert work.seq in last.payload["evidence"] and last.payload["was"]["state"] == "provisional"
    # Evidence that changes neither state, date, band nor jobs logs nothing more.
    n = len(flow.history(case.id))
    flow.record(
        case.id,
        "work_evidence",
        {**WORK, "period_start": "2026-06-01"}
        | {"period_end": "2026-06-01", "hours": "2", "gross_pay": "25.60"},
    )
    assert len(flow.history(case.id)) == n + 1
    assert flow.verify()


def test_a_case_on_no_programme_logs_no_milestones(flow: SEFlow, steps: Steps) -> None:
    case = in_work(steps)
    assert "milestone" not in kinds(flow, case.id)
    assert flow.milestones(case.id) == ()


def test_time_passing_is_logged_at_the_next_write(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = in_work(steps, programme="mhep")
    clock.advance(days=120)
    assert "sustain_13w" not in held(flow, case.id)
    flow.record(case.id, "review", summary="still in work")
    assert held(flow, case.id)["sustain_13w"] == "provisional"
    (ev,) = [e for e in flow.history(case.id) if e.payload.get("key") == "sustain_13w"]
    # The 91st day of the job that started on 2026-05-25; band by contracted 16 hours.
    assert (ev.payload["achieved_on"], ev.payload["band"]) == ("2026-08-23", "ge16")
    assert flow.verify()


def test_a_correction_retracts_a_milestone(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = in_work(steps, programme="mhep")
    clock.advance(days=120)
    flow.record(case.id, "review", summary="still in work")
    assert "sustain_13w" in held(flow, case.id)
    # Learned late: the job ended after 60 days.
    flow.record(case.id, "job_end", reason="dismissed", end_date="2026-07-23")
    assert milestone_events(flow, case.id)[-1] == ("retracted", "sustain_13w", "not_yet")
    assert "sustain_13w" not in held(flow, case.id)
    assert flow.verify()


def test_verify_finds_a_milestone_the_log_should_hold(flow: SEFlow, steps: Steps) -> None:
    case = in_work(steps, programme="mhep")
    flow.milestone_check = False
    flow.record(case.id, "work_evidence", WORK)
    result = flow.verify()
    assert not result.ok
    assert result.problem is not None and "should hold a milestone event" in result.problem
    assert "changed job_start" in result.problem


def test_a_record_on_a_case_enrolled_by_another_connection_logs_its_milestones(
    flow: SEFlow, steps: Steps, tmp_path: Path, clock: Clock
) -> None:
    # `flow` has written to the case while it was on no programme (no milestone batch then);
    # another connection enrols it: the next record finds the enrolment inside its write.
    case = in_work(steps)
    flow.record(case.id, "review", summary="before the programme")
    assert "milestone" not in kinds(flow, case.id)
    with se_flow.open(tmp_path / "t.db", clock=clock, actor="lee") as other:
        other.enrol(case.id, "mhep")
    before = milestone_events(flow, case.id)
    flow.record(case.id, "work_evidence", WORK)
    assert milestone_events(flow, case.id) == [*before, ("changed", "job_start", "achieved")]
    assert flow.verify()


# --- claims ---------------------------------------------------------------------------------


def evidenced(flow: SEFlow, steps: Steps) -> se_flow.Case:
    """A case on MHEP whose job start rests on a payslip."""
    case = in_work(steps, programme="mhep")
    flow.record(case.id, "work_evidence", {**WORK, "verified_by": "lee"})
    return case


def test_a_team_leader_claims_an_evidenced_milestone_once(flow: SEFlow, steps: Steps) -> None:
    case = evidenced(flow, steps)
    flow.claim(case.id, "job_start", "MHEP-2026-001", actor="lee")
    (claim,) = [e for e in flow.history(case.id) if e.kind == "claim"]
    assert (claim.actor, claim.payload["reference"], claim.payload["achieved_on"]) == (
        "lee",
        "MHEP-2026-001",
        "2026-05-26",
    )
    (job_start,) = [m for m in flow.milestones(case.id) if m.key == "job_start"]
    assert job_start.claim is not None and job_start.claim.reference == "MHEP-2026-001"
    with pytest.raises(se_flow.ClaimRefused, match="claimed already"):
        flow.claim(case.id, "job_start", "MHEP-2026-002", actor="lee")
    assert flow.verify()


@pytest.mark.parametrize(
    ("milestone", "reference", "words"),
    [
        ("job_start", "R-1", "work evidence: it is provisional"),
        ("sustain_13w", "R-1", "the log holds no sustain_13w"),
        ("nope", "R-1", "has no milestone 'nope'"),
        ("job_start", " ", "the funder's reference"),
    ],
)
def test_a_claim_refused_names_what_is_missing_and_writes_nothing(
    flow: SEFlow, steps: Steps, milestone: str, reference: str, words: str
) -> None:
    case = in_work(steps, programme="mhep")
    before = flow.history(case.id)
    with pytest.raises(se_flow.ClaimRefused, match=words) as refused:
        flow.claim(case.id, milestone, reference, actor="lee")
    assert refused.value.exit_code == 5 and refused.value.missing
    assert flow.history(case.id) == before


def test_only_a_team_leader_or_admin_claims(flow: SEFlow, steps: Steps) -> None:
    case = evidenced(flow, steps)
    for who in ("sam", "ava"):
        with pytest.raises(se_flow.PermissionDenied):
            flow.claim(case.id, "job_start", "R-1", actor=who)
    flow.claim(case.id, "job_start", "R-1", actor="ada")


def test_an_unverified_definition_cannot_be_claimed(
    tmp_path: Path, clock: Clock, steps: Steps
) -> None:
    folder = tmp_path / "programmes"
    folder.mkdir()
    shipped = Path(se_flow.__file__).parent / "programmes" / "mhep.toml"
    text = shipped.read_text(encoding="utf-8").replace(
        'status = "partial"', 'status = "unverified"'
    )
    (folder / "mhep.toml").write_text(text, encoding="utf-8")
    with se_flow.open(tmp_path / "u.db", clock=clock, actor="sam", programmes=folder) as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        f.add_staff("sam", "Sam Coach", "coach", actor="ada")
        case = in_work(Steps(f), programme="mhep")
        f.record(case.id, "work_evidence", WORK)
        with pytest.raises(se_flow.ClaimRefused, match="mhep@1 is unverified"):
            f.claim(case.id, "job_start", "R-1", actor="lee")


def test_a_claimed_milestone_is_flagged_not_rewritten(flow: SEFlow, steps: Steps) -> None:
    case = evidenced(flow, steps)
    work = next(r for r in flow.records(case.id) if r.kind == "work_evidence")
    flow.claim(case.id, "job_start", "R-1", actor="lee")
    # The payslip was misread: 8 hours that week, so 4 hours were reached two days later.
    flow.record(case.id, "work_evidence", {**WORK, "hours": "8"}, supersedes=work.seq)
    assert milestone_events(flow, case.id)[-1] == ("flagged", "job_start", "achieved")
    (job_start,) = [m for m in flow.milestones(case.id) if m.key == "job_start"]
    assert job_start.achieved_on == D(2026, 5, 26) and job_start.claim is not None
    assert job_start.flag is not None and job_start.flag[1] == D(2026, 5, 28)
    assert flow.outcomes(case.id).logged[0].flag is not None
    with pytest.raises(se_flow.ClaimRefused, match="claimed already"):
        flow.claim(case.id, "job_start", "R-2", actor="lee")
    # Put back as it was: the flag is cleared, in the log too.
    again = next(r for r in flow.records(case.id) if r.kind == "work_evidence")
    flow.record(case.id, "work_evidence", WORK, supersedes=again.seq)
    assert milestone_events(flow, case.id)[-1][0] == "unflagged"
    assert flow.verify()


def test_claims_export_with_manifest_pseudonyms_and_verification(
    flow: SEFlow, steps: Steps, tmp_path: Path
) -> None:
    case = evidenced(flow, steps)
    flow.claim(case.id, "job_start", "MHEP-1", actor="lee")
    other = in_work(steps, programme="ips_grow")
    flow.record(other.id, "work_evidence", WORK)
    flow.claim(other.id, f"job_start:{flow.outcomes(other.id).spells[0].job}", "IPS-1", actor="lee")
    out = tmp_path / "claims"
    manifest = flow.export_claims(out, programme="mhep", since="2026-06-01", until="2026-06-01")
    assert manifest.rows == {"claims": 1} and manifest.filters["programme"] == "mhep"
    with (out / "claims.csv").open(encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["case_id"], row["milestone"], row["reference"], row["claimed_by"]) == (
        case.id,
        "job_start",
        "MHEP-1",
        "lee",
    )
    assert (row["evidence"], row["evidence_references"], row["verified_by"]) == (
        "payslip",
        "PS-1",
        "lee",
    )
    assert row["participant_id"].startswith("P-") and "Alex" not in (out / "claims.csv").read_text()
    assert flow.verify_export(out)
    assert flow.export_claims(tmp_path / "none", since="2026-06-02", until="2026-06-02").rows == {
        "claims": 0
    }
    # A claims file altered after the export is caught.
    text = (out / "claims.csv").read_text(encoding="utf-8").replace("MHEP-1", "MHEP-9")
    (out / "claims.csv").write_text(text, encoding="utf-8")
    assert not flow.verify_export(out)


def test_claims_export_refuses_an_unknown_programme_and_writes_nothing(
    flow: SEFlow, tmp_path: Path
) -> None:
    before = flow.events()
    with pytest.raises(se_flow.UnknownProgramme, match="nope"):
        flow.export_claims(tmp_path / "x", programme="nope")
    assert not (tmp_path / "x").exists() and flow.events() == before


# --- what is coming up ----------------------------------------------------------------------


def test_milestones_coming_up_across_the_caseload(flow: SEFlow, steps: Steps, clock: Clock) -> None:
    case = in_work(steps, programme="mhep")
    in_work(steps)  # on no programme: nothing of it is listed
    clock.advance(days=75)
    # The job started on 2026-05-25: its 91st day is 2026-08-23, 8 days after 2026-08-15.
    (due,) = flow.outcomes_due(within_days=14)
    assert (due.case_id, due.what, due.milestone, due.due_on) == (
        case.id,
        "milestone",
        "sustain_13w",
        D(2026, 8, 23),
    )
    assert "more days" in due.detail
    assert flow.outcomes_due(within_days=7) == ()
    assert flow.outcomes_due(within_days=14, coach="kim") == ()
    assert flow.outcomes_due(within_days=14, programme="ips_grow") == ()
    with pytest.raises(se_flow.UnknownProgramme):
        flow.outcomes_due(programme="nope")
    with pytest.raises(se_flow.InvalidInput, match="within_days"):
        flow.outcomes_due(within_days=-1)


def test_claims_whose_window_closes_soon(tmp_path: Path, clock: Clock) -> None:
    folder = tmp_path / "programmes"
    folder.mkdir()
    shipped = Path(se_flow.__file__).parent / "programmes" / "mhep.toml"
    text = shipped.read_text(encoding="utf-8").replace(
        "hours = 4\n", "hours = 4\nclaim_within_days = 30\n"
    )
    (folder / "mhep.toml").write_text(text, encoding="utf-8")
    with se_flow.open(tmp_path / "c.db", clock=clock, actor="sam", programmes=folder) as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        f.add_staff("sam", "Sam Coach", "coach", actor="ada")
        case = in_work(Steps(f), programme="mhep")
        f.record(case.id, "work_evidence", WORK)
        # Reached on 2026-05-26: to be claimed by 2026-06-25.
        claims = [d for d in f.outcomes_due(within_days=30) if d.what == "claim"]
        assert [(d.milestone, d.due_on, d.overdue) for d in claims] == [
            ("job_start", D(2026, 6, 25), False)
        ]
        assert "claims mark" in claims[0].detail
        f.claim(case.id, "job_start", "R-1", actor="lee")
        assert [d for d in f.outcomes_due(within_days=30) if d.what == "claim"] == []


# --- the age band at the job's start, and once per participant --------------------------------

OFFER = {
    "employer": "Corner Shop",
    "start_date": "2026-05-25",
    "hours_per_week": "16",
    "hourly_pay": "11.00",
}


def test_the_age_band_at_the_start_comes_from_the_date_of_birth(flow: SEFlow, steps: Steps) -> None:
    young = se_flow.PersonalDetails(name="Jo Young", date_of_birth=D(2007, 1, 1))
    case = steps.to("job_matching", flow.refer(young, source="GP", programme="mhep").case)
    offer = flow.record(case.id, "job_offer", OFFER).record
    # 19 on 2026-05-25: the 18 to 20 rate (10.85) is the floor, not the adult 12.71.
    assert offer.fields["age_band"] == "18_20"
    flow.record(case.id, "support_plan", summary="weekly visits")
    flow.advance(case.id, "start_job")
    (spell,) = flow.outcomes(case.id).spells
    assert spell.age_band == "18_20"
    states = {m.id: m.state.value for m in flow.outcomes(case.id).milestones}
    assert states["job_start"] == "provisional"  # competitive at the 18 to 20 rate
    # The band is in the log; the date of birth never is.
    assert all("2007-01-01" not in str(e.payload) for e in flow.events())
    with pytest.raises(se_flow.InvalidRecord) as refused:
        flow.record(case.id, "job_start", {**OFFER, "job": "J2", "age_band": "21_over"})
    assert list(refused.value.problems) == ["age_band"]
    assert "18_20 on 2026-05-25" in refused.value.problems["age_band"]
    assert flow.verify()


def test_without_a_date_of_birth_the_band_is_as_given(flow: SEFlow, steps: Steps) -> None:
    case = steps.to("job_matching", steps.refer())
    assert "age_band" not in flow.record(case.id, "job_offer", OFFER).record.fields
    given = flow.record(case.id, "job_offer", {**OFFER, "age_band": "under_18"}).record
    assert given.fields["age_band"] == "under_18"


def test_a_milestone_once_per_participant_counts_on_one_case_only(
    tmp_path: Path, clock: Clock
) -> None:
    folder = tmp_path / "programmes"
    folder.mkdir()
    (folder / "p.toml").write_text(
        '[programme]\nid = "p"\nversion = "1"\ntitle = "P"\nsource = "test"\n'
        'status = "partial"\n\n[[milestones]]\nid = "job_start"\ntest = "paid_hours"\n'
        'hours = 4\nonce_per = "participant"\n',
        encoding="utf-8",
    )
    with se_flow.open(tmp_path / "p.db", clock=clock, actor="sam", programmes=folder) as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("sam", "Sam Coach", "coach", actor="ada")
        steps = Steps(f)
        first = in_work(steps, programme="p")
        assert {m.key for m in f.milestones(first.id)} == {"job_start"}
        f.withdraw(first.id, reason="moved away")
        clock.advance(days=1)
        second = steps.to("in_work_support", f.reopen(first.id, source="self").case)
        f.enrol(second.id, "p")
        (m,) = f.outcomes(second.id).milestones
        assert m.state.value == "excluded" and first.id in m.reason
        assert f.milestones(second.id) == ()
        assert f.verify()


# --- the property: the log's milestones are the evaluator's -----------------------------------

ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("work"), st.integers(0, 30), st.sampled_from(["0", "3", "7.5", "16", "20"])
        ),
        st.tuples(st.just("end"), st.integers(0, 200), st.just("")),
        st.tuples(st.just("time"), st.integers(1, 60), st.just("")),
        st.tuples(st.just("review"), st.just(0), st.just("")),
    ),
    max_size=12,
)


def _reached(flow: SEFlow, case_id: str, on: dt.date) -> dict[str, tuple[Any, ...]]:
    out = flow.outcomes(case_id, on=on)
    assert out.programme is not None
    found: dict[str, tuple[Any, ...]] = {}
    for m in out.milestones:
        if m.reached:
            found[instance_key(out.programme, m)] = (m.state.value, m.achieved_on, m.band, m.jobs)
    return found


def _rebuilt(flow: SEFlow, case_id: str) -> dict[str, tuple[Any, ...]]:
    return {h.key: (h.state, h.achieved_on, h.band, h.jobs) for h in flow.milestones(case_id)}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    programme=st.sampled_from(["mhep", "ips_grow", "dwp_poc", "ips_primary_care", "whp", "us_vr"]),
    back=st.integers(0, 150),
    hours=st.sampled_from(["8", "16", "17", "30"]),
    actions=ACTIONS,
)
def test_the_logs_milestones_are_the_evaluators(
    programme: str, back: int, hours: str, actions: list[tuple[str, int, str]]
) -> None:
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    with se_flow.open(":memory:", clock=clock, actor="sam", synchronous="OFF") as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        flow.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        steps = Steps(flow)
        opened = clock.now - dt.timedelta(days=back + 60)
        case = steps.to("job_matching", flow.refer("Alex", source="GP", effective_at=opened).case)
        flow.enrol(case.id, programme)
        start = (clock.now - dt.timedelta(days=back)).date()
        flow.record(
            case.id,
            "job_offer",
            employer="Shop",
            start_date=start.isoformat(),
            hours_per_week=hours,
            hourly_pay="13.00",
        )
        flow.record(case.id, "support_plan", summary="weekly visits")
        flow.advance(case.id, "start_job")
        weeks: set[int] = set()
        ended = False
        # The day of the last write outcomes read: what the log holds is as of then.
        synced = clock.now.date()
        reads_reviews = "review" in read_kinds(flow.programme(programme), flow.workflow)
        for what, n, value in actions:
            today = clock.now.date()
            if what == "work" and n not in weeks:
                first = start + dt.timedelta(days=7 * n)
                if first + dt.timedelta(days=6) >= today:
                    continue
                weeks.add(n)
                flow.record(
                    case.id,
                    "work_evidence",
                    period_start=first.isoformat(),
                    period_end=(first + dt.timedelta(days=6)).isoformat(),
                    hours=value,
                    gross_pay=str(Decimal(value) * 13),
                    evidence="timesheet",
                )
                synced = today
            elif what == "end" and not ended:
                last = min(start + dt.timedelta(days=n), today)
                flow.record(case.id, "job_end", reason="ended", end_date=last.isoformat())
                ended = True
                synced = today
            elif what == "time":
                clock.advance(days=n)
            elif what == "review":
                flow.record(case.id, "review", summary="weekly")
                synced = today if reads_reviews else synced
            # The log holds what the evaluator gives as of the last write outcomes read.
            assert _rebuilt(flow, case.id) == _reached(flow, case.id, synced)
            day = clock.now.date()
            assert flow.outcomes(case.id, on=day) == flow.outcomes(case.id, on=day)
        flow.enrol(case.id, "mhep" if programme != "mhep" else "ips_grow", actor="lee")
        assert _rebuilt(flow, case.id) == _reached(flow, case.id, clock.now.date())
        assert flow.verify()


@pytest.mark.parametrize(
    ("since", "until", "fmt", "words"),
    [
        ("2026-06-02", "2026-06-01", "csv", "after until"),
        ("June", None, "csv", "not a date"),
        (None, None, "xlsx", "unknown export format"),
    ],
)
def test_a_bad_claims_export_is_refused_and_writes_nothing(
    flow: SEFlow, tmp_path: Path, since: str | None, until: str | None, fmt: str, words: str
) -> None:
    before = flow.events()
    with pytest.raises(se_flow.InvalidExportRequest, match=words):
        flow.export_claims(tmp_path / "x", since=since, until=until, fmt=fmt)
    assert not (tmp_path / "x").exists() and flow.events() == before


def test_a_person_resolves_a_flagged_claim(flow: SEFlow, steps: Steps) -> None:
    case = evidenced(flow, steps)
    work = next(r for r in flow.records(case.id) if r.kind == "work_evidence")
    flow.claim(case.id, "job_start", "R-1", actor="lee")
    flow.record(case.id, "work_evidence", {**WORK, "hours": "8"}, supersedes=work.seq)
    with pytest.raises(se_flow.PermissionDenied):
        flow.resolve_claim(case.id, "job_start", reason="payslip reread", actor="sam")
    with pytest.raises(se_flow.InvalidInput, match="needs a reason"):
        flow.resolve_claim(case.id, "job_start", reason=" ", actor="lee")
    with pytest.raises(se_flow.InvalidInput, match="flagged: job_start"):
        flow.resolve_claim(case.id, "engagement", reason="x", actor="lee")
    flow.resolve_claim(case.id, "job_start", reason="payslip reread", actor="lee")
    (job_start,) = [m for m in flow.milestones(case.id) if m.key == "job_start"]
    assert job_start.achieved_on == D(2026, 5, 28) and job_start.flag is None
    assert job_start.claim is not None and job_start.claim.reference == "R-1"
    with pytest.raises(se_flow.InvalidInput, match="not one flagged"):
        flow.resolve_claim(case.id, "job_start", reason="again", actor="lee")
    assert flow.verify()
