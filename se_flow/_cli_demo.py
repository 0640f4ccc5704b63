"""`se-flow demo`: a realistic caseload built through the public API, then shown.

Thirteen participants spread over every stage, with the things a service sees every week: a
move refused with its reasons, a team leader's override, a job lost and a new one found, a
pause, a withdrawal, a disengagement, a completion and a corrected record; every case on the
MHEP programme, with a job sustained past 13 weeks on payslips, a job start still provisional
and 13 weeks reached across two jobs with the gap between them bridged. Dates are real
(today), with the history back-dated as coaches record it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import se_flow

from ._cli_render import print_caseload, print_due_items, print_outcomes, print_timeline
from ._cli_text import FAIL
from ._evidence import LEAST_EVIDENCE, ORDER

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Story", "build", "run"]

STAFF = [
    ("ada", "Ada Okafor", "admin"),
    ("lee", "Lee Morgan", "team_leader"),
    ("sam", "Sam Patel", "coach"),
    ("kim", "Kim Osei", "coach"),
    ("ava", "Ava Lindqvist", "auditor"),
]

# How many days before a forward move the coach made each record: the story's rhythm.
_DAYS_BEFORE = {
    "consent": 2,
    "first_meeting": 2,
    "informed_choice": 2,
    "action_plan": 1,
    "vocational_profile": 3,
    "disclosure_preference": 2,
    "benefits_advice": 1,
    "employer_contact": 4,
    "job_analysis": 2,
    "job_offer": 3,
    "support_plan": 1,
    "fading_plan": 2,
    "natural_support": 1,
}


class Story:
    """What the demo did that is worth showing, besides the caseload itself."""

    def __init__(self) -> None:
        self.refused: se_flow.GuardsFailed | None = None
        self.override: tuple[str, str, str] | None = None  # case, by, reason
        self.rematched: str = ""
        self.names: dict[str, str] = {}
        # Outcomes worth showing: (case, what it shows).
        self.outcomes: list[tuple[str, str]] = []


class _Demo:
    def __init__(self, flow: se_flow.SEFlow) -> None:
        self.flow = flow
        self.now = flow.now()

    def ago(self, days: float) -> dt.datetime:
        return self.now - dt.timedelta(days=days)

    def day(self, days: float) -> str:
        return self.ago(days).date().isoformat()

    def rec(self, case: str, kind: str, days: float, by: str, **fields: Any) -> None:
        self.flow.record(case, kind, fields, actor=by, effective_at=self.ago(days))

    def move(self, case: str, trigger: str, days: float, by: str, **kw: Any) -> se_flow.Case:
        return self.flow.advance(case, trigger, actor=by, effective_at=self.ago(days), **kw).case

    def evidence(self, case: str, place: str, days: float, by: str, job: dict[str, str]) -> None:
        """What the coach records before the forward move out of `place`: every record the
        least evidence names, with the job's own details on top."""
        extra: dict[str, dict[str, Any]] = {
            "consent": {"employer_contact": True},
            "first_meeting": {"location": "Library, Market Street"},
            "action_plan": {"summary": job["plan"]},
            "vocational_profile": {"job_goals": job["goals"], "skills": job["skills"]},
            "disclosure_preference": {"level": job["disclosure"]},
            "benefits_advice": {"adviser": "Welfare rights team"},
            "employer_contact": {"employer": job["employer"], "contact_name": job["contact"]},
            "job_analysis": {"employer": job["employer"], "role": job["role"]},
            "participant_agreement": {"employer": job["employer"]},
            "job_offer": {
                "employer": job["employer"],
                "role": job["role"],
                "start_date": self.day(days),
                "hours_per_week": job["hours"],
                "hourly_pay": job["pay"],
            },
            "support_plan": {"summary": "Weekly visits, then fortnightly"},
            "fading_plan": {
                "steps": f"{self.day(days - 14)} fortnightly visits; "
                f"{self.day(days - 45)} phone only"
            },
        }
        for kind, fields in LEAST_EVIDENCE[place].records:
            before = days + _DAYS_BEFORE.get(kind, 0)
            self.rec(case, kind, before, by, **{**fields, **extra.get(kind, {})})

    def walk(
        self, case: str, to: str, start: float, step: float, by: str, job: dict[str, str]
    ) -> float:
        """Move `case` forward to `to`, one stage every `step` days from `start` days ago;
        returns how many days ago the last move happened."""
        days = start
        place = "referred"
        while place != to:
            days -= step
            self.evidence(case, place, days, by, job)
            self.move(case, LEAST_EVIDENCE[place].trigger, days, by)
            place = ORDER[ORDER.index(place) + 1]
        return days

    def refer(self, story: Story, name: str, source: str, coach: str, days: float) -> str:
        # Every case is counted under the MHEP definition: its milestones are in the log.
        case = self.flow.refer(
            se_flow.PersonalDetails(
                name=name, contact="07700 900" + str(len(story.names)).zfill(3)
            ),
            source=source,
            coach=coach,
            actor=coach,
            effective_at=self.ago(days),
            programme="mhep",
        ).case
        story.names[case.id] = name
        return case.id


