"""Proof against insiders (issue 15, items 2 and 3): checkpoints kept in an external,
append-only file catch a database rolled back to an older copy; staff bound to OS logins are
acted as from their own login only; the settings that govern both are admin changes recorded
in the log."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from helpers import Clock, Steps, staffed_db
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url
from test_cli import CLI, ok, refused
from test_seal import forged_export

import se_flow
from se_flow import SEFlow

__all__ = ["pg_server", "pg_url"]

# Two logins this machine has (the CLI checks a login to bind against the OS's users).
LOGINS = sorted(p.pw_name for p in pwd.getpwall() if p.pw_name.isalnum())[:2]
NO_SUCH_LOGIN = "se-flow-no-such-login"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return staffed_db(tmp_path / "i.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


@pytest.fixture
def login_is(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Who the CLI believes is logged in: set `login_is[0]`."""
    who = [LOGINS[0]]
    monkeypatch.setattr("se_flow.cli._os_user", lambda: who[0])
    yield who


def kinds(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]


# --- staff edit and login bindings --------------------------------------------------------


def test_staff_edit_changes_only_what_is_given(run: CLI) -> None:
    out = ok(run("staff", "edit", "sam", "--name", "Sam Patel", actor="ada"))
    assert "staff sam (Sam Patel): coach" in out
    ok(run("staff", "edit", "sam", "--role", "team_leader", actor="ada"))
    (sam,) = [s for s in run.json("staff", "list", actor="ada") if s["id"] == "sam"]
    assert sam == {
        "id": "sam",
        "name": "Sam Patel",
        "role": "team_leader",
        "active": True,
        "login": None,
    }
    refused(run("staff", "edit", "zed", "--name", "Zed", actor="ada"), 4, "zed")
    refused(run("staff", "edit", "sam", "--name", "Sam Patel", actor="ada"), 5, "nothing")
    # The same rules as staff add: a coach manages nobody.
    refused(run("staff", "edit", "sam", "--name", "S", actor="kim"), 7)


def test_a_bound_member_is_refused_from_another_login_saying_who_is_logged_in(
    run: CLI, login_is: list[str]
) -> None:
    bound, other = LOGINS
    ok(run("staff", "edit", "sam", "--login", bound, actor="ada"))
    login_is[0] = bound
    ok(run("cases", actor="sam"))
    login_is[0] = other
    err = refused(run("cases", actor="sam"), 7, "sam", f"'{bound}'", f"'{other}' is logged in")
    assert "shared-terminal" in err
    # Writes too, and nothing is written.
    before = len(run.flow().events(actor="ada"))
    refused(run("refer", "Alex Doe", "--source", "GP", actor="sam"), 7, "logged in")
    assert len(run.flow().events(actor="ada")) == before
    # An unbound member is not affected.
    ok(run("cases", actor="kim"))
    # staff add on an existing member changes them but keeps the binding (--no-login lifts it).
    ok(run("staff", "add", "sam", "--name", "Sam C", "--role", "coach", actor="ada"))
    (sam,) = [s for s in run.json("staff", "list", actor="ada") if s["id"] == "sam"]
    assert (sam["name"], sam["login"]) == ("Sam C", bound)
    ok(run("staff", "edit", "sam", "--no-login", actor="ada"))
    ok(run("cases", actor="sam"))


def test_a_login_no_os_user_has_is_refused_and_nothing_written(run: CLI) -> None:
    before = kinds(run.db)
    refused(run("staff", "edit", "sam", "--login", NO_SUCH_LOGIN, actor="ada"), 5, "no OS user")
    assert kinds(run.db) == before


def test_the_library_passes_actors_it_authenticated_itself(db: Path) -> None:
    with se_flow.open(db, actor="ada") as flow:
        flow.edit_staff("sam", login=LOGINS[0])
    # No login given: the embedding application vouches for its actors; nothing to compare.
    with se_flow.open(db, actor="sam") as flow:
        assert flow.cases() == []
    with (
        se_flow.open(db, actor="sam", login=LOGINS[1]) as flow,
        pytest.raises(se_flow.PermissionDenied, match="is logged in"),
    ):
        flow.cases()


