"""The eventsourcing contender's aggregate (`_eventsourcing.py`): at module level, as the
library finds an event's class again by its topic (module and name) when it loads it."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from ._common import clock

_NS = uuid.UUID("6f2d1c0e-5d4b-4a8e-9b7c-3e1f0a2b4c6d")


def case_id(num: int) -> uuid.UUID:
    return uuid.uuid5(_NS, f"C-{num}")


class Case(Aggregate):
    """A case as the library's aggregate: its state, and the last record of each kind."""

    @staticmethod
    def create_id(num: int, coach: str) -> uuid.UUID:
        return case_id(num)

    @event("Referred")
    def __init__(self, num: int, coach: str) -> None:
        self.num, self.coach, self.state = num, coach, "referred"
        self.records: dict[str, dict[str, Any]] = {}

    @event("Recorded")
    def _record(self, kind: str, fields: dict[str, Any], at: str) -> None:
        self.records[kind] = fields

    @event("Moved")
    def _move(self, trigger: str, to_state: str, reason: str | None, at: str) -> None:
        self.state = to_state

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        if self.state == "closed":
            raise RuntimeError("closed")
        if not str(fields.get("summary", "x")).strip():
            raise ValueError("summary is required")
        self._record(kind, fields, clock().isoformat())

    def advance(self, trigger: str, reason: str | None = None) -> None:
        # The same guards as the naive peer's: a reason; job goals, disclosure, benefits.
        if trigger == "revise_goals":
            if self.state != "employer_engagement" or not (reason or "").strip():
                raise RuntimeError("revise_goals refused")
            self._move(trigger, "vocational_profiling", reason, clock().isoformat())
        elif trigger == "start_job_search":
            goals = self.records.get("vocational_profile", {}).get("job_goals")
            ok = (
                self.state == "vocational_profiling"
                and bool(goals)
                and "disclosure_preference" in self.records
                and bool(self.records.get("benefits_advice", {}).get("offered"))
            )
            if not ok:
                raise RuntimeError("start_job_search refused")
            self._move(trigger, "employer_engagement", None, clock().isoformat())
        else:
            raise RuntimeError(f"unknown trigger {trigger}")


class Cases(Application[uuid.UUID]):
    """The application: its repository loads a case by replaying its events."""
