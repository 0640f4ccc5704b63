"""The `se-flow` command through Typer's CliRunner: every command's happy path and its refusals,
each with its exit code and the words a job coach sees.

Databases are built with the API where the set-up is not what the test is about; the clock is
the real one (the CLI has no other), so dates are relative to today.
"""

from __future__ import annotations

import datetime as dt
import enum
import getpass
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import typer.main
from helpers import LEAST_EVIDENCE, staffed_db
from typer.testing import CliRunner, Result

import se_flow
import se_flow.cli as cli
from se_flow.cli import app

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.datetime.now(dt.UTC).date()


def days_ago(n: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=n)


# --- running the command --------------------------------------------------------------------------


class CLI:
    """Runs `se-flow --db <db> --as <actor> ...` in-process, with a wide terminal."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(
        self, *args: str, actor: str | None = "sam", env: dict[str, Any] | None = None
    ) -> Result:
        head = ["--db", str(self.db)]
        if actor is not None:
            head += ["--as", actor]
        return self.raw(*head, *args, env=env)

    def raw(self, *args: str, env: dict[str, Any] | None = None) -> Result:
        full_env = {"COLUMNS": "200", "SE_FLOW_DB": None, "SE_FLOW_ACTOR": None, **(env or {})}
        return self.runner.invoke(app, list(args), env=full_env)

    def json(self, *args: str, actor: str | None = "sam", code: int = 0) -> Any:
        result = self(*args, "--json", actor=actor)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    def flow(self) -> se_flow.SEFlow:
        return se_flow.open(self.db, create=False, actor="ada")


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    return result.stdout


def blocked(result: Result) -> str:
    """`check` printed its checklist and exited 6: a guard blocks the move."""
    assert result.exit_code == 6, f"exit {result.exit_code}, wanted 6\n{result.output}"
    assert "Traceback" not in result.output
    return result.stdout


def refused(result: Result, code: int, *words: str) -> str:
    """The command failed with `code`, one `error:` line first on stderr naming `words`."""
    assert result.exit_code == code, f"exit {result.exit_code}, wanted {code}\n{result.output}"
    assert "Traceback" not in result.output
    err = result.stderr
    assert err.startswith("error: "), err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    return err


def event_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


# --- fixtures -------------------------------------------------------------------------------------


# On top of the least evidence: the CLI runs on the real clock, so the job starts yesterday.
EXTRA: dict[str, dict[str, Any]] = {
    "job_offer": {"start_date": (TODAY - dt.timedelta(days=1)).isoformat(), "hourly_pay": "13.50"}
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with admin ada, team leader lee, coaches sam and kim, auditor ava."""
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


def refer(db: Path, name: str = "Alex Doe", *, coach: str = "sam", days: int = 0) -> str:
    with se_flow.open(db) as flow:
        return flow.refer(
            se_flow.PersonalDetails(name=name, contact="07700 900123"),
            source="GP",
            coach=coach,
            actor=coach,
            effective_at=days_ago(days),
        ).case.id


def walk(db: Path, case_id: str, to: str, *, by: str = "sam") -> None:
    """Move a case forward (through the API) until it is in `to`."""
    with se_flow.open(db, actor=by) as flow:
        here = flow.case(case_id).state
        while here != to:
            forward = LEAST_EVIDENCE[here]
            for kind, fields in forward.records:
                flow.record(case_id, kind, {**fields, **EXTRA.get(kind, {})}, actor=by)
            here = flow.advance(case_id, forward.trigger, actor=by).case.state


@pytest.fixture
def case(db: Path) -> str:
    """C-1, Alex Doe, sam's, engaged: at customer engagement with nothing recorded yet."""
    case_id = refer(db)
    walk(db, case_id, "customer_engagement")
    return case_id


# --- the app as a whole ---------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


ALL_COMMANDS = [p for p, _ in _commands(typer.main.get_command(app))]


def test_every_command_and_every_option_has_help() -> None:
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        name = " ".join(("se-flow", *path))
        if not (command.help or "").strip():
            missing.append(name)
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
    assert not missing, f"no help text: {missing}"
    assert len(ALL_COMMANDS) > 25


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "se-flow")
def test_help_renders_for_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage: se-flow" in result.output


def test_the_commands_the_issue_asks_for_exist() -> None:
    wanted = {
        ("init",),
        ("staff", "add"),
        ("staff", "list"),
        ("refer",),
        ("cases",),
        ("show",),
        ("record",),
        ("check",),
        ("next",),
        ("advance",),
        ("pause",),
        ("resume",),
        ("withdraw",),
        ("close",),
        ("reopen",),
        ("history",),
        ("due",),
        ("workflow", "show"),
        ("workflow", "validate"),
        ("workflow", "diagram"),
        ("audit", "verify"),
        ("demo",),
    }
    assert wanted <= set(ALL_COMMANDS)


def test_shell_completion_is_on() -> None:
    params = {p.name for p in typer.main.get_command(app).params}
    assert {"install_completion", "show_completion"} <= params


