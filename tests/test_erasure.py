"""Personal data can be erased on request without breaking the audit chain."""

from __future__ import annotations

import pytest
from helpers import Steps

import se_flow
from se_flow import SEFlow


def test_an_admin_erases_personal_data_and_the_chain_still_verifies(
    flow: SEFlow, steps: Steps
) -> None:
    case = flow.refer(
        se_flow.PersonalDetails(name="Robin Erase-Me", contact="robin@example.org"), source="GP"
    ).case
    pid = case.participant_id
    assert flow.participant(pid).details is not None
    flow.erase_personal_data(
        pid, reason="erasure request 2026-11-01, no legal obligation", actor="ada"
    )
    assert flow.participant(pid).details is None
    assert flow.case(case.id) == case  # the case and its history stay
    erasure = flow.events()[-1]
    assert (erasure.kind, erasure.actor, erasure.payload["participant_id"]) == (
        "erasure",
        "ada",
        pid,
    )
    assert "Robin" not in str(erasure)
    assert flow.verify().ok


@pytest.mark.parametrize("actor", ["sam", "lee", "ava"])
def test_only_an_admin_may_erase(flow: SEFlow, steps: Steps, actor: str) -> None:
    case = steps.refer()
    head = flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
        flow.erase_personal_data(case.participant_id, reason="asked", actor=actor)
    assert flow.store.head() == head
    assert flow.participant(case.participant_id).details is not None


def test_erasure_needs_a_reason_and_a_known_participant(flow: SEFlow) -> None:
    with pytest.raises(se_flow.InvalidInput, match="needs a reason"):
        flow.erase_personal_data("P-0000000000", reason=" ", actor="ada")
    with pytest.raises(se_flow.NotFound, match="P-0000000000"):
        flow.erase_personal_data("P-0000000000", reason="asked", actor="ada")
