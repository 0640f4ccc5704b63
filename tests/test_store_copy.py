"""`se-flow store copy`: a whole database from an SQLite file to PostgreSQL and back, row for row,
verified at the destination before it commits; a destination that is not empty, a URL that does
not parse and a server that refuses are one-line errors with their exit codes, and a failed copy
leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import sqlite_conn, staffed_db
from pg import pg_server, pg_url
from typer.testing import CliRunner, Result

import se_flow
from se_flow.cli import app

__all__ = ["pg_server", "pg_url"]

runner = CliRunner()


def _copy(src: str | Path, dst: str | Path) -> Result:
    return runner.invoke(app, ["store", "copy", str(src), str(dst)])


def _caseload(path: Path) -> Path:
    """A database with a bit of everything: staff changes, two cases, a correction, personal
    data (one participant's erased), free texts (one erased) and a command id."""
    with se_flow.open(staffed_db(path), actor="sam") as flow:
        alex = flow.refer(
            se_flow.PersonalDetails(name="Alex Doe", contact="07700 900123"), source="GP"
        ).case
        flow.advance(alex.id, "engage", reason="first contact")
        first = flow.record(alex.id, "note", text="called", command_id="n-1").record
        flow.record(alex.id, "note", text="called twice", supersedes=first.seq)
        flow.erase_text(first.seq, "record.text", reason="Art. 17 request", actor="ada")
        bo = flow.refer("Bo Smith", source="Jobcentre").case
        flow.erase_personal_data(bo.participant_id, reason="Art. 17 request", actor="ada")
        flow.add_staff("zoe", "Zoe", "coach", actor="ada")
    return path


def _everything(target: str | Path) -> tuple[object, ...]:
    with se_flow.open(target, actor="ada", read_only=True) as flow:
        store = flow.store
        cases = flow.cases()
        return (
            list(store.event_rows()),
            list(store.record_rows()),
            cases,
            store.list_staff(),
            [store.personal_details(c.participant_id) for c in cases],
            store.store_id(),
            list(store.text_rows()),
        )


def test_a_file_copies_to_a_new_file_row_for_row(tmp_path: Path) -> None:
    src = _caseload(tmp_path / "src.db")
    result = _copy(src, tmp_path / "dst.db")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("copied ")
    assert _everything(tmp_path / "dst.db") == _everything(src)
    with se_flow.open(tmp_path / "dst.db", actor="sam") as flow:
        assert flow.verify().ok
        # The command id came along: a retry against the copy still appends nothing.
        flow.record("C-1", "note", text="called", command_id="n-1")
        assert len(flow.records("C-1", include_superseded=True)) == 3


def test_sqlite_to_postgresql_and_back(tmp_path: Path, pg_url: str) -> None:
    src = _caseload(tmp_path / "src.db")
    there = _copy(src, pg_url)
    assert there.exit_code == 0, there.output
    assert _everything(pg_url) == _everything(src)
    back = _copy(pg_url, tmp_path / "back.db")
    assert back.exit_code == 0, back.output
    assert _everything(tmp_path / "back.db") == _everything(src)
    # The PostgreSQL copy takes writes where the file left off.
    with se_flow.open(pg_url, actor="sam") as flow:
        flow.record("C-1", "note", text="on the server")
        assert flow.verify().ok
    # A destination that is not empty: one line, exit 5, nothing changed there.
    again = _copy(src, pg_url)
    assert again.exit_code == 5, again.output
    assert again.output.count("\n") == 1 and "not empty" in again.output


def test_a_destination_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    src = _caseload(tmp_path / "src.db")
    dst = staffed_db(tmp_path / "dst.db")
    before = _everything(dst)
    result = _copy(src, dst)
    assert result.exit_code == 5
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "not empty" in result.output
    assert _everything(dst) == before
    same = _copy(src, src)
    assert same.exit_code == 5 and "both source and destination" in same.output


def test_bad_urls_and_refusing_servers_are_one_line_errors(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    src = _caseload(tmp_path / "src.db")
    cases = [
        ("postgresql://ada:s3cret@[::1/se_flow", 5),  # does not parse
        ("postgresql://ada@127.0.0.1:notaport/se_flow", 5),
        ("postgresql://ada:s3cret@127.0.0.1:1/se_flow", 10),  # nobody there
    ]
    for url, code in cases:
        for args in ((src, url), (url, tmp_path / "out.db")):
            result = _copy(*args)
            assert result.exit_code == code, (args, result.output)
            assert result.output.startswith("error: ") and result.output.count("\n") == 1
            assert "s3cret" not in result.output
            assert not (tmp_path / "out.db").exists()
    missing = _copy(tmp_path / "nothing.db", tmp_path / "out.db")
    assert missing.exit_code == 10, missing.output
    assert not (tmp_path / "out.db").exists()


def test_a_copy_that_does_not_verify_leaves_nothing(tmp_path: Path) -> None:
    src = _caseload(tmp_path / "src.db")
    with se_flow.open(src) as flow:
        from helpers import drop_triggers

        conn = sqlite_conn(flow)
        drop_triggers(conn)
        conn.execute("UPDATE cases SET coach = 'kim' WHERE id = 'C-1'")  # the log says sam
        conn.commit()
    result = _copy(src, tmp_path / "dst.db")
    assert result.exit_code == 9, result.output
    assert "nothing was copied" in result.output
    assert not list(tmp_path.glob("dst.db*"))


def test_a_sealed_file_copies_with_its_seals(tmp_path: Path) -> None:
    db = tmp_path / "sealed.db"
    with se_flow.open(db, actor="ada") as flow:
        key = flow.start_sealing()
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        flow.refer("Alex", source="GP", actor="sam")
    result = _copy(db, tmp_path / "copy.db")
    assert result.exit_code == 0, result.output
    with se_flow.open(tmp_path / "copy.db", actor="ada", read_only=True) as flow:
        checked = flow.verify(key=key)
        assert checked.ok, checked.problem
        assert checked.seals and "seal" in checked.seals


def test_a_sealed_file_copies_to_postgresql_with_its_seals(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "sealed.db"
    with se_flow.open(db, actor="ada") as flow:
        key = flow.start_sealing()
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        flow.refer("Alex", source="GP", actor="sam")
    assert _copy(db, pg_url).exit_code == 0
    with se_flow.open(pg_url, actor="ada", read_only=True) as flow:
        checked = flow.verify(key=key)
        assert checked.ok, checked.problem
        assert len(list(flow.store.seal_rows())) == 3
