"""The values se-flow hands out: frozen, typed, free of storage and clocks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from attrs import field, frozen

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_FIELDS",
    "OPTIONAL_FIELDS",
    "Case",
    "Check",
    "Column",
    "DatabaseSettings",
    "Done",
    "Event",
    "EventDraft",
    "EventField",
    "EventKind",
    "GuardResult",
    "Override",
    "Participant",
    "PersonFound",
    "PersonalDetails",
    "Record",
    "Role",
    "Staff",
    "Status",
    "TeamLine",
    "Verification",
    "soft_only",
]


class Role(StrEnum):
    COACH = "coach"
    TEAM_LEADER = "team_leader"
    AUDITOR = "auditor"
    ADMIN = "admin"


class EventKind(StrEnum):
    """What an audit event records. Case events: a referral or reopen opens a case; a
    transition, phase, pause or resume moves it; a record adds evidence; assign changes its
    coach; an enrolment puts it on a programme, a milestone event logs what a write made of
    its milestones, a claim marks one claimed. Events of no case: staff changes, erasures of
    personal data, exports, reports, searches and a database moved to another workflow."""

    REFERRAL = "referral"
    REOPEN = "reopen"
    TRANSITION = "transition"
    PHASE = "phase"
    PAUSE = "pause"
    RESUME = "resume"
    RECORD = "record"
    ASSIGN = "assign"
    STAFF = "staff"
    ERASURE = "erasure"
    EXPORT = "export"
    REPORT = "report"
    WORKFLOW = "workflow"
    TEXT_ERASURE = "text_erasure"
    """An admin erased free texts (named by event and slot, never quoted; `_texts`)."""
    TEXT_GRANT = "text_grant"
    """An admin let an auditor see (and export) free texts, or took that back."""
    SETTING = "setting"
    """An admin changed a database setting (`DatabaseSettings`): its payload is all of them."""
    ENROL = "enrol"
    """A case put on a programme (a funder definition and version), or moved to another."""
    MILESTONE = "milestone"
    """A milestone of the case's programme reached, changed or retracted by the write before
    it (in the same transaction), or a change to a claimed one flagged for a person."""
    CLAIM = "claim"
    """A milestone claimed from the funder, with the funder's reference."""
    SEARCH = "search"
    """A search of participants by name or contact (`find`, or `duplicates`: `refer`'s check
    for a likely duplicate, its payload's `purpose`): an audited read of personal data. Its
    payload says how many matched and their pseudonyms, never the text searched for (a name
    or phone number would sit in the hashed log for good, past any erasure)."""


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


# Every case made (read from a row, or after a command) converts its status: a lookup, not the
# enum's call, for the three that exist; anything else is refused as `Status` refuses it.
_STATUSES = {s.value: s for s in Status}


def _status(value: Status | str) -> Status:
    try:
        return _STATUSES[value]
    except (KeyError, TypeError):
        return Status(value)


# Most events carry no texts and many no payload: one empty view serves them all (it wraps a
# dict no caller can reach, so sharing it shares nothing that can change).
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    return MappingProxyType(dict(value))


@frozen
class Staff:
    id: str
    name: str
    role: Role = field(converter=Role)
    active: bool = True
    """What each role may do is `_policy`'s, not the staff member's own."""
    login: str | None = None
    """The OS login this member is bound to: the CLI refuses to act as them from any other
    (unless the database allows a shared terminal). None: not bound."""


@frozen
class DatabaseSettings:
    """A database's own settings, changed only by an admin through a `setting` event (so the
    log says who changed what, when), and replayed from the log by `verify`.

    - `shared_terminal`: the CLI may act as a member bound to a login from another login (a
      terminal several staff share under one login). Off by default.
    - `checkpoint_file`: the external, append-only file `audit checkpoint` appends to (a path
      an admin chose, e.g. on another share); None: none.
    - `checkpoint_every`: append a checkpoint there after every N events (None: not by count).
    - `checkpoint_on_export`: append one after every export."""

    shared_terminal: bool = False
    checkpoint_file: str | None = None
    checkpoint_every: int | None = None
    checkpoint_on_export: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "shared_terminal": self.shared_terminal,
            "checkpoint_file": self.checkpoint_file,
            "checkpoint_every": self.checkpoint_every,
            "checkpoint_on_export": self.checkpoint_on_export,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatabaseSettings:
        every = data.get("checkpoint_every")
        path = data.get("checkpoint_file")
        return cls(
            shared_terminal=bool(data.get("shared_terminal", False)),
            checkpoint_file=str(path) if path is not None else None,
            checkpoint_every=int(every) if every is not None else None,
            checkpoint_on_export=bool(data.get("checkpoint_on_export", False)),
        )


