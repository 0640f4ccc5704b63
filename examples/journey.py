"""A participant's journey from referral to a job start, through the public API.

Run it: `python examples/journey.py` (prints each step; exits non-zero if anything is off).
"""

from __future__ import annotations

import datetime as dt
import sys

import se_flow

TODAY = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def day(n: int) -> dt.datetime:
    """n days before TODAY: the story is back-dated, as coaches often record after the fact."""
    return TODAY - dt.timedelta(days=n)


def main() -> int:
    with se_flow.open(":memory:", clock=lambda: TODAY) as flow:
        flow.add_staff("lee", "Lee Team-Leader", "team_leader", actor="setup")
        flow.add_staff("sam", "Sam Coach", "coach", actor="lee")

        case = flow.refer(
            se_flow.PersonalDetails(name="Alex Doe", contact="07700 900123"),
            source="GP",
            actor="sam",
            effective_at=day(60),
        )
        print(f"referred: {case.id} ({case.participant_id}), state {case.state}")
        flow.advance(case.id, "engage", actor="sam", effective_at=day(59))

        # A move refused: the evidence is not there yet, and every missing piece is named.
        try:
            flow.advance(case.id, "start_profiling", actor="sam")
        except se_flow.GuardsFailed as refused:
            for result in refused.failed:
                print(f"  missing: {result.label}: {result.reason}")

        flow.record(
            case.id,
            "consent",
            participation=True,
            data_processing=True,
            employer_contact=True,
            actor="sam",
            effective_at=day(55),
        )
        flow.record(case.id, "first_meeting", location="library", actor="sam", effective_at=day(55))
        flow.record(case.id, "informed_choice", decision="join", actor="sam", effective_at=day(55))
        flow.record(
            case.id,
            "action_plan",
            summary="Explore retail and admin roles",
            actor="sam",
            effective_at=day(54),
        )
        flow.advance(case.id, "start_profiling", actor="sam", effective_at=day(54))

        flow.record(
            case.id,
            "vocational_profile",
            job_goals="retail assistant; stock control",
            actor="sam",
            effective_at=day(40),
        )
        flow.record(
            case.id, "disclosure_preference", level="partial", actor="sam", effective_at=day(40)
        )
        flow.record(case.id, "benefits_advice", offered=True, actor="sam", effective_at=day(39))
        flow.advance(case.id, "start_job_search", actor="sam", effective_at=day(38))

        flow.record(
            case.id,
            "employer_contact",
            employer="Corner Shop Ltd",
            actor="sam",
            effective_at=day(30),
        )
        flow.record(
            case.id,
            "job_analysis",
            employer="Corner Shop Ltd",
            role="Shop assistant",
            actor="sam",
            effective_at=day(28),
        )
        flow.record(
            case.id,
            "participant_agreement",
            employer="Corner Shop Ltd",
            agrees=True,
            actor="sam",
            effective_at=day(27),
        )
        flow.advance(case.id, "propose_match", actor="sam", effective_at=day(27))

        flow.record(
            case.id,
            "job_offer",
            employer="Corner Shop Ltd",
            start_date="2026-05-25",
            hours_per_week="16",
            hourly_pay="12.80",
            actor="sam",
            effective_at=day(10),
        )
        # No in-work support plan yet: a soft guard, which a team leader may override.
        case = flow.advance(
            case.id,
            "start_job",
            actor="lee",
            effective_at=day(7),
            override="support plan agreed by phone, written up this week",
        )
        print(f"job started: {case.id} is in {case.state} ({case.phase})")

        for event in flow.history(case.id, actor="sam"):  # reads name their actor too
            what = event.trigger or event.payload.get("record", {}).get("kind", "")
            print(f"  {event.seq:>3} {event.effective_at.date()} {event.kind:<10} {what}")
        verification = flow.verify(actor="lee")
        print(
            f"audit chain: {'ok' if verification.ok else verification.problem} "
            f"({verification.events} events)"
        )
        return 0 if verification.ok and case.state == "in_work_support" else 1


if __name__ == "__main__":
    sys.exit(main())