def test_usage_errors_exit_2(run: CLI) -> None:
    assert run("frobnicate").exit_code == 2
    assert run("advance").exit_code == 2  # missing CASE and TRIGGER
    result = run("cases", "--limit", "zero")
    assert result.exit_code == 2 and "not a whole number" in result.output
    # A whole number out of range is the API's refusal (exit 5), not a usage error.
    refused(run("cases", "--limit", "0"), 5, "--limit 0 is out of range")
    refused(run("cases", "--stuck", "-1"), 5, "--stuck -1 is out of range")
    refused(run("team", "--no-contact", "-3"), 5, "--no-contact -3 is out of range")


def test_a_future_date_names_the_option_typed(run: CLI) -> None:
    # The API calls it effective_at; the coach typed --on.
    found = re.search(r"case (C-\d+)", ok(run("refer", "Alex Doe", "--source", "GP", actor="sam")))
    assert found
    done = run("record", found.group(1), "note", "text=x", "--on", "2999-01-01", actor="sam")
    refused(done, 5, "error: --on 2999-01-01")


# --- init, staff ----------------------------------------------------------------------------------


def test_init_creates_the_database_with_the_actor_as_admin(tmp_path: Path) -> None:
    run = CLI(tmp_path / "new.db")
    out = ok(run("init", "--name", "Ada Admin", actor="ada"))
    assert "ada (Ada Admin) is its first staff member, as admin" in out
    staff = run.json("staff", "list", actor="ada")
    # The first admin is bound to the login that ran init.
    login = getpass.getuser()
    assert staff == [
        {"id": "ada", "name": "Ada Admin", "role": "admin", "active": True, "login": login}
    ]


def test_init_with_a_role(tmp_path: Path) -> None:
    run = CLI(tmp_path / "new.db")
    ok(run("init", "--role", "team_leader", actor="lee"))
    assert run.json("staff", "list", actor="lee")[0]["role"] == "team_leader"


def test_init_twice_is_refused(run: CLI) -> None:
    refused(run("init", actor="ada"), 5, "already set up", "staff add")


def test_init_with_an_unknown_role_leaves_no_file(tmp_path: Path) -> None:
    run = CLI(tmp_path / "new.db")
    refused(run("init", "--role", "boss", actor="ada"), 5, "unknown role 'boss'", "coach")
    assert not (tmp_path / "new.db").exists()


def test_init_in_a_missing_folder(tmp_path: Path) -> None:
    run = CLI(tmp_path / "no" / "such" / "x.db")
    refused(run("init", actor="ada"), 10, "does not exist")


def test_default_database_is_in_the_per_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = Path(typer.get_app_dir("se-flow")) / "se-flow.db"
    assert cli.default_db_path() == expected
    assert tmp_path in expected.parents
    runner = CLI(tmp_path / "unused.db")
    ok(runner.raw("--as", "ada", "init"))
    assert expected.exists()
    assert "ada" in ok(runner.raw("--as", "ada", "staff", "list"))


def test_database_and_actor_from_the_environment(tmp_path: Path) -> None:
    runner = CLI(tmp_path / "unused.db")
    env = {"SE_FLOW_DB": str(tmp_path / "env.db"), "SE_FLOW_ACTOR": "eve"}
    result = runner.runner.invoke(app, ["init"], env={"COLUMNS": "200", **env})
    assert "eve" in ok(result)
    assert (tmp_path / "env.db").exists()


def test_actor_defaults_to_the_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    run = CLI(tmp_path / "new.db")
    assert "osuser" in ok(run("init", actor=None))


def test_staff_add_and_list(run: CLI) -> None:
    out = ok(run("staff", "add", "pat", "--name", "Pat Coach", "--role", "coach", actor="ada"))
    assert "staff pat (Pat Coach): coach" in out
    table = ok(run("staff", "list"))
    assert "Pat Coach" in table and "Team leader" in table
    ids = [s["id"] for s in run.json("staff", "list")]
    assert ids == sorted(["ada", "lee", "sam", "kim", "ava", "pat"])


def test_staff_add_refusals(run: CLI, db: Path) -> None:
    before = event_count(db)
    refused(
        run("staff", "add", "pat", "--name", "Pat", "--role", "boss", actor="ada"),
        5,
        "unknown role 'boss'",
    )
    refused(
        run("staff", "add", "pat", "--name", "Pat", "--role", "coach", actor="sam"),
        7,
        "sam may not manage staff",
    )
    refused(
        run("staff", "add", "pat", "--name", "Pat", "--role", "coach", actor="zed"),
        7,
        "zed is not on the staff list",
    )
    assert run("staff", "add", "pat", "--role", "coach", actor="ada").exit_code == 2
    assert event_count(db) == before


def test_staff_add_protects_admins_and_auditors(run: CLI, db: Path) -> None:
    before = event_count(db)
    demote = ("staff", "add", "ada", "--name", "Ada Admin", "--role", "coach")
    refused(run(*demote, actor="lee"), 7, "only an admin may change ada")
    refused(run(*demote, actor="ada"), 7, "ada: they are the last active admin")
    refused(
        run("staff", "add", "ava", "--name", "Ava", "--role", "coach", actor="lee"),
        7,
        "only an admin may change ava",
    )
    assert event_count(db) == before


@pytest.mark.parametrize("bad", ["pat\x00x", "pat\nx", "p" * 1_000_000, "=1+1", "+p", "-p", "@p"])
def test_staff_add_refuses_a_bad_id(run: CLI, db: Path, bad: str) -> None:
    before = event_count(db), run.json("staff", "list", actor="ada")
    refused(
        run("staff", "add", "--name", "Pat", "--role", "coach", "--", bad, actor="ada"),
        5,
        "is not a valid staff id",
    )
    assert (event_count(db), run.json("staff", "list", actor="ada")) == before