@frozen
class PersonalDetails:
    """Personal data: kept in its own table, never in the audit log or a default export."""

    name: str
    contact: str | None = None
    date_of_birth: dt.date | None = None
    health_notes: str | None = None


@frozen
class Participant:
    """A person, known to the log only by the pseudonymous `id`."""

    id: str
    created_at: dt.datetime
    details: PersonalDetails | None = None


@frozen
class TeamLine:
    """One coach's caseload in numbers, for a team leader (`SEFlow.team`): open cases by
    state id, what is due within the week and overdue, reviews overdue, cases with no
    contact in `quiet_days` days, and cases in one stage more than `stuck_days` days."""

    coach: str
    name: str
    open: int
    by_stage: Mapping[str, int]
    due: int
    overdue: int
    reviews_overdue: int
    no_contact: int
    stuck: int


@frozen
class PersonFound:
    """A participant a search found: their personal details and every case (episode) of
    theirs, by case number."""

    participant_id: str
    details: PersonalDetails
    cases: tuple[Case, ...] = ()

    @property
    def open_cases(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if c.is_open)


@frozen
class Case:
    """One episode of support for one participant.

    `state` is the workflow state (a stage id, `referred` or the final state); `phase` is the
    phase within a stage that has phases. `version` counts the events applied to the case.
    `review_due` is when the next review or contact falls due (None once closed).
    """

    id: str
    participant_id: str
    state: str
    status: Status = field(converter=_status)
    version: int
    opened_at: dt.datetime
    stage_entered_at: dt.datetime
    coach: str | None = None
    phase: str | None = None
    episode: int = 1
    previous_case_id: str | None = None
    last_contact_at: dt.datetime | None = None
    review_due: dt.date | None = None
    outcome: str | None = None
    closed_at: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status is not Status.CLOSED


