"""The store ports: what se-flow needs of storage, as narrow protocols and the values they pass.

A store runs each command as one write transaction: it opens the transaction, hands the
command a `Tx` to read what it needs (the actor, the case as it is now), takes back the
`Change` the engine decided, and commits the case update, the record and the sealed audit
event together, or nothing (`Writer`). Outside writes it answers case reads (`CaseReads`) and
log reads (`LogReads`). A `Store` is all three.

Three stores ship: SQLite (the default, a file or ":memory:"), the in-memory reference store
(`se_flow.MemoryStore`) and, with the `postgres` extra, PostgreSQL. A new store implements
`Store`, seals events with `se_flow._audit.seal` (the one canonical encoding), calls
`check_workflow` inside its write, translates its database's errors into `StoreError`s at its
boundary, and passes the contract shipped in the package:

    from se_flow.contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self) -> Store:
            return MyStore(...)

Nothing here does I/O: these are the shapes the core and the facade agree on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from attrs import frozen

from ._model import (
    Case,
    DatabaseSettings,
    Event,
    EventDraft,
    Participant,
    PersonalDetails,
    Record,
    Staff,
    Status,
)
from ._seal import Sealing, SealRow, VerificationKey
from .errors import InvalidInput

if TYPE_CHECKING:
    from ._standards import DueRow

__all__ = [
    "CASE_SORTS",
    "NOTHING",
    "READING_SKIPS",
    "Appended",
    "CaseFilter",
    "CaseReading",
    "CaseReads",
    "Change",
    "LogHead",
    "LogReads",
    "Needs",
    "RecordDraft",
    "RecordRow",
    "SealKeys",
    "Snapshot",
    "StageRow",
    "Store",
    "StoreCopy",
    "TextRow",
    "Tx",
    "Writer",
]


# --- values ------------------------------------------------------------------------------------


@frozen
class RecordDraft:
    """A record a command adds: typed field values, and the record (seq) it corrects."""

    kind: str
    fields: Mapping[str, Any]
    supersedes: int | None = None

    def made(self, case_id: str, event: Event) -> Record:
        """The record as committed with `event`: its seq is the event's, as are its times
        and actor."""
        return Record(
            seq=event.seq,
            case_id=case_id,
            kind=self.kind,
            fields=self.fields,
            effective_at=event.effective_at,
            recorded_at=event.recorded_at,
            actor=event.actor,
            supersedes=self.supersedes,
        )


@frozen
class Change:
    """What one command does, as the engine decided it. `expected_version` is None when the
    case is new; the store refuses the change with `CaseConflict` if the case's version moved."""

    case: Case | None
    expected_version: int | None
    event: EventDraft
    record: RecordDraft | None = None
    participant: Participant | None = None
    staff: Staff | None = None
    erase_personal_data_of: str | None = None
    erase_texts: tuple[tuple[int, str], ...] = ()
    """Free texts (seq, slot) to clear in the text table (`_texts`): the event names them."""
    settings: DatabaseSettings | None = None
    """The database's settings after a `setting` event (kept beside the log, replayed by
    `verify`)."""


