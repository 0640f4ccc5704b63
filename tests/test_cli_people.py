"""Names for the people who may see them: the caseload, the due list and `show` name the
participant for coaches and team leaders (never for an auditor); `find` searches names and
contacts; a second referral of someone with an open case is caught; the caseload sorts,
filters by stage number or title, and finds cases stuck in a stage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from helpers import staffed_db
from test_cli import CLI, event_count, ok, refused, walk

import se_flow


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


def refer(db: Path, name: str, *, coach: str = "sam", days: int = 0, **details: object) -> str:
    with se_flow.open(db) as flow:
        return flow.refer(
            se_flow.PersonalDetails(name=name, **details),  # type: ignore[arg-type]
            source="GP",
            coach=coach,
            actor=coach,
            effective_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days),
        ).case.id


def test_names_show_beside_the_pseudonym_for_coaches_never_for_auditors(db: Path, run: CLI) -> None:
    case_id = refer(db, "Alex Doe", contact="07700 900123")
    for command in (("cases",), ("due", "--all"), ("show", case_id)):
        assert "Alex Doe" in ok(run(*command)), command
        assert "Alex Doe" in ok(run(*command, actor="lee")), command
        assert "Alex Doe" not in ok(run(*command, actor="ava")), command


def test_find_searches_names_and_contacts(db: Path, run: CLI) -> None:
    alex = refer(db, "Alex Doe", contact="07700 900123")
    refer(db, "Bea Lind", contact="bea@example.org", coach="kim")
    out = ok(run("find", "alex"))
    assert "Alex Doe" in out and alex in out and "Bea" not in out
    assert "Bea Lind" in ok(run("find", "BEA@EXAMPLE"))
    assert "Alex Doe" in ok(run("find", "07700900123"))  # spaces in a number do not matter
    assert "nobody matches" in ok(run("find", "zed"))
    (found,) = run.json("find", "doe")
    assert found["participant_id"].startswith("P-") and found["cases"][0]["id"] == alex
    assert "Alex Doe" in ok(run("find", "doe", actor="lee"))


def test_find_refusals(db: Path, run: CLI) -> None:
    refer(db, "Alex Doe")
    refused(run("find", "   "), 5, "empty")
    refused(run("find", "alex", actor="ava"), 7, "only coaches and team leaders")
    refused(run("find", "alex", actor="ada"), 7, "only coaches and team leaders")


def test_a_likely_duplicate_referral_is_refused_without_yes(db: Path, run: CLI) -> None:
    """Same name (any case) and date of birth, or the same contact, as someone with an open
    case: no terminal to ask in, so refused with no case written; --yes refers anyway."""
    first = refer(db, "Alex Doe", date_of_birth=dt.date(1990, 4, 1), contact="07700 900123")
    before = event_count(db)
    result = run("refer", "alex  doe", "--source", "GP", "--dob", "1990-04-01")
    refused(result, 5, "--yes")
    assert first in result.stderr and "may be the same person: Alex Doe" in result.stderr
    refused(run("refer", "Al Doe", "--source", "GP", "--contact", "07700900123"), 5, "--yes")
    # No case written; each check is its audited search (tests/test_duplicates_audit.py).
    assert event_count(db) == before + 2
    ok(run("refer", "Alex Doe", "--source", "GP", "--dob", "1990-04-01", "--yes"))
    # Another date of birth is another person; so is the same name without one.
    ok(run("refer", "Alex Doe", "--source", "GP", "--dob", "1991-04-01"))
    ok(run("refer", "Alex Doe", "--source", "GP"))


def test_a_closed_case_is_no_duplicate(db: Path, run: CLI) -> None:
    first = refer(db, "Alex Doe", date_of_birth=dt.date(1990, 4, 1))
    with se_flow.open(db) as flow:
        flow.withdraw(first, reason="moved away", actor="sam")
    ok(run("refer", "Alex Doe", "--source", "GP", "--dob", "1990-04-01"))


def test_stage_by_number_title_or_id(db: Path, run: CLI) -> None:
    a = refer(db, "Alex")
    b = refer(db, "Bea")
    walk(db, b, "employer_engagement")
    for stage in ("3", "employer engagement", "Employer  Engagement", "employer_engagement"):
        assert [c["id"] for c in run.json("cases", "--stage", stage)] == [b], stage
    assert [c["id"] for c in run.json("cases", "--stage", "referred")] == [a]
    refused(run("cases", "--stage", "9"), 5, "unknown stage '9'", "3 Employer Engagement")


def test_sort_and_stuck(db: Path, run: CLI) -> None:
    old = refer(db, "Old", days=40)
    new = refer(db, "New", days=1)
    mid = refer(db, "Mid", days=20, coach="kim")
    assert [c["id"] for c in run.json("cases", "--sort", "days")] == [old, mid, new]
    assert [c["id"] for c in run.json("cases", "--sort", "coach")] == [mid, old, new]
    assert [c["id"] for c in run.json("cases", "--stuck", "10")] == [old, mid]
    assert [
        c["id"] for c in run.json("cases", "--stuck", "10", "--sort", "days", "--limit", "1")
    ] == [old]
    assert "Last seen" in ok(run("cases"))
    refused(run("cases", "--sort", "name"), 5, "unknown sort 'name'", "days")
    assert run("cases", "--stuck", "many").exit_code == 2
    refused(run("cases", "--stuck", "-1"), 5)


def test_team_counts_each_coachs_caseload(db: Path, run: CLI) -> None:
    refer(db, "Old", days=40)
    refer(db, "Mid", days=20, coach="kim")
    late = refer(db, "Late", days=5)  # a referral's review is due in 2 days: overdue
    walk(db, late, "customer_engagement")
    lines = {line["coach"]: line for line in run.json("team", "--stuck", "10", actor="lee")}
    assert set(lines) == {"sam", "kim"}
    sam, kim = lines["sam"], lines["kim"]
    assert sam["open"] == 2 and kim["open"] == 1
    assert sam["by_stage"] == {"referred": 1, "customer_engagement": 1}
    assert sam["stuck"] == 1 and kim["stuck"] == 1
    assert sam["no_contact"] == 1 and kim["no_contact"] == 0  # Old: 40 days, none since
    assert sam["reviews_overdue"] >= 1 and sam["overdue"] >= 1
    out = ok(run("team", actor="lee"))
    assert "Sam Coach" in out and "Kim Coach" in out and "Customer Engagement 1" in out
    assert run("team", "--stuck", "soon").exit_code == 2
    refused(run("team", "--no-contact", "-1"), 5)
