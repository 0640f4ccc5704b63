"""Rebuild each case's position from the audit log alone, to check the case table against it.

The `cases` table is a projection kept for fast reads; the log is the truth. An auditor's
`verify` replays the log and names any case whose stored state does not match it (a case moved
or closed behind the log's back). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attrs import define

from ._model import Case, Event, Status

__all__ = ["Replayed", "mismatch", "replay"]


@define
class Replayed:
    case_id: str
    participant_id: str | None = None
    state: str | None = None
    phase: str | None = None
    status: Status = Status.ACTIVE
    version: int = 0
    outcome: str | None = None
    coach: str | None = None


def replay(events: Iterable[Event], final: str) -> dict[str, Replayed]:
    cases: dict[str, Replayed] = {}
    for e in events:
        if e.case_id is None:
            continue
        c = cases.setdefault(e.case_id, Replayed(e.case_id))
        c.version += 1
        if e.kind in ("referral", "reopen"):
            c.participant_id = e.payload.get("participant_id")
            c.coach = e.payload.get("coach")
            c.state, c.phase = e.to_state, e.to_phase
        elif e.kind in ("transition", "phase"):
            c.state, c.phase = e.to_state, e.to_phase
            if e.to_state == final:
                c.status, c.outcome = Status.CLOSED, e.payload.get("outcome")
        elif e.kind == "pause":
            c.status = Status.PAUSED
        elif e.kind == "resume":
            c.status = Status.ACTIVE
        elif e.kind == "assign":
            c.coach = e.payload.get("to_coach")
    return cases


_COMPARED = ("participant_id", "state", "phase", "status", "version", "outcome", "coach")


def mismatch(stored: Case | None, found: Replayed) -> str | None:
    """How the case table's row differs from what the case's events say, in plain words."""
    if stored is None:
        return f"case {found.case_id} is in the log but missing from the case table"
    for name in _COMPARED:
        have: Any = getattr(stored, name)
        want: Any = getattr(found, name)
        if have != want:
            return (
                f"case {stored.id}: the case table says {name} = {have!r}, "
                f"but its events say {want!r}"
            )
    return None