def _job(
    employer: str, role: str, pay: str = "13.50", hours: str = "16", **more: str
) -> dict[str, str]:
    job = {
        "employer": employer,
        "role": role,
        "pay": pay,
        "hours": hours,
        "contact": "Hiring manager",
        "goals": f"{role.lower()}; customer service",
        "skills": "reliable; friendly with customers",
        "disclosure": "partial",
        "plan": f"Look for {role.lower()} roles near home; visit two employers",
    }
    job.update(more)
    return job


def build(flow: se_flow.SEFlow) -> Story:
    """Add the demo's staff and caseload through the API. The database must be empty."""
    story = Story()
    d = _Demo(flow)
    for staff_id, name, role in STAFF:
        flow.add_staff(staff_id, name, role, actor="ada")

    # A job lost and a new match: the old job stays on record, support carries on. The new
    # job starts 11 days after the old one ended: MHEP bridges the gap (up to 14 days, not
    # counted), so the 13 weeks are reached across both jobs.
    alex = d.refer(story, "Alex Doe", "GP", "sam", 170)
    shop = _job("Corner Shop Ltd", "Shop assistant")
    d.walk(alex, "in_work_support", 170, 12, "sam", shop)
    d.rec(alex, "review", 70, "sam", summary="Settling in; wants more hours")
    d.rec(alex, "job_end", 40, "sam", reason="The shop closed down", employer="Corner Shop Ltd")
    d.move(alex, "end_job", 40, "sam", reason="The shop closed down")
    garden = _job("Riverside Garden Centre", "Plant care assistant", pay="13.80", hours="20")
    d.rec(alex, "employer_contact", 36, "sam", employer=garden["employer"])
    d.evidence(alex, "job_matching", 28, "sam", garden)
    d.move(alex, "start_job", 28, "sam")
    d.rec(alex, "review", 2, "sam", summary="First month went well")
    story.rematched = alex
    story.outcomes.append((alex, "two jobs, the gap between them bridged"))

    # A completion: through both phases of stage 5 and out.
    bea = d.refer(story, "Bea Khan", "Jobcentre Plus", "kim", 330)
    d.walk(bea, "career_development", 330, 40, "kim", _job("City Library", "Library assistant"))
    # Her job started 130 days ago: payslips for its first 13 weeks make it evidenced.
    for start, end, pay in ((130, 103, "864.00"), (102, 75, "864.00"), (74, 40, "1080.00")):
        d.rec(
            bea,
            "work_evidence",
            end - 3,
            "kim",
            period_start=d.day(start),
            period_end=d.day(end),
            hours=str(int(Decimal(pay) / Decimal("13.50"))),
            gross_pay=pay,
            evidence="payslip",
            reference=f"CL-{start}",
            verified_by="kim",
        )
    story.outcomes.append((bea, "sustained past 13 weeks, on payslips"))
    d.rec(
        bea,
        "final_review",
        6,
        "kim",
        summary="Settled; support faded as planned",
        fading_finished=True,
    )
    d.move(bea, "complete", 5, "kim")

    cal = d.refer(story, "Cal Ortiz", "Self", "kim", 220)
    d.walk(cal, "career_development", 220, 35, "kim", _job("Northgate Hotel", "Porter"))
    d.rec(cal, "review", 12, "kim", summary="Asking about a supervisor course")

    # A team leader's override: the support plan is agreed but not written up yet (soft guard).
    dee = d.refer(story, "Dee Park", "Community mental health team", "sam", 90)
    cafe = _job("Harbour Café", "Kitchen porter", pay="13.20", disclosure="none")
    d.walk(dee, "job_matching", 90, 15, "sam", cafe)
    d.rec(
        dee,
        "job_offer",
        6,
        "sam",
        employer=cafe["employer"],
        role=cafe["role"],
        start_date=d.day(3),
        hours_per_week="24",
        hourly_pay=cafe["pay"],
    )
    reason = "Support plan agreed by phone with Dee and the café; written up this week"
    d.move(dee, "start_job", 3, "lee", override=reason)
    story.override = (dee, "lee", reason)
    story.outcomes.append((dee, "a job start estimated from contracted hours: provisional"))

    eli = d.refer(story, "Eli Ward", "Jobcentre Plus", "sam", 75)
    d.walk(eli, "job_matching", 75, 16, "sam", _job("Greenway Logistics", "Warehouse operative"))

    fay = d.refer(story, "Fay Lin", "Self", "kim", 45)
    d.walk(
        fay, "employer_engagement", 45, 12, "kim", _job("Brightside Nursery", "Nursery assistant")
    )
    d.rec(fay, "employer_contact", 4, "kim", employer="Brightside Nursery", contact_name="Jo")
    d.rec(fay, "review", 2, "kim", summary="Two employers interested; visit booked")

    # A pause: support stops for a while, with a date to look at it again.
    gus = d.refer(story, "Gus Reid", "GP", "sam", 50)
    d.walk(gus, "vocational_profiling", 50, 14, "sam", _job("Any", "Driver"))
    d.flow.pause(
        gus,
        reason="In hospital for a fortnight",
        review_date=(d.now + dt.timedelta(days=10)).date(),
        actor="sam",
        effective_at=d.ago(5),
    )

    # A corrected record: never edited, superseded by a new one; both are kept.
    hana = d.refer(story, "Hana Ito", "College careers service", "kim", 20)
    d.walk(hana, "vocational_profiling", 20, 7, "kim", _job("Any", "Admin assistant"))
    first = flow.record(
        hana,
        "vocational_profile",
        {"job_goals": "admin assistant"},
        actor="kim",
        effective_at=d.ago(3),
    ).record
    flow.record(
        hana,
        "vocational_profile",
        {"job_goals": "admin assistant; receptionist"},
        actor="kim",
        effective_at=d.ago(3),
        supersedes=first.seq,
    )

    # A refused move: the coach tries before the evidence is in; every missing piece is named.
    ivan = d.refer(story, "Ivan Roe", "Housing association", "sam", 12)
    d.move(ivan, "engage", 11, "sam")
    d.rec(ivan, "consent", 9, "sam", participation=True, data_processing=True)
    try:
        d.move(ivan, "start_profiling", 8, "sam")
    except se_flow.GuardsFailed as refused:
        story.refused = refused

    # A withdrawal: voluntary participation, a reason and nothing else.
    jo = d.refer(story, "Jo Mills", "GP", "kim", 60)
    d.walk(jo, "employer_engagement", 60, 12, "kim", _job("Any", "Care assistant"))
    flow.withdraw(
        jo, reason="Caring for a parent full time now", actor="kim", effective_at=d.ago(15)
    )

    d.refer(story, "Kai Nash", "Jobcentre Plus", "sam", 6)
    d.refer(story, "Lou Diaz", "Self", "kim", 0)

    # A disengagement: three attempts over two channels across a fortnight, then a team leader.
    max_ = d.refer(story, "Max Cole", "GP", "sam", 70)
    d.move(max_, "engage", 68, "sam")
    d.rec(max_, "first_meeting", 60, "sam", location="Phone")
    for days, channel in ((45, "phone"), (38, "text"), (28, "letter")):
        d.rec(max_, "outreach_attempt", days, "sam", channel=channel, outcome="no answer")
    d.move(max_, "close_disengaged", 20, "lee")
    return story