def test_staff_add_refuses_a_name_with_control_characters(run: CLI, db: Path) -> None:
    before = event_count(db)
    refused(
        run("staff", "add", "pat", "--name", "Pat\x1b[2J", "--role", "coach", actor="ada"),
        5,
        "control characters",
    )
    assert event_count(db) == before


@pytest.mark.parametrize("bad", ["ada\nx", "=ada", "a" * 100_000])
def test_init_refuses_a_bad_id_and_leaves_no_file(tmp_path: Path, bad: str) -> None:
    run = CLI(tmp_path / "new.db")
    refused(run("init", actor=bad), 5, "is not a valid staff id")
    assert not (tmp_path / "new.db").exists()


# --- refer, cases ---------------------------------------------------------------------------------


def test_refer_opens_a_case(run: CLI) -> None:
    out = ok(
        run(
            "refer",
            "Alex Doe",
            "--source",
            "GP",
            "--dob",
            "1990-02-03",
            "--contact",
            "07700 900123",
        )
    )
    assert "referred Alex Doe: case C-1" in out and "coach sam" in out
    [case] = run.json("cases")
    assert case["id"] == "C-1" and case["state"] == "referred" and case["coach"] == "sam"
    shown = run.json("show", "C-1")
    assert shown["participant"]["details"]["date_of_birth"] == "1990-02-03"


def test_refer_back_dated_and_for_another_coach(run: CLI) -> None:
    ok(run("refer", "Bo Li", "--source", "self", "--coach", "kim", "--on", "2026-01-05"))
    [case] = run.json("cases")
    assert case["coach"] == "kim" and case["opened_at"].startswith("2026-01-05")


def test_refer_refusals(run: CLI, db: Path) -> None:
    refused(run("refer", "Al", "--source", "GP", "--dob", "03/02/1990"), 5, "--dob", "YYYY-MM-DD")
    refused(run("refer", "Al", "--source", "GP", "--coach", "nobody"), 4, "nobody")
    future = (TODAY + dt.timedelta(days=3)).isoformat()
    refused(run("refer", "Al", "--source", "GP", "--on", future), 5, "future")
    refused(run("refer", "Al", "--source", "GP", actor="ava"), 7, "auditor")
    assert run("refer", "Al").exit_code == 2  # --source is required
    assert run.json("cases") == []


def test_cases_table_and_filters(run: CLI, db: Path) -> None:
    a = refer(db, "Alex", days=5)  # referred 5 days ago: its 2-day review is overdue
    b = refer(db, "Bea", coach="kim")
    c = refer(db, "Cal")
    walk(db, b, "vocational_profiling", by="kim")
    with run.flow() as flow:
        flow.withdraw(c, reason="moving away", actor="sam")
    table = ok(run("cases"))
    assert "C-1" in table and "C-2" in table and "C-3" not in table  # closed is not open
    assert re.search(
        r"C-1\s+P-\w+\s+Alex\s+Referred\s+5\s+(5d ago|-)\s+sam\s+\S+\s+overdue 3d", table
    )
    assert "2 Vocational Profiling" in table and "1 overdue for review" in table

    assert [x["id"] for x in run.json("cases", "--status", "all")] == [a, b, c]
    assert [x["id"] for x in run.json("cases", "--status", "closed")] == [c]
    assert [x["id"] for x in run.json("cases", "--coach", "kim")] == [b]
    assert [x["id"] for x in run.json("cases", "--stage", "referred")] == [a]
    assert [x["id"] for x in run.json("cases", "--overdue")] == [a]
    assert [x["id"] for x in run.json("cases", "--status", "all", "--limit", "2")] == [a, b]
    # The next page starts after the last case of the one before.
    page = run.json("cases", "--status", "all", "--limit", "2", "--after", b)
    assert [x["id"] for x in page] == [c]
    assert run.json("cases", "--status", "all", "--after", c) == []
    refused(run("cases", "--after", "C" * 200_001), 5, "after")
    first = run.json("cases")[0]
    assert first["days_in_stage"] == 5 and first["overdue"] is True
    assert first["stage"] == "Referred"
    assert dt.date.fromisoformat(first["review_due"]) == TODAY - dt.timedelta(days=3)


def test_cases_refusals(run: CLI) -> None:
    refused(run("cases", "--status", "sleeping"), 5, "unknown status 'sleeping'", "open")
    refused(run("cases", "--stage", "stage9"), 5, "unknown stage 'stage9'")


def test_cases_empty(run: CLI) -> None:
    assert "no cases match" in ok(run("cases"))


# --- show, history --------------------------------------------------------------------------------


def test_show_details_records_and_timeline(run: CLI, case: str) -> None:
    ok(run("record", case, "consent", "participation=yes", "data_processing=yes"))
    out = ok(run("show", case))
    assert "Alex Doe" in out and "07700 900123" in out
    assert "Customer Engagement" in out and "data_processing=yes" in out
    assert "engage: Referred → Customer Engagement" in out
    data = run.json("show", case)
    assert data["case"]["id"] == case
    assert [r["kind"] for r in data["records"]] == ["referral", "consent"]
    assert [e["kind"] for e in data["history"]] == ["referral", "transition", "record"]


