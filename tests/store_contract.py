"""The contract every store passes. A new store (a server database, say) subclasses
`StoreContract`, provides the `store` fixture, and must pass every test here unchanged."""

from __future__ import annotations

import datetime as dt

import pytest

import se_flow
from se_flow._audit import GENESIS, verify_chain
from se_flow._engine import Change, Engine
from se_flow._model import EventDraft, Participant, Staff, Status
from se_flow._store import CaseFilter, Store, Tx

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
WORKFLOW = se_flow.load_workflow()
ENGINE = Engine(WORKFLOW)
COACH = Staff(id="sam", name="Sam", role="coach")


def _add_staff(store: Store, staff: Staff) -> None:
    def decide(tx: Tx) -> Change:
        event = EventDraft(
            case_id=None,
            kind="staff",
            actor="setup",
            role="bootstrap",
            effective_at=NOW,
            recorded_at=NOW,
            workflow_hash=WORKFLOW.hash,
            payload={"staff_id": staff.id},
        )
        return Change(case=None, expected_version=None, event=event, staff=staff)

    store.write(decide)


def _refer(store: Store, pid: str = "P-1") -> se_flow.Case:
    def decide(tx: Tx) -> Change:
        return ENGINE.open_case(
            tx.new_case_id(),
            Participant(id=pid, created_at=NOW),
            {"source": "GP"},
            actor=tx.staff("sam"),
            now=NOW,
            effective_at=NOW,
            coach="sam",
        )

    case, _ = store.write(decide)
    assert case is not None
    return case


def _engage(store: Store, case_id: str, expected: int | None = None) -> se_flow.Case:
    from se_flow._engine import context

    def decide(tx: Tx) -> Change:
        snap = tx.snapshot(case_id)
        ctx = context(ENGINE, snap, tx.staff("sam"), NOW)
        return ENGINE.fire(snap, ctx, "engage", expected_version=expected)

    case, _ = store.write(decide)
    assert case is not None
    return case


