"""A fixed sequence of commands leaves the same bytes in the SQLite file, release after release.

Every table a write fills (events, texts, records, cases, participants, staff, the settings row)
is dumped after one sequence of commands that touches every part of an event (referral,
records with free texts, a transition with a reason and with an override, pause and resume, a
text erased, a setting changed, close, reopen, commands named by id), with the clock and the
random parts (salts, participant ids) fixed, and compared with the dump kept in
`golden/stored_bytes.json`. A change to how an event is sealed or a row written that alters
one stored byte fails here, whichever table it lands in.

The dump is made by this module: `python tests/test_stored_bytes.py --write` writes it again
(only for a change that is meant to alter stored bytes, for which an old log must still
verify, or to the default workflow, whose hash every event holds).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import LEAST_EVIDENCE, Clock

import se_flow
from se_flow import _api, _sqlite

GOLDEN = Path(__file__).parent / "golden" / "stored_bytes.json"
TABLES = {
    "events": "seq",
    "texts": "seq, slot",
    "records": "seq",
    "cases": "id",
    "participants": "id",
    "staff": "id",
    "meta": "key",
}


def write_sequence(path: Path) -> None:
    """The fixed sequence of commands, written to a new database at `path`."""
    clock = Clock(dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC))
    with se_flow.open(path, clock=clock, actor="sam") as flow:
        for who, name, role in [
            ("ada", "Ada Admin", "admin"),
            ("lee", "Lee Leader", "team_leader"),
            ("sam", "Sam Coach", "coach"),
        ]:
            flow.add_staff(who, name, role, actor="ada")
            clock.advance(hours=1)
        case = flow.refer("Alex Doe", source="GP", command_id="refer-1").case
        clock.advance(hours=1)
        flow.advance(case.id, "engage", reason='Met at the library — "keen"\n\ttab \u2028')
        clock.advance(hours=1)
        noted = flow.record(
            case.id, "first_meeting", {"location": "café", "notes": "Lives with her sister."}
        )
        flow.record(case.id, "consent", {"participation": True, "data_processing": True})
        flow.record(case.id, "informed_choice", {"decision": "join"}, command_id="choice-1")
        clock.advance(days=1)
        # The soft guard (an action plan) is missing: a team leader overrides it.
        flow.advance(case.id, "start_profiling", actor="lee", override="agreed by phone")
        clock.advance(days=1)
        flow.pause(case.id, reason="On holiday", review_date=dt.date(2026, 6, 20))
        clock.advance(days=3)
        flow.resume(case.id, reason="Back early", command_id="resume-1")
        for kind, fields in LEAST_EVIDENCE["vocational_profiling"].records:
            flow.record(
                case.id,
                kind,
                {**fields, "notes": "Prefers mornings."}
                if kind == "disclosure_preference"
                else dict(fields),
            )
        flow.advance(case.id, "start_job_search")
        clock.advance(days=1)
        flow.erase_text(noted.event.seq, "record.notes", reason="asked 2026-06-06", actor="ada")
        flow.change_settings(shared_terminal=True, actor="ada")
        clock.advance(days=2)
        flow.close(case.id, "other", note="Moved to another service")
        clock.advance(days=30)
        flow.reopen(case.id, source="self", command_id="reopen-1")


def dump(path: Path) -> dict[str, list[list[Any]]]:
    """Every row of the tables a write fills, each value as SQLite returns it (bytes as hex),
    the meta table without the database's own random id."""
    conn = sqlite3.connect(path)
    try:
        out: dict[str, list[list[Any]]] = {}
        for table, order in TABLES.items():
            cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
            names = [d[0] for d in cursor.description]
            rows = [
                [v.hex() if isinstance(v, bytes) else v for v in row] for row in cursor.fetchall()
            ]
            if table == "meta":
                rows = [r for r in rows if r[0] == "settings"]
            out[table] = [names, *rows]
        return out
    finally:
        conn.close()


def as_text(tables: dict[str, list[list[Any]]]) -> str:
    """The dump as the golden file keeps it: one JSON line per row, for a readable diff."""
    parts = [
        f"{json.dumps(name)}: [\n"
        + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        + "\n]"
        for name, rows in tables.items()
    ]
    return "{\n" + ",\n".join(parts) + "\n}\n"


@contextlib.contextmanager
def fixed_random() -> Iterator[None]:
    """Salts and participant ids drawn from counters instead of the system's randomness."""
    salts = itertools.count(1)
    ids = itertools.count(1)
    fakes: dict[tuple[Any, str], Any] = {
        (_sqlite, "_new_salt"): lambda: next(salts).to_bytes(16, "big"),
        (_api, "secrets"): SimpleNamespace(
            token_hex=lambda n: f"{next(ids):0{2 * n}x}", randbelow=lambda n: 0
        ),
    }
    saved = {(module, name): getattr(module, name) for module, name in fakes}
    for (module, name), fake in fakes.items():
        setattr(module, name, fake)
    try:
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)


@pytest.fixture
def fixed() -> Iterator[None]:
    with fixed_random():
        yield


def test_a_fixed_sequence_of_commands_stores_the_same_bytes(fixed: None, tmp_path: Path) -> None:
    write_sequence(tmp_path / "t.db")
    found = dump(tmp_path / "t.db")
    # Compared as JSON text, as the golden file keeps it: the same rows, values and types.
    assert as_text(found) == GOLDEN.read_text("utf-8")


def test_the_sequence_verifies(fixed: None, tmp_path: Path) -> None:
    write_sequence(tmp_path / "t.db")
    with se_flow.open(tmp_path / "t.db", actor="ada") as flow:
        checked = flow.verify()
    assert checked.ok, checked.problem
    assert checked.erased_texts == 1


def main() -> None:
    import tempfile

    if sys.argv[1:] != ["--write"]:
        raise SystemExit(f"usage: python {sys.argv[0]} --write   (rewrites {GOLDEN})")
    with tempfile.TemporaryDirectory() as tmp, fixed_random():
        write_sequence(Path(tmp) / "t.db")
        found = dump(Path(tmp) / "t.db")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(as_text(found), "utf-8")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