def test_shared_terminal_is_an_admins_setting_recorded_in_the_log(
    run: CLI, login_is: list[str]
) -> None:
    bound, other = LOGINS
    ok(run("staff", "edit", "sam", "--login", bound, actor="ada"))
    refused(run("settings", "shared-terminal", "on", actor="lee"), 7, "only an admin")
    refused(run("settings", "shared-terminal", "maybe", actor="ada"), 5, "on or off")
    ok(run("settings", "shared-terminal", "on", actor="ada"))
    assert kinds(run.db)[-1] == "setting"
    assert run.json("settings", "show", actor="kim")["shared_terminal"] is True
    login_is[0] = other
    ok(run("cases", actor="sam"))
    ok(run("settings", "shared-terminal", "off", actor="ada"))
    refused(run("cases", actor="sam"), 7, "logged in")
    assert ok(run("audit", "verify", actor="ava")).startswith("audit chain ok")


def test_init_binds_the_first_admin_to_the_login_that_ran_it(
    tmp_path: Path, login_is: list[str]
) -> None:
    run = CLI(tmp_path / "new.db")
    out = ok(run("init", "--no-seal", actor="ada"))
    assert f"bound to the login {LOGINS[0]}" in out
    assert run.json("staff", "list", actor="ada")[0]["login"] == LOGINS[0]
    login_is[0] = LOGINS[1]
    refused(run("staff", "list", actor="ada"), 7, "logged in")


def test_deactivating_someone_with_open_cases_asks_first(db: Path, run: CLI) -> None:
    with se_flow.open(db, actor="sam") as flow:
        case = flow.refer("Alex Doe", source="GP").case
        with pytest.raises(se_flow.StaffHoldsCases) as held:
            flow.edit_staff("sam", active=False, actor="ada")
        assert held.value.case_ids == (case.id,)
        assert flow.staff_member("sam", actor="ada").active
    # Not at a terminal: refused with what to do; --yes goes ahead.
    refused(run("staff", "edit", "sam", "--inactive", actor="ada"), 5, "C-1", "--yes")
    out = ok(run("staff", "edit", "sam", "--inactive", "--yes", actor="ada"))
    assert "inactive" in out
    # Someone with no open cases needs no confirmation.
    ok(run("staff", "edit", "kim", "--inactive", actor="ada"))


# --- the external checkpoint file ---------------------------------------------------------


@pytest.fixture
def sealed(tmp_path: Path, clock: Clock) -> Iterator[tuple[SEFlow, se_flow.VerificationKey]]:
    path = tmp_path / "s.db"
    with se_flow.open(path, clock=clock, actor="ada") as flow:
        key = flow.start_sealing()
        flow.add_staff("ada", "Ada Admin", "admin")
        flow.add_staff("sam", "Sam Coach", "coach")
        yield flow, key


def test_a_checkpoint_carries_the_seal_of_its_head(
    sealed: tuple[SEFlow, se_flow.VerificationKey],
) -> None:
    flow, _ = sealed
    kept = flow.checkpoint()
    assert kept.seal is not None and kept.seal == flow.store.seal_of(kept.seq)
    assert se_flow.Checkpoint.from_json(json.dumps(kept.to_json())) == kept


def test_checkpoints_appended_to_a_file_catch_a_rollback_to_an_older_copy(
    sealed: tuple[SEFlow, se_flow.VerificationKey], tmp_path: Path, clock: Clock
) -> None:
    flow, key = sealed
    steps = Steps(flow)
    log = tmp_path / "share" / "checkpoints.jsonl"
    log.parent.mkdir()
    first = flow.append_checkpoint(log)
    assert first.line == 1
    db = Path(flow.store.path)  # type: ignore[attr-defined]
    flow.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    shutil.copy(db, tmp_path / "copy.db")  # the copy an insider keeps
    steps.refer()
    clock.advance(hours=1)
    assert flow.append_checkpoint(log).line == 2
    assert flow.verify(checkpoints=log, key=key).ok
    flow.disconnect()
    shutil.copy(tmp_path / "copy.db", db)  # ... and puts back later
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with se_flow.open(db, actor="ada") as back:
        # The copy is whole and sealed: only the later checkpoint gives it away.
        assert back.verify(key=key).ok
        assert back.verify(first.checkpoint).ok
        result = back.verify(checkpoints=log)
        assert not result.ok and result.problem is not None
        assert "rolled back to an older copy" in result.problem
        # And se-flow will not append an older head after a later one.
        with pytest.raises(se_flow.CheckpointFileRefused, match="rolled back"):
            back.append_checkpoint(log)


