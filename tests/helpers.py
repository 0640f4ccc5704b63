"""Helpers the tests share (imported as a module, not through conftest)."""

from __future__ import annotations

import sqlite3


def drop_triggers(conn: sqlite3.Connection) -> None:
    """What a tamperer with write access to the file does first: drop every trigger that
    guards the log and its tables, and the foreign keys, so any row can be edited."""
    conn.execute("PRAGMA foreign_keys = OFF")
    names = [
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    ]
    for name in names:
        conn.execute(f"DROP TRIGGER {name}")