def _line(out: Console, text: str = "", style: str = "") -> None:
    from rich.text import Text

    # Wrapped at the terminal's width by words (80 columns, into a pipe): a long title or
    # hint must not run off a coach's screen.
    out.print(Text(text, style=style))


def run(path: str, *, stages: str | Path | None, out: Console) -> None:
    """Build the demo in `path` (":memory:" or a new/empty database file) and show it."""
    fresh = path == ":memory:" or not Path(path).exists()
    # The demo's reads are made as its admin, ada (its writes name their own actors).
    with se_flow.open(path, stages=stages, create=True, actor="ada") as flow:
        # Cases are made by staff, so a database without staff holds no cases either.
        if not fresh and flow.has_staff():
            raise se_flow.InvalidInput(
                f"{path} already holds staff: the demo needs a new or empty database "
                "(leave out --db to run it in memory)"
            )
        with flow.batch():
            story = build(flow)
        _show(flow, story, path, out)


def _show(flow: se_flow.SEFlow, story: Story, path: str, out: Console) -> None:
    wf = flow.workflow
    today = flow.now().date()

    def section(title: str) -> None:
        _line(out, f"\n{title}", "bold underline")

    where = "in memory (nothing is saved)" if path == ":memory:" else f"in {path}"
    _line(out, f"se-flow demo: {len(story.names)} participants {where}", "bold")
    _line(out, "staff: " + ", ".join(f"{i} ({r.replace('_', ' ')})" for i, _, r in STAFF))

    if story.refused is not None:
        r = story.refused
        section(f"A refused move: {r.case_id} {r.trigger}, tried by sam")
        for failed in r.failed:
            soft = " (soft)" if failed.soft else ""
            _line(out, f"  {FAIL} {failed.label}{soft}: {failed.reason}")
    if story.override is not None:
        case_id, by, reason = story.override
        section(f"A team leader's override: {case_id} start_job by {by}")
        _line(out, f"  {reason}")

    section("The caseload (open and closed)")
    print_caseload(out, wf, flow.cases(), today)

    case_id = story.rematched
    section(f"Timeline of {case_id} ({story.names[case_id]}): a job ended, then a new match")
    print_timeline(out, wf, flow.history(case_id))

    for case_id, what in story.outcomes:
        section(f"Outcomes of {case_id} ({story.names[case_id]}): {what}")
        print_outcomes(out, flow.outcomes(case_id))

    section(f"What is due by {today + dt.timedelta(days=7)}: reviews and service standards")
    print_due_items(out, flow.due_items(within_days=7).items, today, "")

    section("Audit trail")
    result = flow.verify()
    if result.ok:
        _line(out, f"chain ok: {result.events} events, head {result.head_seq}", "green")
        # On a line of its own: a hash broken across two lines cannot be copied.
        _line(out, f"  {result.head_hash}", "green")
    else:  # pragma: no cover - a fresh demo chain is whole
        raise se_flow.ChainBroken(result.bad_seq, result.problem or "unknown problem")
    if path == ":memory:":
        _line(
            out,
            "\nto keep a demo and explore it: se-flow --db demo.db demo\n"
            "then: se-flow --db demo.db cases (or show C-1, next C-9, history C-1, ...)",
            "dim",
        )
