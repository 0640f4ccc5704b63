"""A participant's journey from referral to a job start, through the public API.

Run it: `python examples/journey.py` (prints each step; exits non-zero if anything is off).
"""

from __future__ import annotations

import datetime as dt
import sys

import se_flow
from se_flow._evidence import LEAST_EVIDENCE

TODAY = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def day(n: int) -> dt.datetime:
    """n days before TODAY: the story is back-dated, as coaches often record after the fact."""
    return TODAY - dt.timedelta(days=n)


def evidence(
    flow: se_flow.SEFlow, case_id: str, place: str, on: dt.datetime, *, soft: bool = True
) -> None:
    """Record what the guards out of `place` ask for (with `soft=False`, only the hard ones).

    The values come from the least-evidence table se-flow's own tests, demo and benchmarks
    share; an app records what its coaches enter, e.g.
    `flow.record(case_id, "informed_choice", decision="join", actor="sam")`."""
    forward = LEAST_EVIDENCE[place]
    for kind, fields in forward.records if soft else forward.hard:
        flow.record(case_id, kind, fields, actor="sam", effective_at=on)


def main() -> int:
    with se_flow.open(":memory:", clock=lambda: TODAY) as flow:
        flow.add_staff("lee", "Lee Team-Leader", "team_leader", actor="setup")
        flow.add_staff("sam", "Sam Coach", "coach", actor="lee")

        case = flow.refer(
            se_flow.PersonalDetails(name="Alex Doe", contact="07700 900123"),
            source="GP",
            actor="sam",
            effective_at=day(60),
        ).case
        print(f"referred: {case.id} ({case.participant_id}), state {case.state}")
        flow.advance(case.id, "engage", actor="sam", effective_at=day(59))

        # A move refused: the evidence is not there yet, and every missing piece is named.
        try:
            flow.advance(case.id, "start_profiling", actor="sam")
        except se_flow.GuardsFailed as refused:
            for result in refused.failed:
                print(f"  missing: {result.label}: {result.reason}")

        evidence(flow, case.id, "customer_engagement", day(55))
        flow.advance(case.id, "start_profiling", actor="sam", effective_at=day(54))
        evidence(flow, case.id, "vocational_profiling", day(40))
        flow.advance(case.id, "start_job_search", actor="sam", effective_at=day(38))
        evidence(flow, case.id, "employer_engagement", day(30))
        flow.advance(case.id, "propose_match", actor="sam", effective_at=day(27))
        evidence(flow, case.id, "job_matching", day(10), soft=False)
        # No in-work support plan yet: a soft guard, which a team leader may override.
        case = flow.advance(
            case.id,
            "start_job",
            actor="lee",
            effective_at=day(7),
            override="support plan agreed by phone, written up this week",
        ).case
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