@frozen
class Record:
    """A piece of evidence. Never edited: a correction supersedes it with a new record.

    `seq` is the audit event that recorded it, and serves as its id.
    """

    seq: int
    case_id: str
    kind: str
    fields: Mapping[str, Any] = field(converter=_frozen_mapping)
    effective_at: dt.datetime
    recorded_at: dt.datetime
    actor: str
    supersedes: int | None = None

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@frozen
class GuardResult:
    """One guard's verdict, in plain words a job coach can act on."""

    guard: str
    passed: bool
    reason: str
    soft: bool = False
    title: str = ""

    @property
    def label(self) -> str:
        """What a job coach reads: the title from the stage data, else the guard's id."""
        return self.title or self.guard

    def to_json(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "passed": self.passed,
            "reason": self.reason,
            "soft": self.soft,
            "title": self.title,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuardResult:
        return cls(
            guard=data["guard"],
            passed=bool(data["passed"]),
            reason=data["reason"],
            soft=bool(data.get("soft", False)),
            title=str(data.get("title", "")),
        )


def soft_only(results: Iterable[GuardResult]) -> bool:
    """Blocked, and only by soft guards: what a team leader may override with a reason. THE
    one test of it, for the engine's override, `GuardsFailed`, `Check` and the CLI's hints."""
    failed = [r for r in results if not r.passed]
    return bool(failed) and all(r.soft for r in failed)


@frozen
class Override:
    by: str
    reason: str = ""
    """Empty in a stored row whose reason is kept apart with the other free texts."""


@frozen
class Check:
    """What would happen if `trigger` were fired now: every guard's result, nothing changed."""

    case_id: str
    trigger: str
    source: str
    dest: str
    results: tuple[GuardResult, ...]
    label: str = ""

    @property
    def allowed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GuardResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def overridable(self) -> bool:
        """Blocked by soft guards only, so a team leader may override (`soft_only`)."""
        return soft_only(self.results)


@frozen
class EventDraft:
    """An audit event before the store gives it its place (seq) in the chain."""

    case_id: str | None
    kind: str
    actor: str
    role: str
    effective_at: dt.datetime
    recorded_at: dt.datetime
    workflow_hash: str
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    from_phase: str | None = None
    to_phase: str | None = None
    reason: str | None = None
    guards: tuple[GuardResult, ...] = ()
    override: Override | None = None
    payload: Mapping[str, Any] = field(factory=dict, converter=_frozen_mapping)
    texts: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    """The salted hash of each free text the event holds, by slot (`_texts`): the texts
    themselves are kept apart from the hashed row. Empty for events written before."""
    command_id: str | None = None
    """The caller's id for the command (`SEFlow` writes' `command_id`): a retry after an
    ambiguous commit finds it in the log and appends nothing twice."""
    command_hash: str | None = None
    """SHA-256 of the command as asked (`_commands.command_hash`): a retry under the same id
    must be the same command."""


@frozen
class Event(EventDraft):
    """One entry of the append-only, hash-chained audit log: a draft sealed at `seq`."""

    seq: int = field(kw_only=True)
    prev_hash: str = field(kw_only=True)
    hash: str = field(kw_only=True)


# What a write's `Done` holds: exactly a case or None, a record or None, so a caller of
# `refer` reads `done.case.id` with no check while `erase_personal_data` says there is none.
CaseT = TypeVar("CaseT", bound=Case | None, covariant=True)
RecordT = TypeVar("RecordT", bound=Record | None, covariant=True)


@frozen
class Done(Generic[CaseT, RecordT]):
    """What one write made, for the caller to show without reading anything back: the case
    as the write left it, the audit event it logged (its place in the chain, what it did, any
    override) and the record it added.

    Typed per command: `refer`, `reopen` and `record` return `Done[Case, Record]` (a new case
    starts with its referral record); `advance`, `pause`, `resume`, `withdraw`, `close` and
    `assign` return `Done[Case, None]`; `erase_personal_data` and `adopt_workflow`, which touch
    no case, `Done[None, None]`. `add_staff` returns the `Staff` member instead: a staff change
    has no case and no record, and the member as written (name trimmed) is what every caller
    shows (its event is in the log: `events()`)."""

    case: CaseT
    event: Event
    record: RecordT


class Column(StrEnum):
    """How an event field is kept in a stored row."""

    INT = "int"
    TEXT = "text"
    TIME = "time"
    """An aware datetime, as ISO 8601 text (UTC), whose text order is time order."""
    JSON = "json"
    """A value kept as canonical JSON text."""


@frozen
class EventField:
    name: str
    column: Column
    nullable: bool = False
    optional: bool = False
    """Added after logs were written: an older row has no such field, so the canonical JSON
    (and the hash) leaves it out while it is None (an empty JSON field is stored as None), and
    every old log verifies byte for byte. Each came with its own migration adding its column."""


_I, _T, _TIME, _J = Column.INT, Column.TEXT, Column.TIME, Column.JSON

EVENT_FIELDS: tuple[EventField, ...] = (
    EventField("seq", _I),
    EventField("case_id", _T, nullable=True),
    EventField("kind", _T),
    EventField("trigger", _T, nullable=True),
    EventField("from_state", _T, nullable=True),
    EventField("to_state", _T, nullable=True),
    EventField("from_phase", _T, nullable=True),
    EventField("to_phase", _T, nullable=True),
    EventField("actor", _T),
    EventField("role", _T),
    EventField("effective_at", _TIME),
    EventField("recorded_at", _TIME),
    EventField("reason", _T, nullable=True),
    EventField("guards", _J),
    EventField("override", _J),
    EventField("workflow_hash", _T),
    EventField("payload", _J),
    EventField("prev_hash", _T),
    EventField("hash", _T),
    # In the order their migrations added the columns.
    EventField("texts", _J, nullable=True, optional=True),
    EventField("command_id", _T, nullable=True, optional=True),
    EventField("command_hash", _T, nullable=True, optional=True),
)
"""THE list of an event's fields, in the order a stored row and an export keep them: the
store's table, its INSERT and SELECT, the hash and the export's columns all come from here.
The hash covers every field but `hash` itself (and an `optional` one only when set)."""

EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)
OPTIONAL_FIELDS: frozenset[str] = frozenset(f.name for f in EVENT_FIELDS if f.optional)
"""The fields left out of an event's canonical JSON while they are None."""


@frozen
class Verification:
    """The result of walking the audit chain: ok, or the first event that does not fit."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None
    workflow_mismatch: str | None = None
    """Set when the workflow verified with is not the one the log was last written under: the
    chain may be whole, but stages and records are read under other definitions."""
    seals: str | None = None
    """What was (or could not be) proved of the forward-secure seals, in words; None for a
    database that does not seal."""
    bad_epoch: int | None = None
    """The sealing epoch of the first event whose seal failed (with `bad_seq`)."""
    texts: str | None = None
    """What was proved of the free texts kept apart from the log (`_texts`), in words: how
    many are present and unaltered, how many an admin erased."""
    erased_texts: int = 0
    checkpoints: str | None = None
    """What the checkpoints given proved (the log only appended to since each), in words."""

    def __bool__(self) -> bool:
        return self.ok
