"""The in-memory reference store passes the same contract as SQLite, and runs the whole
workflow through the public API."""

from __future__ import annotations

import pytest
from helpers import Clock, Steps

import se_flow
from se_flow._memory import MemoryStore
from se_flow.contract import WORKFLOW, StoreContract
from se_flow.ports import CaseFilter, Store


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore(WORKFLOW)


@pytest.fixture
def memory_flow(clock: Clock) -> se_flow.SEFlow:
    flow = se_flow.SEFlow(MemoryStore(WORKFLOW), WORKFLOW, actor="sam", clock=clock)
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
    return flow


def test_a_whole_journey_verifies(memory_flow: se_flow.SEFlow, clock: Clock) -> None:
    steps = Steps(memory_flow)
    case = steps.to("career_development")
    memory_flow.record(case.id, "note", text="doing well")
    memory_flow.close(case.id, "moved_away")
    again = memory_flow.reopen(case.id, source="self").case
    assert again.episode == 2
    result = memory_flow.verify()
    assert result.ok, result.problem
    assert result.events == memory_flow.store.head()[0]
    assert [e.seq for e in memory_flow.history(case.id)] == sorted(
        e.seq for e in memory_flow.history(case.id)
    )


def test_a_batch_left_by_an_exception_leaves_every_table_as_it_was(
    memory_flow: se_flow.SEFlow,
) -> None:
    store = memory_flow.store
    kept = memory_flow.refer(se_flow.PersonalDetails(name="Kept"), source="GP").case
    before = (store.head(), memory_flow.staff(), list(store.cases(CaseFilter())))
    with pytest.raises(RuntimeError), memory_flow.batch():
        memory_flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
        case = memory_flow.refer(se_flow.PersonalDetails(name="Gone"), source="GP").case
        memory_flow.advance(kept.id, "engage")
        memory_flow.erase_personal_data(kept.participant_id, reason="asked", actor="ada")
        assert store.personal_details(kept.participant_id) is None
        raise RuntimeError("stop")
    assert (store.head(), memory_flow.staff(), list(store.cases(CaseFilter()))) == before
    assert store.read().participant(case.participant_id) is None
    details = store.personal_details(kept.participant_id)
    assert details is not None and details.name == "Kept"
    assert memory_flow.verify().ok
    assert memory_flow.refer("Next", source="GP").case.id == "C-2"  # the number was not used up


def test_tampering_with_the_memory_log_is_caught(memory_flow: se_flow.SEFlow) -> None:
    Steps(memory_flow).to("vocational_profiling")
    store = memory_flow.store
    assert isinstance(store, MemoryStore)
    store._rows[2]["reason"] = "forged"
    result = memory_flow.verify()
    assert not result.ok
    assert result.bad_seq == 3