def test_show_hides_personal_details_from_auditors(run: CLI, case: str) -> None:
    out = ok(run("show", case, actor="ava"))
    assert "Alex Doe" not in out and "07700" not in out
    assert run.json("show", case, actor="ava")["participant"]["details"] is None


def test_a_deactivated_coach_cannot_show_a_case(run: CLI, case: str) -> None:
    ok(
        run(
            "staff",
            "add",
            "sam",
            "--name",
            "Sam Coach",
            "--role",
            "coach",
            "--inactive",
            actor="ada",
        )
    )
    out = refused(run("show", case, actor="sam"), 7, "sam is no longer active staff")
    assert "Alex Doe" not in out
    for command in (("cases",), ("history", case), ("due",), ("next", case), ("staff", "list")):
        refused(run(*command, actor="sam"), 7, "sam is no longer active staff")


@pytest.mark.parametrize(
    "command",
    [("cases",), ("history", "C-1"), ("show", "C-1"), ("due", "--all"), ("staff", "list")],
)
def test_a_login_not_on_the_staff_list_reads_nothing(
    run: CLI, case: str, command: tuple[str, ...]
) -> None:
    result = run(*command, actor="mallory")
    assert refused(result, 7) == "error: mallory is not on the staff list\n"
    assert result.stdout == ""


def test_a_stranger_cannot_tell_whether_a_case_exists(run: CLI) -> None:
    refused(run("show", "C-99", actor="mallory"), 7, "mallory is not on the staff list")
    refused(run("history", "C-99", actor="mallory"), 7, "mallory is not on the staff list")


def test_show_and_history_of_a_missing_case(run: CLI) -> None:
    refused(run("show", "C-99"), 4, "no case 'C-99'")
    refused(run("history", "C-99"), 4, "no case 'C-99'")


def test_history(run: CLI, case: str) -> None:
    out = ok(run("history", case))
    assert "Timeline of C-1" in out and "referred" in out and "sam (coach)" in out
    events = run.json("history", case)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[1]["trigger"] == "engage" and events[1]["to_state"] == "customer_engagement"
    assert dt.datetime.fromisoformat(events[0]["recorded_at"]).tzinfo is not None


# --- record ---------------------------------------------------------------------------------------


def test_record_and_correct(run: CLI, db: Path) -> None:
    # Referred two days ago: a record may be back-dated to yesterday, not before the referral.
    case = refer(db, days=2)
    walk(db, case, "customer_engagement")
    out = ok(run("record", case, "note", "text=called, no answer", "--on", "yesterday"))
    seq = int(re.search(r"as record (\d+)", out).group(1))  # type: ignore[union-attr]
    assert f"effective {TODAY - dt.timedelta(days=1)}" in out
    out = ok(run("record", case, "note", "text=called, left a message", "--supersedes", str(seq)))
    assert f"correcting record {seq}" in out
    notes = [r for r in run.json("show", case)["records"] if r["kind"] == "note"]
    assert [n["fields"]["text"] for n in notes] == ["called, left a message"]
    both = run.json("show", case, "--corrected")["records"]
    assert len([r for r in both if r["kind"] == "note"]) == 2
    assert "corrected by" in ok(run("show", case, "--corrected"))


def test_record_refusals_write_nothing(run: CLI, db: Path, case: str) -> None:
    before = event_count(db)
    refused(run("record", case, "horoscope", "sign=leo"), 4, "unknown record kind 'horoscope'")
    refused(
        run("record", case, "consent", "participation=maybe", "data_processing=yes"),
        5,
        "participation",
        "yes or no",
    )
    refused(
        run("record", case, "consent", "participation=yes", "data_processing=yes", "colour=blue"),
        5,
        "colour",
        "not a field of consent",
    )
    refused(run("record", case, "consent", "participation=yes"), 5, "data_processing: required")
    refused(run("record", case, "consent", "participation"), 5, "'participation'", "field=value")
    refused(run("record", case, "note", "=oops"), 5, "'=oops'")
    refused(run("record", case, "note", "text=a", "text=b"), 5, "'text' is given twice")
    refused(
        run("record", case, "note", "text=x", "--supersedes", "999"), 5, "no current record 999"
    )
    refused(run("record", case, "note", "text=x", "--on", "last tuesday"), 5, "--on")
    refused(run("record", case, "note", "text=x", actor="ava"), 7, "auditor")
    refused(run("record", "C-99", "note", "text=x"), 4, "no case 'C-99'")
    assert event_count(db) == before


def test_record_on_a_closed_case(run: CLI, case: str) -> None:
    ok(run("withdraw", case, "--reason", "moving away", "--yes"))
    refused(run("record", case, "note", "text=x"), 6, "closed")


# --- check, next, advance -------------------------------------------------------------------------


def test_check_is_a_checklist_that_changes_nothing(run: CLI, db: Path, case: str) -> None:
    ok(run("record", case, "consent", "participation=yes", "data_processing=yes"))
    before = event_count(db)
    out = blocked(run("check", case, "start_profiling"))
    assert "✓ Consent to take part and to data processing" in out
    assert "✗ First meeting held: no first meeting recorded" in out
    assert "✗ Action plan agreed (soft): no action plan recorded" in out
    assert "blocked: 3 of 4" in out
    data = run.json("check", case, "start_profiling", code=6)
    assert data["allowed"] is False and data["overridable"] is False
    assert data["failed"] == [
        "record:first_meeting",
        "field_equals:informed_choice",
        "record:action_plan",
    ]
    assert event_count(db) == before


