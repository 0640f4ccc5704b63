"""Shared fixtures: a fixed clock, a staffed flow on a fresh database, and the evidence each
stage needs to move on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import se_flow

START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, days: float = 0, hours: float = 0) -> dt.datetime:
        self.now += dt.timedelta(days=days, hours=hours)
        return self.now


Evidence = list[tuple[str, dict[str, Any]]]

# Per state: the forward trigger, the records its hard guards need, then those its soft guards
# need. Disclosure "none" keeps employer-contact consent out of the minimum.
FORWARD: dict[str, tuple[str, Evidence, Evidence]] = {
    "referred": ("engage", [], []),
    "customer_engagement": (
        "start_profiling",
        [
            ("consent", {"participation": True, "data_processing": True}),
            ("first_meeting", {"location": "library"}),
            ("informed_choice", {"decision": "join"}),
        ],
        [("action_plan", {"summary": "explore retail roles"})],
    ),
    "vocational_profiling": (
        "start_job_search",
        [("vocational_profile", {"job_goals": ["retail assistant"]})],
        [("disclosure_preference", {"level": "none"}), ("benefits_advice", {"offered": True})],
    ),
    "employer_engagement": (
        "propose_match",
        [
            ("employer_contact", {"employer": "Corner Shop"}),
            ("job_analysis", {"employer": "Corner Shop", "role": "shop assistant"}),
            ("participant_agreement", {"employer": "Corner Shop", "agrees": True}),
        ],
        [],
    ),
    "job_matching": (
        "start_job",
        [
            (
                "job_offer",
                {
                    "employer": "Corner Shop",
                    "start_date": "2026-05-25",
                    "hours_per_week": "16",
                    "hourly_pay": "12.80",
                },
            )
        ],
        [("support_plan", {"summary": "weekly visits at first"})],
    ),
    "in_work_support": (
        "begin_career_development",
        [("fading_plan", {"steps": ["2026-07-01 fortnightly visits", "2026-09-01 phone only"]})],
        [("natural_support", {"name": "Pat, shift supervisor"})],
    ),
    "career_development": (
        "complete",
        [("final_review", {"summary": "settled in", "fading_finished": True})],
        [],
    ),
}

ORDER = [
    "referred",
    "customer_engagement",
    "vocational_profiling",
    "employer_engagement",
    "job_matching",
    "in_work_support",
    "career_development",
    "closed",
]


def where(case: se_flow.Case) -> str:
    """The case's place in `ORDER` (stage 5 counts by phase)."""
    return case.phase if case.state == "in_work_support" and case.phase else case.state


class Steps:
    """Walks cases through the default workflow with the least evidence that lets them move."""

    def __init__(self, flow: se_flow.SEFlow) -> None:
        self.flow = flow

    def refer(self, name: str = "Alex Doe", **kw: Any) -> se_flow.Case:
        kw.setdefault("source", "GP")
        return self.flow.refer(name, **kw)

    def record(self, case_id: str, evidence: Evidence, **kw: Any) -> list[se_flow.Record]:
        return [self.flow.record(case_id, kind, dict(values), **kw) for kind, values in evidence]

    def hard(self, case_id: str, state: str, **kw: Any) -> list[se_flow.Record]:
        return self.record(case_id, FORWARD[state][1], **kw)

    def soft(self, case_id: str, state: str, **kw: Any) -> list[se_flow.Record]:
        return self.record(case_id, FORWARD[state][2], **kw)

    def to(self, target: str, case: se_flow.Case | None = None) -> se_flow.Case:
        """Move `case` (a new referral if None) forward until it is in `target`."""
        case = case or self.refer()
        while where(case) != target:
            here = where(case)
            assert ORDER.index(here) < ORDER.index(target), f"{here} is past {target}"
            trigger, hard, soft = FORWARD[here]
            self.record(case.id, hard + soft)
            case = self.flow.advance(case.id, trigger)
        return case


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flow(tmp_path: Path, clock: Clock) -> Iterator[se_flow.SEFlow]:
    """A fresh database with an admin `ada`, a team leader `lee`, coaches `sam` and `kim` and
    an auditor `ava`; calls that name no actor act as `sam`."""
    with se_flow.open(tmp_path / "t.db", clock=clock, actor="sam") as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        f.add_staff("sam", "Sam Coach", "coach", actor="ada")
        f.add_staff("kim", "Kim Coach", "coach", actor="ada")
        f.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
        yield f


@pytest.fixture
def steps(flow: se_flow.SEFlow) -> Steps:
    return Steps(flow)
