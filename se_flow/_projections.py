"""Every table is a projection of the audit log: these pure functions rebuild them from events.

The engine drafts an event and asks `apply` what the case becomes, so the case a command
writes and the case `verify` replays come from one function: they cannot drift apart. Records
ride in their event's payload (`payload["record"]`) and staff changes in `staff` events, so the
records and staff tables, which guards and permissions read, are rebuilt and compared the same
way. An auditor's `verify` names the first row that differs from what the log says.

The export's tables are projections too, worked out here from what the caller read:

- **stage spells** (`spells`): a spell is a stretch of time a case spent in one stage, phase
  and status, from the case's referral, reopen, transition, phase, pause and resume events. A
  phase change ends a spell and starts one in the same stage with the new phase; a pause ends
  the active spell and starts a `paused` spell in the same stage, and resume ends that and
  starts a new `active` one; a closing trigger ends the last spell (the final state has no
  spell); reopening is a new case (episode) whose first spell starts with trigger `reopen`.
  An event that changes none of stage, phase and status (a transition that stays put) neither
  ends nor starts one. `days` counts calendar days (UTC) from `entered` to `left`, or to the
  given day for a spell still open (`left` None). `seq_in` / `seq_out` name the events that
  began and ended it.
- **client rows** (`client_row`): the SEQF client list row of a case on a day, with the
  current job (`current_job`: the last job offer before the last job start).

No I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, NamedTuple, Protocol

import attrs

from ._model import Case, DatabaseSettings, EventKind, Role, Staff, Status
from ._workflow import Workflow
from .ports import RecordRow

__all__ = [
    "CLIENT_COLUMNS",
    "RECORD_EVENT_KINDS",
    "SPELL_COLUMNS",
    "SPELL_KINDS",
    "EventLike",
    "RecordCheck",
    "RecordRow",
    "Spell",
    "StageEvent",
    "apply",
    "case_mismatch",
    "client_row",
    "plain",
    "record_from_row",
    "replay_cases",
    "replay_settings",
    "replay_staff",
    "review_due",
    "spell_row",
    "spell_spans",
    "spells",
    "staff_mismatch",
    "utc_day",
]

# The events that carry a record in their payload.
RECORD_EVENT_KINDS = frozenset({EventKind.REFERRAL, EventKind.REOPEN, EventKind.RECORD})


class EventLike(Protocol):
    """What `apply` reads of an event: a drafted one (`EventDraft`) or a stored one (`Event`)."""

    @property
    def case_id(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def to_state(self) -> str | None: ...
    @property
    def to_phase(self) -> str | None: ...
    @property
    def effective_at(self) -> dt.datetime: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


def review_due(wf: Workflow, case: Case, review_date: dt.date | None = None) -> dt.date | None:
    """When the case's next review falls due: its stage's cadence after the later of entering
    the stage and the last contact; a paused case keeps the review date its pause set; a closed
    case has none."""
    return _review_due(
        wf,
        case.status,
        case.state,
        case.phase,
        case.stage_entered_at,
        case.last_contact_at,
        review_date if review_date is not None else case.review_due,
    )


_PAUSED, _ACTIVE, _CLOSED = Status.PAUSED, Status.ACTIVE, Status.CLOSED


def _review_due(
    wf: Workflow,
    status: Status,
    state: str,
    phase: str | None,
    stage_entered_at: dt.datetime,
    last_contact_at: dt.datetime | None,
    paused_until: dt.date | None,
) -> dt.date | None:
    # `review_due` of a case given as its fields, so `apply` can work out the date of the case
    # it is about to make and make it once.
    if status is _CLOSED:
        return None
    if status is _PAUSED:
        return paused_until
    days = wf.states[state].review_days_for(phase)
    if days is None:
        return None
    base = stage_entered_at
    if last_contact_at is not None and last_contact_at > base:
        base = last_contact_at
    return base.date() + _days(days)


# Every command works out a review date from its stage's cadence, one of a workflow's few.
_DAYS: dict[int, dt.timedelta] = {}


def _days(days: int) -> dt.timedelta:
    delta = _DAYS.get(days)
    if delta is None:
        delta = dt.timedelta(days=days)
        if len(_DAYS) < 1024:
            _DAYS[days] = delta
    return delta


def _is_contact(wf: Workflow, payload: Mapping[str, Any]) -> bool:
    record = payload.get("record")
    if not isinstance(record, Mapping):
        return False
    kind = wf.records.get(str(record.get("kind")))
    return kind is not None and kind.contact


# Every command makes the case after it: `attrs.evolve` walks the case's fields each time; these
# know them (attrs' own list: init order is field order), and `apply` sets them by place.
_CASE_ARGS = tuple(a.name for a in attrs.fields(Case) if a.init)
_case_values = operator.attrgetter(*_CASE_ARGS)
(
    _STATE,
    _STATUS,
    _VERSION,
    _STAGE_ENTERED_AT,
    _COACH,
    _PHASE,
    _LAST_CONTACT_AT,
    _REVIEW_DUE,
    _OUTCOME,
    _CLOSED_AT,
) = (
    _CASE_ARGS.index(name)
    for name in (
        "state",
        "status",
        "version",
        "stage_entered_at",
        "coach",
        "phase",
        "last_contact_at",
        "review_due",
        "outcome",
        "closed_at",
    )
)


# The kinds `apply` tells apart, looked up once rather than on the enum by every command.
_OPENING = frozenset({EventKind.REFERRAL, EventKind.REOPEN})
_RECORD, _ASSIGN, _PAUSE, _RESUME, _PHASE_KIND, _TRANSITION = (
    EventKind.RECORD,
    EventKind.ASSIGN,
    EventKind.PAUSE,
    EventKind.RESUME,
    EventKind.PHASE,
    EventKind.TRANSITION,
)


def apply(wf: Workflow, case: Case | None, event: EventLike) -> Case | None:
    """The case after `event` (None for an event of no case). `case` is the case before it:
    None for a referral or reopen, which open a new case."""
    kind, at, payload = event.kind, event.effective_at, event.payload
    if event.case_id is None:
        return case
    if kind in _OPENING:
        assert event.to_state is not None
        contact = at if _is_contact(wf, payload) else None
        return Case(
            id=event.case_id,
            participant_id=str(payload["participant_id"]),
            state=event.to_state,
            phase=event.to_phase,
            status=Status.ACTIVE,
            version=1,
            opened_at=at,
            stage_entered_at=at,
            coach=payload.get("coach"),
            episode=int(payload.get("episode", 1)),
            previous_case_id=payload.get("previous_case_id"),
            last_contact_at=contact,
            review_due=_review_due(
                wf, Status.ACTIVE, event.to_state, event.to_phase, at, contact, None
            ),
        )
    if case is None:
        raise ValueError(f"event {kind} of case {event.case_id} comes before the case's referral")
    # The case's fields in init order, changed in place: one Case made, no evolve.
    values = list(_case_values(case))
    values[_VERSION] = case.version + 1
    review_date: dt.date | None = None
    if kind == _RECORD:
        if _is_contact(wf, payload) and (case.last_contact_at is None or at > case.last_contact_at):
            values[_LAST_CONTACT_AT] = at
    elif kind == _ASSIGN:
        values[_COACH] = payload.get("to_coach")
        return Case(*values)
    elif kind == _PAUSE:
        values[_STATUS] = _PAUSED
        if payload.get("review_date"):
            review_date = dt.date.fromisoformat(payload["review_date"])
    elif kind == _RESUME:
        values[_STATUS] = _ACTIVE
    elif kind == _PHASE_KIND:
        values[_PHASE] = event.to_phase
    elif kind == _TRANSITION:
        dest = event.to_state or case.state
        if dest == wf.final:
            # The final state has no phases.
            values[_STATE] = dest
            values[_PHASE] = None
            values[_STATUS] = _CLOSED
            values[_OUTCOME] = payload.get("outcome")
            values[_CLOSED_AT] = at
        elif dest != case.state:
            values[_STATE] = dest
            values[_PHASE] = event.to_phase
            values[_STAGE_ENTERED_AT] = at
            values[_STATUS] = _ACTIVE
    # The review date of the case after the changes, worked out before it is made.
    values[_REVIEW_DUE] = _review_due(
        wf,
        values[_STATUS],
        values[_STATE],
        values[_PHASE],
        values[_STAGE_ENTERED_AT],
        values[_LAST_CONTACT_AT],
        review_date if review_date is not None else case.review_due,
    )
    return Case(*values)


def replay_cases(wf: Workflow, events: Iterable[EventLike]) -> dict[str, Case]:
    """Every case the events speak of, as the log says it is now."""
    cases: dict[str, Case] = {}
    for e in events:
        if e.case_id is None:
            continue
        after = apply(wf, cases.get(e.case_id), e)
        assert after is not None
        cases[e.case_id] = after
    return cases


_CASE_FIELDS = tuple(a.name for a in attrs.fields(Case))


def case_mismatch(stored: Case | None, found: Case, *, episode_known: bool = True) -> str | None:
    """How the case table's row differs from what the case's events say, in plain words.
    `episode_known` is False for a case reopened before reopen events carried the episode."""
    if stored is None:
        return f"case {found.id} is in the log but missing from the case table"
    for name in _CASE_FIELDS:
        if name == "episode" and not episode_known:
            continue
        have: Any = getattr(stored, name)
        want: Any = getattr(found, name)
        if have != want:
            return (
                f"case {stored.id}: the case table says {name} = {_shown(have)}, "
                f"but its events say {_shown(want)}"
            )
    return None


def _shown(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return repr(value.value if isinstance(value, Enum) else value)


# --- staff ---------------------------------------------------------------------------------


def replay_staff(events: Iterable[EventLike]) -> dict[str, Staff]:
    """The staff list as the log's `staff` events leave it."""
    staff: dict[str, Staff] = {}
    for e in events:
        if e.kind != EventKind.STAFF:
            continue
        p = e.payload
        staff[str(p["staff_id"])] = Staff(
            id=str(p["staff_id"]),
            name=str(p["name"]),
            role=Role(p["role"]),
            active=bool(p["active"]),
            # Events from before logins were bound say nothing of one.
            login=str(p["login"]) if p.get("login") is not None else None,
        )
    return staff