def test_check_with_what_the_user_would_type(run: CLI, case: str) -> None:
    assert "✗ Reason given" in blocked(run("check", case, "withdraw"))
    said = ok(run("check", case, "withdraw", "--reason", "moving"))
    assert "ready: se-flow withdraw C-1 --reason moving" in said
    out = blocked(run("check", case, "close", "--close-reason", "ineligible"))
    assert "only a team leader may do this" in out
    past = (TODAY - dt.timedelta(days=2)).isoformat()
    assert "already past" in blocked(run("check", case, "pause", "--reason", "x", "--review", past))


def test_check_soft_only_says_a_team_leader_may_override(run: CLI, db: Path, case: str) -> None:
    with run.flow() as flow:
        for kind, fields in LEAST_EVIDENCE["customer_engagement"].hard:
            flow.record(case, kind, fields, actor="sam")
    out = blocked(run("check", case, "start_profiling"))
    assert "soft guard(s): a team leader may override" in out
    assert run.json("check", case, "start_profiling", code=6)["overridable"] is True


def test_check_refusals(run: CLI, case: str) -> None:
    refused(run("check", case, "teleport"), 4, "unknown trigger 'teleport'", "engage")
    refused(
        run("check", case, "start_job"),
        6,
        "'start_job' is not possible from",
        "possible now: start_profiling",
    )
    refused(run("check", "C-99", "engage"), 4, "no case 'C-99'")


def test_next_lists_each_trigger_and_what_is_missing(run: CLI, case: str) -> None:
    out = ok(run("next", case))
    assert "C-1 is at 1 Customer Engagement" in out
    assert "start_profiling → Vocational Profiling  missing 4" in out
    assert "✗ no first meeting recorded" in out
    assert "withdraw → Closed  ready; asks for reason" in out
    triggers = [c["trigger"] for c in run.json("next", case)]
    assert triggers[0] == "start_profiling" and "withdraw" in triggers and "resume" not in triggers


def test_next_on_a_closed_case(run: CLI, case: str) -> None:
    ok(run("withdraw", case, "--reason", "moving", "--yes"))
    assert "nothing: the case is closed" in ok(run("next", case))
    assert run.json("next", case) == []


def test_advance_moves_a_case(run: CLI, db: Path) -> None:
    case = refer(db, days=5)
    with run.flow() as flow:
        flow.advance(case, "engage", actor="sam", effective_at=days_ago(4))
        for kind, fields in LEAST_EVIDENCE["customer_engagement"].records:
            flow.record(case, kind, fields, actor="sam", effective_at=days_ago(3))
    out = ok(run("advance", case, "start_profiling", "--on", "yesterday"))
    assert "C-1: start_profiling: Customer Engagement → Vocational Profiling" in out
    assert "now at 2 Vocational Profiling" in out
    [data] = run.json("cases")
    assert data["state"] == "vocational_profiling"
    assert data["stage_entered_at"].startswith(str(TODAY - dt.timedelta(days=1)))


def test_a_refused_move_lists_every_failed_guard(run: CLI, db: Path, case: str) -> None:
    before = event_count(db)
    err = refused(
        run("advance", case, "start_profiling"),
        6,
        "case C-1: start_profiling refused, 4 guard(s) failed",
    )
    lines = err.splitlines()
    assert lines[1:] == [
        "  ✗ Consent to take part and to data processing: no consent recorded",
        "  ✗ First meeting held: no first meeting recorded",
        "  ✗ Informed choice to join: no informed choice recorded",
        "  ✗ Action plan agreed (soft): no action plan recorded",
    ]
    assert event_count(db) == before


def test_overrides(run: CLI, case: str) -> None:
    with run.flow() as flow:
        for kind, fields in LEAST_EVIDENCE["customer_engagement"].hard:
            flow.record(case, kind, fields, actor="sam")
    err = refused(run("advance", case, "start_profiling"), 6, "soft guards only")
    assert "Action plan agreed (soft)" in err
    refused(
        run("advance", case, "start_profiling", "--override", "agreed"),
        7,
        "only a team leader may override",
        "sam is a coach",
    )
    out = ok(
        run("advance", case, "start_profiling", "--override", "plan agreed by phone", actor="lee")
    )
    assert "override by lee past Action plan agreed: plan agreed by phone" in out
    last = run.json("history", case)[-1]
    assert last["override"] == {"by": "lee", "reason": "plan agreed by phone"}
    assert "override by lee" in ok(run("history", case))


def test_an_override_cannot_pass_hard_guards(run: CLI, case: str) -> None:
    refused(
        run("advance", case, "start_profiling", "--override", "x", actor="lee"),
        6,
        "4 guard(s) failed",
    )


