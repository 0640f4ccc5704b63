"""The PostgreSQL store passes the same contract as SQLite, runs a whole journey through the
public API, and exports what verifies. Skipped without a server (see `pg.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Clock, Steps
from pg import pg_server, pg_url

import se_flow
from se_flow.contract import WORKFLOW, StoreContract
from se_flow.ports import CaseFilter, Store

__all__ = ["pg_server", "pg_url"]


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[Store]:
        from se_flow._postgres import PostgresStore

        store = PostgresStore(pg_url, WORKFLOW)
        yield store
        store.close()


@pytest.fixture
def pg_flow(pg_url: str, clock: Clock) -> Iterator[se_flow.SEFlow]:
    with se_flow.open(pg_url, clock=clock, actor="sam") as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        yield flow


def test_a_whole_journey_verifies_and_exports(pg_flow: se_flow.SEFlow, tmp_path: Path) -> None:
    steps = Steps(pg_flow)
    case = steps.to("career_development")
    pg_flow.record(case.id, "note", text="doing well, café 🎉")
    pg_flow.close(case.id, "moved_away")
    again = pg_flow.reopen(case.id, source="self").case
    assert again.episode == 2
    result = pg_flow.verify()
    assert result.ok, result.problem
    assert result.events == pg_flow.store.head()[0]
    manifest = pg_flow.export(tmp_path / "out", actor="ada")
    assert manifest.rows
    check = pg_flow.verify_export(tmp_path / "out", actor="ada")
    assert check.ok, check.problems


def test_a_batch_left_by_an_exception_leaves_every_table_as_it_was(
    pg_flow: se_flow.SEFlow,
) -> None:
    store = pg_flow.store
    kept = pg_flow.refer(se_flow.PersonalDetails(name="Kept"), source="GP").case
    before = (store.head(), pg_flow.staff(), list(store.cases(CaseFilter())))
    with pytest.raises(RuntimeError), pg_flow.batch():
        pg_flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
        case = pg_flow.refer(se_flow.PersonalDetails(name="Gone"), source="GP").case
        pg_flow.advance(kept.id, "engage")
        pg_flow.erase_personal_data(kept.participant_id, reason="asked", actor="ada")
        assert store.personal_details(kept.participant_id) is None
        raise RuntimeError("stop")
    assert (store.head(), pg_flow.staff(), list(store.cases(CaseFilter()))) == before
    assert store.read().participant(case.participant_id) is None
    assert pg_flow.verify().ok
    assert pg_flow.refer("Next", source="GP").case.id == "C-2"