class StoreContract:
    @pytest.fixture
    def store(self) -> Store:  # pragma: no cover - provided by each subclass
        raise NotImplementedError

    @pytest.fixture
    def staffed(self, store: Store) -> Store:
        _add_staff(store, COACH)
        return store

    def test_empty_store_has_genesis_head(self, store: Store) -> None:
        assert store.head() == (0, GENESIS)
        assert list(store.event_rows()) == []
        assert store.store_id()

    def test_write_commits_case_record_and_event_together(self, staffed: Store) -> None:
        case = _refer(staffed)
        assert staffed.case(case.id) == case
        assert [r.kind for r in staffed.records(case.id)] == ["referral"]
        events = list(staffed.events(case_id=case.id))
        assert [e.kind for e in events] == ["referral"]
        assert staffed.head() == (events[-1].seq, events[-1].hash)

    def test_a_refused_decision_writes_nothing(self, staffed: Store) -> None:
        case = _refer(staffed)
        head = staffed.head()

        def refuse(tx: Tx) -> Change:
            tx.snapshot(case.id)
            raise se_flow.InvalidInput("no")

        with pytest.raises(se_flow.InvalidInput):
            staffed.write(refuse)
        assert staffed.head() == head
        assert staffed.case(case.id) == case

    def test_unknown_case_and_staff(self, staffed: Store) -> None:
        with pytest.raises(se_flow.CaseNotFound):
            staffed.case("C-404")
        with pytest.raises(se_flow.CaseNotFound):
            staffed.read().snapshot("C-404")
        with pytest.raises(se_flow.StaffNotFound):
            staffed.read().staff("nobody")

    def test_count_active_admins_sees_the_transaction(self, staffed: Store) -> None:
        assert staffed.read().count_active_admins() == 0
        _add_staff(staffed, Staff(id="ada", name="Ada", role="admin"))
        _add_staff(staffed, Staff(id="bob", name="Bob", role="admin", active=False))
        assert staffed.read().count_active_admins() == 1
        with staffed.batch():
            _add_staff(staffed, Staff(id="eve", name="Eve", role="admin"))
            assert staffed.read().count_active_admins() == 2
            _add_staff(staffed, Staff(id="ada", name="Ada", role="coach"))
            assert staffed.read().count_active_admins() == 1

    def test_version_checked_update_refuses_a_stale_version(self, staffed: Store) -> None:
        case = _refer(staffed)
        _engage(staffed, case.id, expected=case.version)
        head = staffed.head()
        with pytest.raises(se_flow.CaseConflict) as caught:
            _engage(staffed, case.id, expected=case.version)
        assert caught.value.case_id == case.id
        assert staffed.head() == head

    def test_store_level_version_check(self, staffed: Store) -> None:
        """Even a decision built on a stale read cannot overwrite a newer version."""
        case = _refer(staffed)
        stale, records = case, tuple(staffed.records(case.id))
        _engage(staffed, case.id)

        def decide(tx: Tx) -> Change:
            from se_flow._engine import Snapshot, context

            snap = Snapshot(case=stale, records=records, marks={})
            return ENGINE.fire(snap, context(ENGINE, snap, tx.staff("sam"), NOW), "engage")

        with pytest.raises(se_flow.CaseConflict):
            staffed.write(decide)

    def test_events_chain_and_verify(self, staffed: Store) -> None:
        for n in range(3):
            _engage(staffed, _refer(staffed, f"P-{n}").id)
        rows = list(staffed.event_rows())
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert verify_chain(rows).ok
        assert verify_chain(
            staffed.event_rows(after_seq=2), start_seq=3, start_hash=rows[1]["hash"]
        ).ok

    def test_snapshot_holds_current_records_and_marks(self, staffed: Store) -> None:
        case = _engage(staffed, _refer(staffed).id)
        snap = staffed.read().snapshot(case.id)
        assert snap.case == case
        assert [r.kind for r in snap.records] == ["referral"]
        assert set(snap.marks) == {"referral", "engage"}

    def test_snapshot_reads_only_what_the_command_needs(self, staffed: Store) -> None:
        from se_flow._engine import NOTHING, Needs

        case = _engage(staffed, _refer(staffed).id)
        engaged = list(staffed.events(case_id=case.id))[-1].seq
        wanted = Needs(kinds=frozenset({"note"}), triggers=frozenset({"engage", "start_job"}))
        snap = staffed.read().snapshot(case.id, lambda c: wanted)
        assert (snap.records, snap.marks) == ((), {"engage": engaged})
        snap = staffed.read().snapshot(case.id, lambda c: NOTHING)
        assert (snap.case, snap.records, snap.marks) == (case, (), {})
        snap = staffed.read().snapshot(case.id, lambda c: Needs(kinds=frozenset({"referral"})))
        assert [r.kind for r in snap.records] == ["referral"]

    def test_case_filters(self, staffed: Store) -> None:
        a = _refer(staffed, "P-a")
        b = _engage(staffed, _refer(staffed, "P-b").id)
        assert [c.id for c in staffed.cases(CaseFilter(state="referred"))] == [a.id]
        assert [c.id for c in staffed.cases(CaseFilter(state=b.state))] == [b.id]
        assert [c.id for c in staffed.cases(CaseFilter(participant_id="P-b"))] == [b.id]
        assert len(list(staffed.cases(CaseFilter(coach="sam", status=Status.ACTIVE)))) == 2
        assert list(staffed.cases(CaseFilter(coach="kim"))) == []
        due = list(staffed.cases(CaseFilter(due_by=NOW.date() + dt.timedelta(days=30))))
        assert {c.id for c in due} == {a.id, b.id}

    def test_batch_keeps_its_commands_and_a_refused_command_undoes_only_itself(
        self, staffed: Store
    ) -> None:
        # That it commits once is observed per store (test_sqlite_store counts the COMMITs).
        with staffed.batch():
            first = _refer(staffed, "P-1")
            with pytest.raises(se_flow.TriggerNotAvailable):
                _engage(staffed, _engage(staffed, first.id).id)
            _refer(staffed, "P-2")
        assert len(list(staffed.cases(CaseFilter()))) == 2
        assert verify_chain(staffed.event_rows()).ok

    def test_batch_left_by_an_exception_writes_nothing(self, staffed: Store) -> None:
        head = staffed.head()
        with pytest.raises(RuntimeError), staffed.batch():
            _refer(staffed)
            raise RuntimeError("stop")
        assert staffed.head() == head
        assert list(staffed.cases(CaseFilter())) == []