def test_advance_refusals(run: CLI, case: str) -> None:
    refused(run("advance", case, "teleport"), 4, "unknown trigger 'teleport'")
    refused(run("advance", "C-99", "engage"), 4, "no case 'C-99'")
    refused(run("advance", case, "engage"), 6, "not possible from 1 Customer Engagement")
    # A trigger that closes the case asks first (--yes here): then it is refused as any move.
    refused(run("advance", case, "withdraw", "--reason", "x", "--yes", actor="ava"), 7, "auditor")
    future = (TODAY + dt.timedelta(days=2)).isoformat()
    refused(run("advance", case, "withdraw", "--reason", "x", "--on", future, "--yes"), 5, "future")


# --- pause, resume, withdraw, close, reopen, assign -----------------------------------------------


def test_pause_and_resume(run: CLI, case: str) -> None:
    review = (TODAY + dt.timedelta(days=10)).isoformat()
    out = ok(run("pause", case, "--reason", "in hospital", "--review", review))
    assert f"paused; review on {review}" in out and "(paused)" in out
    [data] = run.json("cases", "--status", "paused")
    assert data["review_due"] == review
    refused(run("advance", case, "start_profiling"), 6, "paused", "resume it")
    assert "resumed" in ok(run("resume", case))
    assert run.json("cases", "--status", "active")[0]["id"] == case


def test_pause_refusals(run: CLI, case: str) -> None:
    past = (TODAY - dt.timedelta(days=1)).isoformat()
    refused(run("pause", case, "--reason", "x", "--review", past), 6, "already past")
    refused(run("pause", case, "--reason", "x", "--review", "soon"), 5, "--review")
    assert run("pause", case, "--reason", "x").exit_code == 2
    refused(run("resume", case), 6, "not paused: nothing to resume")


def test_withdraw(run: CLI, case: str) -> None:
    out = ok(run("withdraw", case, "--reason", "moving away", "--yes"))
    assert "withdraw: Customer Engagement → Closed (withdrawn)" in out
    [data] = run.json("cases", "--status", "closed")
    assert data["outcome"] == "withdrawn" and data["stage"] == "Closed: withdrawn"
    assert run("withdraw", case).exit_code == 2  # --reason is required
    refused(run("withdraw", case, "--reason", "again", "--yes"), 6, "closed")


def test_close(run: CLI, db: Path, case: str) -> None:
    refused(run("close", case, "bored", "--yes"), 6, "'bored' is not a closure reason")
    refused(run("close", case, "ineligible", "--yes"), 6, "only a team leader may do this")
    out = ok(run("close", case, "moved_away", "--note", "to Leeds", "--yes"))
    assert "(moved_away)" in out
    assert run.json("history", case)[-1]["reason"] == "to Leeds"
    other = refer(db, "Bea")
    assert "(ineligible)" in ok(run("close", other, "ineligible", "--yes", actor="lee"))


def test_reopen_starts_a_new_episode(run: CLI, case: str) -> None:
    refused(run("reopen", case, "--source", "GP"), 5, "still open")
    ok(run("withdraw", case, "--reason", "moving", "--yes"))
    out = ok(run("reopen", case, "--source", "self", "--note", "back in town"))
    assert "C-2: reopened as a new episode after C-1" in out
    new = run.json("show", "C-2")["case"]
    assert new["episode"] == 2 and new["previous_case_id"] == case
    assert new["state"] == "customer_engagement"
    refused(run("reopen", case, "--source", "self"), 5, "already reopened as C-2")


def test_assign(run: CLI, case: str) -> None:
    assert "assigned to kim (was sam)" in ok(run("assign", case, "kim", "--reason", "cover"))
    assert run.json("cases", "--coach", "kim")[0]["id"] == case
    refused(run("assign", case, "nobody"), 4, "nobody")


# --- due ------------------------------------------------------------------------------------------


def test_due_defaults_to_my_caseload_if_i_am_a_coach(run: CLI, db: Path) -> None:
    mine = refer(db, "Alex", days=5)  # overdue
    theirs = refer(db, "Bea", coach="kim", days=5)
    refer(db, "Cal", coach="kim")  # due in 2 days
    out = ok(run("due"))
    assert "Due for sam" in out and mine in out and theirs not in out
    assert "overdue 3d" in out

    def reviews(*args: str, actor: str = "sam") -> list[str]:
        items = run.json("due", *args, actor=actor)
        return [i["case_id"] for i in items if i["what"] == "review"]

    assert reviews() == [mine]
    assert set(reviews("--all")) == {mine, theirs, "C-3"}
    assert reviews("--coach", "kim", "--within", "0") == [theirs]
    assert set(reviews(actor="ada")) == {mine, theirs, "C-3"}
    assert "nothing due" in ok(run("due", "--coach", "lee"))


# --- workflow -------------------------------------------------------------------------------------


def test_workflow_show(run: CLI) -> None:
    out = ok(run("workflow", "show"))
    assert "Vocational Profiling" in out and "Action plan agreed (soft)" in out
    assert "record:action_plan" not in out  # guards by their titles; ids in --json
    assert "job_offer" in out and "hourly_pay*" in out
    data = run.json("workflow", "show")
    assert data["initial"] == "referred" and len(data["hash"]) == 64
    assert any(t["trigger"] == "start_job" for t in data["transitions"])


def test_workflow_validate(run: CLI) -> None:
    assert ok(run("workflow", "validate")).startswith("ok: ")


