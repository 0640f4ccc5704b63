"""Fields a coach can discover and type as they say them: `workflow show KIND`, dates as
`today`, pay as £12.50, values from a file or standard input, yes/no never True/False, and
`check` exiting 6 when a guard blocks the move."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import pytest
from helpers import staffed_db
from test_cli import CLI, event_count, ok, refer, refused, walk

import se_flow
from se_flow._limits import MAX_TEXT

TODAY = dt.date.today()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


@pytest.fixture
def case(db: Path) -> str:
    """Alex Doe, sam's, engaged: at customer engagement with nothing recorded yet."""
    case_id = refer(db)
    walk(db, case_id, "customer_engagement")
    return case_id


def test_workflow_show_kind_lists_each_field(run: CLI) -> None:
    out = ok(run("workflow", "show", "job_offer"))
    assert "job_offer: Job offer" in out
    for field in ("employer", "start_date", "hours_per_week", "hourly_pay", "age_band"):
        assert field in out
    assert "today or yesterday" in out and "£12.50" in out and "18_20" in out
    data = run.json("workflow", "show", "job_offer")
    fields = {f["name"]: f for f in data["fields"]}
    assert fields["employer"]["required"] is True and fields["role"]["required"] is False
    assert fields["hourly_pay"]["money"] is True and fields["age_band"]["options"]
    assert data["example"].startswith("se-flow record C-1 job_offer employer=")


def test_an_unknown_kind_is_refused_naming_the_known_ones(run: CLI) -> None:
    refused(run("workflow", "show", "job_ofer"), 4, "job_ofer", "job_offer")


def test_every_kinds_example_command_is_valid_as_printed(db: Path, run: CLI) -> None:
    """The example `workflow show KIND` prints names every required field with a value its
    type accepts; on a case where the kind can be recorded, it records as printed."""
    case_id = refer(db)
    walk(db, case_id, "customer_engagement")
    with se_flow.open(db, actor="sam") as flow:
        wf = flow.workflow
    for kind, spec in wf.records.items():
        argv = shlex.split(run.json("workflow", "show", kind)["example"])
        assert argv[:4] == ["se-flow", "record", "C-1", kind]
        values = dict(pair.split("=", 1) for pair in argv[4:])
        values = {k: TODAY.isoformat() if v == "today" else v for k, v in values.items()}
        _, problems = spec.parse(values)
        assert not problems, (kind, problems)
    for kind in ("consent", "action_plan", "job_offer", "vocational_profile"):
        argv = shlex.split(run.json("workflow", "show", kind)["example"])
        ok(run("record", case_id, *argv[3:]))


def test_date_fields_take_today_and_yesterday(db: Path, run: CLI, case: str) -> None:
    offer = ["employer=Corner Shop", "hours_per_week=16", "hourly_pay=13"]
    ok(run("record", case, "job_offer", *offer, "start_date=yesterday"))
    with se_flow.open(db, actor="sam") as flow:
        (made,) = [r for r in flow.records(case) if r.kind == "job_offer"]
    assert made.fields["start_date"] == TODAY - dt.timedelta(days=1)
    refused(run("record", case, "job_offer", *offer, "start_date=tomorow"), 5, "start_date")


def test_pay_is_typed_with_or_without_the_pound_sign_and_shown_with_it(
    db: Path, run: CLI, case: str
) -> None:
    ok(
        run(
            "record",
            case,
            "job_offer",
            "employer=Corner Shop",
            "start_date=today",
            "hours_per_week=16",
            "hourly_pay=£12.8",
        )
    )
    shown = ok(run("show", case))
    assert "hourly_pay=£12.80" in shown and "hours_per_week=16" in shown
    assert "hours_per_week=£" not in shown
    with se_flow.open(db, actor="sam") as flow:
        (offer,) = [r for r in flow.records(case) if r.kind == "job_offer"]
    assert str(offer.fields["hourly_pay"]) == "12.8"
    refused(
        run(
            "record",
            case,
            "job_offer",
            "employer=X",
            "start_date=today",
            "hours_per_week=£16",
            "hourly_pay=12",
        ),
        5,
        "hours_per_week",
    )


def test_booleans_read_yes_and_no_never_true_or_false(run: CLI, case: str) -> None:
    ok(run("record", case, "consent", "participation=yes", "data_processing=no"))
    for command in (("show", case), ("history", case), ("check", case, "start_profiling")):
        result = run(*command)
        assert result.exit_code in (0, 6), result.output
        assert "True" not in result.stdout and "False" not in result.stdout
    assert "data_processing=no" in ok(run("show", case))


def test_a_value_from_a_file_or_standard_input(
    db: Path, run: CLI, case: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Met at the library.\nWants retail work.\n", encoding="utf-8")
    ok(run("record", case, "note", f"text=@{notes}"))
    result = run.runner.invoke(
        se_flow.cli.app,
        ["--db", str(db), "--as", "sam", "record", case, "action_plan", "summary=-"],
        input="explore retail roles\n",
        env={"COLUMNS": "200"},
    )
    ok(result)
    with se_flow.open(db, actor="sam") as flow:
        found = {r.kind: r.fields for r in flow.records(case)}
    assert found["note"]["text"] == "Met at the library.\nWants retail work."
    assert found["action_plan"]["summary"] == "explore retail roles"


def test_a_file_that_cannot_be_used_is_refused_and_nothing_written(
    db: Path, run: CLI, case: str, tmp_path: Path
) -> None:
    before = event_count(db)
    refused(
        run("record", case, "note", f"text=@{tmp_path / 'missing.txt'}"), 5, "text", "cannot read"
    )
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (4 * MAX_TEXT + 1))
    refused(run("record", case, "note", f"text=@{big}"), 5, "longer than")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    refused(run("record", case, "note", f"text=@{latin}"), 5, "not UTF-8")
    refused(run("record", case, "note", "text=-", "more=-"), 5, "both read standard input")
    assert event_count(db) == before


def test_check_exits_6_when_a_guard_blocks(run: CLI, case: str) -> None:
    blocked = run("check", case, "start_profiling")
    assert blocked.exit_code == 6 and "blocked" in blocked.stdout
    assert run("check", case, "start_profiling", "--json").exit_code == 6
    assert run("check", case, "pause", "--reason", "ill", "--review", "today").exit_code == 0


@pytest.mark.parametrize("word", ["today", "Yesterday", " today "])
def test_one_date_policy_names_the_days(word: str) -> None:
    from se_flow._calendar import named_day

    today = dt.date(2026, 3, 1)
    expected = today if word.strip().lower() == "today" else dt.date(2026, 2, 28)
    assert named_day(word, today) == expected
    assert named_day("2026-02-03", today) == dt.date(2026, 2, 3)
    assert named_day("tomorrow", today) is None
