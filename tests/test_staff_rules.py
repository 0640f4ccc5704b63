"""Issue 8: staff ids and names are validated, and who may change whom on the staff list."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Clock

import se_flow
from se_flow import SEFlow

BAD_IDS = {
    "NUL": "sam\x00x",
    "newline": "sam\nx",
    "trailing newline": "sam\n",
    "carriage return": "sam\rx",
    "tab first": "\tsam",
    "1 MB": "s" * 1_000_000,
    "leading =": "=HYPERLINK(1)",
    "leading +": "+sam",
    "leading -": "-sam",
    "leading @": "@sam",
    "space": "sam patel",
    "empty": "",
}


def _written(flow: SEFlow) -> tuple[object, ...]:
    return (flow.store.head(), flow.store.list_staff())


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_bad_staff_id_is_refused_and_nothing_written(flow: SEFlow, bad: str) -> None:
    before = _written(flow)
    with pytest.raises(se_flow.InvalidInput, match="not a valid staff id") as refused:
        flow.add_staff(bad, "Someone", "coach", actor="ada")
    assert len(refused.value.message) < 300  # names the id, never a megabyte of it
    assert _written(flow) == before


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_a_bad_first_staff_id_is_refused(tmp_path: Path, clock: Clock, bad: str) -> None:
    with se_flow.open(tmp_path / "new.db", clock=clock) as flow:
        with pytest.raises(se_flow.InvalidInput, match="not a valid staff id"):
            flow.add_staff(bad, "Someone", "admin", actor="setup")
        assert flow.store.list_staff() == [] and flow.store.head()[0] == 0


@pytest.mark.parametrize("bad", ["sam\x00", "sam\n", "=1+1", "-x", "s" * 100_000])
def test_a_bad_actor_id_is_refused(flow: SEFlow, bad: str) -> None:
    before = _written(flow)
    with pytest.raises(se_flow.InvalidInput, match=r"actor .* is not a valid staff id"):
        flow.add_staff("pat", "Pat", "coach", actor=bad)
    with pytest.raises(se_flow.InvalidInput, match="actor"):
        flow.refer("Alex Doe", source="GP", actor=bad)
    assert _written(flow) == before


@pytest.mark.parametrize("good", ["sam", "sam.patel@example.org", "j_doe-2", "A", "x" * 64, "007"])
def test_login_like_ids_are_accepted(flow: SEFlow, good: str) -> None:
    assert flow.add_staff(good, "Someone", "coach", actor="ada").id == good
    assert good in [s.id for s in flow.store.list_staff()]


def test_an_id_of_65_characters_is_too_long(flow: SEFlow) -> None:
    with pytest.raises(se_flow.InvalidInput, match="not a valid staff id"):
        flow.add_staff("x" * 65, "Someone", "coach", actor="ada")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Pat\x00Coach", "control characters"),
        ("Pat\nCoach", "control characters"),
        ("Pat\u2028Coach", "control characters"),
        ("Pat\x1b[31mCoach", "control characters"),
        ("P" * 201, "too long"),
        ("   ", "needs a name"),
    ],
)
def test_a_bad_staff_name_is_refused(flow: SEFlow, name: str, why: str) -> None:
    before = _written(flow)
    with pytest.raises(se_flow.InvalidInput, match=why):
        flow.add_staff("pat", name, "coach", actor="ada")
    assert _written(flow) == before


def test_a_name_of_200_characters_with_accents_is_fine(flow: SEFlow) -> None:
    name = "Zoë Ñúñez-" + "a" * 190
    assert flow.add_staff("zoe", name, "coach", actor="ada").name == name


# --- who may change whom ---------------------------------------------------------------------


def _staff(flow: SEFlow) -> dict[str, tuple[str, str, bool]]:
    return {s.id: (s.name, s.role.value, s.active) for s in flow.store.list_staff()}


@pytest.mark.parametrize(
    ("target", "name", "role", "active", "words"),
    [
        ("ada", "Ada Admin", "coach", True, "only an admin may change ada, who is an admin"),
        ("ada", "Ada Admin", "admin", False, "only an admin may change ada"),
        ("ada", "Ada Renamed", "admin", True, "only an admin may change ada"),
        ("ava", "Ava Auditor", "coach", True, "only an admin may change ava, who is an auditor"),
        ("ava", "Ava Auditor", "auditor", False, "only an admin may change ava"),
        ("kim", "Kim Coach", "auditor", True, "only an admin may make kim an auditor"),
        ("pat", "Pat", "admin", True, "only an admin may make pat an admin"),
    ],
)
def test_a_team_leader_may_not_touch_admins_or_auditors(
    flow: SEFlow, target: str, name: str, role: str, active: bool, words: str
) -> None:
    before = _staff(flow), flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match=words) as refused:
        flow.add_staff(target, name, role, active=active, actor="lee")
    assert refused.value.exit_code == 7
    assert (_staff(flow), flow.store.head()) == before


@pytest.mark.parametrize(("role", "active"), [("coach", True), ("admin", False)])
def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    flow: SEFlow, role: str, active: bool
) -> None:
    before = _staff(flow), flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match="ada: they are the last active admin"):
        flow.add_staff("ada", "Ada Admin", role, active=active, actor="ada")
    assert (_staff(flow), flow.store.head()) == before


def test_an_inactive_admin_does_not_count(flow: SEFlow) -> None:
    flow.add_staff("bob", "Bob Admin", "admin", active=False, actor="ada")
    with pytest.raises(se_flow.PermissionDenied, match="last active admin"):
        flow.add_staff("ada", "Ada Admin", "coach", actor="ada")


def test_with_two_admins_one_may_demote_the_other(flow: SEFlow) -> None:
    flow.add_staff("bob", "Bob Admin", "admin", actor="ada")
    flow.add_staff("ada", "Ada Admin", "coach", actor="bob")
    assert _staff(flow)["ada"] == ("Ada Admin", "coach", True)
    with pytest.raises(se_flow.PermissionDenied, match="bob: they are the last active admin"):
        flow.add_staff("bob", "Bob Admin", "admin", active=False, actor="bob")
    # An admin may still rename themselves, and change an auditor.
    flow.add_staff("bob", "Bob B. Admin", "admin", actor="bob")
    flow.add_staff("ava", "Ava Auditor", "coach", actor="bob")
    assert _staff(flow)["ava"] == ("Ava Auditor", "coach", True)


def test_a_team_leader_still_manages_coaches_and_team_leaders(flow: SEFlow) -> None:
    flow.add_staff("pat", "Pat Coach", "coach", actor="lee")
    flow.add_staff("pat", "Pat Leader", "team_leader", actor="lee")
    flow.add_staff("kim", "Kim Coach", "coach", active=False, actor="lee")
    flow.add_staff("pat", "Pat Leader", "coach", actor="lee")
    staff = _staff(flow)
    assert staff["pat"] == ("Pat Leader", "coach", True)
    assert staff["kim"] == ("Kim Coach", "coach", False)


def test_two_admins_demoting_themselves_at_once_leave_one_admin(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's demotion commits after Ada asked for hers but before her transaction began: the
    rule must count admins inside that transaction, not from what Ada saw before."""
    path = tmp_path / "t.db"
    with se_flow.open(path, clock=clock) as ada, se_flow.open(path, clock=clock) as bob:
        ada.add_staff("ada", "Ada Admin", "admin", actor="ada")
        ada.add_staff("bob", "Bob Admin", "admin", actor="ada")
        write = ada.store.write

        def bob_first(decide):  # type: ignore[no-untyped-def]
            bob.add_staff("bob", "Bob Admin", "coach", actor="bob")
            return write(decide)

        monkeypatch.setattr(ada.store, "write", bob_first)
        with pytest.raises(se_flow.PermissionDenied, match="ada: they are the last active admin"):
            ada.add_staff("ada", "Ada Admin", "coach", actor="ada")
        monkeypatch.undo()
        assert {s.id: s.role.value for s in ada.store.list_staff()} == {
            "ada": "admin",
            "bob": "coach",
        }


def test_in_a_batch_the_second_of_two_demotions_sees_the_first(flow: SEFlow) -> None:
    flow.add_staff("bob", "Bob Admin", "admin", actor="ada")
    with flow.batch():
        flow.add_staff("bob", "Bob Admin", "coach", actor="ada")
        with pytest.raises(se_flow.PermissionDenied, match="last active admin"):
            flow.add_staff("ada", "Ada Admin", "coach", actor="ada")
    assert _staff(flow)["ada"] == ("Ada Admin", "admin", True)