def test_workflow_validate_lists_every_fault(run: CLI, tmp_path: Path) -> None:
    bad = tmp_path / "stages"
    bad.mkdir()
    for f in se_flow.default_stages_dir().glob("*.toml"):
        (bad / f.name).write_text(f.read_text())
    text = (bad / "01_customer_engagement.toml").read_text()
    text = text.replace('guard = "consent"', 'guard = "horoscope"')
    text = text.replace('kind = "first_meeting",', 'kind = "first_meting",')
    (bad / "01_customer_engagement.toml").write_text(text)
    err = refused(run("workflow", "validate", str(bad)), 3, "2 fault(s)")
    assert "[guards_exist]" in err and "horoscope" in err
    assert "[record_kinds_exist]" in err and "first_meting" in err
    assert len(err.splitlines()) == 3
    # The same folder as --stages refuses every command that loads it.
    refused(run("--stages", str(bad), "cases"), 3, "2 fault(s)")
    refused(run("workflow", "validate", str(tmp_path / "nope")), 3, "not a folder")


def test_workflow_diagram_is_built_from_the_definition(run: CLI, tmp_path: Path) -> None:
    out = ok(run("workflow", "diagram"))
    assert out.startswith("stateDiagram-v2\n")
    assert "    [*] --> referred" in out
    assert "    customer_engagement --> vocational_profiling: start_profiling" in out
    phase = "in_work_support__in_work_support --> in_work_support__career_development"
    assert f"        {phase}: begin_career_development" in out
    assert "    in_work_support --> closed: complete (completed)" in out
    assert "from any active state: pause, resume, withdraw, close_disengaged, close" in out
    assert "withdraw (withdrawn)" not in out
    every = ok(run("workflow", "diagram", "--exits"))
    assert "    job_matching --> closed: withdraw (withdrawn)" in every
    # A custom stage folder: the diagram follows it.
    custom = tmp_path / "stages"
    custom.mkdir()
    for f in se_flow.default_stages_dir().glob("*.toml"):
        (custom / f.name).write_text(f.read_text().replace('"propose_match"', '"offer_match"'))
    out = ok(run("--stages", str(custom), "workflow", "diagram"))
    assert "employer_engagement --> job_matching: offer_match" in out
    assert "propose_match" not in out


# --- audit ----------------------------------------------------------------------------------------


def test_audit_verify_ok(run: CLI, case: str) -> None:
    out = ok(run("audit", "verify"))
    head = run.json("audit", "verify")
    assert head["ok"] is True and head["head_seq"] == event_count(run.db)
    assert out.strip() == (
        f"audit chain ok: {head['events']} events, head {head['head_seq']} {head['head_hash']}"
    )


def test_audit_verify_names_the_broken_event(run: CLI, db: Path, case: str) -> None:
    with sqlite3.connect(db) as conn:  # an attacker with the file: drop the guard, edit
        conn.execute("DROP TRIGGER events_append_only_update")
        conn.execute("UPDATE events SET reason = 'nothing to see' WHERE seq = 6")
    err = refused(run("audit", "verify"), 9, "audit chain broken at event 6", "altered")
    assert len(err.splitlines()) == 1
    result = run("audit", "verify", "--json")
    assert result.exit_code == 9
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["bad_seq"] == 6


# --- the store's refusals -------------------------------------------------------------------------


def test_corrupt_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database, just some words " * 50)
    refused(CLI(bad)("cases"), 10, "not a usable se-flow database")
    refused(CLI(bad)("refer", "Al", "--source", "GP"), 10, "not a usable se-flow database")


def test_unwritable_or_missing_database(tmp_path: Path) -> None:
    refused(CLI(tmp_path)("cases"), 10, "unable to open")  # a folder, not a file
    refused(CLI(tmp_path / "missing.db")("cases"), 10, "run `se-flow init` first")
    assert not (tmp_path / "missing.db").exists()