def test_checkpoints_are_appended_after_every_n_events_and_every_export(
    sealed: tuple[SEFlow, se_flow.VerificationKey], tmp_path: Path
) -> None:
    flow, _ = sealed
    log = tmp_path / "cp.jsonl"
    with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
        flow.change_settings(checkpoint_file=log, checkpoint_every=3, actor="sam")
    with pytest.raises(se_flow.InvalidInput, match="need a checkpoint file"):
        flow.change_settings(checkpoint_every=3)
    settings = flow.change_settings(checkpoint_file=log, checkpoint_every=3)
    assert settings.checkpoint_every == 3 and settings.checkpoint_file == str(log)
    assert flow.events()[-1].kind == "setting"
    head = flow.store.head()[0]
    for i in range(5):
        flow.refer(f"Person {i}", source="GP", actor="sam")
    seqs = [json.loads(line)["seq"] for line in log.read_text().splitlines()]
    # The setting's own event counts too: every multiple of 3 the log passed.
    assert seqs == [s for s in range(head, head + 6) if s % 3 == 0]
    flow.change_settings(checkpoint_on_export=True, checkpoint_every=0)
    manifest = flow.export(tmp_path / "out")
    last = json.loads(log.read_text().splitlines()[-1])
    # The export's own event is in the checkpoint: deleting it later is a rollback.
    assert last["seq"] == flow.store.head()[0] and last["hash"] == flow.store.head()[1]
    assert manifest.audit_event == (last["seq"], last["hash"])
    assert flow.verify(checkpoints=log).ok
    flow.change_settings(no_checkpoint_file=True)
    assert flow.settings() == se_flow.DatabaseSettings()


def test_a_checkpoint_file_that_is_not_append_only_or_not_ours_is_refused(
    sealed: tuple[SEFlow, se_flow.VerificationKey], tmp_path: Path
) -> None:
    flow, _ = sealed
    log = tmp_path / "cp.jsonl"
    flow.append_checkpoint(log)
    flow.refer("Alex Doe", source="GP", actor="sam")
    flow.append_checkpoint(log)
    good = log.read_text()
    lines = good.splitlines(keepends=True)

    def refused_for(text: str, match: str) -> None:
        log.write_text(text)
        with pytest.raises(se_flow.CheckpointFileRefused, match=match) as exc:
            flow.append_checkpoint(log)
        assert exc.value.exit_code == 5
        assert log.read_text() == text  # nothing written
        with pytest.raises(se_flow.CheckpointFileRefused, match=match):
            flow.verify(checkpoints=log)

    edited = lines[0].replace('"seq":', '"seq": ')
    refused_for(edited + lines[1], r"does not follow|changed other than by appending")
    refused_for(lines[1], "does not follow")  # the first line removed
    refused_for(good[:-1], "cut short")
    refused_for("hello\n", "not an se-flow checkpoint")
    other = json.loads(lines[0])
    other["store_id"] = "f" * 32
    log.write_text(json.dumps(other) + "\n")
    with pytest.raises(se_flow.CheckpointFileRefused, match=r"another|not of this"):
        flow.append_checkpoint(log)
    log.write_text(good)
    os.chmod(log, 0o666)
    with pytest.raises(se_flow.CheckpointFileRefused, match="others may write"):
        flow.append_checkpoint(log)
    os.chmod(log, 0o644)
    link = tmp_path / "link.jsonl"
    link.symlink_to(log)
    with pytest.raises(se_flow.CheckpointFileRefused, match="symbolic link"):
        flow.append_checkpoint(link)
    assert log.read_text() == good
    with pytest.raises(se_flow.CheckpointFileRefused, match="does not exist"):
        flow.verify(checkpoints=tmp_path / "none.jsonl")


def test_a_made_up_checkpoint_is_caught_with_the_key(
    sealed: tuple[SEFlow, se_flow.VerificationKey], tmp_path: Path
) -> None:
    flow, key = sealed
    kept = flow.checkpoint()
    assert kept.seal is not None
    forged = se_flow.Checkpoint.from_json(
        {**kept.to_json(), "seal": {"epoch": kept.seal.epoch, "mac": "0" * 64}}
    )
    assert flow.verify(forged).ok  # without the key, its seal is not looked at
    result = flow.verify(forged, key=key)
    assert not result.ok and "seal this key does not verify" in (result.problem or "")


def test_settings_changed_behind_the_logs_back_are_caught(
    sealed: tuple[SEFlow, se_flow.VerificationKey],
) -> None:
    flow, _ = sealed
    conn: sqlite3.Connection = flow.store.conn  # type: ignore[attr-defined]
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('settings', ?)",
        (json.dumps(se_flow.DatabaseSettings(shared_terminal=True).to_json()),),
    )
    result = flow.verify()
    assert not result.ok and "behind the log's back" in (result.problem or "")


