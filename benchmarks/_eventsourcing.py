"""The `eventsourcing` library as a contender: what a developer who picks it instead writes.

One aggregate per case (its events: referral, stage moves, records), guards checked in the
command methods against the aggregate's state, `app.save` through its SQLite recorder (WAL,
which it sets itself) at the same `synchronous` setting as the other contenders (it sets
none: each pooled connection gets the PRAGMA here). Each command loads the aggregate (a
replay of its events, no snapshots: the default), checks, appends one event, saves.

Its cases live in a database file of their own (its schema is not se-flow's), seeded with
the same history per case as the population's: 11 events, 7 of them records.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from ._common import clock, log

# The synchronous setting for the connections the library's pool opens from now on.
_SYNC = ["FULL"]
SEED_RECORDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("first_meeting", {"summary": "Met at the jobcentre"}),
    ("consent", {"given": True}),
    ("participant_agreement", {"signed": True}),
    ("vocational_profile", {"job_goals": "Retail or warehouse work"}),
    ("disclosure_preference", {"preference": "discuss"}),
    ("benefits_advice", {"offered": True}),
    ("review", {"summary": "Profile complete"}),
)
SEED_MOVES = (
    ("engage", "customer_engagement"),
    ("start_profiling", "vocational_profiling"),
    ("start_job_search", "employer_engagement"),
)


def available() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True


def case_id(num: int) -> uuid.UUID:
    from ._es_case import case_id as of

    return of(num)


def _app(path: Path, sync: str) -> Any:
    from eventsourcing.sqlite import SQLiteConnectionPool

    from ._es_case import Cases

    create = SQLiteConnectionPool._create_connection
    if not getattr(create, "se_flow_sync", None):

        def with_sync(self: Any) -> Any:
            conn = create(self)
            raw: sqlite3.Connection = conn._sqlite_conn
            raw.execute(f"PRAGMA synchronous = {_SYNC[0]}")
            return conn

        with_sync.se_flow_sync = True  # type: ignore[attr-defined]
        SQLiteConnectionPool._create_connection = with_sync  # type: ignore[method-assign]
    _SYNC[0] = sync
    return Cases(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


def seeded(folder: Path, nums: list[int], sync: str) -> Path:
    """The contender's database with an aggregate per case number, built once per folder."""
    path = folder / f"eventsourcing-{len(nums)}.db"
    marker = folder / f"eventsourcing-{len(nums)}.ok"
    if path.exists() and marker.exists():
        return path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"eventsourcing: seeding {len(nums)} aggregates in {path} ...")
    from ._es_case import Case

    app = _app(path, "OFF")
    at = clock().isoformat()
    for num in nums:
        case = Case(num=num, coach="coach")
        for i, (kind, fields) in enumerate(SEED_RECORDS):
            case._record(kind, fields, at)
            if i < len(SEED_MOVES):
                case._move(SEED_MOVES[i][0], SEED_MOVES[i][1], None, at)
        app.save(case)
    app.close()
    marker.write_text("ok")
    return path


class EventSourcingContender:
    name = "eventsourcing"

    def __init__(self, folder: Path, nums: list[int], sync: str) -> None:
        self.app = _app(seeded(folder, nums, sync), sync)

    def advance(self, num: int, trigger: str) -> None:
        case = self.app.repository.get(case_id(num))
        reason = "Wants to look at warehouse work as well as retail"
        case.advance(trigger, reason if trigger == "revise_goals" else None)
        self.app.save(case)

    def record(self, num: int) -> None:
        case = self.app.repository.get(case_id(num))
        case.record("review", {"summary": "Weekly review"})
        self.app.save(case)

    def close(self) -> None:
        self.app.close()
