"""What the PostgreSQL store refuses, each in one line: a URL that does not parse, a server that
refuses, a database that is not UTF8, a newer schema, another application's tables; the
database's own refusals of edits to the log; the CLI on a URL. And the canonical-text cut the
server hashes is the core's canonical text for any seq and prev_hash."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers import Steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import create_database, drop_database, pg_server, pg_url, with_db
from typer.testing import CliRunner, Result

import se_flow
from se_flow._audit import canonical, row_hash
from se_flow.cli import app

__all__ = ["pg_server", "pg_url"]


def test_the_cut_reassembles_the_canonical_text() -> None:
    from se_flow._audit import canonical_body, event_to_row
    from se_flow._model import EventDraft
    from se_flow._postgres import cut_canonical

    @given(
        seq=st.integers(min_value=1, max_value=2**62),
        prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        reason=st.none() | st.text(),
        payload=st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers()),
        command_id=st.none() | st.text(max_size=8),
        texts=st.dictionaries(st.text(max_size=5), st.text(max_size=8)),
    )
    # Drawing text is slow on a loaded machine; what is checked does not depend on speed.
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(
        seq: int,
        prev: str,
        reason: str | None,
        payload: dict[str, Any],
        command_id: str | None,
        texts: dict[str, str],
    ) -> None:
        now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
        draft = EventDraft(
            case_id="C-1",
            kind="record",
            actor="sam",
            role="coach",
            effective_at=now,
            recorded_at=now,
            workflow_hash="w" * 64,
            reason=reason,
            payload=payload,
            texts=texts,
            command_id=command_id,
            command_hash=None if command_id is None else "c" * 64,
        )
        row = event_to_row(draft, seq, prev)
        a, b, c = cut_canonical(row)
        # canonical_body: every field but the hash, an optional one (texts, a command id) only
        # when set.
        assert a + canonical(prev) + b + str(seq) + c == canonical_body(row)
        assert row_hash(row) == row["hash"]

    check()


def test_a_url_that_does_not_parse_is_invalid_input() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(se_flow.InvalidInput, match="not a usable PostgreSQL URL"):
        se_flow.open("postgresql://ada@host:notaport/db")


def test_a_server_that_refuses_is_unavailable_and_no_password_is_shown() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(se_flow.StoreUnavailable) as refused:
        se_flow.open("postgresql://ada:secret@127.0.0.1:1/se_flow")
    assert "secret" not in str(refused.value)
    assert "postgresql://ada:***@127.0.0.1:1/se_flow" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("postgresql://ada:s3cretpass@127.0.0.1:1/se_flow", 10),  # nobody there
        ("postgresql://ada:s3cretpass@[::1/se_flow", 5),  # libpq quotes the URL it cannot parse
        ("postgresql://ada@127.0.0.1:1/se_flow?password=s3cretpass", 10),
    ],
)
def test_the_cli_never_prints_a_password_from_the_url(url: str, code: int) -> None:
    pytest.importorskip("psycopg")
    for args in (("init",), ("cases",), ("audit", "verify")):
        result = _cli(url, *args)
        assert result.exit_code == code, result.output
        assert result.stderr.startswith("error: ") and "***" in result.stderr, result.output
        assert "s3cretpass" not in result.output


def test_init_and_verify_export_show_a_url_without_its_password(
    pg_url: str, tmp_path: Path
) -> None:
    # The test server trusts local connections: the password is given, and ignored.
    parts = urlsplit(pg_url)
    user, _, host = parts.netloc.rpartition("@")
    url = urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:s3cretpass@{host}"))
    said = [_cli(url, "init", "--name", "Ada Admin"), _cli(url, "export", str(tmp_path / "out"))]
    said.append(_cli(url, "audit", "verify-export", str(tmp_path / "out")))
    said.append(_cli(url, "audit", "verify-export", str(tmp_path / "out"), "--json"))
    for result in said:
        assert result.exit_code == 0, result.output
        assert "s3cretpass" not in result.output
    masked = url.replace(":s3cretpass@", ":***@")
    assert said[0].stdout.startswith(f"created {masked}\n")
    assert f"and the audit log of {masked}:" in said[2].stdout
    assert json.loads(said[3].stdout)["checked_against_log"] == masked


def test_a_database_that_is_not_utf8_is_refused(pg_server: str) -> None:
    import psycopg

    name = "se_flow_latin1_test"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}".encode())
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'".encode()
        )
    url = with_db(pg_server, name)
    try:
        with pytest.raises(se_flow.StoreUnavailable, match="not a UTF8 database"):
            se_flow.open(url)
    finally:
        drop_database(pg_server, url)


def test_a_schema_newer_than_se_flow_is_refused(pg_url: str) -> None:
    import psycopg

    with se_flow.open(pg_url):
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(b"INSERT INTO se_flow_schema (version, name) VALUES (99, 'future')")
    with pytest.raises(se_flow.StoreUnavailable, match="schema version 99, newer"):
        se_flow.open(pg_url)


def test_another_applications_tables_are_never_adopted(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(b"CREATE TABLE invoices (id int)")
    with pytest.raises(se_flow.StoreUnavailable, match=r"another application \(invoices\)"):
        se_flow.open(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        found = conn.execute(b"SELECT to_regclass('events')").fetchone()
        assert found == (None,)


def test_an_empty_database_is_not_made_one_without_create(pg_url: str) -> None:
    with pytest.raises(se_flow.StoreUnavailable, match="run `se-flow init`"):
        se_flow.open(pg_url, create=False)
    with pytest.raises(se_flow.StoreUnavailable, match="run `se-flow init`"):
        se_flow.open(pg_url, read_only=True)


def test_two_stores_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    import threading

    opened: list[se_flow.SEFlow] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(se_flow.open(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = {flow.store.store_id() for flow in opened}
    for flow in opened:
        flow.disconnect()
    assert len(ids) == 1


@pytest.fixture
def pg_flow(pg_url: str) -> Iterator[se_flow.SEFlow]:
    with se_flow.open(pg_url, actor="sam") as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        yield flow


def test_the_database_refuses_edits_to_the_log_and_its_tables(pg_flow: se_flow.SEFlow) -> None:
    """Even for the owner (who may UPDATE): the triggers are the second line."""
    import psycopg

    case = Steps(pg_flow).to("customer_engagement")
    Steps(pg_flow).refer("Someone Else")  # the log's last event is not this case's
    url = pg_flow.store.url  # type: ignore[attr-defined]
    with psycopg.connect(url, autocommit=True) as conn:
        for sql, words in (
            ("UPDATE events SET reason = 'forged' WHERE seq = 2", "append-only"),
            ("DELETE FROM events WHERE seq = 2", "append-only"),
            ("TRUNCATE events CASCADE", "append-only"),
            ("UPDATE records SET fields = '{}'", "correction"),
            ("DELETE FROM records", "correction"),
            (f"UPDATE cases SET coach = 'kim' WHERE id = '{case.id}'", "no event for it"),
            ("UPDATE staff SET role = 'admin' WHERE id = 'sam'", "no staff event"),
            ("DELETE FROM staff WHERE id = 'sam'", "never deleted"),
            (f"DELETE FROM cases WHERE id = '{case.id}'", "never deleted"),
            ("UPDATE chain_head SET seq = 1", None),
        ):
            if words is None:
                continue  # the head is no log: a forged head breaks the next link (verify)
            with pytest.raises(psycopg.errors.RaiseException, match=words):
                conn.execute(sql.encode())
    assert pg_flow.verify().ok


def test_writes_under_another_workflow_are_refused(pg_flow: se_flow.SEFlow, tmp_path: Path) -> None:
    Steps(pg_flow).refer()
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("__*"))
    stage = folder / "04_job_matching.toml"
    text = stage.read_text()
    retyped = text.replace('start_date = { type = "date" }', 'start_date = { type = "text" }')
    assert retyped != text
    stage.write_text(retyped)
    url = pg_flow.store.url  # type: ignore[attr-defined]
    with se_flow.open(url, stages=folder, actor="sam") as other:
        head = other.store.head()
        with pytest.raises(se_flow.WorkflowMismatch):
            other.refer("Bo", source="GP")
        assert other.store.head() == head
        other.adopt_workflow(reason="new stage data", actor="ada")
        other.refer("Bo", source="GP")
        assert other.verify().ok


def _cli(url: str, *args: str, actor: str = "ada") -> Result:
    env = {"COLUMNS": "200", "SE_FLOW_DB": url, "SE_FLOW_ACTOR": None}
    return CliRunner().invoke(app, ["--as", actor, *args], env=env)


def test_the_cli_works_on_a_url(pg_url: str) -> None:
    for args in (
        ("init", "--name", "Ada Admin"),
        ("staff", "add", "sam", "--name", "Sam", "--role", "coach"),
    ):
        result = _cli(pg_url, *args)
        assert result.exit_code == 0, result.output
    result = _cli(pg_url, "refer", "Alex Doe", "--source", "GP", actor="sam")
    assert result.exit_code == 0, result.output
    result = _cli(pg_url, "audit", "verify")
    assert result.exit_code == 0 and "ok" in result.stdout, result.output
    result = _cli(pg_url, "init")
    assert result.exit_code != 0 and "already set up" in result.stderr


def test_the_cli_refuses_a_server_that_is_not_there() -> None:
    pytest.importorskip("psycopg")
    result = _cli("postgresql://ada@127.0.0.1:1/se_flow", "cases")
    assert result.exit_code == 10, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_a_fresh_database_each_time(pg_server: str) -> None:
    url = create_database(pg_server)
    try:
        with se_flow.open(url) as flow:
            assert flow.store.head()[0] == 0
    finally:
        drop_database(pg_server, url)
