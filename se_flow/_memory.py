"""The in-memory store: the reference implementation of the store ports.

Everything lives in Python objects behind one lock, so it is what a store must do with nothing
else in the way: each write is atomic (every check runs before anything changes), a batch is
undone whole when an exception leaves it, and the log is sealed with the audit module's own
`seal`. Tests and embedding apps that want no file use it; it passes the same contract as the
SQLite store (`se_flow.contract.StoreContract`). Nothing survives the process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import attrs

from ._audit import GENESIS, check_workflow, event_from_row, seal
from ._engine import current
from ._histories import due_open, due_order
from ._import import check_appended
from ._model import (
    EVENT_COLUMNS,
    Case,
    DatabaseSettings,
    Event,
    EventKind,
    Participant,
    PersonalDetails,
    Record,
    Role,
    Staff,
    Status,
)
from ._rows import case_columns as _case_columns
from ._rows import (
    case_runs,
    case_values,
    event_columns,
    guard_records,
    needs_of,
    refuse_if_not_empty,
    restore_order,
    run_key,
    sort_row,
)
from ._seal import (
    SEED_BYTES,
    Sealing,
    SealRow,
    VerificationKey,
    begin_sealing,
    check_epoch_seconds,
    evolve,
    first_key,
    seal_event,
)
from ._standards import (
    Anchored,
    DueRow,
    DueTouch,
    case_history,
    case_number,
    due_touched,
    project,
)
from ._texts import SALT_BYTES, fill_event, fill_record, split_change
from ._workflow import Workflow
from .errors import (
    CaseConflict,
    CaseNotFound,
    CommandRepeated,
    InvalidInput,
    SealKeyUnusable,
    StaffNotFound,
)
from .ports import (
    READING_SKIPS,
    Appended,
    CaseFilter,
    CaseReading,
    Change,
    LogHead,
    Needs,
    RecordRow,
    SealKeys,
    Snapshot,
    StageRow,
    Store,
    StoreCopy,
    TextRow,
    Tx,
)

__all__ = ["MemoryStore", "ScratchStore"]

Undo = Callable[[], object]


def _latest_first(record: Record) -> tuple[dt.datetime, int]:
    return record.effective_at, record.seq


class _MemoryTx(Tx):
    def __init__(self, store: MemoryStore) -> None:
        self._s = store

    def staff(self, staff_id: str) -> Staff:
        found = self._s._staff.get(staff_id)
        if found is None:
            raise StaffNotFound(staff_id)
        return found

    def has_staff(self) -> bool:
        return bool(self._s._staff)

    def settings(self) -> DatabaseSettings:
        return self._s._settings

    def count_active_admins(self) -> int:
        return sum(1 for s in self._s._staff.values() if s.role is Role.ADMIN and s.active)

    def snapshot(
        self, case_id: str, needs: Needs | Callable[[Case], Needs] | None = None
    ) -> Snapshot:
        s = self._s
        case = s._cases.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        need = needs_of(needs, case)
        kinds = need.kinds
        records: tuple[Record, ...] = ()
        if kinds is None or kinds:
            mine = s._records.get(case_id, [])
            # A correction has the kind of what it corrects, so filtering by kind keeps
            # supersession whole.
            picked = [r for r in mine if kinds is None or r.kind in kinds]
            records = tuple(picked) if need.superseded else current(picked)
            records = tuple(s._filled(r) for r in records)
        live: list[Record] = []

        def current_of(kind: str | None = None) -> list[Record]:
            # The case's current records worked out once for all the lookups below: a
            # correction has the kind of what it corrects, so these filtered by kind are
            # the current records of that kind.
            if not live:
                live.extend(self._current_of(case_id))
            return live if kind is None else [r for r in live if r.kind == kind]

        def picks(kinds: Sequence[str], seq: int | None) -> list[Record]:
            found = [max(current_of(kind), key=_latest_first, default=None) for kind in kinds]
            if seq is not None:
                found.append(next((r for r in current_of() if r.seq == seq), None))
            return [r for r in found if r is not None]

        def since(kinds: Sequence[str], at: str | None) -> list[Record]:
            after = dt.datetime.fromisoformat(at) if at is not None else None
            return [
                r
                for kind in kinds
                for r in current_of(kind)
                if after is None or r.effective_at > after
            ]

        records = guard_records(need, records, picks, since)
        marks = s._marks.get(case_id, {})
        if need.triggers is not None:
            marks = {t: seq for t, seq in marks.items() if t in need.triggers}
        history = tuple(e for e in s._case_events.get(case_id, []) if e.trigger in need.history)
        return Snapshot(case=case, records=tuple(records), marks=dict(marks), history=history)

    def _current_of(self, case_id: str) -> list[Record]:
        s = self._s
        return [s._filled(r) for r in current(s._records.get(case_id, []))]

    def new_case_id(self) -> str:
        return f"C-{self._s._next_case + len(self._s._cases)}"

    def participant(self, participant_id: str) -> Participant | None:
        return self._s._participants.get(participant_id)

    def command(self, command_id: str) -> Event | None:
        event = self._s._commands.get(command_id)
        # Kept without its free texts (as the log): given back with them, as any read.
        if event is not None and event.texts:
            return fill_event(event, self._s._texts_for(event.seq))
        return event

    def logged(self, command_ids: Collection[str]) -> dict[str, int]:
        commands = self._s._commands
        return {c: commands[c].seq for c in command_ids if c in commands}

    def text_slots(self, seq: int) -> Mapping[str, bool] | None:
        s = self._s
        if not s._seq0 < seq <= s._seq0 + len(s._events):
            return None
        return {slot: text is not None for slot, text in s._texts_for(seq).items()}

    def participant_texts(self, participant_id: str) -> list[tuple[int, str]]:
        s = self._s
        mine = {c.id for c in s._cases.values() if c.participant_id == participant_id}
        return sorted(
            (seq, slot)
            for (seq, slot), (_, text) in s._texts.items()
            if text is not None and s._events[seq - 1 - s._seq0].case_id in mine
        )

    def text_granted(self, staff_id: str) -> bool:
        for event in reversed(self._s._events):
            if event.kind == EventKind.TEXT_GRANT and event.payload.get("staff_id") == staff_id:
                return bool(event.payload.get("granted"))
        return False


class KeyInMemory(SealKeys):
    """The current sealing key held by the process (the in-memory store's default): evolved
    and the old one dropped as the epochs move on, as the key file does on disk."""

    def __init__(self) -> None:
        self._store_id = ""
        self._epoch = 0
        self._key: bytes | None = None

    def new_seed(self) -> bytes:
        return secrets.token_bytes(SEED_BYTES)

    def create(self, store_id: str, seed: bytes, epoch: int, epoch_seconds: int) -> None:
        if self._key is not None:
            raise SealKeyUnusable("(in memory)", "it already holds a key: not replacing it")
        self._store_id, self._epoch, self._key = store_id, epoch, first_key(seed)

    def discard(self) -> None:
        self._key = None

    def key_for(self, store_id: str, epoch: int, epoch_seconds: int) -> bytes:
        if self._key is None or store_id != self._store_id:
            raise SealKeyUnusable("(in memory)", "it holds no key for this database")
        if epoch < self._epoch:
            raise SealKeyUnusable(
                "(in memory)",
                f"it is at epoch {self._epoch} but this event falls in epoch {epoch}: the "
                "clock went back, and a sealing key cannot go back",
            )
        if epoch > self._epoch:
            self._key, self._epoch = evolve(self._key, epoch - self._epoch), epoch
        return self._key


class MemoryStore(Store):
    """A store in memory. `workflow` decodes record fields for `record_rows`, as SQLite's
    store does. `seal_keys` holds the sealing key once `start_sealing` is called (default: in
    this process's memory)."""

    def __init__(self, workflow: Workflow, *, seal_keys: SealKeys | None = None) -> None:
        self.workflow = workflow
        self.seal_keys: SealKeys = seal_keys if seal_keys is not None else KeyInMemory()
        self._sealing: Sealing | None = None
        self._seals: list[SealRow] = []
        self._settings = DatabaseSettings()
        self._lock = threading.RLock()
        self._id = secrets.token_hex(16)
        self._staff: dict[str, Staff] = {}
        self._participants: dict[str, Participant] = {}
        self._personal: dict[str, PersonalDetails] = {}
        self._cases: dict[str, Case] = {}
        self._rows: list[dict[str, Any]] = []
        self._events: list[Event] = []
        self._records: dict[str, list[Record]] = {}
        self._record_seqs: list[int] = []
        self._marks: dict[str, dict[str, int]] = {}
        self._commands: dict[str, Event] = {}
        # (seq, slot) -> (salt hex, text), both None once erased (`_texts`).
        self._texts: dict[tuple[int, str], tuple[str | None, str | None]] = {}
        self._case_events: dict[str, list[Event]] = {}
        # The due projection (`_standards.project`), by case.
        self._due: dict[str, tuple[DueRow, ...]] = {}
        self._due_touch = DueTouch.of(workflow)
        self._undo: list[Undo] | None = None
        # Where this store's log starts: after event `_seq0`, its first case numbered
        # `_next_case` (a `ScratchStore` continues another store's log).
        self._seq0 = 0
        self._next_case = 1

    # --- writes ------------------------------------------------------------------------

    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        with self._lock:
            change = decide(_MemoryTx(self))
            return change.case, self._apply(change)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            if self._undo is not None:
                yield
                return
            self._undo = []
            try:
                yield
            except BaseException:
                for undo in reversed(self._undo):
                    undo()
                raise
            finally:
                self._undo = None

    def _did(self, undo: Undo) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def _filled(self, record: Record) -> Record:
        """`record` with its texts put back (most events hold none: as kept)."""
        if not self._events[record.seq - 1 - self._seq0].texts:
            return record
        return fill_record(record, self._texts_for(record.seq))

    def _texts_for(self, seq: int) -> dict[str, str | None]:
        return {
            slot: text
            for slot in self._events[seq - 1 - self._seq0].texts
            for _, text in (self._texts.get((seq, slot), (None, None)),)
        }

    def _apply(self, change: Change) -> Event:
        change, texts = split_change(change, self.workflow, lambda: secrets.token_bytes(SALT_BYTES))
        case = change.case
        # Every check first: past this point nothing can fail, so nothing is half-applied.
        if case is not None and change.expected_version is not None:
            stored = self._cases.get(case.id)
            actual = stored.version if stored is not None else -1
            if actual != change.expected_version:
                raise CaseConflict(case.id, change.expected_version, actual)
        check_workflow(self.head_workflow_hash(), change.event)
        command_id = change.event.command_id
        if command_id is not None and command_id in self._commands:
            raise CommandRepeated(command_id)
        seq, prev = self.head()
        event, row = seal(change.event, seq + 1, prev)
        seq += 1
        sealed = None
        if self._sealing is not None:
            keys, own = self.seal_keys, self._id
            # May refuse (the clock behind the key): before anything changed.
            sealed = seal_event(
                self._sealing,
                lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                seq,
                event.hash,
                event.recorded_at,
            )
        record = None
        if change.record is not None and case is not None:
            record = change.record.made(case.id, event)

        self._rows.append(row)
        self._events.append(event)
        self._did(self._rows.pop)
        self._did(self._events.pop)
        if command_id is not None:
            self._put(self._commands, command_id, event)
        if sealed is not None:
            self._seals.append(sealed)
            self._did(self._seals.pop)
        if change.settings is not None:
            old_settings, self._settings = self._settings, change.settings
            self._did(lambda: setattr(self, "_settings", old_settings))
        if change.staff is not None:
            self._put(self._staff, change.staff.id, change.staff)
        if change.participant is not None:
            p = change.participant
            self._put(self._participants, p.id, attrs.evolve(p, details=None))
            if p.details is not None:
                self._put(self._personal, p.id, p.details)
        if change.erase_personal_data_of is not None:
            self._drop(self._personal, change.erase_personal_data_of)
        for t in texts:
            self._put(self._texts, (seq, t.slot), (t.salt.hex(), t.text))
        for key in change.erase_texts:
            self._put(self._texts, key, (None, None))
        if case is not None:
            self._put(self._cases, case.id, case)
            if event.trigger is not None:
                marks = self._marks.setdefault(case.id, {})
                self._put(marks, event.trigger, seq)
            told = self._case_events.setdefault(case.id, [])
            told.append(event)
            self._did(told.pop)
        if record is not None:
            assert case is not None
            mine = self._records.setdefault(case.id, [])
            mine.append(record)
            self._record_seqs.append(seq)
            self._did(mine.pop)
            self._did(self._record_seqs.pop)
        if event.kind == EventKind.WORKFLOW:
            for cid in self._cases:
                self._project_due(cid)
        elif case is not None:
            effect = due_touched(self._due_touch, event.kind, event.trigger, change.record, case)
            if effect is True or (isinstance(effect, Anchored) and self._anchored(case.id, effect)):
                self._project_due(case.id)
        # Kept without its texts (an erased one must not linger here); given back with them.
        return fill_event(event, {t.slot: t.text for t in texts}) if texts else event

    def _anchored(self, case_id: str, anchors: Anchored) -> bool:
        """Whether the case holds any of `anchors` (see `DueTouch`)."""
        if not anchors.triggers.isdisjoint(self._marks.get(case_id, ())):
            return True
        return any(r.kind in anchors.records for r in self._records.get(case_id, ()))

    def _project_due(self, case_id: str) -> None:
        self._put(self._due, case_id, self._due_of(case_id))

    def _due_of(self, case_id: str) -> tuple[DueRow, ...]:
        case = self._cases[case_id]
        history = case_history(
            case_id,
            case.coach,
            case.closed_at.date() if case.closed_at else None,
            self._case_events.get(case_id, ()),
            self.workflow,
        )
        return project(history, self.workflow.standards, self.workflow.calendar)

    def append(self, build: Callable[[Tx, LogHead], Appended]) -> Appended:
        with self._lock:
            seq, prev = self.head()
            head = LogHead(seq, prev, self.head_workflow_hash(), self._next_case + len(self._cases))
            rows = build(_MemoryTx(self), head)
            if not rows.events:
                return rows
            # Every check first: past them nothing can fail, so nothing is half-applied.
            check_appended(head, rows)
            for command_id in (r["command_id"] for r in rows.events if r.get("command_id")):
                if command_id in self._commands:
                    raise CommandRepeated(command_id)
            for case in rows.cases:
                if case.id in self._cases:
                    raise InvalidInput(f"case {case.id} is not new: nothing was written")
            events = [event_from_row(dict(r)) for r in rows.events]
            seals: list[SealRow] = []
            if self._sealing is not None:
                keys, own, sealing = self.seal_keys, self._id, self._sealing
                seals = [
                    seal_event(
                        sealing,
                        lambda epoch, seconds: keys.key_for(own, epoch, seconds),
                        e.seq,
                        e.hash,
                        e.recorded_at,
                    )
                    for e in events
                ]
            for row, event in zip(rows.events, events, strict=True):
                self._rows.append({c: row.get(c) for c in EVENT_COLUMNS})
                self._events.append(event)
                self._did(self._rows.pop)
                self._did(self._events.pop)
                if event.command_id is not None:
                    self._put(self._commands, event.command_id, event)
                if event.case_id is not None:
                    if event.trigger is not None:
                        marks = self._marks.setdefault(event.case_id, {})
                        self._put(marks, event.trigger, event.seq)
                    told = self._case_events.setdefault(event.case_id, [])
                    told.append(event)
                    self._did(told.pop)
            for found in seals:
                self._seals.append(found)
                self._did(self._seals.pop)
            for t in rows.texts:
                self._put(self._texts, (t.seq, t.slot), (t.salt, t.text))
            for p in rows.participants:
                self._put(self._participants, p.id, attrs.evolve(p, details=None))
                if p.details is not None:
                    self._put(self._personal, p.id, p.details)
            for case in rows.cases:
                self._put(self._cases, case.id, case)
            for r in rows.records:
                spec = self.workflow.records.get(r.kind)
                mine = self._records.setdefault(r.case_id or "", [])
                mine.append(
                    Record(
                        seq=r.seq,
                        case_id=r.case_id or "",
                        kind=r.kind,
                        fields=spec.from_json(r.fields) if spec else dict(r.fields),
                        effective_at=dt.datetime.fromisoformat(r.effective_at),
                        recorded_at=dt.datetime.fromisoformat(r.recorded_at),
                        actor=r.actor,
                        supersedes=r.supersedes,
                    )
                )
                self._record_seqs.append(r.seq)
                self._did(mine.pop)
                self._did(self._record_seqs.pop)
            # The due table, as the commands one by one would have left it: the new cases'
            # rows, projected as their events were made.
            due: dict[str, list[DueRow]] = {}
            for d in rows.due:
                due.setdefault(d.case_id, []).append(d)
            for case in rows.cases:
                self._put(self._due, case.id, tuple(due.get(case.id, ())))
            return rows

    def appended(self) -> Appended:
        """Everything this store holds, as rows another store appends (`Writer.append`)."""
        with self._lock:
            return Appended(
                events=[dict(r) for r in self._rows],
                records=list(self.record_rows()),
                texts=list(self.text_rows()),
                participants=[
                    attrs.evolve(p, details=self._personal.get(p.id))
                    for p in self._participants.values()
                ],
                cases=list(self._cases.values()),
                due=[row for rows in self._due.values() for row in rows],
            )

    def _put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        had, old = key in table, table.get(key)
        table[key] = value
        self._did(lambda: table.__setitem__(key, old) if had else table.pop(key))

    def _drop(self, table: dict[str, Any], key: str) -> None:
        if key in table:
            old = table.pop(key)
            self._did(lambda: table.__setitem__(key, old))

    def restore(self, copy: StoreCopy) -> int:
        with self._lock:
            refuse_if_not_empty("the memory store", len(self._events), bool(self._staff))
            # Checked whole before anything changes: nothing half-restored.
            events: list[Event] = []
            rows: list[dict[str, Any]] = []
            records: list[Record] = []
            cases: dict[str, Case] = {}
            staff: dict[str, Staff] = {}
            participants: dict[str, Participant] = {}
            personal: dict[str, PersonalDetails] = {}
            seals: list[SealRow] = []
            texts: dict[tuple[int, str], tuple[str | None, str | None]] = {}
            for table, row in restore_order(copy):
                if table == "event":
                    kept = {c: row.get(c) for c in EVENT_COLUMNS}
                    rows.append(kept)
                    events.append(event_from_row(kept))
                elif table == "participant":
                    participants[row.id] = attrs.evolve(row, details=None)
                    if row.details is not None:
                        personal[row.id] = row.details
                elif table == "case":
                    cases[row.id] = row
                elif table == "staff":
                    staff[row.id] = row
                elif table == "seal":
                    seals.append(row)
                elif table == "text":
                    texts[row.seq, row.slot] = (row.salt, row.text)
                elif table == "record":
                    spec = self.workflow.records.get(row.kind)
                    records.append(
                        Record(
                            seq=row.seq,
                            case_id=row.case_id,
                            kind=row.kind,
                            fields=spec.from_json(row.fields) if spec else dict(row.fields),
                            effective_at=dt.datetime.fromisoformat(row.effective_at),
                            recorded_at=dt.datetime.fromisoformat(row.recorded_at),
                            actor=row.actor,
                            supersedes=row.supersedes,
                        )
                    )
            self._id, old_id = copy.store_id, self._id
            self._sealing, self._seals = copy.sealing, seals
            if copy.settings is not None:
                self._settings = copy.settings
            self._rows.extend(rows)
            self._events.extend(events)
            self._staff.update(staff)
            self._participants.update(participants)
            self._personal.update(personal)
            self._cases.update(cases)
            self._texts.update(texts)
            for event in events:
                if event.case_id is not None and event.trigger is not None:
                    self._marks.setdefault(event.case_id, {})[event.trigger] = event.seq
                if event.command_id is not None:
                    self._commands[event.command_id] = event
                if event.case_id is not None:
                    self._case_events.setdefault(event.case_id, []).append(event)
            for record in records:
                self._records.setdefault(record.case_id, []).append(record)
                self._record_seqs.append(record.seq)
            # The due projection rebuilt from the log copied in (the copy carries none); an
            # undone restore clears it with the rest.
            for cid in self._cases:
                self._due[cid] = self._due_of(cid)
            self._did(lambda: self._clear(old_id))
            return len(events)

    def _clear(self, store_id: str) -> None:
        """Back to empty (a restore undone with its batch): it was empty before."""
        self._id = store_id
        self._sealing, self._seals, self._settings = None, [], DatabaseSettings()
        for table in (
            self._staff,
            self._participants,
            self._personal,
            self._cases,
            self._records,
            self._marks,
            self._commands,
            self._texts,
            self._case_events,
            self._due,
        ):
            table.clear()
        self._rows.clear()
        self._events.clear()
        self._record_seqs.clear()

    # --- reads -------------------------------------------------------------------------

    def read(self) -> Tx:
        return _MemoryTx(self)

    def case(self, case_id: str) -> Case:
        with self._lock:
            found = self._cases.get(case_id)
        if found is None:
            raise CaseNotFound(case_id)
        return found

    def _matches(self, case: Case, where: CaseFilter) -> bool:
        return (
            (where.coach is None or case.coach == where.coach)
            and (where.state is None or case.state == where.state)
            and (where.status is None or case.status is where.status)
            and (not where.open_only or case.status is not Status.CLOSED)
            and (where.participant_id is None or case.participant_id == where.participant_id)
            and (not where.id_prefix or case.id.startswith(where.id_prefix))
            and (
                where.entered_before is None
                or (
                    case.status is not Status.CLOSED
                    # As the SQL stores compare it: UTC ISO text against the day's.
                    and case.stage_entered_at.isoformat() < where.entered_before.isoformat()
                )
            )
            and (
                where.due_by is None
                or (
                    case.status is not Status.CLOSED
                    and case.review_due is not None
                    and case.review_due <= where.due_by
                )
            )
        )

    def cases(self, where: CaseFilter) -> Iterator[Case]:
        with self._lock:
            found = [c for c in self._cases.values() if self._matches(c, where)]
            after = self._cases.get(where.after) if where.after is not None else None
        if where.after is not None and after is None:
            return
        # The SQL stores' order (`case_runs`), on the same values as they keep them.
        runs = case_runs(where, self.workflow.stage_groups)

        def key(c: Case) -> tuple[int, tuple[Any, ...]]:
            return run_key(runs, sort_row(c))

        found.sort(key=key)
        if after is not None:
            mark = key(after)
            found = [c for c in found if key(c) > mark]
        yield from found[: where.limit] if where.limit is not None else found

    def records(self, case_id: str) -> list[Record]:
        self.case(case_id)
        with self._lock:
            return self.records_filled(list(self._records.get(case_id, [])))

    def record_rows(self) -> Iterator[RecordRow]:
        with self._lock:
            by_seq = {r.seq: r for rs in self._records.values() for r in rs}
            rows = [by_seq[seq] for seq in sorted(self._record_seqs)]
        for r in rows:
            spec = self.workflow.records.get(r.kind)
            yield RecordRow(
                seq=r.seq,
                case_id=r.case_id,
                kind=r.kind,
                fields=spec.to_json(r.fields) if spec else dict(r.fields),
                effective_at=r.effective_at.isoformat(),
                recorded_at=r.recorded_at.isoformat(),
                actor=r.actor,
                supersedes=r.supersedes,
            )

    def records_filled(self, records: list[Record]) -> list[Record]:
        return [self._filled(r) for r in records]

    def events(self, case_id: str | None = None, after_seq: int = 0) -> Iterator[Event]:
        with self._lock:
            events = [
                fill_event(e, self._texts_for(e.seq))
                for e in self._events[max(after_seq - self._seq0, 0) :]
                if case_id is None or e.case_id == case_id
            ]
        return iter(events)

    def text_rows(self) -> Iterator[TextRow]:
        with self._lock:
            rows = sorted(self._texts.items())
        for (seq, slot), (salt, text) in rows:
            yield TextRow(seq, slot, salt, text)

    def texts_of(self, seqs: Collection[int]) -> dict[int, dict[str, str | None]]:
        with self._lock:
            top = self._seq0 + len(self._events)
            return {seq: self._texts_for(seq) for seq in seqs if self._seq0 < seq <= top}

    def latest_records(
        self, case_id: str, limit: int, *, include_superseded: bool = False
    ) -> list[Record]:
        records = self.records(case_id)
        if not include_superseded:
            gone = {r.supersedes for r in records if r.supersedes is not None}
            records = [r for r in records if r.seq not in gone]
        return records[-limit:] if limit else []

    def due_rows(self, case_id: str) -> list[DueRow]:
        with self._lock:
            return list(self._due.get(case_id, ()))

    def due_page(
        self,
        coach: str | None,
        today: dt.date,
        last_day: dt.date,
        limit: int | None,
        after: tuple[dt.date, int] | None = None,
    ) -> list[DueRow]:
        # Every row looked at: the reference store keeps no index (`limit` is a floor).
        with self._lock:
            found = [
                row
                for cid, rows in self._due.items()
                for row in rows
                if (coach is None or row.coach == coach)
                and due_open(row, today, last_day)
                and (after is None or (row.due_on, case_number(cid)) > after)
            ]
        found.sort(key=due_order)
        return found

    def count_due_rows(self) -> int:
        with self._lock:
            return sum(len(rows) for rows in self._due.values())

    def case_events(
        self, case_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[Event]:
        found = [
            e for e in self.events(case_id=case_id) if before_seq is None or e.seq < before_seq
        ]
        return found[-limit:] if limit else []

    def count_case_events(self, case_id: str, before_seq: int) -> int:
        return sum(1 for e in self.events(case_id=case_id) if e.seq < before_seq)

    def events_by_case(self) -> Iterator[Event]:
        with self._lock:
            events = [e for e in self._events if e.case_id is not None]
        return iter(sorted(events, key=lambda e: (e.case_id or "", e.seq)))

    def count_cases(self) -> int:
        return len(self._cases)

    def event_rows(self, after_seq: int = 0) -> Iterator[Mapping[str, Any]]:
        with self._lock:
            rows = self._rows[max(after_seq - self._seq0, 0) :]
        return (dict(row) for row in rows)

    def head(self) -> tuple[int, str]:
        with self._lock:
            return (self._events[-1].seq, self._events[-1].hash) if self._events else (0, GENESIS)

    def head_workflow_hash(self) -> str | None:
        with self._lock:
            return self._events[-1].workflow_hash if self._events else None

    def list_staff(self) -> list[Staff]:
        with self._lock:
            return [self._staff[k] for k in sorted(self._staff)]

    def personal_details(self, participant_id: str) -> PersonalDetails | None:
        return self._personal.get(participant_id)

    def names_of(self, participant_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {p: self._personal[p].name for p in participant_ids if p in self._personal}

    def people(self) -> Iterator[tuple[str, PersonalDetails]]:
        with self._lock:
            found = sorted(self._personal.items())
        return iter(found)

    def store_id(self) -> str:
        return self._id

    # --- sealing -----------------------------------------------------------------------

    def sealing(self) -> Sealing | None:
        return self._sealing

    def seal_rows(self) -> Iterator[SealRow]:
        with self._lock:
            return iter(list(self._seals))

    def seal_of(self, seq: int) -> SealRow | None:
        with self._lock:
            for found in reversed(self._seals):
                if found.seq == seq:
                    return found
                if found.seq < seq:
                    break
        return None

    def start_sealing(self, now: dt.datetime, epoch_seconds: int) -> VerificationKey:
        check_epoch_seconds(epoch_seconds)
        with self._lock:
            if self._sealing is not None:
                raise InvalidInput("this in-memory store already seals its events")
            seed = self.seal_keys.new_seed()
            key, state = begin_sealing(seed, self.head()[0], now, epoch_seconds, self._id)
            self.seal_keys.create(self._id, seed, key.start_epoch, epoch_seconds)
            self._sealing = state
        return key

    def close(self) -> None:
        """Nothing to release: the store lives as long as the object."""

    def event_table(
        self,
        *,
        case_id: str | None = None,
        cases: CaseFilter | None = None,
        since: dt.datetime | None = None,
        before: dt.datetime | None = None,
        kinds: tuple[str, ...] | None = None,
        as_json: bool = False,
        by_case: bool = False,
        columns: tuple[str, ...] | None = None,
        case_columns: tuple[str, ...] = (),
    ) -> Iterator[tuple[Any, ...]]:
        names = event_columns(columns)
        if case_columns and (as_json or not by_case):
            raise ValueError("case_columns come with by_case, not as_json")
        case_columns = _case_columns(case_columns)
        with self._lock:
            rows = list(self._rows)
            held = dict(self._cases)
            if by_case:
                rows = sorted(
                    (r for r in rows if r["case_id"] in self._cases),
                    key=lambda r: (_num(r["case_id"]), r["seq"]),
                )
            picked = (
                {
                    c.id
                    for c in self._cases.values()
                    if self._matches(c, attrs.evolve(cases, due_by=None, limit=None))
                }
                if cases is not None
                else None
            )
        start = since.astimezone(dt.UTC).isoformat() if since is not None else None
        end = before.astimezone(dt.UTC).isoformat() if before is not None else None
        for row in rows:
            if case_id is not None and row["case_id"] != case_id:
                continue
            if picked is not None and row["case_id"] not in picked:
                continue
            # effective_at is kept as UTC ISO text, whose order is time order.
            if start is not None and row["effective_at"] < start:
                continue
            if end is not None and row["effective_at"] >= end:
                continue
            if kinds is not None and row["kind"] not in kinds:
                continue
            if as_json:
                ordered = {f: row[f] for f in names}
                yield (json.dumps(ordered, ensure_ascii=False, separators=(",", ":")),)
            elif case_columns:
                case = case_values(held[row["case_id"]], case_columns)
                yield case + tuple(row[f] for f in names)
            else:
                yield tuple(row[f] for f in names)

    # --- reports (issue 14): every case as the reports read it -------------------------------

    def case_readings(self, kinds: Collection[str] | None = None) -> Iterator[CaseReading]:
        with self._lock:
            cases = sorted(self._cases.values(), key=lambda c: _num(c.id))
            events = {c.id: list(self._case_events.get(c.id, ())) for c in cases}
            records = {c.id: list(self._records.get(c.id, ())) for c in cases}
        for case in cases:
            rows = []
            for e in sorted(events[case.id], key=lambda e: e.seq):
                if e.kind in READING_SKIPS:
                    continue
                coach = (
                    e.payload.get("to_coach")
                    if e.kind == EventKind.ASSIGN
                    else e.payload.get("coach")
                    if e.kind in (EventKind.REFERRAL, EventKind.REOPEN)
                    else None
                )
                rows.append(
                    StageRow(
                        e.seq,
                        str(e.kind),
                        e.trigger,
                        e.to_state,
                        e.effective_at,
                        e.actor,
                        coach,
                    )
                )
            kept = tuple(
                sorted(
                    (r for r in records[case.id] if kinds is None or r.kind in kinds),
                    key=lambda r: r.seq,
                )
            )
            yield CaseReading(case, tuple(rows), kept)

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        # One view: no other thread writes while the lock is held.
        with self._lock:
            yield


def _num(case_id: str) -> int:
    return int(case_id.split("-", 1)[1])


class _ScratchTx(_MemoryTx):
    """What a scratch store does not hold (staff, settings, participants) read through the
    other store's transaction. Command ids logged there the import checks itself, and the
    other store again when it appends."""

    _s: ScratchStore

    def staff(self, staff_id: str) -> Staff:
        s = self._s
        found = s._known_staff.get(staff_id)
        if found is None:
            found = s._known_staff[staff_id] = s._outside.staff(staff_id)
        return found

    def has_staff(self) -> bool:
        return self._s._outside.has_staff()

    def settings(self) -> DatabaseSettings:
        s = self._s
        if s._known_settings is None:
            s._known_settings = s._outside.settings()
        return s._known_settings

    def count_active_admins(self) -> int:
        return self._s._outside.count_active_admins()

    def participant(self, participant_id: str) -> Participant | None:
        return super().participant(participant_id) or self._s._outside.participant(participant_id)

    def text_granted(self, staff_id: str) -> bool:
        return self._s._outside.text_granted(staff_id)


class ScratchStore(MemoryStore):
    """A memory store that continues another store's log from `head`: its first event is
    seq `head.seq + 1` chained on `head.hash`, its first case `C-<head.next_case>`; staff,
    settings and participants it does not hold are read through `outside`, that
    store's write transaction. An import (`SEFlow.import_history`) runs a case's commands here,
    through the same facade, engine and guards as any write, and the other store appends what
    they made (`appended`) in bulk: the same events, hash for hash. Holds only its own rows:
    staff and settings are never written from it."""

    def __init__(self, workflow: Workflow, head: LogHead, outside: Tx) -> None:
        super().__init__(workflow)
        self._seq0, self._next_case = head.seq, head.next_case
        self._head0 = (head.seq, head.hash)
        self._workflow0 = head.workflow_hash
        self._outside = outside
        self._known_staff: dict[str, Staff] = {}
        self._known_settings: DatabaseSettings | None = None

    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        with self._lock:
            change = decide(_ScratchTx(self))
            return change.case, self._apply(change)

    def read(self) -> Tx:
        return _ScratchTx(self)

    def head(self) -> tuple[int, str]:
        with self._lock:
            return (self._events[-1].seq, self._events[-1].hash) if self._events else self._head0

    def head_workflow_hash(self) -> str | None:
        with self._lock:
            return self._events[-1].workflow_hash if self._events else self._workflow0

    def enrolled(self, case_id: str) -> bool:
        """Whether case `case_id` has an `enrol` event here."""
        with self._lock:
            return any(e.kind == EventKind.ENROL for e in self._case_events.get(case_id, ()))

    # The due projection is worked out once per case, when it is read (`appended` reads it),
    # not after every event that moves it: no command of an import reads it meanwhile.
    def _project_due(self, case_id: str) -> None:
        pass

    def _fresh_due(self) -> None:
        self._due = {case_id: self._due_of(case_id) for case_id in self._cases}

    def due_rows(self, case_id: str) -> list[DueRow]:
        with self._lock:
            self._fresh_due()
            return super().due_rows(case_id)

    def due_page(
        self,
        coach: str | None,
        today: dt.date,
        last_day: dt.date,
        limit: int | None,
        after: tuple[dt.date, int] | None = None,
    ) -> list[DueRow]:
        with self._lock:
            self._fresh_due()
            return super().due_page(coach, today, last_day, limit, after)

    def count_due_rows(self) -> int:
        with self._lock:
            self._fresh_due()
            return super().count_due_rows()

    def appended(self) -> Appended:
        with self._lock:
            self._fresh_due()
            return super().appended()
