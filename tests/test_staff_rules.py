"""Issue 8: staff ids and names are validated, and who may change whom on the staff list."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Clock

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
