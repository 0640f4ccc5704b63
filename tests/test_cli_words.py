"""What a job coach or auditor reads at the terminal when something is refused: one short line
naming the option they typed, a clue when se-flow guessed who they are, no promise that is not
kept, and dry runs that say what a write would meet."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

import pytest
from helpers import staffed_db
from test_cli import CLI, blocked, ok, refer, refused, walk
from test_workflow_mismatch import _offered, _retyped
from typer.testing import CliRunner

import se_flow
import se_flow.cli as cli
from se_flow._cli_text import SHOWN_TEXT

HUGE = "x" * 100_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """As in test_cli: admin ada, team leader lee, coaches sam and kim, auditor ava."""
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


def one_short_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert len(err) < 400, err[:500]
    assert "--json shows them all" not in err


# --- 1: a pasted megabyte named as a staff id -------------------------------------------------

TARGETS = {
    "assign": (["assign", "{case}", HUGE], "coach"),
    "refer": (["refer", "Alex", "--source", "GP", "--coach", HUGE], "--coach"),
    "reopen": (["reopen", "{case}", "--source", "GP", "--coach", HUGE], "--coach"),
    "cases": (["cases", "--coach", HUGE], "--coach"),
    "due": (["due", "--coach", HUGE], "--coach"),
    "export": (["export", "{tmp}/out", "--coach", HUGE], "--coach"),
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_huge_staff_id_as_a_target_is_refused_in_one_short_line(
    run: CLI, db: Path, tmp_path: Path, name: str
) -> None:
    case = refer(db)
    args, option = TARGETS[name]
    filled = [a.replace("{case}", case).replace("{tmp}", str(tmp_path)) for a in args]
    err = refused(run(*filled, actor="lee"), 5, f"error: {option} 'xxx", "not a valid staff id")
    one_short_line(err)
    assert not (tmp_path / "out").exists()


def test_lookups_that_fail_quote_at_most_a_short_piece(run: CLI, db: Path) -> None:
    one_short_line(refused(run("show", HUGE), 4, "no case 'xxx", "…"))
    err = refused(run("record", refer(db), HUGE, "a=1"), 4, "unknown record kind 'xxx")
    assert len(err) < 100 + len(", ".join(se_flow.load_workflow().records))
    assert len(se_flow.CaseNotFound(HUGE).message) < 80
    assert len(se_flow.StaffNotFound(HUGE).message) < 140
    assert "staff add ID" in se_flow.StaffNotFound(HUGE).message
    # A short id is quoted whole, and the hint uses it.
    assert se_flow.StaffNotFound("bob").message == (
        "no staff member 'bob': add them first (se-flow staff add bob ...)"
    )


def test_an_error_line_is_clipped_without_promising_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli._say("error: " + "y" * (3 * SHOWN_TEXT), err=True)
    err = capsys.readouterr().err
    assert len(err) < SHOWN_TEXT + 100
    assert "characters)" in err and "--json" not in err


# --- 2: the actor came from the login name ----------------------------------------------------


def test_an_unknown_login_is_told_how_to_say_who_they_are(
    run: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "root")
    err = refused(run("cases", actor=None), 7)
    assert err == (
        "error: root (your login name) is not on the staff list; "
        "say who you are with --as ID or SE_FLOW_ACTOR=ID\n"
    )
    # Named on purpose, it is the plain refusal; the library's words are the same either way.
    assert refused(run("cases", actor="root"), 7) == "error: root is not on the staff list\n"
    by_env = run("cases", actor=None, env={"SE_FLOW_ACTOR": "root"})
    assert refused(by_env, 7) == "error: root is not on the staff list\n"
    with (
        se_flow.open(run.db, actor="root") as flow,
        pytest.raises(se_flow.PermissionDenied) as refusal,
    ):
        flow.cases()
    assert refusal.value.message == "root is not on the staff list"


def test_a_login_name_that_is_no_staff_id_is_told_too(
    run: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "Jo Smith")
    err = refused(run("cases", actor=None), 5, "your login name 'Jo Smith' is not a valid")
    assert "--as ID or SE_FLOW_ACTOR=ID" in err


# --- 3: out-of-range counts, checked once, by the API -----------------------------------------

OUT_OF_RANGE = [
    ("due", "--within", "-5"),
    ("due", "--within", "-1"),
    ("due", "--all", "--within", "-5"),
    ("due", "--within", "2914000"),
    ("due", "--within", "2147483648"),
    ("cases", "--limit", "-1"),
    ("cases", "--limit", "0"),
    ("cases", "--limit", "100000000000000000000"),
]


@pytest.mark.parametrize("args", OUT_OF_RANGE, ids=" ".join)
def test_every_out_of_range_count_exits_5_naming_the_option(
    run: CLI, args: tuple[str, ...]
) -> None:
    option = args[-2]
    err = refused(run(*args), 5, f"error: {option} {args[-1]} is out of range")
    one_short_line(err)


def test_the_api_refuses_a_negative_look_ahead(flow: se_flow.SEFlow) -> None:
    for call in (flow.due_items, flow.due):
        with pytest.raises(se_flow.InvalidInput, match="within_days -1 is out of range") as e:
            call(within_days=-1)
        assert e.value.field == "within_days"


# --- 4: verify-export against a database named but missing -----------------------------------


def test_verify_export_with_a_named_database_that_is_missing_exits_10(
    run: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "review"
    ok(run("export", str(out), actor="ada"))
    typo = tmp_path / "caselaod.db"
    refused(CLI(typo)("audit", "verify-export", str(out)), 10, f"no database at {typo}")
    by_env = CLI(typo).raw("--as", "ava", "audit", "verify-export", str(out), env={
        "SE_FLOW_DB": str(typo)
    })  # fmt: skip
    refused(by_env, 10, "no database at")
    assert not typo.exists()
    # Nothing named and no default database: the manifest alone, and it says so.
    monkeypatch.setattr(cli, "default_db_path", lambda: tmp_path / "nowhere" / "se-flow.db")
    said = ok(CLI(typo).raw("--as", "ava", "audit", "verify-export", str(out)))
    assert "checked against its manifest only" in said


# --- 5: dry runs under another workflow than the log's ----------------------------------------


def test_dry_runs_under_a_workflow_mismatch_say_moves_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    case_id = _offered(path, None, "2026-05-25")
    other = _retyped(tmp_path, "int")
    with se_flow.open(path, stages=other, actor="sam") as flow:
        checks = flow.available(case_id)
        assert checks and not any(c.allowed for c in checks)
        for c in checks:
            (refusal,) = [r for r in c.failed if r.guard == "workflow_matches"]
            assert not refusal.soft and "writes are refused" in refusal.reason
        dry = flow.check(case_id, "withdraw", reason="moving away")
        assert not dry.allowed and [r.guard for r in dry.failed] == ["workflow_matches"]
    with se_flow.open(path, actor="sam") as flow:
        assert flow.check(case_id, "withdraw", reason="moving away").allowed
    run = CLI(path)
    as_other = ("--stages", str(other))
    said = ok(run(*as_other, "next", case_id))
    assert "ready" not in said and "writes are refused" in said
    said = blocked(run(*as_other, "check", case_id, "withdraw", "--reason", "moving away"))
    assert "ready" not in said and "blocked" in said and "workflow matches the database" in said
    shown = json.loads(blocked(run(*as_other, "check", case_id, "withdraw", "--json")))
    assert shown["allowed"] is False and "workflow_matches" in shown["failed"]


def test_audit_verify_says_a_workflow_mismatch_once(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _offered(path, None, "2026-05-25")
    result = CLI(path)("--stages", str(_retyped(tmp_path, "int")), "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.count("not the one the log was last written under") == 1
    assert "audit chain ok" in result.stdout and "warning" not in result.stderr


# --- 6: smaller ones --------------------------------------------------------------------------


def test_force_refusal_says_not_an_export_once(run: CLI, tmp_path: Path) -> None:
    other = tmp_path / "papers"
    other.mkdir()
    (other / "manifest.json").write_text('{"manifest_version": 3}')
    (other / "thesis.docx").write_text("mine")
    err = refused(run("export", str(other), "--force", actor="ada"), 5, "not an se-flow export")
    assert err.count("not an se-flow export") == 1, err
    assert "(manifest.json: its format is not 'se-flow export')" in err


def test_back_dating_floors_show_the_day(run: CLI, db: Path) -> None:
    case = refer(db, days=3)
    err = refused(run("record", case, "note", "text=hi", "--on", "2000-01-01"), 5)
    opened = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date().isoformat()
    assert f"on 2000-01-01, before the case was opened ({opened})" in err
    assert "T" not in err.split("opened")[1] and "+00:00" not in err
    walk(db, case, "customer_engagement")
    err = refused(run("advance", case, "start_profiling", "--on", "2000-01-01"), 5)
    assert "on 2000-01-01, before the case entered" in err and "+00:00" not in err


def test_back_dating_a_new_episode_shows_the_day(flow: se_flow.SEFlow) -> None:
    case = flow.refer("Alex", source="GP", effective_at=dt.date(2026, 1, 5), actor="sam").case
    flow.withdraw(case.id, reason="moving", effective_at=dt.date(2026, 2, 1), actor="sam")
    with pytest.raises(se_flow.InvalidInput) as refusal:
        flow.reopen(case.id, source="GP", effective_at=dt.date(2026, 1, 20), actor="sam")
    assert refusal.value.message.endswith(
        "cannot start on 2026-01-20, before the case was closed (2026-02-01)"
    )


def test_warnings_are_made_safe_for_the_terminal(tmp_path: Path) -> None:
    folder = tmp_path / "shared\x1b[2Jx"
    folder.mkdir()
    path = folder / "caseload.db"
    with se_flow.open(path) as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    folder.chmod(0o755)
    path.chmod(0o644)
    result = CLI(path)("staff", "list", actor="ada")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "every local user" in result.stderr
    assert "\x1b" not in result.stderr and "\\x1b[2J" in result.stderr


def test_both_loaders_say_too_deep_in_one_way(tmp_path: Path) -> None:
    from se_flow._loader import TOO_DEEP, load_programmes

    folder = tmp_path / "programmes"
    folder.mkdir()
    (folder / "deep.toml").write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    (folder / "deepish.toml").write_text("x = " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(se_flow.WorkflowInvalid) as refusal:
        load_programmes(folder)
    assert [f.message for f in refusal.value.faults] == [
        f"deep.toml: {TOO_DEEP}",
        f"deepish.toml: {TOO_DEEP}",
    ]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_caseload_fits_the_terminal_and_never_cuts_an_id(db: Path, columns: int) -> None:
    """A long stage label (paused, in the longest stage) is cut short with an ellipsis at 80
    columns; case and participant ids never are, and a wider terminal shows it whole."""
    with se_flow.open(db, actor="sam") as flow:
        case = flow.refer("Alex Doe", source="GP", actor="sam").case
        flow.advance(case.id, "engage")
        flow.pause(case.id, reason="in hospital", review_date=dt.date.today() + dt.timedelta(30))
        pid = case.participant_id
    result = CliRunner().invoke(
        cli.app, ["--db", str(db), "--as", "sam", "cases"], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), lines
    (row,) = [line for line in lines if line.startswith(case.id + " ")]
    assert pid in row
    assert ("(paused)" in row) is (columns == 120)
