"""The bounds on what a user may give: text length and encoding, the range of dates, counts of
days and rows. Each out-of-bounds input is an `InvalidInput` naming what is at fault, through
the API and through the command, never "unexpected ... (a bug in se-flow)"."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import START, Steps, staffed_db
from test_bad_input import nothing_written
from test_cli import CLI, refer, refused, walk
from test_cli_subprocess import SCRIPT

import se_flow
from se_flow import SEFlow
from se_flow._limits import EARLIEST_DATE, LATEST_DATE, MAX_TEXT, check_days, check_limit

TOO_LONG = "x" * (MAX_TEXT + 1)
LONGEST = "x" * MAX_TEXT
LONE_SURROGATE = "a\ud800b"


def test_the_limits_are_the_documented_ones() -> None:
    # README.md states them; another test keeps a 131,040-character note.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert MAX_TEXT >= 131_072
    assert f"{MAX_TEXT:,}" in readme
    assert EARLIEST_DATE.isoformat() in readme
    assert LATEST_DATE.isoformat() in readme


# --- text ----------------------------------------------------------------------------------


def test_a_text_field_holds_up_to_the_limit(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    made = flow.record(case.id, "note", text=LONGEST).record
    assert made.fields["text"] == LONGEST


@pytest.mark.parametrize(("bad", "words"), [(TOO_LONG, f"{MAX_TEXT:,}"), (LONE_SURROGATE, "UTF-8")])
def test_a_record_field_over_the_limit_or_not_utf8_is_refused(
    flow: SEFlow, steps: Steps, bad: str, words: str
) -> None:
    case = steps.refer()
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as refusal:
        flow.record(case.id, "note", text=bad)
    assert set(refusal.value.problems) == {"text"}
    assert words in refusal.value.problems["text"]
    # The refusal never quotes the text back: it may be megabytes, or not printable.
    assert len(refusal.value.message) < 300
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as refusal:
        flow.record(case.id, "vocational_profile", job_goals=["retail", bad])
    assert set(refusal.value.problems) == {"job_goals"}


FREE_TEXT = {
    "name": lambda f, c, bad: f.refer(bad, source="GP").case,
    "contact": lambda f, c, bad: (
        f.refer(se_flow.PersonalDetails(name="Alex", contact=bad), source="GP").case
    ),
    "source": lambda f, c, bad: f.refer("Alex", source=bad).case,
    "notes": lambda f, c, bad: f.refer("Alex", source="GP", referral={"notes": bad}).case,
    "reason": lambda f, c, bad: f.withdraw(c.id, reason=bad).case,
    "override reason": lambda f, c, bad: f.advance(c.id, "start_profiling", override=bad).case,
    "staff name": lambda f, c, bad: f.add_staff("new", bad, "coach", actor="ada"),
    "actor": lambda f, c, bad: f.record(c.id, "note", text="hi", actor=bad).record,
}


@pytest.mark.parametrize("what", list(FREE_TEXT))
@pytest.mark.parametrize("bad", [TOO_LONG, LONE_SURROGATE], ids=["too_long", "lone_surrogate"])
def test_every_free_text_is_bounded_and_must_be_utf8(
    flow: SEFlow, steps: Steps, what: str, bad: str
) -> None:
    case = steps.to("customer_engagement")
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refusal:
        FREE_TEXT[what](flow, case, bad)
    assert what in refusal.value.message
    assert len(refusal.value.message) < 300


def test_an_id_that_is_not_utf8_is_invalid_input_not_a_broken_database(
    flow: SEFlow, steps: Steps
) -> None:
    steps.refer()
    with pytest.raises(se_flow.InvalidInput, match="UTF-8"):
        flow.case("C-\ud800")


def test_a_workflow_adoption_reason_is_bounded(flow: SEFlow) -> None:
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refusal:
        flow.adopt_workflow(reason=TOO_LONG, actor="ada")
    assert "reason" in refusal.value.message and f"{MAX_TEXT:,}" in refusal.value.message
    assert len(refusal.value.message) < 300


CASE_IDS: dict[str, Callable[[SEFlow, str], object]] = {
    "case": lambda f, bad: f.case(bad),
    "history": lambda f, bad: f.history(bad),
    "records": lambda f, bad: f.records(bad),
    "standards": lambda f, bad: f.standards(bad),
    "outcomes": lambda f, bad: f.outcomes(bad),
    "check": lambda f, bad: f.check(bad, "engage"),
    "available": lambda f, bad: f.available(bad),
    "advance": lambda f, bad: f.advance(bad, "engage").case,
    "pause": lambda f, bad: f.pause(bad, reason="ill", review_date=dt.date(2026, 7, 1)).case,
    "record": lambda f, bad: f.record(bad, "note", text="hi").record,
    "assign": lambda f, bad: f.assign(bad, "kim").case,
    "reopen": lambda f, bad: f.reopen(bad, source="GP").case,
    "export": lambda f, bad: f.export(Path(os.devnull).parent / "never-made", case_id=bad),
}


@pytest.mark.parametrize("call", list(CASE_IDS))
@pytest.mark.parametrize("bad", [TOO_LONG, LONE_SURROGATE], ids=["too_long", "lone_surrogate"])
def test_a_case_id_is_checked_where_it_enters_naming_it(
    flow: SEFlow, steps: Steps, call: str, bad: str
) -> None:
    steps.refer()
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput) as refusal:
        CASE_IDS[call](flow, bad)
    assert "case id" in refusal.value.message
    assert len(refusal.value.message) < 300


@pytest.mark.parametrize("bad", [TOO_LONG, LONE_SURROGATE], ids=["too_long", "lone_surrogate"])
def test_a_participant_id_is_checked_naming_it(flow: SEFlow, steps: Steps, bad: str) -> None:
    steps.refer()
    for call in (
        lambda: flow.participant(bad),
        lambda: flow.erase_personal_data(bad, reason="asked", actor="ada"),
        lambda: flow.cases(participant_id=bad),
    ):
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="participant id"):
            call()


def test_the_stores_last_resort_names_the_value_it_could_not_store(
    flow: SEFlow, steps: Steps
) -> None:
    # Behind the API's checks, a store still refuses a lone surrogate in its own words, and
    # names the value (escaped, shortened) as it cannot know the field.
    steps.refer()
    with pytest.raises(se_flow.InvalidInput) as refusal:
        flow.store.case("C-\ud800" + "x" * 100)
    message = refusal.value.message
    assert "'C-\\ud800xxx" in message and "UTF-8" in message and "character 3" in message
    assert len(message) < 300


# --- dates ---------------------------------------------------------------------------------


def test_nothing_takes_effect_before_1900(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer(effective_at=dt.date(1900, 1, 1))
    assert case.opened_at.date() == EARLIEST_DATE
    early = dt.date(1899, 12, 31)
    ancient = dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=14)))
    for when in (early, ancient):
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="effective_at"):
            flow.refer("Old", source="GP", effective_at=when)
        with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="effective_at"):
            flow.record(case.id, "note", text="hi", effective_at=when)
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="date of birth"):
        flow.refer(se_flow.PersonalDetails(name="Old", date_of_birth=early), source="GP")
    with nothing_written(flow), pytest.raises(se_flow.InvalidRecord) as refusal:
        flow.record(case.id, "job_offer", employer="Mill", start_date="1066-10-14",
                    hours_per_week=16, hourly_pay="12.50")  # fmt: skip
    assert "1900-01-01" in refusal.value.problems["start_date"]


def test_a_record_cannot_predate_the_referral(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer(effective_at=START - dt.timedelta(days=10))
    flow.record(case.id, "note", text="on the day", effective_at=START - dt.timedelta(days=10))
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="before the case"):
        flow.record(case.id, "note", text="too early", effective_at=START - dt.timedelta(days=11))


def test_a_reopened_episode_cannot_predate_the_closure(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer(effective_at=START - dt.timedelta(days=20))
    flow.withdraw(case.id, reason="moving", effective_at=START - dt.timedelta(days=5))
    with nothing_written(flow), pytest.raises(se_flow.InvalidInput, match="before the case"):
        flow.reopen(case.id, source="GP", effective_at=START - dt.timedelta(days=6))
    assert (
        flow.reopen(case.id, source="GP", effective_at=START - dt.timedelta(days=5)).case.episode
        == 2
    )


def test_counts_of_days_and_rows_are_bounded(flow: SEFlow, steps: Steps) -> None:
    steps.refer()
    for days in (-(10**9), 10**9, 2_914_000):
        with pytest.raises(se_flow.InvalidInput, match="within_days"):
            flow.due(within_days=days)
    for limit in (0, 10**20):
        with pytest.raises(se_flow.InvalidInput, match="limit"):
            flow.cases(limit=limit)
        with pytest.raises(se_flow.InvalidInput, match="limit"):
            flow.due(limit=limit)
    with pytest.raises(se_flow.InvalidInput, match="review date"):
        flow.check("C-1", "engage", review_date=dt.date(1, 1, 1))


# --- through the command -------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """As in test_cli: admin ada, team leader lee, coaches sam and kim, auditor ava."""
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


BAD_COMMANDS = {
    "on_far_east_year_1": (["refer", "A", "--source", "GP", "--on", "0001-01-01T00:00+14:00"], "--on"),  # noqa: E501
    "on_local_year_1": (["refer", "A", "--source", "GP", "--on", "0001-01-01T00:00"], "--on"),
    "on_before_1900": (["record", "{case}", "note", "text=hi", "--on", "1899-12-31"], "--on"),
    "on_before_referral": (["record", "{case}", "note", "text=hi", "--on", "2000-01-01"], "before the case"),  # noqa: E501
    "dob_before_1900": (["refer", "A", "--source", "GP", "--dob", "1850-01-01"], "--dob"),
    "review_year_1": (["pause", "{case}", "--reason", "x", "--review", "0001-01-01"], "--review"),
    "field_date_before_1900": (["record", "{case}", "job_offer", "employer=Mill", "start_date=1066-10-14", "hours_per_week=16", "hourly_pay=12.50"], "start_date"),  # noqa: E501
    "within_2914000": (["due", "--within", "2914000"], "--within"),
    "within_2_to_the_31": (["due", "--within", "2147483648"], "--within"),
    "until_9999": (["export", "{tmp}/out", "--until", "9999-12-31"], "--until"),
    "since_year_1": (["export", "{tmp}/out", "--since", "0001-01-01T00:00"], "--since"),
    "limit_huge": (["cases", "--limit", "100000000000000000000"], "--limit"),
    "limit_huge_all": (["cases", "--status", "all", "--limit", "100000000000000000000"], "--limit"),
    "name_not_utf8": (["refer", "\udcff\udcfeBad", "--source", "GP"], "name"),
    "note_too_long": (["record", "{case}", "note", "text=" + TOO_LONG], "text"),
    "reason_too_long": (["withdraw", "{case}", "--reason", TOO_LONG], "reason"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_COMMANDS))
def test_out_of_bounds_input_on_the_command_line(
    run: CLI, db: Path, tmp_path: Path, name: str
) -> None:
    case = refer(db, days=1)
    walk(db, case, "customer_engagement")
    args, words = BAD_COMMANDS[name]
    filled = [a.replace("{case}", case).replace("{tmp}", str(tmp_path)) for a in args]
    result = run(*filled)
    err = refused(result, 5, words)
    assert "unexpected" not in result.output
    assert "a bug in se-flow" not in result.output
    assert len(err.strip().splitlines()) == 1
    assert len(err) < 400
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_in_a_real_argv(db: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    done = subprocess.run(
        [os.fsencode(SCRIPT), b"--db", os.fsencode(db), b"--as", b"sam", b"refer",
         b"\xff\xfeBad", b"--source", b"GP"],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    err = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 5, err
    assert err.startswith("error: name ")
    assert "UTF-8" in err
    assert "unexpected" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", [True, False, 1.5, "7", None, 7.0])
def test_counts_must_be_whole_numbers_not_bools(bad: object) -> None:
    with pytest.raises(se_flow.InvalidInput, match="within_days must be a whole number"):
        check_days(bad, "within_days")  # type: ignore[arg-type]
    if bad is None:
        assert check_limit(None, "limit") is None  # no limit
        return
    with pytest.raises(se_flow.InvalidInput, match="limit must be a whole number"):
        check_limit(bad, "limit")  # type: ignore[arg-type]


def test_the_api_refuses_a_bool_count(flow: SEFlow, steps: Steps) -> None:
    steps.refer()
    with pytest.raises(se_flow.InvalidInput, match="within_days must be a whole number"):
        flow.due(within_days=True)
    with pytest.raises(se_flow.InvalidInput, match="limit must be a whole number"):
        flow.cases(limit=True)
