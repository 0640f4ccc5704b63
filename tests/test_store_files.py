"""The database file itself: private to its owner, never adopted when it belongs to someone
else, never changed by a read, and readable as a read-only copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import CLI, ok, refused

import se_flow
import se_flow._sqlite as sqlite_store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def as_if_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anything, whatever its mode: decide writability from the mode bits, as
    for anyone else, so the read-only paths are taken in CI too."""
    if os.geteuid() != 0:
        return

    def writable(path: Path) -> bool:
        return bool(path.stat().st_mode & stat.S_IWUSR)

    monkeypatch.setattr(sqlite_store, "_writable", writable)


def _make(path: Path) -> None:
    with se_flow.open(path, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        flow.refer("Alex Doe", source="GP", actor="sam")


# --- private to its owner ------------------------------------------------------------------


def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "new.db"
    with se_flow.open(path, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        assert flow.exposure is None
        for name in ("new.db", "new.db-wal", "new.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name


def test_init_makes_the_per_user_folder_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    db = se_flow.cli.default_db_path()
    ok(CLI(tmp_path / "unused.db").raw("--as", "ada", "init"))
    assert _mode(db.parent) == 0o700
    assert _mode(db) == 0o600


def test_a_database_others_can_read_is_warned_about_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    _make(path)
    tmp_path.chmod(0o755)
    path.chmod(0o644)
    with se_flow.open(path) as flow:
        assert flow.exposure is not None and "every local user" in flow.exposure
    result = CLI(path)("cases")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "readable by every local user" in warnings[0] and "chmod 600" in warnings[0]
    path.chmod(0o600)
    assert "warning" not in CLI(path)("cases").stderr
    path.chmod(0o644)
    tmp_path.chmod(0o700)  # nobody else can reach it
    assert "warning" not in CLI(path)("cases").stderr


# --- never adopted, never changed by a read ------------------------------------------------


def _other_app(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('buy milk')")
    conn.commit()
    conn.close()
    return _digest(path)


def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    before = _other_app(path)
    run = CLI(path)
    for args in (
        ("cases",),
        ("audit", "verify"),
        ("staff", "add", "kim", "--name", "K", "--role", "coach"),
    ):
        refused(run(*args), 10, "another application (tables: notes, people)")
    refused(run("init", actor="ada"), 10, "another application")
    with pytest.raises(se_flow.StoreUnavailable, match="another application"):
        se_flow.open(path)  # even with create=True, the library default
    assert _digest(path) == before
    assert path.read_bytes()[18:20] == b"\x01\x01", "switched to WAL"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-app.db"]


def test_an_empty_file_is_refused_by_reads_and_left_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    run = CLI(path)
    refused(run("cases"), 10, "an empty file")
    refused(run("audit", "verify"), 10, "an empty file")
    with pytest.raises(se_flow.StoreUnavailable, match="an empty file"):
        se_flow.open(path, create=False)
    with pytest.raises(se_flow.StoreUnavailable, match="an empty file"):
        se_flow.open(path, read_only=True)
    assert path.stat().st_size == 0
    # Only init (create) makes it a database.
    ok(run("init", actor="ada"))
    assert "ada" in ok(run("staff", "list", actor="ada"))


def test_a_file_that_is_not_sqlite_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 100)
    refused(CLI(path)("cases"), 10, "not an SQLite database")


def _make_older(path: Path) -> None:
    """A database from before the read indexes (migration 0002)."""
    _make(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX events_case_trigger")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0002_read_indexes'")
    conn.commit()
    conn.close()


def test_reads_do_not_change_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _make_older(path)  # a write would migrate it
    before = _digest(path)
    run = CLI(path)
    for args in (("cases",), ("show", "C-1"), ("history", "C-1"), ("audit", "verify")):
        ok(run(*args))
    assert _digest(path) == before


def test_a_read_only_open_reads_a_live_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    _make(path)
    with (
        se_flow.open(path, actor="sam") as writer,
        se_flow.open(path, read_only=True, actor="sam") as reader,
    ):
        writer.refer("Billie", source="GP")
        assert [c.id for c in reader.cases()] == ["C-1", "C-2"]
        writer.refer("Casey", source="GP")
        assert len(reader.cases()) == 3
        assert reader.verify().ok
        with pytest.raises(se_flow.StoreUnavailable, match="read-only here"):
            reader.refer("Dana", actor="sam", source="GP")
        with pytest.raises(se_flow.StoreUnavailable, match="read-only here"), reader.batch():
            pass


def test_a_read_only_open_of_an_older_database_reads_it_and_a_write_open_migrates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    _make_older(path)
    before = _digest(path)
    with se_flow.open(path, read_only=True, actor="ada") as flow:
        assert flow.verify().ok and len(flow.cases()) == 1
    assert _digest(path) == before
    with se_flow.open(path) as flow:
        names = flow.store.conn.execute("SELECT name FROM _sqlite_migrations")  # type: ignore[attr-defined]
        assert "0002_read_indexes" in {r[0] for r in names}


# --- an auditor's read-only copy -----------------------------------------------------------


@pytest.fixture
def read_only_copy(tmp_path: Path, as_if_not_root: None) -> Iterator[tuple[Path, Path]]:
    """A 444 copy of a database (with an export of it) in a 555 folder."""
    live = tmp_path / "live.db"
    _make(live)
    export = tmp_path / "export"
    with se_flow.open(live, actor="ada") as flow:
        flow.export(export)
    folder = tmp_path / "copy"
    folder.mkdir()
    copy = folder / "live.db"
    shutil.copyfile(live, copy)
    copy.chmod(0o444)
    folder.chmod(0o555)
    try:
        yield copy, export
    finally:
        folder.chmod(0o755)


def test_a_read_only_copy_in_a_read_only_folder_can_be_read_and_verified(
    read_only_copy: tuple[Path, Path],
) -> None:
    copy, export = read_only_copy
    before = _digest(copy)
    run = CLI(copy)
    assert "ok" in ok(run("audit", "verify", actor="ada"))
    assert "C-1" in ok(run("cases"))
    ok(run("show", "C-1"))
    ok(run("history", "C-1"))
    ok(run("audit", "verify-export", str(export), actor="ada"))
    write = run("refer", "Billie", "--source", "GP")
    assert write.exit_code == 10
    # A 444 copy is readable by everyone: warned about, then refused.
    warning, error = write.stderr.splitlines()
    assert warning.startswith("warning: ") and "every local user" in warning
    assert error.startswith("error: ") and "read-only here" in error and str(copy) in error
    # Opened immutable: not even a -wal or -shm beside it.
    assert sorted(p.name for p in copy.parent.iterdir()) == ["live.db"]
    assert _digest(copy) == before


def test_a_read_only_copy_is_detected_without_asking(read_only_copy: tuple[Path, Path]) -> None:
    copy, _ = read_only_copy
    with se_flow.open(copy, actor="sam") as flow:
        assert flow.verify().ok
        with pytest.raises(se_flow.StoreUnavailable, match="not writable"):
            flow.refer("Billie", source="GP")


def test_a_path_under_home_is_the_file_that_is_made_and_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with se_flow.open("~/home.db", actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
    assert _mode(tmp_path / "home.db") == 0o600
    assert not (tmp_path / "~").exists()
    with se_flow.open("~/home.db", read_only=True, actor="ada") as flow:
        assert [s.id for s in flow.staff()] == ["ada"]


# --- a database someone else may still be writing ------------------------------------------


def _group_writable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IWGRP)


@pytest.fixture
def as_group_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """A team leader in the database's group: writability from the group bits only, so a
    folder its owner (the coach) may write is one this reader may not, root or not."""
    monkeypatch.setattr(sqlite_store, "_writable", _group_writable)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A coach's database (640) in the coach's folder (750): the group reads, the owner writes."""
    folder = tmp_path / "caseload"
    folder.mkdir()
    path = folder / "live.db"
    _make(path)
    path.chmod(0o640)
    folder.chmod(0o750)
    try:
        yield path
    finally:
        folder.chmod(0o755)


def test_a_database_its_owner_may_still_write_is_never_read_as_immutable(
    shared: Path, as_group_member: None
) -> None:
    # No -shm, none can be made, and the owner may open it and write at any moment: an
    # immutable open would answer from a file changing under it, so it is refused.
    assert sorted(p.name for p in shared.parent.iterdir()) == ["live.db"]
    before = _digest(shared)
    with pytest.raises(se_flow.StoreUnavailable) as refusal:
        se_flow.open(shared, actor="sam")
    message = refusal.value.message
    assert str(shared) in message and "may still be changing" in message
    assert '.backup copy.db"' in message and "on the copy" in message
    refused(CLI(shared)("cases"), 10, "may still be changing", ".backup")
    assert sorted(p.name for p in shared.parent.iterdir()) == ["live.db"]
    assert _digest(shared) == before


def test_a_database_being_written_is_read_live_beside_its_writer(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with se_flow.open(shared, actor="sam") as writer:  # the owner
        writer.refer("Billie", source="GP")  # the -wal and -shm are there while it is open
        monkeypatch.setattr(sqlite_store, "_writable", _group_writable)
        with se_flow.open(shared, actor="sam") as reader:  # the team leader
            assert len(reader.cases()) == 2
            writer.refer("Casey", source="GP")
            assert len(reader.cases()) == 3  # immutable would still say 2
            assert reader.verify().ok
            with pytest.raises(se_flow.StoreUnavailable, match="not writable"):
                reader.refer("Dana", source="GP")


def test_a_database_on_a_read_only_file_system_is_read_as_immutable(
    shared: Path, as_group_member: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    class ReadOnlyMount:
        f_flag = os.ST_RDONLY

    def statvfs(path: Any) -> Any:
        return ReadOnlyMount() if Path(path) == shared else real(path)

    monkeypatch.setattr(os, "statvfs", statvfs)
    with se_flow.open(shared, actor="sam") as flow:
        assert [c.id for c in flow.cases()] == ["C-1"] and flow.verify().ok
    assert sorted(p.name for p in shared.parent.iterdir()) == ["live.db"]


def test_a_wal_without_its_shm_in_a_read_only_folder_is_refused(
    tmp_path: Path, as_if_not_root: None
) -> None:
    live = tmp_path / "live.db"
    folder = tmp_path / "copy"
    folder.mkdir()
    copy = folder / "live.db"
    _make(live)
    with se_flow.open(live, actor="sam") as writer:
        writer.refer("Billie", source="GP")
        # A copy taken file by file while the writer had changes not yet checkpointed.
        assert Path(f"{live}-wal").stat().st_size
        shutil.copyfile(live, copy)
        shutil.copyfile(f"{live}-wal", f"{copy}-wal")
    copy.chmod(0o444)
    Path(f"{copy}-wal").chmod(0o444)
    folder.chmod(0o555)
    try:
        with pytest.raises(se_flow.StoreUnavailable) as refusal:
            se_flow.open(copy, actor="sam")
        message = refusal.value.message
        assert "-wal file holds changes" in message and "without its -shm" in message
        assert ".backup" in message
        assert sorted(p.name for p in folder.iterdir()) == ["live.db", "live.db-wal"]
    finally:
        folder.chmod(0o755)
