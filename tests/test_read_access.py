"""Issue 8: every read needs an active staff member, and personal details only reach staff
who work with people (coaches, team leaders) or run the system (admins)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock, Steps

import se_flow
from se_flow import Case, SEFlow


@pytest.fixture
def case(flow: SEFlow) -> Case:
    return flow.refer(
        se_flow.PersonalDetails(name="Robin Private", contact="robin@example.org"),
        source="GP",
        actor="sam",
    ).case


def reads(flow: SEFlow, case: Case, tmp_path: Path) -> dict[str, Callable[[str | None], Any]]:
    """Every read of the facade, as `actor`."""
    out = tmp_path / "export"
    return {
        "case": lambda who: flow.case(case.id, actor=who),
        "cases": lambda who: flow.cases(actor=who),
        "due": lambda who: flow.due(actor=who),
        "records": lambda who: flow.records(case.id, actor=who),
        "history": lambda who: flow.history(case.id, actor=who),
        "events": lambda who: flow.events(actor=who),
        "participant": lambda who: flow.participant(case.participant_id, actor=who),
        "check": lambda who: flow.check(case.id, "engage", actor=who),
        "available": lambda who: flow.available(case.id, actor=who),
        "staff": lambda who: flow.staff(actor=who),
        "staff_member": lambda who: flow.staff_member("kim", actor=who),
        "verify": lambda who: flow.verify(actor=who),
        "checkpoint": lambda who: flow.checkpoint(actor=who),
        "verify_export": lambda who: flow.verify_export(out, actor=who),
    }


READS = [
    "case",
    "cases",
    "due",
    "records",
    "history",
    "events",
    "participant",
    "check",
    "available",
    "staff",
    "staff_member",
    "verify",
    "checkpoint",
    "verify_export",
]


@pytest.mark.parametrize("read", READS)
def test_every_read_refuses_a_deactivated_coach(
    flow: SEFlow, case: Case, tmp_path: Path, read: str
) -> None:
    flow.export(tmp_path / "export", actor="ada")
    call = reads(flow, case, tmp_path)[read]
    call("sam")  # allowed while active
    flow.add_staff("sam", "Sam Coach", "coach", active=False, actor="ada")
    head = flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match="sam is no longer active staff") as no:
        call("sam")
    assert no.value.exit_code == 7
    assert flow.store.head() == head


@pytest.mark.parametrize("read", READS)
def test_every_read_refuses_someone_not_on_the_staff_list(
    flow: SEFlow, case: Case, tmp_path: Path, read: str
) -> None:
    with pytest.raises(se_flow.PermissionDenied, match=r"^zed is not on the staff list$"):
        reads(flow, case, tmp_path)[read]("zed")


@pytest.mark.parametrize("read", READS)
def test_every_read_needs_an_actor(
    tmp_path: Path, clock: Clock, flow: SEFlow, case: Case, read: str
) -> None:
    # The same database as `flow` (conftest), opened with no default actor.
    with (
        se_flow.open(tmp_path / "t.db", clock=clock) as anonymous,
        pytest.raises(se_flow.InvalidInput, match="no actor"),
    ):
        reads(anonymous, case, tmp_path)[read](None)


@pytest.mark.parametrize("read", READS)
def test_auditors_read_and_verify(flow: SEFlow, case: Case, tmp_path: Path, read: str) -> None:
    flow.export(tmp_path / "export", actor="ava")
    reads(flow, case, tmp_path)[read]("ava")


def test_a_deactivated_coach_cannot_see_personal_data(flow: SEFlow, case: Case) -> None:
    assert flow.participant(case.participant_id, actor="sam").details is not None
    flow.add_staff("sam", "Sam Coach", "coach", active=False, actor="ada")
    with pytest.raises(se_flow.PermissionDenied, match="no longer active"):
        flow.participant(case.participant_id, actor="sam")
    with pytest.raises(se_flow.PermissionDenied, match="no longer active"):
        flow.participant(case.participant_id)  # the default actor is sam too


@pytest.mark.parametrize(
    ("who", "sees"), [("sam", True), ("lee", True), ("ada", True), ("ava", False)]
)
def test_who_sees_personal_details(flow: SEFlow, case: Case, who: str, sees: bool) -> None:
    found = flow.participant(case.participant_id, actor=who)
    assert found.id == case.participant_id
    if sees:
        assert found.details == se_flow.PersonalDetails(
            name="Robin Private", contact="robin@example.org"
        )
    else:
        assert found.details is None


def test_a_read_by_a_stranger_does_not_reveal_whether_a_case_exists(flow: SEFlow) -> None:
    for call in (
        lambda: flow.case("C-404", actor="zed"),
        lambda: flow.history("C-404", actor="zed"),
        lambda: flow.records("C-404", actor="zed"),
        lambda: flow.participant("P-0000000000", actor="zed"),
    ):
        with pytest.raises(se_flow.PermissionDenied, match="not on the staff list"):
            call()


def test_a_write_by_a_stranger_is_refused_the_same_way(flow: SEFlow, steps: Steps) -> None:
    case = steps.refer()
    head = flow.store.head()
    for call in (
        lambda: flow.record(case.id, "note", text="hi", actor="zed").record,
        lambda: flow.add_staff("zed", "Zed", "coach", actor="zed"),
        lambda: flow.erase_personal_data(case.participant_id, reason="asked", actor="zed"),
        lambda: flow.export(Path("unused"), actor="zed"),
    ):
        with pytest.raises(se_flow.PermissionDenied, match=r"^zed is not on the staff list$"):
            call()
    assert flow.store.head() == head


def test_has_staff_needs_no_actor(tmp_path: Path, clock: Clock) -> None:
    with se_flow.open(tmp_path / "new.db", clock=clock) as flow:
        assert flow.has_staff() is False
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        assert flow.has_staff() is True