def replay_settings(events: Iterable[EventLike]) -> DatabaseSettings:
    """The database's settings as the log's last `setting` event left them (each holds all)."""
    found = DatabaseSettings()
    for e in events:
        if e.kind == EventKind.SETTING:
            found = DatabaseSettings.from_json(e.payload)
    return found


def staff_mismatch(stored: Iterable[Staff], found: Mapping[str, Staff]) -> str | None:
    """How the staff table differs from the log's staff events, naming the member."""
    seen: set[str] = set()
    for member in stored:
        seen.add(member.id)
        want = found.get(member.id)
        if want is None:
            return f"staff member {member.id} is in the staff table but no event added them"
        for name in ("name", "role", "active", "login"):
            have, should = getattr(member, name), getattr(want, name)
            if have != should:
                return (
                    f"staff member {member.id}: the staff table says {name} = "
                    f"{_shown(have)}, but the log says {_shown(should)}"
                )
    for missing in sorted(set(found) - seen):
        return f"staff member {missing} is in the log but missing from the staff table"
    return None


# --- records -------------------------------------------------------------------------------


def record_from_row(row: Mapping[str, Any]) -> RecordRow | None:
    """The record a stored event row made, or None if it made none."""
    if row["kind"] not in RECORD_EVENT_KINDS:
        return None
    record = json.loads(row["payload"]).get("record")
    if not isinstance(record, Mapping):
        return None
    return RecordRow(
        seq=row["seq"],
        case_id=row["case_id"],
        kind=str(record.get("kind")),
        fields=record.get("fields") or {},
        effective_at=row["effective_at"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        supersedes=record.get("supersedes"),
    )


_RECORD_FIELDS = ("case_id", "kind", "fields", "effective_at", "recorded_at", "actor", "supersedes")


class RecordCheck:
    """Walks the records table beside the log's records, both in seq order (`feed` each
    record the log made, then `finish`), and names the first record inserted, removed or
    altered behind the log's back. Memory stays flat: a merge of two streams."""

    def __init__(self, stored: Iterator[RecordRow]) -> None:
        self._stored = stored
        self._have = next(stored, None)
        self._problem: tuple[int, str] | None = None

    def feed(self, want: RecordRow) -> None:
        if self._problem is not None:
            return
        have = self._have
        if have is not None and have.seq < want.seq:
            self._problem = (have.seq, _unlogged(have))
        elif have is None or have.seq > want.seq:
            self._problem = (
                want.seq,
                f"record {want.seq} (case {want.case_id}) is missing from the records table",
            )
        else:
            for name in _RECORD_FIELDS:
                if getattr(have, name) != getattr(want, name):
                    self._problem = (
                        want.seq,
                        f"record {want.seq} (case {want.case_id}): the records table's {name} "
                        "differs from the event that recorded it",
                    )
                    return
            self._have = next(self._stored, None)

    def finish(self) -> tuple[int | None, str | None]:
        """The seq and words of the first problem, or (None, None)."""
        if self._problem is None and self._have is not None:
            self._problem = (self._have.seq, _unlogged(self._have))
        return self._problem if self._problem is not None else (None, None)


def _unlogged(row: RecordRow) -> str:
    return f"record {row.seq} (case {row.case_id}) is in the records table but no event recorded it"


# --- stage spells (the export's stage_histories) -------------------------------------------

# Events that move a case between stages, phases or statuses: all a stage history needs.
SPELL_KINDS = ("referral", "reopen", "transition", "phase", "pause", "resume")
SPELL_COLUMNS = (
    "case_id",
    "participant",
    "episode",
    "spell",
    "stage",
    "phase",
    "status",
    "entered",
    "left",
    "days",
    "trigger_in",
    "trigger_out",
    "actor",
    "seq_in",
    "seq_out",
)


def utc_day(text: str) -> dt.date:
    """The UTC day of a stored time (ISO text)."""
    if text.endswith("+00:00"):
        # As stored: UTC ISO text, whose first ten characters are its UTC day (an export
        # reads two per spell).
        return dt.date.fromisoformat(text[:10])
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).date()


