"""The roles in docs/postgres-roles.sql: se-flow runs as the app role, which the database
itself refuses any change to the log; the audit role verifies but cannot read personal data."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import Steps
from pg import pg_server

import se_flow

__all__ = ["pg_server"]

ROLES_SQL = Path(__file__).parent.parent / "docs" / "postgres-roles.sql"
PART_2 = "-- ==== Part 2"


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Roles:
    """The documented roles and database, renamed so tests on a shared server cannot clash."""

    def __init__(self, server: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.server = server
        self.db = f"se_flow_roles_{suffix}"
        text = re.sub(r"\bse_flow_(owner|app|audit)\b", rf"\g<0>_{suffix}", ROLES_SQL.read_text())
        text = re.sub(r"\bDATABASE se_flow\b", f"DATABASE {self.db}", text)
        self.part_1, rest = text.split(PART_2)
        self.part_2 = rest.split("\n", 1)[1]  # after the rest of the marker's line
        self.names = {role: f"se_flow_{role}_{suffix}" for role in ("owner", "app", "audit")}

    def url(self, role: str) -> str:
        parts = urlsplit(self.server)
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{self.names[role]}:pw@{host}{port}/{self.db}"


@pytest.fixture
def roles(pg_server: str) -> Iterator[Roles]:
    import psycopg

    made = Roles(pg_server)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for sql in _statements(made.part_1):
            conn.execute(sql.encode())
        for name in made.names.values():
            conn.execute(f"ALTER ROLE {name} PASSWORD 'pw'".encode())
    try:
        yield made
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {made.db} WITH (FORCE)".encode())
            for name in made.names.values():
                conn.execute(f"DROP ROLE IF EXISTS {name}".encode())


def test_the_app_role_runs_se_flow_and_the_database_refuses_it_changing_the_log(
    roles: Roles,
) -> None:
    import psycopg

    with se_flow.open(roles.url("owner"), actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin")
    with psycopg.connect(roles.url("owner"), autocommit=True) as conn:
        for sql in _statements(roles.part_2):
            conn.execute(sql.encode())

    with se_flow.open(roles.url("app"), actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        flow.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
        case = Steps(flow).to("vocational_profiling")
        flow.erase_personal_data(case.participant_id, reason="asked", actor="ada")
        assert flow.verify().ok

    with psycopg.connect(roles.url("app"), autocommit=True) as conn:
        for sql in (
            "UPDATE events SET reason = 'forged' WHERE seq = 2",
            "DELETE FROM events WHERE seq = 2",
            "TRUNCATE events",
            "UPDATE records SET fields = '{}'",
            "DELETE FROM records",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(sql.encode())

    # The auditor's role verifies the chain and every table, and cannot read personal data.
    with se_flow.open(roles.url("audit"), actor="ava", read_only=True) as flow:
        result = flow.verify()
        assert result.ok, result.problem
    with psycopg.connect(roles.url("audit"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(b"SELECT name FROM personal_data")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(b"INSERT INTO meta (key, value) VALUES ('x', 'y')")
