"""se-flow's own SQL statements, recorded from real commands and replayed bare.

The floor under se-flow's design: what its commands would cost if everything se-flow does in
Python (the facade, the engine, the guards, sealing, the projections) took no time, and only
the statements it sends to SQLite were run. `capture` runs se-flow's commands on one copy of
a population through a connection that records every statement with its parameters;
`Replayer` runs the same statements, in the same transactions, on another copy of the same
population (so every version and seq they name is the one that copy holds), fetching every
row each statement gives, as se-flow's reads do. Against raw (the issue's limit: the same
rows written, nothing read) it splits what se-flow costs over raw into the statements its
design adds (the reads, the texts row, the due check, the pragma) and its Python.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

Statement = tuple[str, Any, bool]
"""(sql, parameters, whether executemany: then the parameters are a list of rows)."""

Command = list[Statement]


class Recording:
    """A sqlite3 connection that notes each statement run through it (`log`) and runs it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.log: Command = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.log.append((sql, params if isinstance(params, dict) else tuple(params), False))
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        kept = [tuple(r) for r in rows]
        self.log.append((sql, kept, True))
        return self._conn.executemany(sql, kept)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def capture(
    path: Path, n: int, one: Callable[[Any, int], None], pick: Callable[[], int], count: int
) -> list[Command]:
    """The statements of `count` calls of `one(contender, num)`, a case number from `pick`
    each, on se-flow (`bench_transitions.SEFlowContender`) over `path`: one list per call
    (an advance pair is one call of two transactions)."""
    from . import bench_transitions as bt

    c = bt.SEFlowContender(path, n, "FULL")
    store: Any = c.flow.store
    recording = Recording(store.conn)
    store.conn = recording
    commands: list[Command] = []
    try:
        for _ in range(count):
            recording.log = []
            one(c, pick())
            commands.append(recording.log)
    finally:
        store.conn = recording._conn
        c.close()
    return commands


def save(commands: Sequence[Command], path: Path) -> None:
    path.write_bytes(pickle.dumps(list(commands), protocol=pickle.HIGHEST_PROTOCOL))


def load(path: Path) -> list[Command]:
    found: list[Command] = pickle.loads(path.read_bytes())
    return found


class Replayer:
    """A bare sqlite3 connection set up as se-flow's store sets up its own (WAL, the same
    `synchronous`, foreign keys, secure delete, busy timeout), replaying recorded commands."""

    def __init__(self, path: Path, sync: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        for pragma in (
            "busy_timeout = 10000",
            "journal_mode = WAL",
            f"synchronous = {sync}",
            "foreign_keys = ON",
            "secure_delete = ON",
        ):
            conn.execute(f"PRAGMA {pragma}")
        self.conn = conn

    def run(self, command: Command) -> None:
        conn = self.conn
        for sql, params, many in command:
            if many:
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()