class StageEvent(NamedTuple):
    """What a spell reads of one stored event (`effective_at` as the stored ISO text)."""

    seq: int
    kind: str
    trigger: str | None
    to_state: str | None
    to_phase: str | None
    effective_at: str
    actor: str


# Spells and their source events are tuples, not attrs classes: an export makes one per event
# of every case, and a tuple is made several times faster.
class Spell(NamedTuple):
    """One spell of a case (see the module doc). Times are the events' `effective_at` as
    stored (ISO text); `left`, `trigger_out` and `seq_out` are None while it is still open."""

    number: int
    stage: str
    phase: str | None
    status: str
    entered: str
    trigger_in: str | None
    actor: str
    seq_in: int
    left: str | None = None
    trigger_out: str | None = None
    seq_out: int | None = None

    def days(self, today: dt.date) -> int:
        """Calendar days (UTC) from entering to leaving, or to `today` while open."""
        end = utc_day(self.left) if self.left else today
        return (end - utc_day(self.entered)).days


_SPELL_KINDS = frozenset(SPELL_KINDS)
_NO_CASE = object()


def spell_spans(
    rows: Iterable[Sequence[Any]], final: str
) -> Iterator[tuple[Sequence[Any], Sequence[Any] | None, int, str]]:
    """The spells of every case in `rows`, as `(began, ended, number, status)`: the rows of the
    events that began and ended each (`ended` None while it is still open), its number within
    its case and its status. `rows` are stage events in case then seq order, each ending in
    `case_id` and then `StageEvent`'s fields (what comes before is the caller's); rows of kinds
    other than `SPELL_KINDS` are passed over; `final` is the workflow's final state."""
    # One loop over the whole scan, the open spell in locals: an export runs this for every
    # stage event of every case, and it must cost little more than reading them.
    kinds = _SPELL_KINDS
    held: Sequence[Any] | None = None
    number, status, stage_held, phase_held = 0, "", None, None
    case: Any = _NO_CASE
    for row in rows:
        if row[-8] != case:
            case = row[-8]
            if held is not None:
                yield held, None, number, status
                held = None
        kind = row[-6]
        if kind not in kinds:
            continue
        stage, phase = row[-4], row[-3]
        if held is None or kind == "resume":
            now = "active"
        elif kind == "pause":
            now = "paused"
        elif kind == "transition" and stage != stage_held:
            now = "active"
        else:
            now = status
        if held is not None:
            if stage == stage_held and phase == phase_held and now == status:
                continue
            yield held, row, number, status
            number += 1
            held = None
        else:
            number = 1
        if stage is not None and stage != final:
            held, status, stage_held, phase_held = row, now, stage, phase
    if held is not None:
        yield held, None, number, status


