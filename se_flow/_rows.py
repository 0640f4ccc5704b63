"""How a case is kept in a table row: one encoding for every store (SQLite, PostgreSQL).

Times are ISO 8601 text in UTC (text order is time order), dates ISO text, the status its
value; `CASE_COLS` is the column order `case_from_row` reads and `case_params` writes after the
id and participant. No I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ._model import Case, Status

__all__ = ["CASE_COLS", "case_from_row", "case_params", "dt_or_none", "ts"]

CASE_COLS = (
    "id, participant_id, state, phase, status, version, opened_at, stage_entered_at, coach, "
    "episode, previous_case_id, last_contact_at, review_due, outcome, closed_at"
)


def ts(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dt_or_none(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def case_from_row(row: Sequence[Any]) -> Case:
    return Case(
        id=row[0],
        participant_id=row[1],
        state=row[2],
        phase=row[3],
        status=Status(row[4]),
        version=row[5],
        opened_at=dt.datetime.fromisoformat(row[6]),
        stage_entered_at=dt.datetime.fromisoformat(row[7]),
        coach=row[8],
        episode=row[9],
        previous_case_id=row[10],
        last_contact_at=dt_or_none(row[11]),
        review_due=dt.date.fromisoformat(row[12]) if row[12] else None,
        outcome=row[13],
        closed_at=dt_or_none(row[14]),
    )


def case_params(case: Case) -> tuple[Any, ...]:
    return (
        case.state,
        case.phase,
        case.status.value,
        case.version,
        ts(case.opened_at),
        ts(case.stage_entered_at),
        case.coach,
        case.episode,
        case.previous_case_id,
        ts(case.last_contact_at),
        case.review_due.isoformat() if case.review_due else None,
        case.outcome,
        ts(case.closed_at),
    )
