"""The contract every store passes, shipped in the package so a third-party store can run it.

A new store subclasses `StoreContract` in its own tests, provides the `store` fixture (a new,
empty store for each test, released afterwards), and must pass every test here unchanged:

    import pytest
    from se_flow.contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self) -> Iterator[Store]:
            s = MyStore(...)
            yield s
            s.close()

It needs pytest (the `test` extra). Every method of the `se_flow.ports` protocols is exercised
here: SQLite (file and ":memory:"), the in-memory store and PostgreSQL all pass it.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

import se_flow
from se_flow._audit import GENESIS, event_from_row, row_hash, verify_chain, verify_log
from se_flow._engine import Engine, context
from se_flow._loader import load_programmes
from se_flow._memory import KeyInMemory, ScratchStore
from se_flow._model import (
    EVENT_COLUMNS,
    Case,
    DatabaseSettings,
    EventDraft,
    EventKind,
    Participant,
    PersonalDetails,
    Staff,
    Status,
)
from se_flow._seal import DAY, VerificationKey, seal_verifies
from se_flow._standards import OPEN_ROW, DueRow, case_history, project
from se_flow._texts import ERASED, digest
from se_flow.errors import PermissionDenied, TextAlreadyErased, TextNotFound
from se_flow.ports import (
    NOTHING,
    Appended,
    CaseFilter,
    Change,
    LogHead,
    Needs,
    Snapshot,
    Store,
    Tx,
)

__all__ = ["COACH", "NOW", "WORKFLOW", "StoreContract"]

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
WORKFLOW = se_flow.load_workflow()
ENGINE = Engine(WORKFLOW)
COACH = Staff(id="sam", name="Sam", role="coach")
ADMIN = Staff(id="ada", name="Ada", role="admin")


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
            payload={
                "staff_id": staff.id,
                "name": staff.name,
                "role": staff.role.value,
                "active": staff.active,
                **({"login": staff.login} if staff.login is not None else {}),
            },
        )
        return Change(case=None, expected_version=None, event=event, staff=staff)

    store.write(decide)


def _refer(store: Store, pid: str = "P-1", details: PersonalDetails | None = None) -> se_flow.Case:
    def decide(tx: Tx) -> Change:
        return ENGINE.open_case(
            tx.new_case_id(),
            Participant(id=pid, created_at=NOW, details=details),
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
    def decide(tx: Tx) -> Change:
        snap = tx.snapshot(case_id)
        ctx = context(ENGINE, snap, tx.staff("sam"), NOW)
        return ENGINE.fire(snap, ctx, "engage", expected_version=expected)

    case, _ = store.write(decide)
    assert case is not None
    return case


def _paged(store: Store, where: CaseFilter, size: int) -> list[str]:
    """`where`'s case ids read in keyset pages of `size`, each after the last of the one
    before, every page no bigger than `size`."""
    paged: list[str] = []
    after: str | None = None
    while page := [c.id for c in store.cases(attrs.evolve(where, limit=size, after=after))]:
        assert len(page) <= size
        paged += page
        after = page[-1]
    return paged


def _picked(case: Case, where: CaseFilter) -> bool:
    """Whether `where` (its coach, status, open and `entered_before`) picks `case`, as its
    docs say."""
    if where.coach is not None and case.coach != where.coach:
        return False
    if where.status is not None and case.status is not where.status:
        return False
    if (where.open_only or where.entered_before) and case.status is Status.CLOSED:
        return False
    return where.entered_before is None or case.stage_entered_at.date() < where.entered_before


def _same(need: Needs, _case: Case) -> Needs:
    return need


def _note(store: Store, case_id: str, text: str, supersedes: int | None = None) -> int:
    def decide(tx: Tx) -> Change:
        snap = tx.snapshot(case_id)
        return ENGINE.add_record(
            snap,
            "note",
            {"text": text},
            actor=tx.staff("sam"),
            now=NOW,
            effective_at=NOW,
            supersedes=supersedes,
        )

    _, event = store.write(decide)
    return event.seq


def _kept(
    store: Store,
    case_id: str,
    kind: str,
    fields: Mapping[str, Any],
    at: dt.datetime,
    supersedes: int | None = None,
) -> int:
    """A record of `kind` effective `at` (recorded now); its seq."""

    def decide(tx: Tx) -> Change:
        return ENGINE.add_record(
            tx.snapshot(case_id),
            kind,
            fields,
            actor=tx.staff("sam"),
            now=NOW,
            effective_at=at,
            supersedes=supersedes,
        )

    _, event = store.write(decide)
    return event.seq


def _plain_event(kind: str, workflow_hash: str = WORKFLOW.hash) -> EventDraft:
    return EventDraft(
        case_id=None,
        kind=kind,
        actor="sam",
        role="coach",
        effective_at=NOW,
        recorded_at=NOW,
        workflow_hash=workflow_hash,
    )


def _two_cases(tx: Tx, head: LogHead) -> tuple[ScratchStore, Appended]:
    """Two cases (a referral, a move, a note and its correction, a second referral) made in a
    scratch store continuing the log at `head`, as rows to append."""
    scratch = ScratchStore(WORKFLOW, head, tx)
    case = _refer(scratch, pid="P-10", details=PersonalDetails(name="Cy", contact="01234"))
    _engage(scratch, case.id)
    first = _note(scratch, case.id, "met at the library")
    _note(scratch, case.id, "met at the café", supersedes=first)
    _refer(scratch, pid="P-11", details=PersonalDetails(name="Di"))
    return scratch, scratch.appended()


class StoreContract:
    """Every test gets a new, empty store from the subclass's `store` fixture."""

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

    def test_the_due_projection_follows_each_write_and_equals_its_replay(
        self, staffed: Store
    ) -> None:
        """`due_rows` after each write is what the case's history projects; a write that
        cannot change it (a note) leaves it; one rolled back with its batch takes its rows
        with it; `due_page` finds the open ones by day, coach and limit."""

        def replay(case_id: str) -> list[DueRow]:
            case = staffed.case(case_id)
            closed = case.closed_at.date() if case.closed_at else None
            events = staffed.events(case_id=case_id)
            history = case_history(case_id, case.coach, closed, events, WORKFLOW)
            return list(project(history, WORKFLOW.standards, WORKFLOW.calendar))

        case = _refer(staffed)
        other = _refer(staffed, "P-2")
        rows = staffed.due_rows(case.id)
        assert {r.standard for r in rows} == {"ipes_acknowledge_referral", "ipes_first_meeting"}
        assert {r.state for r in rows} == {OPEN_ROW}
        assert rows == replay(case.id)
        assert staffed.due_rows("C-404") == []
        _note(staffed, case.id, "called")
        assert staffed.due_rows(case.id) == rows
        with pytest.raises(RuntimeError), staffed.batch():
            _engage(staffed, case.id)
            raise RuntimeError("rolled back")
        assert staffed.due_rows(case.id) == rows
        _engage(staffed, case.id)
        engaged = staffed.due_rows(case.id)
        assert engaged == replay(case.id) and engaged != rows
        assert [r.state for r in engaged if r.standard == "ipes_acknowledge_referral"] == ["met"]
        assert staffed.count_due_rows() == len(engaged) + len(staffed.due_rows(other.id))
        today = NOW.date()
        page = staffed.due_page(None, today, today + dt.timedelta(days=60), None)
        assert page and all(r.coach == "sam" for r in page)
        assert {r.case_id for r in page} == {case.id, other.id}
        assert all(r.state == OPEN_ROW for r in page)
        keys = [(r.due_on, r.case_id, r.n) for r in page]
        assert keys == sorted(keys)
        first = staffed.due_page(None, today, today + dt.timedelta(days=60), 1)
        assert first[0] == page[0]
        tied = [h for h in page if (h.due_on, h.case_id) == (page[0].due_on, page[0].case_id)]
        assert all(h in first for h in tied)
        assert staffed.due_page("kim", today, today + dt.timedelta(days=60), None) == []
        early = staffed.due_page(None, today, today, None)
        assert all(r.due_on is not None and r.due_on <= today for r in early)

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

    def test_event_table_by_case_orders_by_case_number_then_seq(self, staffed: Store) -> None:
        # Eleven cases, engaged in reverse, so seq order, text order (C-10 before C-2) and
        # case-number order all differ.
        cases = [_refer(staffed, f"P-{n}") for n in range(11)]
        for case in reversed(cases):
            _engage(staffed, case.id)
        rows = list(staffed.event_table(by_case=True))
        seq, case_id, kind = (
            EVENT_COLUMNS.index("seq"),
            EVENT_COLUMNS.index("case_id"),
            EVENT_COLUMNS.index("kind"),
        )
        assert [(r[case_id], r[kind]) for r in rows] == [
            (c.id, k) for c in cases for k in ("referral", "transition")
        ]
        assert all(a[seq] < b[seq] for a, b in itertools.pairwise(rows) if a[case_id] == b[case_id])
        # The staff event (of no case) is left out; filters apply as without by_case.
        assert len(rows) == len(list(staffed.event_table())) - 1
        picked = staffed.event_table(
            cases=CaseFilter(coach="sam"), kinds=("transition",), by_case=True
        )
        assert [r[case_id] for r in picked] == [c.id for c in cases]
        one = staffed.event_table(case_id=cases[10].id, by_case=True)
        assert [r[kind] for r in one] == ["referral", "transition"]

    def test_event_table_by_case_carries_the_case_columns_asked_for(self, staffed: Store) -> None:
        """What the stage histories write of a case, in the one scan of its events."""
        first = _refer(staffed, "P-a")
        second = _engage(staffed, _refer(staffed, "P-b").id)
        rows = list(
            staffed.event_table(
                by_case=True,
                columns=("case_id", "kind"),
                case_columns=("participant_id", "episode", "state", "status", "coach"),
            )
        )
        assert rows == [
            ("P-a", 1, "referred", "active", "sam", first.id, "referral"),
            ("P-b", 1, second.state, "active", "sam", second.id, "referral"),
            ("P-b", 1, second.state, "active", "sam", second.id, "transition"),
        ]
        with pytest.raises(ValueError, match="not case columns"):
            list(staffed.event_table(by_case=True, case_columns=("id; DROP TABLE cases",)))
        with pytest.raises(ValueError, match="by_case"):
            list(staffed.event_table(case_columns=("participant_id",)))

    def test_case_readings_give_every_case_its_events_and_records_in_case_order(
        self, staffed: Store
    ) -> None:
        # Eleven cases engaged in reverse (seq, text and number order differ); C-2 has a
        # note and its correction, C-3 passes to kim.
        _add_staff(staffed, Staff(id="kim", name="Kim", role="coach"))
        cases = [_refer(staffed, f"P-{n}") for n in range(11)]
        for case in reversed(cases):
            _engage(staffed, case.id)
        first = _note(staffed, cases[1].id, "met at the library")
        fixed = _note(staffed, cases[1].id, "met at the job centre", supersedes=first)

        def assign(tx: Tx) -> Change:
            return ENGINE.assign(
                tx.snapshot(cases[2].id), "kim", actor=tx.staff("sam"), now=NOW, reason=None
            )

        staffed.write(assign)
        readings = list(staffed.case_readings())
        assert [r.case for r in readings] == [staffed.case(c.id) for c in cases]
        assert readings[2].case.coach == "kim"
        for r in readings:
            assert [e.seq for e in r.events] == sorted(e.seq for e in r.events)
            assert [(e.kind, e.trigger, e.to_state) for e in r.events][:2] == [
                ("referral", "referral", WORKFLOW.initial),
                ("transition", "engage", "customer_engagement"),
            ]
            assert r.events[0].coach == "sam" and r.events[1].coach is None
            assert r.events[0].effective_at == NOW and r.events[0].actor == "sam"
        (handed,) = readings[2].events[2:]
        assert (handed.kind, handed.coach) == ("assign", "kim")
        # Records are the records table's, superseded ones too, their free texts left out.
        assert [(x.kind, x.seq, x.supersedes) for x in readings[1].records] == [
            ("referral", readings[1].events[0].seq, None),
            ("note", first, None),
            ("note", fixed, first),
        ]
        assert all("text" not in x.fields for x in readings[1].records)
        assert readings[1].records[0]["source"] == "GP"
        # `kinds` keeps only those records; the events stay.
        notes = list(staffed.case_readings({"note"}))
        assert [[x.seq for x in r.records] for r in notes[:3]] == [[], [first, fixed], []]
        assert [r.events for r in notes] == [r.events for r in readings]
        assert [r.records for r in staffed.case_readings(set())][:2] == [(), ()]
        with staffed.read_snapshot():
            twice = [list(staffed.case_readings()) for _ in range(2)]
        assert twice == [readings, readings]

    def test_snapshot_holds_current_records_and_marks(self, staffed: Store) -> None:
        case = _engage(staffed, _refer(staffed).id)
        snap = staffed.read().snapshot(case.id)
        assert snap.case == case
        assert [r.kind for r in snap.records] == ["referral"]
        assert set(snap.marks) == {"referral", "engage"}

    def test_snapshot_reads_only_what_the_command_needs(self, staffed: Store) -> None:
        case = _engage(staffed, _refer(staffed).id)
        engaged = list(staffed.events(case_id=case.id))[-1].seq
        wanted = Needs(kinds=frozenset({"note"}), triggers=frozenset({"engage", "start_job"}))
        snap = staffed.read().snapshot(case.id, lambda c: wanted)
        assert (snap.records, snap.marks) == ((), {"engage": engaged})
        snap = staffed.read().snapshot(case.id, lambda c: NOTHING)
        assert (snap.case, snap.records, snap.marks) == (case, (), {})
        snap = staffed.read().snapshot(case.id, lambda c: Needs(kinds=frozenset({"referral"})))
        assert [r.kind for r in snap.records] == ["referral"]

    def test_snapshot_history_lists_every_event_of_the_triggers_asked_for(
        self, staffed: Store
    ) -> None:
        """What outcomes read: every event of a few triggers on the case, in seq order, inside
        the write that is going on (a batch sees its own events), and nothing else."""
        case = _refer(staffed)
        other = _refer(staffed, "P-2")
        _engage(staffed, case.id)
        _note(staffed, case.id, "a note")
        _engage(staffed, other.id)
        wanted = Needs(kinds=frozenset(), triggers=frozenset(), history=frozenset({"engage"}))
        snap = staffed.read().snapshot(case.id, lambda _case: wanted)
        assert [(e.case_id, e.trigger) for e in snap.history] == [(case.id, "engage")]
        with staffed.batch():
            (programme,) = [p for p in load_programmes() if p.id == "mhep"]

            def enrol(tx: Tx) -> Change:
                return ENGINE.enrol(
                    tx.snapshot(case.id, lambda _case: NOTHING),
                    programme,
                    actor=tx.staff("sam"),
                    now=NOW,
                    effective_at=NOW,
                )

            staffed.write(enrol)
            both = Needs(history=frozenset({"engage", EventKind.ENROL.value}))
            inside = staffed.read().snapshot(case.id, lambda _case: both).history
            assert [e.kind for e in inside] == ["transition", "enrol"]
            assert [e.seq for e in inside] == sorted(e.seq for e in inside)
        assert staffed.read().snapshot(case.id, lambda _case: NOTHING).history == ()

    def test_snapshot_gives_superseded_records_when_asked(self, staffed: Store) -> None:
        case = _refer(staffed)
        first = _note(staffed, case.id, "first")
        second = _note(staffed, case.id, "second", supersedes=first)
        notes = frozenset({"note"})
        current = staffed.read().snapshot(case.id, lambda _case: Needs(kinds=notes))
        every = staffed.read().snapshot(case.id, lambda _case: Needs(kinds=notes, superseded=True))
        assert [r.seq for r in current.records] == [second]
        assert [r.seq for r in every.records] == [first, second]

    # --- what guards read of a long case (Needs.latest, contacts, since_contact, record) ---

    def test_snapshot_reads_the_latest_record_of_a_kind_by_effective_date(
        self, staffed: Store
    ) -> None:
        """Only the latest current record of a `latest` kind: a backdated record recorded
        last is not the latest; a corrected one is never it, though effective later."""
        case = _refer(staffed)
        noon = _kept(staffed, case.id, "note", {"text": "noon"}, NOW)
        _kept(staffed, case.id, "note", {"text": "backdated"}, NOW - dt.timedelta(hours=3))
        latest = Needs(kinds=frozenset(), triggers=frozenset(), latest=frozenset({"note"}))
        snap = staffed.read().snapshot(case.id, lambda _case: latest)
        assert [(r.seq, r["text"]) for r in snap.records] == [(noon, "noon")]
        fixed = _kept(
            staffed, case.id, "note", {"text": "fixed"}, NOW - dt.timedelta(hours=5), noon
        )
        snap = staffed.read().snapshot(case.id, lambda _case: latest)
        assert [r["text"] for r in snap.records] == ["backdated"]
        # With the kind read whole too, every current record of it.
        whole = latest | Needs(kinds=frozenset({"note", "nothing_kept"}))
        snap = staffed.read().snapshot(case.id, lambda _case: whole)
        assert [r["text"] for r in snap.records] == ["backdated", "fixed"]
        assert snap.records[1].seq == fixed
        none = Needs(kinds=frozenset(), triggers=frozenset(), latest=frozenset({"consent"}))
        assert staffed.read().snapshot(case.id, lambda _case: none).records == ()

    def test_snapshot_reads_the_last_contact_and_what_came_after(self, staffed: Store) -> None:
        """The outreach guard's read: the latest record of each contact kind, and of the
        `since_contact` kinds only the current records effective after the last contact."""
        case = _refer(staffed)
        at = [NOW - dt.timedelta(hours=h) for h in range(6)]
        before = _kept(staffed, case.id, "outreach_attempt", {"channel": "phone"}, at[5])
        _kept(staffed, case.id, "note", {"text": "old"}, at[4])
        contact = _kept(staffed, case.id, "note", {"text": "met"}, at[3])
        after = _kept(staffed, case.id, "outreach_attempt", {"channel": "text"}, at[2])
        gone = _kept(staffed, case.id, "outreach_attempt", {"channel": "email"}, at[1])
        fixed = _kept(staffed, case.id, "outreach_attempt", {"channel": "visit"}, at[0], gone)
        need = Needs(
            kinds=frozenset(),
            triggers=frozenset(),
            contacts=frozenset({"note", "first_meeting"}),
            since_contact=frozenset({"outreach_attempt"}),
        )
        snap = staffed.read().snapshot(case.id, lambda _case: need)
        assert [r.seq for r in snap.records] == [contact, after, fixed]
        # The referral is a contact too: with no note it is the last contact (NOW).
        other = _refer(staffed, "P-2")
        _kept(staffed, other.id, "outreach_attempt", {"channel": "phone"}, at[1])
        need = attrs.evolve(need, contacts=frozenset({"referral"}))
        snap = staffed.read().snapshot(other.id, lambda _case: need)
        assert [r.kind for r in snap.records] == ["referral"]
        no_contact = attrs.evolve(need, contacts=frozenset())
        snap = staffed.read().snapshot(other.id, lambda _case: no_contact)
        assert [r["channel"] for r in snap.records] == ["phone"]
        # Without the note kinds as contacts on the first case, every current attempt.
        snap = staffed.read().snapshot(case.id, lambda _case: no_contact)
        assert [r.seq for r in snap.records] == [before, after, fixed]

    def test_snapshot_reads_the_record_a_correction_names(self, staffed: Store) -> None:
        case = _refer(staffed)
        other = _refer(staffed, "P-2")
        first = _note(staffed, case.id, "first")
        second = _note(staffed, case.id, "second", supersedes=first)

        def picked(case_id: str, seq: int) -> list[int]:
            need = Needs(kinds=frozenset(), triggers=frozenset(), record=seq)
            return [r.seq for r in staffed.read().snapshot(case_id, lambda _c: need).records]

        assert picked(case.id, second) == [second]
        # Superseded, another case's, or no record at all: none.
        assert picked(case.id, first) == []
        assert picked(other.id, second) == []
        assert picked(case.id, second + 100) == []

    def test_snapshot_takes_needs_known_before_the_case(self, staffed: Store) -> None:
        """`needs` given as a value, not a function of the case, reads the same snapshot (its
        marks, of triggers there and not, and its records picked several ways at once, with
        their texts)."""
        case = _engage(staffed, _refer(staffed).id)
        first = _note(staffed, case.id, "first")
        second = _note(staffed, case.id, "second", supersedes=first)
        _kept(staffed, case.id, "outreach_attempt", {"channel": "phone"}, NOW)
        engaged = max(e.seq for e in staffed.events(case_id=case.id) if e.trigger == "engage")
        for need in (
            NOTHING,
            Needs(),
            Needs(kinds=frozenset(), triggers=frozenset({"engage", "start_job", "referral"})),
            Needs(
                kinds=frozenset({"referral"}),
                triggers=frozenset({"engage"}),
                latest=frozenset({"note", "outreach_attempt", "consent"}),
                record=first,
            ),
            Needs(kinds=frozenset(), latest=frozenset({"outreach_attempt"}), record=second),
            Needs(kinds=frozenset({"note"}), superseded=True, triggers=frozenset({"end_job"})),
        ):
            given = staffed.read().snapshot(case.id, need)
            assert given == staffed.read().snapshot(case.id, functools.partial(_same, need))
        marks = Needs(kinds=frozenset(), triggers=frozenset({"engage", "start_job"}))
        assert staffed.read().snapshot(case.id, marks).marks == {"engage": engaged}
        picked = Needs(
            kinds=frozenset(), latest=frozenset({"note", "outreach_attempt"}), record=second
        )
        snap = staffed.read().snapshot(case.id, picked)
        assert [(r.kind, r.get("text")) for r in snap.records] == [
            ("note", "second"),
            ("outreach_attempt", None),
        ]
        with pytest.raises(se_flow.CaseNotFound):
            staffed.read().snapshot("C-404", marks)

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

    def test_open_cases_are_picked_and_limited_by_the_store(self, staffed: Store) -> None:
        closed = _refer(staffed, "P-gone")

        def withdraw(tx: Tx) -> Change:
            snap = tx.snapshot(closed.id)
            ctx = context(ENGINE, snap, tx.staff("sam"), NOW, reason="moved on")
            return ENGINE.fire(snap, ctx, "withdraw")

        staffed.write(withdraw)
        kept = [_refer(staffed, f"P-{n}").id for n in range(3)]
        picked = staffed.cases(CaseFilter(open_only=True, limit=2))
        assert [c.id for c in picked] == kept[:2]
        assert [c.id for c in staffed.cases(CaseFilter(status=Status.CLOSED))] == [closed.id]

    def test_cases_by_id_prefix_come_in_id_order_and_limited(self, staffed: Store) -> None:
        ids = [_refer(staffed, f"P-{n}").id for n in range(12)]
        assert ids[0] == "C-1" and ids[-1] == "C-12"
        by_prefix = [c.id for c in staffed.cases(CaseFilter(id_prefix="C-1"))]
        assert by_prefix == ["C-1", "C-10", "C-11", "C-12"]
        assert [c.id for c in staffed.cases(CaseFilter(id_prefix="C-1", limit=2))] == [
            "C-1",
            "C-10",
        ]
        assert [c.id for c in staffed.cases(CaseFilter(id_prefix=""))] == sorted(ids)
        assert [c.id for c in staffed.cases(CaseFilter(id_prefix="C-12"))] == ["C-12"]
        assert list(staffed.cases(CaseFilter(id_prefix="C-13"))) == []
        assert list(staffed.cases(CaseFilter(id_prefix="c-1"))) == []
        assert list(staffed.cases(CaseFilter(id_prefix="C-1%"))) == []  # no wildcard
        assert [
            c.id for c in staffed.cases(CaseFilter(id_prefix="C-1", coach="sam", open_only=True))
        ] == by_prefix
        assert list(staffed.cases(CaseFilter(id_prefix="C-1", coach="kim"))) == []

    def test_keyset_pages_give_every_case_exactly_once_in_order(self, staffed: Store) -> None:
        ids = [_refer(staffed, f"P-{n}").id for n in range(7)]
        _engage(staffed, ids[2])
        closed = ids[4]

        def withdraw(tx: Tx) -> Change:
            snap = tx.snapshot(closed)
            ctx = context(ENGINE, snap, tx.staff("sam"), NOW, reason="moved on")
            return ENGINE.fire(snap, ctx, "withdraw")

        staffed.write(withdraw)
        due_by = NOW.date() + dt.timedelta(days=60)
        for where in (
            CaseFilter(),
            CaseFilter(open_only=True),
            CaseFilter(due_by=due_by),
            CaseFilter(coach="sam", due_by=due_by),
            CaseFilter(state="referred"),
        ):
            whole = [c.id for c in staffed.cases(where)]
            assert whole, where
            for size in (1, 2, 3):
                assert _paged(staffed, where, size) == whole, (where, size)
        assert list(staffed.cases(CaseFilter(after="C-999"))) == []

    def test_sorted_reads_come_in_each_sort_s_order_and_page_without_a_gap(
        self, staffed: Store
    ) -> None:
        """Every `CASE_SORTS` order, as its words say it (ties by case number), read whole
        and in keyset pages of every size, with and without filters, and `entered_before`."""
        ids = []
        for n in range(9):
            at = NOW - dt.timedelta(days=(n * 5) % 7, hours=n)

            def refer(tx: Tx, n: int = n, at: dt.datetime = at) -> Change:
                return ENGINE.open_case(
                    tx.new_case_id(),
                    Participant(id=f"P-{n}", created_at=at),
                    {"source": "GP"},
                    actor=tx.staff("sam"),
                    now=NOW,
                    effective_at=at,
                    coach=None if n % 3 == 0 else "sam",
                )

            case, _ = staffed.write(refer)
            assert case is not None
            ids.append(case.id)
        for n in (1, 4, 7):
            _engage(staffed, ids[n])
        _kept(staffed, ids[5], "review", {"summary": "met"}, NOW - dt.timedelta(hours=1))
        # Of every status: a sorted read of all of them merges each status's own range.
        for n, trigger in ((2, "pause"), (4, "pause"), (3, "withdraw"), (8, "withdraw")):

            def move(tx: Tx, case_id: str = ids[n], trigger: str = trigger) -> Change:
                snap = tx.snapshot(case_id)
                until = NOW.date() + dt.timedelta(days=20)
                ctx = context(ENGINE, snap, tx.staff("sam"), NOW, reason="away", review_date=until)
                return ENGINE.fire(snap, ctx, trigger)

            staffed.write(move)
        cases = {c.id: c for c in staffed.cases(CaseFilter())}
        assert {c.coach for c in cases.values()} == {None, "sam"}
        assert len({c.state for c in cases.values()}) >= 2
        assert {c.status for c in cases.values()} == set(Status)

        def num(c: Case) -> int:
            return int(c.id.split("-")[1])

        order = {s: i for i, group in enumerate(WORKFLOW.stage_groups) for s in group}
        spoken: dict[str, Any] = {
            "days": lambda c: (c.stage_entered_at, num(c)),
            "due": lambda c: (c.review_due is None, c.review_due or dt.date.min, num(c)),
            "seen": lambda c: (c.last_contact_at is not None, c.last_contact_at or NOW, num(c)),
            "coach": lambda c: (c.coach is None, c.coach or "", num(c)),
            "stage": lambda c: (order[c.state], c.phase is not None, c.phase or "", num(c)),
        }
        assert set(spoken) == set(se_flow.ports.CASE_SORTS)
        for sort, key in spoken.items():
            for where in (
                CaseFilter(sort=sort),
                CaseFilter(sort=sort, open_only=True),
                CaseFilter(sort=sort, coach="sam"),
                CaseFilter(sort=sort, entered_before=NOW.date() - dt.timedelta(days=2)),
                *(CaseFilter(sort=sort, status=status) for status in Status),
                CaseFilter(sort=sort, status=Status.CLOSED, coach="sam"),
            ):
                whole = [c.id for c in staffed.cases(where)]
                picked = [c for c in cases.values() if _picked(c, where)]
                assert whole == [c.id for c in sorted(picked, key=key)], where
                assert whole, where
                for size in (1, 2, 4):
                    assert _paged(staffed, where, size) == whole, (where, size)

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

    # --- case reads ------------------------------------------------------------------------

    def test_records_keep_corrections_beside_what_they_correct(self, staffed: Store) -> None:
        case = _refer(staffed)
        first = _note(staffed, case.id, "met at the library")
        fixed = _note(staffed, case.id, "met at the job centre", supersedes=first)
        records = staffed.records(case.id)
        assert [(r.kind, r.seq, r.supersedes) for r in records] == [
            ("referral", 1 + 1, None),
            ("note", first, None),
            ("note", fixed, first),
        ]
        assert records[2].fields["text"] == "met at the job centre"
        current = staffed.read().snapshot(case.id).records
        assert [r.seq for r in current] == [records[0].seq, fixed]
        with pytest.raises(se_flow.CaseNotFound):
            staffed.records("C-404")

    def test_latest_records_read_back_from_the_newest_past_corrections(
        self, staffed: Store
    ) -> None:
        case = _refer(staffed)
        other = _refer(staffed, "P-2")
        notes = [_note(staffed, case.id, f"note {n}") for n in range(6)]
        _note(staffed, other.id, "another case's")
        fixed = _note(staffed, case.id, "note 4, corrected", supersedes=notes[4])
        fixed_again = _note(staffed, case.id, "note 1, corrected", supersedes=notes[1])
        seqs = [r.seq for r in staffed.latest_records(case.id, 3)]
        assert seqs == [notes[5], fixed, fixed_again]
        # Past a page's worth of corrected records, still the last so many current ones.
        current = [r.seq for r in staffed.latest_records(case.id, 100)]
        referral = staffed.records(case.id)[0].seq
        assert current == [referral, notes[0], notes[2], notes[3], notes[5], fixed, fixed_again]
        assert [r.seq for r in staffed.latest_records(case.id, 6)] == current[1:]
        every = staffed.latest_records(case.id, 3, include_superseded=True)
        assert [r.seq for r in every] == [notes[5], fixed, fixed_again]
        assert every == staffed.records(case.id)[-3:]
        assert staffed.latest_records(case.id, 100, include_superseded=True) == staffed.records(
            case.id
        )
        with pytest.raises(se_flow.CaseNotFound):
            staffed.latest_records("C-404", 3)

    def test_case_numbers_are_dense_and_counted(self, staffed: Store) -> None:
        assert staffed.count_cases() == 0
        assert staffed.read().new_case_id() == "C-1"
        ids = [_refer(staffed, f"P-{n}").id for n in range(3)]
        assert ids == ["C-1", "C-2", "C-3"]
        assert staffed.count_cases() == 3
        assert staffed.read().new_case_id() == "C-4"
        assert [c.id for c in staffed.cases(CaseFilter(limit=2))] == ["C-1", "C-2"]

    def test_staff_are_listed_by_id_and_changed_in_place(self, store: Store) -> None:
        assert not store.read().has_staff()
        _add_staff(store, Staff(id="zoe", name="Zoe", role="coach"))
        _add_staff(store, COACH)
        _add_staff(store, Staff(id="zoe", name="Zoe Lead", role="team_leader"))
        assert store.read().has_staff()
        assert [(s.id, s.name, s.role.value) for s in store.list_staff()] == [
            ("sam", "Sam", "coach"),
            ("zoe", "Zoe Lead", "team_leader"),
        ]
        assert store.read().staff("zoe").role is se_flow.Role.TEAM_LEADER

    def test_personal_details_are_kept_apart_and_can_be_erased(self, staffed: Store) -> None:
        case = _refer(staffed, "P-7", PersonalDetails(name="Alex Doe", contact="07700 900123"))
        participant = staffed.read().participant("P-7")
        assert participant is not None and participant.details is None  # never from the Tx
        details = staffed.personal_details("P-7")
        assert details is not None and (details.name, details.contact) == (
            "Alex Doe",
            "07700 900123",
        )

        def erase(tx: Tx) -> Change:
            event = EventDraft(
                case_id=None,
                kind=EventKind.ERASURE,
                actor="sam",
                role="admin",
                effective_at=NOW,
                recorded_at=NOW,
                workflow_hash=WORKFLOW.hash,
                reason="asked to",
                payload={"participant_id": "P-7"},
            )
            return Change(
                case=None, expected_version=None, event=event, erase_personal_data_of="P-7"
            )

        other = PersonalDetails(name="Bo Lind", date_of_birth=dt.date(1990, 5, 1))
        _refer(staffed, "P-8", other)
        assert staffed.names_of(["P-7", "P-8", "P-404", "P-7"]) == {
            "P-7": "Alex Doe",
            "P-8": "Bo Lind",
        }
        assert staffed.names_of([]) == {}
        assert [(pid, d.name, d.date_of_birth) for pid, d in staffed.people()] == [
            ("P-7", "Alex Doe", None),
            ("P-8", "Bo Lind", dt.date(1990, 5, 1)),
        ]
        staffed.write(erase)
        assert staffed.names_of(["P-7", "P-8"]) == {"P-8": "Bo Lind"}
        assert [pid for pid, _ in staffed.people()] == ["P-8"]
        assert staffed.personal_details("P-7") is None
        assert staffed.read().participant("P-7") is not None
        assert staffed.case(case.id).participant_id == "P-7"
        assert staffed.read().participant("P-404") is None

    # --- free texts kept apart (`_texts`) ----------------------------------------------------

    def _erase(self, store: Store, seq: int, slot: str, by: Staff = ADMIN) -> int:
        def decide(tx: Tx) -> Change:
            return ENGINE.erase_text(
                seq, slot, tx.text_slots(seq), by=by, reason="asked to", now=NOW
            )

        _, event = store.write(decide)
        return event.seq

    def test_free_texts_are_kept_apart_and_read_back(self, staffed: Store) -> None:
        case = _refer(staffed)
        seq = _note(staffed, case.id, "lives with sister Jane Doe, 12 High St")
        (row,) = [r for r in staffed.event_rows() if r["seq"] == seq]
        assert "Jane Doe" not in str(row)  # not in the hashed row...
        (kept,) = [t for t in staffed.text_rows() if t.seq == seq]
        assert kept.slot == "record.text" and kept.salt is not None
        # ...which holds its salted hash.
        held = event_from_row(row).texts
        assert held == {"record.text": digest(bytes.fromhex(kept.salt), kept.text or "")}
        assert list(staffed.events(case_id=case.id))[-1].payload["record"]["fields"] == {
            "text": "lives with sister Jane Doe, 12 High St"
        }
        assert staffed.records(case.id)[-1]["text"] == "lives with sister Jane Doe, 12 High St"
        snap = staffed.read().snapshot(case.id)
        assert snap.records[-1]["text"] == "lives with sister Jane Doe, 12 High St"
        # The paged reads of `show` and `history` put the text back too.
        assert staffed.latest_records(case.id, 1)[-1]["text"] == kept.text
        (last,) = staffed.case_events(case.id, 1)
        assert last.payload["record"]["fields"] == {"text": kept.text}
        assert staffed.texts_of([seq]) == {seq: {"record.text": kept.text}}
        assert staffed.read().text_slots(seq) == {"record.text": True}
        assert staffed.read().text_slots(999) is None
        result = verify_log(staffed, WORKFLOW)
        assert result.ok and result.texts is not None and "1 present" in result.texts

    def test_an_erased_text_leaves_the_chain_whole(self, staffed: Store) -> None:
        case = _refer(staffed)
        seq = _note(staffed, case.id, "private words")
        erasure = self._erase(staffed, seq, "record.text")
        assert staffed.records(case.id)[-1]["text"] == ERASED
        assert list(staffed.events(case_id=case.id))[-1].payload["record"]["fields"] == {
            "text": ERASED
        }
        (kept,) = [t for t in staffed.text_rows() if t.seq == seq]
        assert (kept.salt, kept.text) == (None, None)
        (event,) = [e for e in staffed.events() if e.seq == erasure]
        assert event.payload["texts"] == [[seq, "record.text"]]
        assert "private" not in str(event.payload)
        result = verify_log(staffed, WORKFLOW)
        assert result.ok, result.problem
        assert result.erased_texts == 1 and "1 erased" in (result.texts or "")

    def test_erasing_a_missing_or_erased_text_or_as_a_coach_writes_nothing(
        self, staffed: Store
    ) -> None:
        case = _refer(staffed)
        seq = _note(staffed, case.id, "words")
        head = staffed.head()
        with pytest.raises(PermissionDenied):
            self._erase(staffed, seq, "record.text", by=COACH)
        with pytest.raises(TextNotFound, match="no such event"):
            self._erase(staffed, 999, "record.text")
        with pytest.raises(TextNotFound, match=r"record\.text"):
            self._erase(staffed, seq, "reason")
        assert staffed.head() == head
        self._erase(staffed, seq, "record.text")
        head = staffed.head()
        with pytest.raises(TextAlreadyErased):
            self._erase(staffed, seq, "record.text")
        assert staffed.head() == head

    def test_a_participants_texts_are_found_for_erasure(self, staffed: Store) -> None:
        mine = _refer(staffed, "P-1")
        other = _refer(staffed, "P-2")
        a = _note(staffed, mine.id, "about P-1")
        _note(staffed, other.id, "about P-2")
        assert staffed.read().participant_texts("P-1") == [(a, "record.text")]

        def erase(tx: Tx) -> Change:
            return ENGINE.erase_personal_data(
                "P-1",
                tx.participant("P-1"),
                by=ADMIN,
                reason="asked to",
                now=NOW,
                texts=tx.participant_texts("P-1"),
            )

        staffed.write(erase)
        assert staffed.read().participant_texts("P-1") == []
        assert staffed.records(mine.id)[-1]["text"] == ERASED
        assert staffed.records(other.id)[-1]["text"] == "about P-2"
        assert verify_log(staffed, WORKFLOW).erased_texts == 1

    def test_a_grant_of_texts_is_read_from_the_log(self, staffed: Store) -> None:
        auditor = Staff(id="aud", name="Aud", role="auditor")
        _add_staff(staffed, auditor)
        assert not staffed.read().text_granted("aud")
        for granted in (True, False, True):

            def grant(tx: Tx, granted: bool = granted) -> Change:
                return ENGINE.grant_texts(
                    auditor,
                    granted,
                    tx.text_granted("aud"),
                    by=ADMIN,
                    reason="audit",
                    now=NOW,
                )

            staffed.write(grant)
            assert staffed.read().text_granted("aud") is granted

    # --- log reads -------------------------------------------------------------------------

    def test_events_read_by_case_and_after_a_seq(self, staffed: Store) -> None:
        a = _refer(staffed, "P-a")
        b = _refer(staffed, "P-b")
        _engage(staffed, a.id)
        _engage(staffed, b.id)
        every = list(staffed.events())
        assert [e.seq for e in every] == list(range(1, 6))
        assert [e.seq for e in staffed.events(case_id=a.id)] == [2, 4]
        assert [e.seq for e in staffed.events(after_seq=3)] == [4, 5]
        assert [(e.case_id, e.seq) for e in staffed.events_by_case()] == [
            (a.id, 2),
            (a.id, 4),
            (b.id, 3),
            (b.id, 5),
        ]
        assert every[-1] == list(staffed.events(case_id=b.id))[-1]

    def test_a_case_s_events_are_paged_from_the_newest_back(self, staffed: Store) -> None:
        a = _refer(staffed, "P-a")
        b = _refer(staffed, "P-b")
        _engage(staffed, a.id)
        notes = [_note(staffed, a.id, f"note {n}") for n in range(4)]
        _engage(staffed, b.id)
        every = list(staffed.events(case_id=a.id))
        assert staffed.case_events(a.id, 100) == every
        assert staffed.case_events(a.id, 2) == every[-2:]
        assert [e.seq for e in staffed.case_events(a.id, 2, before_seq=notes[2])] == notes[:2]
        assert staffed.case_events(a.id, 100, before_seq=notes[0]) == every[:2]
        assert staffed.case_events(a.id, 3, before_seq=every[0].seq) == []
        assert staffed.case_events("C-404", 3) == []
        assert staffed.count_case_events(a.id, notes[2]) == 4
        assert staffed.count_case_events(a.id, every[-1].seq + 100) == len(every)
        assert staffed.count_case_events(b.id, every[0].seq) == 0

    def test_record_rows_are_the_records_as_kept(self, staffed: Store) -> None:
        case = _refer(staffed)
        seq = _note(staffed, case.id, "hello")
        rows = list(staffed.record_rows())
        assert [(r.seq, r.kind) for r in rows] == [(2, "referral"), (seq, "note")]
        # The note's text is a free text: kept apart (`texts`), not in the record's row.
        assert rows[1].fields == {}
        assert rows[1].case_id == case.id and rows[1].actor == "sam"
        assert rows[1].effective_at == NOW.isoformat() and rows[1].supersedes is None

    def test_the_log_keeps_one_workflow_until_moved_on_purpose(self, staffed: Store) -> None:
        assert staffed.head_workflow_hash() == WORKFLOW.hash
        head = staffed.head()

        def other(tx: Tx) -> Change:
            return Change(None, None, _plain_event(EventKind.EXPORT, "f" * 64))

        with pytest.raises(se_flow.WorkflowMismatch):
            staffed.write(other)
        assert staffed.head() == head

        def moved(tx: Tx) -> Change:
            return Change(None, None, _plain_event(EventKind.WORKFLOW, "f" * 64))

        staffed.write(moved)
        assert staffed.head_workflow_hash() == "f" * 64

    def test_store_id_is_fixed(self, staffed: Store) -> None:
        before = staffed.store_id()
        _refer(staffed)
        assert staffed.store_id() == before and len(before) >= 16

    def test_event_table_filters_and_json_rows(self, staffed: Store) -> None:
        import json

        from se_flow._model import EVENT_COLUMNS

        a = _engage(staffed, _refer(staffed, "P-a").id)
        b = _refer(staffed, "P-b")
        rows = list(staffed.event_table())
        assert [r[0] for r in rows] == [1, 2, 3, 4]
        assert [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows] == list(
            staffed.event_rows()
        )
        as_json = [json.loads(text) for (text,) in staffed.event_table(as_json=True)]
        assert as_json == list(staffed.event_rows())
        assert list(as_json[0]) == list(EVENT_COLUMNS)
        assert [r[0] for r in staffed.event_table(case_id=a.id)] == [2, 3]
        assert [r[0] for r in staffed.event_table(kinds=("referral",))] == [2, 4]
        assert [r[0] for r in staffed.event_table(cases=CaseFilter(state=b.state))] == [4]
        assert [r[0] for r in staffed.event_table(cases=CaseFilter())] == [2, 3, 4]
        later = NOW + dt.timedelta(seconds=1)
        assert list(staffed.event_table(since=later)) == []
        assert [r[0] for r in staffed.event_table(before=later)] == [1, 2, 3, 4]

    def test_reads_inside_one_snapshot(self, staffed: Store) -> None:
        case = _refer(staffed)
        with staffed.read_snapshot():
            assert staffed.case(case.id) == case
            assert staffed.head()[0] == len(list(staffed.event_rows()))
        with staffed.batch():
            _engage(staffed, case.id)
            with staffed.read_snapshot():  # a no-op inside a batch: it already is one view
                assert staffed.case(case.id).version == 2
        assert staffed.case(case.id).version == 2

    def test_exposure_is_words_or_none(self, store: Store) -> None:
        said = store.exposure()
        assert said is None or (isinstance(said, str) and said)

    # --- insiders (issue 15): seals, settings and logins on every store -------------------

    def test_a_sealing_store_seals_every_event_and_verify_checks_them(self, store: Store) -> None:
        if getattr(store, "seal_keys", None) is None:
            # A store keeps its `SealKeys` in `seal_keys`; a test with no key file holds the key
            # in memory.
            store.seal_keys = KeyInMemory()  # type: ignore[attr-defined]
        assert store.sealing() is None
        key = store.start_sealing(NOW, DAY)
        with pytest.raises(se_flow.InvalidInput, match="already seals"):
            store.start_sealing(NOW, DAY)
        assert key.start_seq == 1
        _add_staff(store, COACH)
        case = _refer(store)
        _engage(store, case.id)
        seals = list(store.seal_rows())
        head_seq, head_hash = store.head()
        assert [s.seq for s in seals] == [1, 2, 3] and head_seq == 3
        assert store.seal_of(head_seq) == seals[-1]
        assert seal_verifies(key, seals[-1], head_hash)
        assert verify_log(store, WORKFLOW, None, key).ok
        other = VerificationKey(b"\0" * 32, 1, key.start_epoch, DAY)
        assert not verify_log(store, WORKFLOW, None, other).ok

    def test_settings_and_login_bindings_are_kept_with_their_event(self, store: Store) -> None:
        assert store.read().settings() == DatabaseSettings()
        _add_staff(store, attrs.evolve(COACH, login="sam"))
        assert store.read().staff("sam").login == "sam"
        assert store.list_staff()[0].login == "sam"
        wanted = DatabaseSettings(shared_terminal=True, checkpoint_file="/x", checkpoint_every=5)
        by = Staff(id="sam", name="Sam", role="admin")

        def decide(tx: Tx) -> Change:
            return ENGINE.change_settings(tx.settings(), wanted, by=by, now=NOW)

        store.write(decide)
        assert store.read().settings() == wanted
        assert verify_log(store, WORKFLOW).ok

    # --- command ids: a retry appends nothing twice (issue 16) ---------------------------

    def test_a_second_event_under_one_command_id_is_refused(self, staffed: Store) -> None:
        draft = attrs.evolve(_plain_event("export"), command_id="cmd-1", command_hash="a" * 64)

        def decide(tx: Tx) -> Change:
            return Change(case=None, expected_version=None, event=draft)

        assert staffed.read().command("cmd-1") is None
        _, first = staffed.write(decide)
        assert first.command_id == "cmd-1"
        assert staffed.read().command("cmd-1") == first
        assert staffed.read().logged(["cmd-0", "cmd-1", "cmd-2"]) == {"cmd-1": first.seq}
        assert staffed.read().logged([]) == {}
        head = staffed.head()
        with pytest.raises(se_flow.CommandRepeated) as caught:
            staffed.write(decide)
        assert caught.value.command_id == "cmd-1"
        assert staffed.head() == head
        with staffed.batch(), pytest.raises(se_flow.CommandRepeated):
            staffed.write(decide)
        assert staffed.head() == head
        assert verify_chain(staffed.event_rows()).ok
        # An event under no command id hashes as events always did: no command fields in it.
        plain = [r for r in staffed.event_rows() if r["command_id"] is None]
        assert plain and all(
            row_hash({k: v for k, v in r.items() if k not in ("command_id", "command_hash")})
            == r["hash"]
            for r in plain
        )

    def test_a_retried_command_returns_what_the_first_made(self, staffed: Store) -> None:
        flow = se_flow.SEFlow(staffed, WORKFLOW, actor="sam", clock=lambda: NOW)
        referred = flow.refer("Alex", source="GP", command_id="r-1")
        case = referred.case
        assert flow.refer("Alex", source="GP", command_id="r-1") == referred
        moved = flow.advance(case.id, "engage", command_id="a-1")
        noted = flow.record(case.id, "note", text="called", command_id="n-1")
        note = noted.record
        head = staffed.head()
        # The retry after an ambiguous commit: the case has moved on, yet nothing is appended
        # and the answer is what the first attempt made (its case, event and record).
        assert flow.advance(case.id, "engage", command_id="a-1") == moved
        assert flow.record(case.id, "note", text="called", command_id="n-1") == noted
        assert flow.refer("Alex", source="GP", command_id="r-1") == referred
        assert staffed.head() == head
        assert staffed.count_cases() == 1
        # Words alone never make another command (free text is not fingerprinted: it may
        # be erased); any other argument does.
        assert flow.record(case.id, "note", text="other words", command_id="n-1") == noted
        with pytest.raises(se_flow.CommandIdReused) as caught:
            flow.record(case.id, "note", text="called", supersedes=note.seq, command_id="n-1")
        assert caught.value.seq == note.seq
        with pytest.raises(se_flow.CommandIdReused):
            flow.advance(case.id, "engage", command_id="n-1")
        with pytest.raises(se_flow.InvalidInput, match="command id"):
            flow.record(case.id, "note", text="x", command_id="=bad id")
        assert staffed.head() == head
        assert flow.verify().ok

    # --- a whole store copied in (`store copy`, issue 16) ---------------------------------

    def test_a_whole_store_restores_into_an_empty_one(self, store: Store) -> None:
        from se_flow._api import _copy_of

        source = se_flow.MemoryStore(WORKFLOW)
        _add_staff(source, COACH)
        case = _refer(source, details=PersonalDetails(name="Alex", contact="07700 900123"))
        _engage(source, case.id)
        first = _note(source, case.id, "called")
        _note(source, case.id, "called back", supersedes=first)
        other = _refer(source, pid="P-2", details=PersonalDetails(name="Bo"))
        assert store.restore(_copy_of(source)) == len(list(source.event_rows()))
        assert list(store.event_rows()) == list(source.event_rows())
        assert store.head() == source.head()
        assert store.store_id() == source.store_id()
        assert store.case(case.id) == source.case(case.id)
        assert store.case(other.id) == source.case(other.id)
        assert store.records(case.id) == source.records(case.id)
        assert store.list_staff() == source.list_staff()
        assert store.personal_details("P-1") == PersonalDetails(name="Alex", contact="07700 900123")
        assert store.read().participant("P-2") == source.read().participant("P-2")
        assert se_flow.SEFlow(store, WORKFLOW, actor="sam").verify().ok
        # The log goes on from where the source left it.
        _note(store, case.id, "after the copy")
        assert verify_chain(store.event_rows()).ok
        assert store.read().new_case_id() == "C-3"

    def test_a_restore_keeps_the_free_texts_present_and_erased(self, store: Store) -> None:
        from se_flow._api import _copy_of

        source = se_flow.MemoryStore(WORKFLOW)
        _add_staff(source, COACH)
        _add_staff(source, ADMIN)
        case = _refer(source)
        kept = _note(source, case.id, "lives with sister Jane Doe")
        gone = _note(source, case.id, "private words")
        erasure = self._erase(source, gone, "record.text")
        assert store.restore(_copy_of(source)) == erasure
        # Row for row, the tombstone too: the erased words are not there to be copied.
        assert list(store.text_rows()) == list(source.text_rows())
        assert store.texts_of([kept, gone]) == {
            kept: {"record.text": "lives with sister Jane Doe"},
            gone: {"record.text": None},
        }
        notes = [r["text"] for r in store.records(case.id) if r.kind == "note"]
        assert notes == ["lives with sister Jane Doe", ERASED]
        result = verify_log(store, WORKFLOW)
        assert result.ok, result.problem
        assert result.erased_texts == 1
        assert result.texts == verify_log(source, WORKFLOW).texts
        # The copy goes on as the source would: its texts are erased as the source's are.
        self._erase(store, kept, "record.text")
        assert verify_log(store, WORKFLOW).erased_texts == 2

    def test_a_restore_into_a_store_holding_anything_is_refused(self, staffed: Store) -> None:
        from se_flow._api import _copy_of

        source = se_flow.MemoryStore(WORKFLOW)
        _add_staff(source, COACH)
        head = staffed.head()
        with pytest.raises(se_flow.StoreNotEmpty, match="not empty"):
            staffed.restore(_copy_of(source))
        assert staffed.head() == head
        assert staffed.list_staff() == [COACH]

    def test_a_restore_left_by_an_exception_keeps_nothing(self, store: Store) -> None:
        from se_flow._api import _copy_of

        source = se_flow.MemoryStore(WORKFLOW)
        _add_staff(source, COACH)
        _refer(source)
        with pytest.raises(RuntimeError), store.batch():
            store.restore(_copy_of(source))
            raise RuntimeError("the copy did not verify")
        assert store.head() == (0, GENESIS)
        assert store.list_staff() == []
        assert store.count_cases() == 0

    # --- rows appended in bulk (`Writer.append`, an import) ---------------------------------

    def test_rows_appended_in_bulk_chain_on_from_the_head(self, staffed: Store) -> None:
        before = _refer(staffed, details=PersonalDetails(name="Alex"))
        made: list[ScratchStore] = []

        def build(tx: Tx, head: LogHead) -> Appended:
            assert (head.seq, head.hash) == staffed.head()
            assert head.workflow_hash == WORKFLOW.hash and head.next_case == 2
            scratch, rows = _two_cases(tx, head)
            made.append(scratch)
            return rows

        rows = staffed.append(build)
        (scratch,) = made
        assert [r["seq"] for r in rows.events] == [3, 4, 5, 6, 7]
        assert list(staffed.event_rows(after_seq=2)) == list(scratch.event_rows())
        assert staffed.head() == scratch.head()
        for case_id in ("C-2", "C-3"):
            assert staffed.case(case_id) == scratch.case(case_id)
            assert staffed.records(case_id) == scratch.records(case_id)
            assert staffed.due_rows(case_id) == scratch.due_rows(case_id) != []
        assert [r for r in staffed.record_rows() if r.seq > 2] == list(scratch.record_rows())
        assert list(staffed.text_rows()) == list(scratch.text_rows())
        assert staffed.personal_details("P-10") == PersonalDetails(name="Cy", contact="01234")
        assert staffed.read().participant("P-11") is not None
        assert staffed.case(before.id) == before
        assert se_flow.SEFlow(staffed, WORKFLOW, actor="sam").verify().ok
        # The log goes on from where the append left it.
        assert staffed.read().new_case_id() == "C-4"
        _note(staffed, "C-2", "after the import")
        assert verify_chain(staffed.event_rows()).ok

    def test_an_append_that_does_not_fit_the_log_writes_nothing(self, staffed: Store) -> None:
        head = staffed.head()

        def elsewhere(tx: Tx, head: LogHead) -> Appended:
            return _two_cases(tx, attrs.evolve(head, seq=head.seq + 1))[1]

        with pytest.raises(se_flow.InvalidInput, match="does not chain on"):
            staffed.append(elsewhere)

        def stray(tx: Tx, head: LogHead) -> Appended:
            rows = _two_cases(tx, head)[1]
            return attrs.evolve(rows, cases=rows.cases[:1])

        with pytest.raises(se_flow.InvalidInput, match="due rows of case C-2, which is not among"):
            staffed.append(stray)

        def refused(tx: Tx, head: LogHead) -> Appended:
            raise PermissionDenied("no", "sam")

        with pytest.raises(PermissionDenied):
            staffed.append(refused)
        assert staffed.append(lambda tx, head: Appended()) == Appended()
        assert staffed.head() == head and staffed.count_cases() == 0

        def logged(tx: Tx) -> Change:
            change = ENGINE.open_case(
                tx.new_case_id(),
                Participant(id="P-8", created_at=NOW),
                {"source": "GP"},
                actor=tx.staff("sam"),
                now=NOW,
                effective_at=NOW,
                coach="sam",
            )
            return attrs.evolve(change, event=attrs.evolve(change.event, command_id="again"))

        staffed.write(logged)

        def repeated(tx: Tx, head: LogHead) -> Appended:
            # A command id already in the log: the row sealed as a store would seal it.
            scratch = ScratchStore(WORKFLOW, head, tx)
            _refer(scratch, pid="P-9")
            rows = scratch.appended()
            (row,) = rows.events
            named = {**row, "command_id": "again"}
            named["hash"] = row_hash(named)
            return attrs.evolve(rows, events=[named])

        head = staffed.head()
        with pytest.raises(se_flow.CommandRepeated):
            staffed.append(repeated)
        assert staffed.head() == head and staffed.count_cases() == 1

    def test_an_append_inside_a_batch_left_by_an_exception_keeps_nothing(
        self, staffed: Store
    ) -> None:
        head = staffed.head()
        with pytest.raises(RuntimeError), staffed.batch():
            staffed.append(lambda tx, head: _two_cases(tx, head)[1])
            assert staffed.count_cases() == 2
            raise RuntimeError("the import stops")
        assert staffed.head() == head and staffed.count_cases() == 0
        assert list(staffed.text_rows()) == []
        # A refused append inside a batch undoes only itself.
        with staffed.batch():
            _refer(staffed)
            with pytest.raises(se_flow.InvalidInput):
                staffed.append(lambda tx, head: _two_cases(tx, attrs.evolve(head, hash=GENESIS))[1])
        assert staffed.count_cases() == 1
        assert se_flow.SEFlow(staffed, WORKFLOW, actor="sam").verify().ok

    def test_a_sealing_store_seals_every_event_appended(self, store: Store) -> None:
        if getattr(store, "seal_keys", None) is None:
            store.seal_keys = KeyInMemory()  # type: ignore[attr-defined]
        key = store.start_sealing(NOW, DAY)
        _add_staff(store, COACH)
        rows = store.append(lambda tx, head: _two_cases(tx, head)[1])
        seals = list(store.seal_rows())
        assert [s.seq for s in seals] == [1, *(r["seq"] for r in rows.events)]
        assert verify_log(store, WORKFLOW, None, key).ok