def spell_row(
    began: Sequence[Any], ended: Sequence[Any] | None, number: int, status: str, today: dt.date
) -> tuple[Any, ...]:
    """The stage_histories row (`SPELL_COLUMNS` order) of a spell `spell_spans` gave, its rows
    being `event_table`'s with the case's `participant_id` and `episode` first."""
    entered = began[-2]
    if ended is None:
        left, trigger_out, seq_out, end = None, None, None, today
    else:
        left, trigger_out, seq_out = ended[-2], ended[-5], ended[-7]
        end = utc_day(left)
    return (
        began[-8],
        began[0],
        began[1],
        number,
        began[-4],
        began[-3],
        status,
        entered,
        left,
        (end - utc_day(entered)).days,
        began[-5],
        trigger_out,
        began[-1],
        began[-7],
        seq_out,
    )


def spells(events: Iterable[StageEvent], final: str) -> Iterator[Spell]:
    """The spells of one case from its events in seq order (events of kinds other than
    `SPELL_KINDS` are passed over), `final` being the workflow's final state."""
    for began, ended, number, status in spell_spans(((None, *e) for e in events), final):
        yield Spell(
            number,
            began[-4],
            began[-3],
            status,
            began[-2],
            began[-5],
            began[-1],
            began[-7],
            ended[-2] if ended is not None else None,
            ended[-5] if ended is not None else None,
            ended[-7] if ended is not None else None,
        )