def test_unexpected_errors_are_one_line(
    run: CLI, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(se_flow.SEFlow, "cases", boom)
    refused(run("cases"), 1, "unexpected RuntimeError: kaboom", "SE_FLOW_DEBUG")
    result = run("cases", env={"SE_FLOW_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)

    def disk(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk image is malformed")

    monkeypatch.setattr(se_flow.SEFlow, "cases", disk)
    refused(run("cases"), 10, "disk image is malformed")


# --- --json everywhere ----------------------------------------------------------------------------

READS = [
    ("cases",),
    ("show", "C-1"),
    ("check", "C-1", "start_profiling"),
    ("next", "C-1"),
    ("history", "C-1"),
    ("due", "--all", "--within", "30"),
    ("staff", "list"),
    ("workflow", "show"),
    ("audit", "verify"),
]


@pytest.mark.parametrize("args", READS, ids=lambda a: " ".join(a[:2]))
def test_every_read_command_speaks_json(run: CLI, case: str, args: tuple[str, ...]) -> None:
    data = run.json(*args, code=6 if args[0] == "check" else 0)
    assert data
    if args[0] in ("cases", "show", "history", "due"):
        assert re.search(r'"\d{4}-\d{2}-\d{2}', json.dumps(data))  # dates as ISO text


def test_every_read_command_has_a_json_option() -> None:
    root = typer.main.get_command(app)
    for path in READS:
        command: Any = root
        for name in path:
            if name in getattr(command, "commands", {}):
                command = command.commands[name]
        assert "json" in {p.name for p in command.params}, path


# --- the exit code table --------------------------------------------------------------------------


def test_the_documented_exit_codes_match_the_error_classes() -> None:
    doc = (ROOT / "README.md").read_text(encoding="utf-8")
    table = doc[doc.index("| Exit | Meaning | Raised as |") :]
    documented: dict[str, int] = {}
    codes = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        code = int(line.split("|")[1])
        codes.add(code)
        for name in re.findall(r"`(\w+)`", line.split("|")[3]):
            documented[name] = code
    errors = {
        name: getattr(se_flow, name)
        for name in se_flow.__all__
        if isinstance(getattr(se_flow, name), type)
        and issubclass(getattr(se_flow, name), se_flow.SEFlowError)
    }
    assert set(errors) <= set(documented), f"undocumented: {set(errors) - set(documented)}"
    for name, code in documented.items():
        assert getattr(se_flow, name).exit_code == code, name
    assert {0, 2} <= codes
    assert se_flow.ChainBroken.exit_code == 9


# --- demo -----------------------------------------------------------------------------------------


def test_demo_in_memory(tmp_path: Path) -> None:
    out = ok(CLI(tmp_path / "unused.db").raw("demo"))
    assert "se-flow demo: 13 participants in memory" in out
    assert "A refused move: C-9 start_profiling" in out and "✗ First meeting held" in out
    assert "A team leader's override: C-4 start_job by lee" in out
    assert "13 case(s)" in out and "Closed: withdrawn" in out and "Closed: completed" in out
    assert "end_job: " in out and "start_job: " in out
    assert "chain ok:" in out
    assert not (tmp_path / "unused.db").exists()


def test_demo_into_a_file_covers_every_stage(tmp_path: Path) -> None:
    run = CLI(tmp_path / "demo.db")
    ok(run.raw("--db", str(run.db), "demo"))
    cases = run.json("cases", "--status", "all", actor="lee")
    assert len(cases) == 13
    places = {c["phase"] or c["state"] for c in cases}
    assert {
        "referred",
        "customer_engagement",
        "vocational_profiling",
        "employer_engagement",
        "job_matching",
        "in_work_support",
        "career_development",
        "closed",
    } <= places
    assert {c["outcome"] for c in cases} >= {"completed", "withdrawn", "disengaged"}
    assert any(c["status"] == "paused" for c in cases)
    history = run.json("history", "C-1", actor="lee")
    triggers = [e["trigger"] for e in history if e["trigger"]]
    assert triggers.count("start_job") == 2 and "end_job" in triggers
    assert any(e["override"] for e in run.json("history", "C-4", actor="lee"))
    assert run.json("audit", "verify")["ok"] is True
    refused(run.raw("--db", str(run.db), "demo"), 5, "already holds", "leave out --db")


def test_version(run: CLI) -> None:
    assert ok(run("version")).strip() == se_flow.__version__


# --- --json is the API's own values -------------------------------------------------------------


def _api_json(value: Any) -> Any:
    """An API value serialised here, independently of the CLI: what `--json` must show."""

    def plain(_inst: Any, _field: Any, v: Any) -> Any:
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, dt.date):  # datetimes too
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, Mapping):
            return dict(v)
        return v

    return json.loads(json.dumps(attrs.asdict(value, value_serializer=plain)))


def _same(listed: list[dict[str, Any]], api: list[Any]) -> None:
    """Each item the CLI listed holds the API's item, value for value, in the API's order
    (the CLI may add derived keys such as `stage` or `overdue`)."""
    expected = [_api_json(v) for v in api]
    assert expected, "nothing to compare"
    assert len(listed) == len(expected)
    pairs = zip(listed, expected, strict=True)
    assert [{k: item.get(k) for k in want} for item, want in pairs] == expected


def test_json_output_is_the_apis_own_values(run: CLI, db: Path) -> None:
    a = refer(db, "Alex", days=5)
    b = refer(db, "Bea", coach="kim", days=3)
    walk(db, b, "job_matching", by="kim")
    with se_flow.open(db, create=False, actor="kim") as flow:
        flow.withdraw(a, reason="moving away", actor="sam")
        cases = flow.cases()  # every status
        shown = flow.case(b)
        history = flow.history(b)
        checks = flow.available(b)
        records = flow.records(b)
    _same(run.json("cases", "--status", "all", actor="kim"), cases)
    _same(run.json("history", b, actor="kim"), history)
    _same(run.json("next", b, actor="kim"), checks)
    listed = run.json("show", b, actor="kim")
    assert {k: listed["case"][k] for k in _api_json(shown)} == _api_json(shown)
    _same(listed["records"], records)


def test_a_bad_date_is_told_the_forms_its_option_takes(run: CLI) -> None:
    done = run("refer", "Bea", "--source", "GP", "--dob", "1990-02-30", actor="sam")
    refused(done, 5, "--dob '1990-02-30' is not a date: use YYYY-MM-DD")
    assert "today" not in done.output  # a birth date is never today's
    found = re.search(r"case (C-\d+)", ok(run("refer", "Cal", "--source", "GP", actor="sam")))
    assert found
    done = run("record", found.group(1), "note", "text=x", "--on", "2026-13-01", actor="sam")
    refused(done, 5, "use YYYY-MM-DD, YYYY-MM-DDTHH:MM, today or yesterday")
