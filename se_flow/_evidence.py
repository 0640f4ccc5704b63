"""The least evidence that moves a case forward out of each place of the default workflow.

One table for se-flow's own tests, the demo, the example and the benchmarks, so a change to the
default stage folders (a new required record, a renamed field) is made here once and every one
of them follows. A *place* is a case's state, or in stage 5 its phase (see `place`).

Each entry names the forward trigger, then the records its hard guards need, then the records
its soft guards need (a team leader may override those). Disclosure "none" keeps the
employer-contact consent out of the minimum. Values are the fewest a field accepts; callers add
their own on top (`{**fields, "role": ...}`): the demo's names and dates, a test's wage.

Data only, for the default workflow: no I/O, and nothing in the engine reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._model import Case

__all__ = ["LEAST_EVIDENCE", "ORDER", "Evidence", "Forward", "place"]

Evidence = tuple[tuple[str, Mapping[str, Any]], ...]
"""Records as (kind, fields) pairs, in the order a coach would make them."""


class Forward(NamedTuple):
    """The way forward out of one place."""

    trigger: str
    hard: Evidence
    soft: Evidence

    @property
    def records(self) -> Evidence:
        """Every record the move needs, so that it goes without an override."""
        return self.hard + self.soft


def _r(kind: str, **fields: Any) -> tuple[str, Mapping[str, Any]]:
    return kind, MappingProxyType(fields)


LEAST_EVIDENCE: Mapping[str, Forward] = MappingProxyType(
    {
        "referred": Forward("engage", (), ()),
        "customer_engagement": Forward(
            "start_profiling",
            (
                _r("consent", participation=True, data_processing=True),
                _r("first_meeting", location="library"),
                _r("informed_choice", decision="join"),
            ),
            (_r("action_plan", summary="explore retail roles"),),
        ),
        "vocational_profiling": Forward(
            "start_job_search",
            (_r("vocational_profile", job_goals=["retail assistant"]),),
            (_r("disclosure_preference", level="none"), _r("benefits_advice", offered=True)),
        ),
        "employer_engagement": Forward(
            "propose_match",
            (
                _r("employer_contact", employer="Corner Shop"),
                _r("job_analysis", employer="Corner Shop", role="shop assistant"),
                _r("participant_agreement", employer="Corner Shop", agrees=True),
            ),
            (),
        ),
        "job_matching": Forward(
            "start_job",
            (
                _r(
                    "job_offer",
                    employer="Corner Shop",
                    start_date="2026-05-25",
                    hours_per_week="16",
                    hourly_pay="12.80",
                ),
            ),
            (_r("support_plan", summary="weekly visits at first"),),
        ),
        "in_work_support": Forward(
            "begin_career_development",
            (_r("fading_plan", steps=["2026-07-01 fortnightly visits", "2026-09-01 phone only"]),),
            (_r("natural_support", name="Pat, shift supervisor"),),
        ),
        "career_development": Forward(
            "complete",
            (_r("final_review", summary="settled in", fading_finished=True),),
            (),
        ),
    }
)

ORDER: tuple[str, ...] = (*LEAST_EVIDENCE, "closed")
"""Every place in the order a case passes through them."""


def place(case: Case) -> str:
    """The case's place in `ORDER`: its state, or in stage 5 its phase."""
    return case.phase if case.state == "in_work_support" and case.phase else case.state
