"""Helpers the tests share (imported as a module, not through conftest): a fixed clock, the
walk through the default workflow with the least evidence, and a tamperer's tools."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import se_flow
from se_flow._evidence import LEAST_EVIDENCE, ORDER, place
from se_flow._sqlite import SQLiteStore

__all__ = [
    "LEAST_EVIDENCE",
    "ORDER",
    "STAFF",
    "START",
    "Clock",
    "Steps",
    "drop_triggers",
    "sqlite_conn",
    "staffed_db",
    "where",
]

START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)

where = place


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, days: float = 0, hours: float = 0) -> dt.datetime:
        self.now += dt.timedelta(days=days, hours=hours)
        return self.now


class Steps:
    """Walks cases through the default workflow with the least evidence that lets them move."""

    def __init__(self, flow: se_flow.SEFlow) -> None:
        self.flow = flow

    def refer(self, name: str = "Alex Doe", **kw: Any) -> se_flow.Case:
        kw.setdefault("source", "GP")
        return self.flow.refer(name, **kw).case

    def record(
        self, case_id: str, evidence: Iterable[tuple[str, Mapping[str, Any]]], **kw: Any
    ) -> list[se_flow.Record]:
        return [
            self.flow.record(case_id, kind, dict(values), **kw).record for kind, values in evidence
        ]

    def hard(self, case_id: str, state: str, **kw: Any) -> list[se_flow.Record]:
        return self.record(case_id, LEAST_EVIDENCE[state].hard, **kw)

    def soft(self, case_id: str, state: str, **kw: Any) -> list[se_flow.Record]:
        return self.record(case_id, LEAST_EVIDENCE[state].soft, **kw)

    def to(self, target: str, case: se_flow.Case | None = None) -> se_flow.Case:
        """Move `case` (a new referral if None) forward until it is in `target`."""
        case = case or self.refer()
        while where(case) != target:
            here = where(case)
            assert ORDER.index(here) < ORDER.index(target), f"{here} is past {target}"
            forward = LEAST_EVIDENCE[here]
            self.record(case.id, forward.records)
            case = self.flow.advance(case.id, forward.trigger).case
        return case


# The team every CLI test database starts with, after its admin ada.
STAFF = [
    ("lee", "Lee Leader", "team_leader"),
    ("sam", "Sam Coach", "coach"),
    ("kim", "Kim Coach", "coach"),
    ("ava", "Ava Auditor", "auditor"),
]


def staffed_db(path: Path) -> Path:
    """A new database at `path` with admin ada and `STAFF`: team leader lee, coaches sam and
    kim, auditor ava."""
    with se_flow.open(path) as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        for staff_id, name, role in STAFF:
            flow.add_staff(staff_id, name, role, actor="ada")
    return path


def sqlite_conn(flow: se_flow.SEFlow) -> sqlite3.Connection:
    """The connection of a flow on the SQLite store, for a test that goes behind its back."""
    assert isinstance(flow.store, SQLiteStore)
    return flow.store.conn


def drop_triggers(conn: sqlite3.Connection) -> None:
    """What a tamperer with write access to the file does first: drop every trigger that
    guards the log and its tables, and the foreign keys, so any row can be edited."""
    conn.execute("PRAGMA foreign_keys = OFF")
    names = [
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    ]
    for name in names:
        conn.execute(f"DROP TRIGGER {name}")