# --- the client list (the export's clients) ------------------------------------------------

CLIENT_COLUMNS = (
    "participant",
    "case_id",
    "episode",
    "coach",
    "referral_date",
    "stage",
    "phase",
    "status",
    "stage_entered",
    "days_in_programme",
    "days_in_stage",
    "review_due",
    "employer",
    "job_role",
    "job_start_date",
    "hours_per_week",
    "hourly_pay",
)


def client_row(case: Case, job: Mapping[str, Any], today: dt.date) -> list[Any]:
    """The client list row of `case` on `today`, in `CLIENT_COLUMNS` order; `job` is the job
    it is in now, by `JobRule.DETAILS` name (`Workflow.names.job.current`; empty for a case not
    in work)."""
    return [
        case.participant_id,
        case.id,
        case.episode,
        case.coach,
        case.opened_at.date().isoformat(),
        case.state,
        case.phase,
        case.status.value,
        case.stage_entered_at.date().isoformat(),
        (today - case.opened_at.astimezone(dt.UTC).date()).days,
        (today - case.stage_entered_at.astimezone(dt.UTC).date()).days,
        case.review_due.isoformat() if case.review_due else None,
        job.get("employer"),
        job.get("role"),
        plain(job.get("start_date")),
        plain(job.get("hours")),
        plain(job.get("pay")),
    ]


def plain(value: Any) -> Any:
    """Dates as ISO text, decimals as exact text: the same in CSV and JSON."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