@frozen
class Needs:
    """What a command reads of a case's history: record kinds and trigger marks (None: all;
    empty: none). A case's history grows without bound; a command reads only what its guards
    look at."""

    kinds: frozenset[str] | None = None
    triggers: frozenset[str] | None = None
    history: frozenset[str] = frozenset()
    """Triggers whose every event on the case the snapshot lists (`Snapshot.history`): what
    outcomes read (each `start_job`, the enrolments, the milestones and claims logged)."""
    superseded: bool = False
    """Records superseded by a later one too, in seq order (spells name a corrected job by
    the first record of its chain)."""
    latest: frozenset[str] = frozenset()
    """Kinds of which only the latest current record is read (by effective date, then seq;
    a backdated record may be the latest): one seek each, however many the case has."""
    contacts: frozenset[str] = frozenset()
    """The kinds that count as contact with the participant: the latest current record of
    each is read (as with `latest`), and the latest of them is the case's last contact."""
    since_contact: frozenset[str] = frozenset()
    """Kinds of which only the current records effective after the last contact (of the
    `contacts` kinds; all of them if there is none) are read: the outreach since."""
    record: int | None = None
    """The record at this seq, if it is the case's and current: what a correction corrects
    (one seek, whatever its kind)."""

    def __or__(self, other: Needs) -> Needs:
        """What two readers need together: a kind read whole in either is read whole."""

        def both(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
            return None if a is None or b is None else a | b

        return Needs(
            kinds=both(self.kinds, other.kinds),
            triggers=both(self.triggers, other.triggers),
            history=self.history | other.history,
            superseded=self.superseded or other.superseded,
            latest=self.latest | other.latest,
            contacts=self.contacts | other.contacts,
            since_contact=self.since_contact | other.since_contact,
            record=self.record if self.record is not None else other.record,
        )


NOTHING = Needs(kinds=frozenset(), triggers=frozenset())


@frozen
class Snapshot:
    """A case as the store read it inside the write transaction: the case, its current
    (not superseded) records of the kinds asked for (all of them with `Needs.superseded`) and
    those `Needs.latest`, `contacts`, `since_contact` and `record` pick, in seq order, and the
    seq of the last event of each trigger asked for (its marks)."""

    case: Case
    records: tuple[Record, ...]
    marks: Mapping[str, int]
    history: tuple[Event, ...] = ()
    """Every event of the triggers `Needs.history` asked for, in seq order."""


CASE_SORTS: Mapping[str, str] = {
    "days": "longest in their stage first",
    "due": "review date, soonest first; cases with none last",
    "seen": "longest since contact first; never contacted first of all",
    "coach": "by coach; cases with no coach last",
    "stage": "by stage (the workflow's order, the final state last, states it does not have "
    "after that), then phase",
}
"""`CaseFilter.sort`'s orders, each then by case number: what the stores read cases in."""


@frozen
class CaseFilter:
    """Which cases a read picks; every field left None picks all."""

    coach: str | None = None
    state: str | None = None
    status: Status | None = None
    open_only: bool = False
    """Only cases not closed (active or paused): a coach's caseload."""
    participant_id: str | None = None
    due_by: dt.date | None = None
    """Only open cases whose review falls due on or before this date, soonest first."""
    limit: int | None = None
    after: str | None = None
    """Only the cases after this one in the read's order (keyset paging: the last case id of
    the page before; a page costs the same however deep). A case id that is not there picks
    none."""
    id_prefix: str | None = None
    """Only cases whose id starts with this (`""`: every case), read in id order (text order,
    `C-10` before `C-2`) unless `due_by` orders them, so that a limited read is a range of the
    id index however many cases there are: what completing a case id reads. Not for paging
    with `after`, which follows the number order."""
    sort: str | None = None
    """One of `CASE_SORTS`: the order the cases are read in (then by case number), instead of
    by number (or by review date for `due_by`); `after` pages in it."""
    entered_before: dt.date | None = None
    """Only open cases that entered their stage before this day: in it longer than so many
    days (`stuck_days`)."""


@frozen
class RecordRow:
    """A records-table row as kept, its fields as JSON values (as the event holds them)."""

    seq: int
    case_id: str | None
    kind: str
    fields: Mapping[str, Any]
    effective_at: str
    recorded_at: str
    actor: str
    supersedes: int | None


READING_SKIPS = ("record", "milestone", "claim", "enrol")
"""The event kinds a `CaseReading` leaves out of its `events`: records come from the records
table, decoded; milestones, claims and enrolments are the evaluator's to work out again."""


class StageRow(NamedTuple):
    """One event of a case as a report reads it (no payload, no hashes): `coach` is the coach
    it gave the case (a referral's or reopen's coach, an assign's new one), else None."""

    seq: int
    kind: str
    trigger: str | None
    to_state: str | None
    effective_at: dt.datetime
    actor: str
    coach: str | None


@frozen
class CaseReading:
    """One case as the reports read it (`LogReads.case_readings`): the case as it is now, its
    events but those of `READING_SKIPS` in seq order, and every record of it (superseded ones
    too) in seq order, typed by the workflow, its free texts left out as the records table
    keeps them (a report that shows one reads it through `texts_of`)."""

    case: Case
    events: tuple[StageRow, ...]
    records: tuple[Record, ...]


@frozen
class StoreCopy:
    """A whole store as another keeps it, for `Writer.restore` (`se-flow store copy`): the log's
    rows exactly as kept and every table beside it, streamed where they can be long.

    `events` and `records` in seq order; `cases` and `participants` (with their personal
    details, None once erased) by id; `seals` in seq order and `sealing` only from a store that
    seals; `store_id` the source's, so checkpoints taken of the source prove the copy; `texts`
    the free texts kept apart from the log."""

    store_id: str
    events: Iterable[Mapping[str, Any]]
    records: Iterable[RecordRow]
    cases: Mapping[str, Case]
    participants: Mapping[str, Participant]
    staff: tuple[Staff, ...]
    sealing: Sealing | None = None
    seals: Iterable[SealRow] = ()
    settings: DatabaseSettings | None = None
    """The database's settings, as its last `setting` event left them (None: never set)."""
    texts: Iterable[TextRow] = ()
    """The text table as kept (`_texts`), in (seq, slot) order: erased ones as tombstones
    (salt and text None), so the copy proves the same texts present and erased."""


@frozen
class LogHead:
    """Where a log stands inside a write transaction: its last event's seq, hash and workflow
    hash (0, GENESIS and None when empty), and the number the next case takes."""

    seq: int
    hash: str
    workflow_hash: str | None
    next_case: int


@frozen
class Appended:
    """Rows to append in bulk (`Writer.append`): events exactly as kept, already sealed with
    `_audit.seal` and chained on from the head the build was given (seq head.seq + 1 on, the
    first `prev_hash` the head's hash), in seq order; the records, free texts (`TextRow`) and
    new participants (with their personal details) those events speak of; the new cases, each
    as its events leave it (inserted, never updated), and their due rows as their events
    project them (`_standards.project`: inserted as they are, as the cases are)."""

    events: Sequence[Mapping[str, Any]] = ()
    records: Sequence[RecordRow] = ()
    texts: Sequence[TextRow] = ()
    participants: Sequence[Participant] = ()
    cases: Sequence[Case] = ()
    due: Sequence[DueRow] = ()


# --- the ports -----------------------------------------------------------------------------------


class Tx(Protocol):
    """Reads inside a write transaction: what a command sees is what it commits against."""

    def staff(self, staff_id: str) -> Staff:
        """Raises `StaffNotFound`."""
        ...

    def has_staff(self) -> bool: ...

    def settings(self) -> DatabaseSettings:
        """The database's settings as the last `setting` event left them (defaults if none)."""
        ...

    def count_active_admins(self) -> int:
        """How many staff are active admins, as this transaction sees it (the last one may
        not be demoted, and two demotions must not both see the other's admin)."""
        ...

    def snapshot(
        self, case_id: str, needs: Needs | Callable[[Case], Needs] | None = None
    ) -> Snapshot:
        """The case, its current records and its trigger marks. Raises `CaseNotFound`.

        `needs(case)` says which record kinds and trigger marks the command reads (default:
        all of them); `needs` itself when what it reads does not depend on the case, so a
        store may read the case and its marks at once."""
        ...

    def new_case_id(self) -> str:
        """The next case id (`C-<n>`, dense: one more than the cases there are)."""
        ...

    def participant(self, participant_id: str) -> Participant | None: ...

    def command(self, command_id: str) -> Event | None:
        """The event logged under `command_id` (`EventDraft.command_id`), or None. A store
        refuses to append a second event under one command id (`CommandRepeated`), however
        the writers race."""
        ...

    def logged(self, command_ids: Collection[str]) -> dict[str, int]:
        """Which of `command_ids` are logged, each with its event's seq (`command` for many
        at once: an import checks a chunk's in one read)."""
        ...

    def text_slots(self, seq: int) -> Mapping[str, bool] | None:
        """The free texts kept apart for event `seq`, by slot: True present, False erased
        (`_texts`); None when there is no event `seq`."""
        ...

    def participant_texts(self, participant_id: str) -> list[tuple[int, str]]:
        """Every free text still present (seq, slot) in the events of the participant's
        cases, in seq and slot order."""
        ...

    def text_granted(self, staff_id: str) -> bool:
        """Whether the last `text_grant` event for `staff_id` granted them the texts."""
        ...


class Writer(Protocol):
    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        """Run `decide` inside one write transaction and commit what it returns: the case,
        the record, the participant, the staff change and the sealed event, or nothing.

        Raises whatever `decide` raises (nothing is written), `CaseConflict` if the case's
        version moved, `CommandRepeated` if the event's command id is already logged,
        `WorkflowMismatch` for an event under another workflow than the log's last,
        `StoreBusy` if the lock could not be had, `StoreError` if the database failed."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group the writes inside into one transaction (one commit) for bulk loads. Each
        write stays atomic on its own: a refused one undoes only itself; an exception leaving
        the block, or a failure that ends the transaction, writes nothing of the batch."""
        ...

    def append(self, build: Callable[[Tx, LogHead], Appended]) -> Appended:
        """Run `build` inside one write transaction (or the current batch's, undone alone if
        it fails) with the log's head as it stands there, and write the rows it returns in
        bulk: every event sealed (`_seal`) if the store seals, the tables beside the log
        written with them; nothing if `build` returns no events. Returns what was written.

        Raises whatever `build` raises (nothing is written), `InvalidInput` if the rows do not
        chain on from the head or a case is not new, `CommandRepeated` if a command id is
        already logged, `WorkflowMismatch` for events under another workflow than the log's
        last, `StoreBusy`, `StoreError`."""
        ...

    def read(self) -> Tx:
        """A `Tx` for dry runs (check, available): the same reads, nothing written."""
        ...

    def restore(self, copy: StoreCopy) -> int:
        """Put a whole copied store (its events already chained: written as they are, never
        re-sealed) into this empty one, inside the current batch (or a transaction of its
        own); returns the events written. Raises `StoreNotEmpty` (events or staff already
        here), `InvalidInput` (seals where this store cannot keep them), and whatever the
        database refuses (a table row the log does not explain)."""
        ...


class CaseReads(Protocol):
    def case(self, case_id: str) -> Case:
        """Raises `CaseNotFound`."""
        ...

    def cases(self, where: CaseFilter) -> Iterator[Case]:
        """The cases `where` picks, by case number (by review date, then number, with
        `due_by`), at most `where.limit`."""
        ...

    def records(self, case_id: str) -> list[Record]:
        """Every record of a case, superseded ones included, in the order recorded. Raises
        `CaseNotFound`."""
        ...

    def count_cases(self) -> int: ...

    def latest_records(
        self, case_id: str, limit: int, *, include_superseded: bool = False
    ) -> list[Record]:
        """The case's last `limit` records in the order recorded, only those no later record
        corrects unless `include_superseded`. Read from the newest back (a correction always
        comes after what it corrects), so a first page costs the same however many records the
        case has. Raises `CaseNotFound`."""
        ...

    def due_rows(self, case_id: str) -> list[DueRow]:
        """The case's rows of the due projection (`_standards.project`: what is due, met and
        missed, kept beside the log and brought up to date by every write that can change
        it), in order (none for an unknown case)."""
        ...

    def due_page(
        self,
        coach: str | None,
        today: dt.date,
        last_day: dt.date,
        limit: int | None,
        after: tuple[dt.date, int] | None = None,
    ) -> list[DueRow]:
        """Due projection rows of open cases (`coach`'s only, if given): deadlines not met
        that fall due by `last_day`, and schedule windows holding `today` that fall due by
        then; soonest first, then by case number and row. With `limit`, at least the first
        `limit` of each of the two (all there are, if fewer) and every row of the last one's
        case and day after it; with `after` (a day and a case number), only rows past that
        day and case."""
        ...

    def count_due_rows(self) -> int:
        """How many rows the due projection holds (`verify` counts its replay's)."""
        ...

    def list_staff(self) -> list[Staff]:
        """Every staff member, by id."""
        ...

    def personal_details(self, participant_id: str) -> PersonalDetails | None:
        """None once erased (or never given)."""
        ...

    def names_of(self, participant_ids: Sequence[str]) -> dict[str, str]:
        """The names of those of `participant_ids` whose personal data is kept (a caseload's
        names in one read; erased ones are absent)."""
        ...

    def people(self) -> Iterator[tuple[str, PersonalDetails]]:
        """Every participant's personal data kept, by participant id (for a name search)."""
        ...


class LogReads(Protocol):
    def events(self, case_id: str | None = None, after_seq: int = 0) -> Iterator[Event]:
        """Events in seq order: all, or one case's, after `after_seq`."""
        ...

    def events_by_case(self) -> Iterator[Event]:
        """Every event that belongs to a case, ordered by case id then seq (streamed)."""
        ...

    def case_events(
        self, case_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[Event]:
        """The case's last `limit` events before seq `before_seq` (all its events if None),
        in seq order: read from the newest back, so a page costs the same however long the
        case's history is."""
        ...

    def count_case_events(self, case_id: str, before_seq: int) -> int:
        """How many of the case's events come before seq `before_seq`."""
        ...

    def event_rows(self, after_seq: int = 0) -> Iterator[Mapping[str, Any]]:
        """Stored event rows in seq order, exactly as kept (for verification)."""
        ...

    def record_rows(self) -> Iterator[RecordRow]:
        """Every row of the records table as kept, in seq order, streamed (for `verify`)."""
        ...

    def head(self) -> tuple[int, str]:
        """The last event's seq and hash ((0, GENESIS) when empty)."""
        ...

    def head_workflow_hash(self) -> str | None:
        """The workflow hash the last event was written under (None when the log is empty)."""
        ...

    def store_id(self) -> str:
        """A random id fixed when the store was created (ties a checkpoint to its log)."""
        ...

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
        """Stored event rows exactly as kept, streamed in seq order from one cursor (exports
        read any size in constant memory): tuples in `EVENT_COLUMNS` order or, with `as_json`,
        1-tuples holding the row as one JSON object text with those keys in that order.

        `case_id` keeps one case's events; `cases` keeps the events of the cases it picks (by
        coach, state, status, participant; an empty filter picks every case, so events of no
        case are left out). `since` (inclusive) and `before` (exclusive) bound `effective_at`;
        `kinds` keeps only those event kinds.

        `by_case` orders the rows by case, in the order `cases` yields the cases (case number),
        then by seq, and leaves out events of no case: one scan for what is worked out case by
        case (the stage histories), however many cases there are. `columns` (names from
        `EVENT_COLUMNS`) gives only those, in that order: what reads a few of them (the stage
        histories read 8 of 19) need not fetch the hashes, guards and payloads.
        `case_columns` (with `by_case`: `participant_id`, `episode`, `coach`, `state`, `phase`,
        `status`) puts those of the event's case, as kept, before the event's columns: one
        scan gives what a case-by-case table writes, without reading the cases apart."""
        ...

    def case_readings(self, kinds: Collection[str] | None = None) -> Iterator[CaseReading]:
        """Every case with its events and records (`CaseReading`), in case-number order,
        streamed from a few ordered scans (cases, their events, their records: each decoded
        once), not a read per case: what a report on every case reads. `kinds` keeps only
        the records of those kinds (a correction is always of its record's kind, so chains
        stay whole); None keeps all."""
        ...

    def text_rows(self) -> Iterator[TextRow]:
        """Every row of the text table as kept, in (seq, slot) order, streamed (`verify`)."""
        ...

    def texts_of(self, seqs: Collection[int]) -> dict[int, dict[str, str | None]]:
        """The free texts of the events `seqs`, by seq and slot (None: erased)."""
        ...

    def sealing(self) -> Sealing | None:
        """The store's sealing settings (`se_flow._seal`), or None if it does not seal."""
        return None

    def seal_rows(self) -> Iterator[SealRow]:
        """Every seal kept, in seq order, streamed (for `verify` with a key)."""
        return iter(())

    def seal_of(self, seq: int) -> SealRow | None:
        """The seal of the event at `seq`, if it has one (a checkpoint carries its head's)."""
        return None

    def read_snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Hold one consistent view of the store for the reads inside, so a verify or an
        export sees one moment of the log while others keep writing. Nothing may be written
        inside. A no-op inside a write transaction or batch (which already is one view)."""
        ...


@frozen
class TextRow:
    """A text-table row as kept (`_texts`): `salt` (hex) and `text` None once erased."""

    seq: int
    slot: str
    salt: str | None
    text: str | None


class SealKeys(Protocol):
    """Where a sealing writer keeps the current epoch's key (the key file, `_keyfile`): the
    store asks for it inside its write transaction. Raises `SealKeyUnusable`."""

    def new_seed(self) -> bytes:
        """A fresh random seed (the verification key's secret)."""
        ...

    def create(self, store_id: str, seed: bytes, epoch: int, epoch_seconds: int) -> None:
        """Keep the first key (never over an existing one)."""
        ...

    def discard(self) -> None:
        """Take back what `create` kept (its database change was not committed)."""
        ...

    def key_for(self, store_id: str, epoch: int, epoch_seconds: int) -> bytes:
        """The key of `epoch`, the old one erased first if the epoch moved on."""
        ...


class Store(Writer, CaseReads, LogReads, Protocol):
    """A whole store: writes, case reads and log reads, on one database."""

    def close(self) -> None:
        """Release the database (connections, files); the store is unusable after."""
        ...

    def exposure(self) -> str | None:
        """Why others than its owner can read the store's personal data, or None."""
        return None

    def start_sealing(self, now: dt.datetime, epoch_seconds: int) -> VerificationKey:
        """Seal every event from the next on (`se_flow._seal`), keeping the first key with the
        store's `SealKeys`; returns the verification key, kept nowhere. Raises `InvalidInput`
        (already sealing, or a store that cannot seal), `SealKeyUnusable`."""
        raise InvalidInput(f"{type(self).__name__} cannot seal its events (SQLite only, so far)")