def test_the_cli_appends_and_verifies_checkpoint_files(run: CLI, tmp_path: Path) -> None:
    log = tmp_path / "cp.jsonl"
    out = ok(run("audit", "checkpoint", "--append", str(log), actor="ava"))
    assert "appended to" in out and "(line 1)" in out
    ok(run("audit", "auto-checkpoint", "--file", str(log), "--every", "1", actor="ada"))
    refused(run("audit", "auto-checkpoint", "--every", "2", actor="lee"), 7, "only an admin")
    ok(run("refer", "Alex Doe", "--source", "GP", actor="sam"))
    assert len(log.read_text().splitlines()) == 3
    out = ok(run("audit", "verify", "--checkpoints", str(log), actor="ava"))
    assert "3 checkpoints hold" in out
    log.write_text("not ours\n")
    refused(run("audit", "verify", "--checkpoints", str(log), actor="ava"), 5, "not an se-flow")


# --- PostgreSQL: seals made on the app server, the database login of every event ---------


def test_postgres_seals_with_the_key_file_and_records_each_events_database_login(
    pg_url: str, tmp_path: Path, clock: Clock
) -> None:
    import psycopg

    from se_flow._postgres import PostgresStore

    key_file = tmp_path / "pg.sealkey"
    with se_flow.open(pg_url, clock=clock, actor="ada", seal_key=key_file) as flow:
        key = flow.start_sealing()
        flow.add_staff("ada", "Ada Admin", "admin")
        flow.add_staff("sam", "Sam Coach", "coach")
        clock.advance(days=1)
        Steps(flow).refer()
        assert flow.verify(key=key).ok
        store = flow.store
        assert isinstance(store, PostgresStore)
        with psycopg.connect(pg_url) as conn:
            ((me,),) = conn.execute("SELECT current_user").fetchall()
            # A forger with INSERT on the log appends a correctly chained event.
            seq, head = store.head()
            forged = forged_export(flow, seq + 1, head, clock.now)
            names = ", ".join(forged)
            conn.execute(
                f"INSERT INTO events ({names}) VALUES ({', '.join(['%s'] * len(forged))})",
                list(forged.values()),
            )
        logins = list(store.db_logins())
        assert [login for _, login in logins] == [me] * len(logins)
        assert flow.verify().ok  # the chain alone cannot tell
        result = flow.verify(key=key)
        assert not result.ok and "no seal" in (result.problem or "")


def test_init_seals_a_postgres_database_given_a_key_file(pg_url: str, tmp_path: Path) -> None:
    run = CLI(tmp_path / "unused.db")
    key_file = tmp_path / "pg.sealkey"
    out = ok(run.raw("--db", pg_url, "--as", "ada", "--key-file", str(key_file), "init"))
    assert "VERIFICATION KEY" in out and key_file.exists()
    key = next(line.split()[-1] for line in out.splitlines() if "/1-" in line)
    out = ok(run.raw("--db", pg_url, "--as", "ada", "audit", "verify", "--key", key))
    assert "seals verified" in out


# --- property: a rollback behind any kept checkpoint is caught, and only that ----------------

Op = tuple[str, int]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Op], int]:
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("write"), st.integers(1, 4)),
                st.tuples(st.just("checkpoint"), st.just(0)),
                st.tuples(st.just("copy"), st.just(0)),
            ),
            min_size=1,
            max_size=10,
        )
    )
    return ops, draw(st.integers(0, 10))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(histories())
def test_a_rollback_is_caught_exactly_when_a_later_checkpoint_was_kept(
    case: tuple[list[Op], int],
) -> None:
    ops, pick = case
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        db, log = Path(folder) / "p.db", Path(folder) / "cp.jsonl"
        copies: list[tuple[Path, int]] = []
        with se_flow.open(db, clock=clock, actor="ada", synchronous="OFF") as flow:
            flow.add_staff("ada", "Ada Admin", "admin")
            for i, (op, count) in enumerate(ops):
                clock.advance(hours=1)
                if op == "write":
                    for j in range(count):
                        flow.refer(f"Person {i}-{j}", source="GP")
                elif op == "checkpoint":
                    flow.append_checkpoint(log)
                else:
                    flow.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
                    copy = Path(folder) / f"copy-{i}.db"
                    shutil.copy(db, copy)
                    copies.append((copy, flow.store.head()[0]))
            if not log.exists():
                flow.append_checkpoint(log)
        kept = [json.loads(line)["seq"] for line in log.read_text().splitlines()]
        if copies:
            copy, at = copies[pick % len(copies)]
            shutil.copy(copy, db)
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        else:
            at = max(kept)
        with se_flow.open(db, actor="ada", create=False) as back:
            result = back.verify(checkpoints=log)
    assert result.ok == (max(kept) <= at), (kept, at, result.problem)
