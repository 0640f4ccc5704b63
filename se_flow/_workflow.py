"""A workflow definition: stages, triggers, guards and record kinds, validated as a whole.

Built from plain data (what `_loader` reads from a stage folder) by `build()`, which gives each
file its shape (`_schema`: unknown keys, missing keys, wrong types), runs every named check and
reports every fault at once. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from attrs import frozen
from transitions import Machine

from ._calendar import Calendar, parse_calendar
from ._limits import DECIMAL_PLACES, date_fault, decimal_fault, text_fault
from ._model import Record
from ._spells import current_records
from ._standards import StandardSpec, parse_standards
from .errors import Fault, InvalidInput, NoteRequired, UnknownTrigger, WorkflowInvalid, quoted

if TYPE_CHECKING:
    # The stage-file shapes (and cattrs) load only to build a workflow from its files: a
    # workflow from `_loader`'s cache never needs them.
    from ._schema import ReopenTable, StageFile, TransitionTable, WorkflowTable

__all__ = [
    "FIELD_TYPES",
    "WAGE_BANDS",
    "FieldSpec",
    "GuardSpec",
    "JobRule",
    "Names",
    "RecordKind",
    "ReopenSpec",
    "StageSpec",
    "TransitionSpec",
    "WageRate",
    "Workflow",
    "age_band",
    "build",
]

EFFECTS = ("move", "phase", "pause", "resume")


# --- field types ---------------------------------------------------------------------------
# Each type turns what a caller gives (a Python value, or the text a coach typed) into the
# typed value guards read, and back into JSON for the log. A ValueError's text is shown to the
# user next to the field name, so it says what was expected.
#
# Text (str, text, choice, and each item of list and dated_steps) holds at most `MAX_TEXT`
# (200,000) characters of valid UTF-8; dates run from `EARLIEST_DATE` (1900-01-01) to
# `LATEST_DATE` (2999-12-31). Both live in `_limits`.


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    problem = text_fault(value)
    if problem is not None:
        raise ValueError(problem)
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _shown(value: Any) -> str:
    """`value` as an error message quotes it: clipped, as a bad value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _in_range(day: dt.date) -> dt.date:
    problem = date_fault(day)
    if problem is not None:
        raise ValueError(problem)
    return day


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a whole number, got {_shown(value)}")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number, got true/false")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"expected a number such as 12.50, got {_shown(value)}") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"expected a finite number, got {_shown(value)}")
    if result < 0:
        raise ValueError(f"must not be negative, got {_shown(value)}")
    return _bounded(result, value)


_PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)


def _bounded(result: Decimal, value: Any) -> Decimal:
    """`result` inside `_limits`' bounds, written without an exponent."""
    problem = decimal_fault(result)
    if problem is not None:
        raise ValueError(f"{problem}, got {_shown(value)}")
    exponent = result.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked by the caller
    if exponent > 0:
        return result.quantize(Decimal(1))
    if exponent < -DECIMAL_PLACES:
        return result.quantize(_PLACES)
    return result


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected yes or no (true/false), got {_shown(value)}")


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return _in_range(value.date())
    if isinstance(value, dt.date):
        return _in_range(value)
    if isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return _in_range(day)
    raise ValueError(f"expected a date as YYYY-MM-DD, got {_shown(value)}")


def _to_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        problem = text_fault(value)
        if problem is not None:
            raise ValueError(problem)
        items = [part.strip() for part in value.split(";")]
    elif isinstance(value, list | tuple):
        items = [_to_str(v) for v in value]
    else:
        raise ValueError(f"expected a list (or text separated by ;), got {type(value).__name__}")
    items = [i for i in items if i]
    if not items:
        raise ValueError("must list at least one item")
    return tuple(items)


def _to_dated_steps(value: Any) -> tuple[str, ...]:
    steps = _to_list(value)
    for step in steps:
        head = step.split(maxsplit=1)[0] if step.split() else ""
        try:
            day = dt.date.fromisoformat(head)
        except ValueError:
            raise ValueError(
                f"each step starts with its date (YYYY-MM-DD what happens); {_shown(step)} does not"
            ) from None
        _in_range(day)
        if len(step.split(maxsplit=1)) < 2:
            raise ValueError(f"step {_shown(step)} has a date but says nothing about what happens")
    return steps


def _choice_parser(options: Sequence[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _to_str(value)
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}; got {_shown(text)}")
        return text

    return parse


def _identity(value: Any) -> Any:
    return value


def _iso(value: Any) -> Any:
    return value.isoformat()


def _as_list(value: Any) -> Any:
    return list(value)


@frozen
class FieldType:
    name: str
    parse: Callable[[Any], Any]
    to_json: Callable[[Any], Any]
    from_json: Callable[[Any], Any]


FIELD_TYPES: Mapping[str, FieldType] = {
    "str": FieldType("str", _to_str, _identity, _identity),
    "text": FieldType("text", _to_str, _identity, _identity),
    "int": FieldType("int", _to_int, _identity, _identity),
    "decimal": FieldType("decimal", _to_decimal, str, Decimal),
    "bool": FieldType("bool", _to_bool, _identity, _identity),
    "date": FieldType("date", _to_date, _iso, dt.date.fromisoformat),
    "choice": FieldType("choice", _to_str, _identity, _identity),
    "list": FieldType("list", _to_list, _as_list, tuple),
    "dated_steps": FieldType("dated_steps", _to_dated_steps, _as_list, tuple),
}


# The JSON type each field type is stored as (`FieldType.to_json`).
_STORED_AS: Mapping[str, type] = {
    "str": str,
    "text": str,
    "choice": str,
    "date": str,
    "decimal": str,
    "int": int,
    "bool": bool,
    "list": list,
    "dated_steps": list,
}


@frozen
class FieldSpec:
    name: str
    type: str
    required: bool = True
    title: str = ""
    options: tuple[str, ...] = ()
    # Not hashed (like titles): how an amount is typed and shown, never what it means.
    money: bool = False

    def parse(self, value: Any) -> Any:
        if self.type == "choice":
            return _choice_parser(self.options)(value)
        if self.money and isinstance(value, str) and value.strip().startswith("£"):
            value = value.strip()[1:]
        return FIELD_TYPES[self.type].parse(value)

    def to_json(self, value: Any) -> Any:
        return FIELD_TYPES[self.type].to_json(value)

    def from_json(self, value: Any) -> Any:
        """The typed value, or the stored one as it is when it does not fit this field's type
        (written under a workflow that typed the field otherwise): reads show it, never fail."""
        stored_as = _STORED_AS.get(self.type)
        if stored_as is None or not isinstance(value, stored_as):
            return value
        if isinstance(value, bool) and stored_as is not bool:
            return value
        try:
            return FIELD_TYPES[self.type].from_json(value)
        except (ValueError, TypeError, ArithmeticError):
            return value


@frozen
class RecordKind:
    """A kind of evidence. `contact` kinds count as contact with the participant for reviews."""

    name: str
    title: str
    fields: tuple[FieldSpec, ...]
    contact: bool = False
    source: str = ""

    def field(self, name: str) -> FieldSpec | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    def parse(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Typed values and the problems found, by field name; both may be partial."""
        parsed: dict[str, Any] = {}
        problems: dict[str, str] = {}
        known = {f.name for f in self.fields}
        for name in values:
            if name not in known:
                problems[name] = f"not a field of {self.name} (fields: {', '.join(sorted(known))})"
        for spec in self.fields:
            raw = values.get(spec.name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if spec.required:
                    problems[spec.name] = "required"
                continue
            try:
                parsed[spec.name] = spec.parse(raw)
            except ValueError as exc:
                problems[spec.name] = str(exc)
        return parsed, problems

    def to_json(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for spec in self.fields:
            if spec.name in values:
                out[spec.name] = spec.to_json(values[spec.name])
        return out

    def from_json(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            spec = self.field(name)
            # A field dropped from the stage data later still reads back, untyped.
            out[name] = spec.from_json(value) if spec else value
        return out


@frozen
class GuardSpec:
    guard: str
    soft: bool = False
    title: str = ""
    params: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        """A stable id for scripts: the guard plus the kind it looks at."""
        kind = self.params.get("kind")
        return f"{self.guard}:{kind}" if kind else self.guard

    @property
    def label(self) -> str:
        """What a job coach reads: the stage data's title, else the name."""
        return self.title or self.name


@frozen
class TransitionSpec:
    trigger: str
    sources: tuple[str, ...]
    dest: str | None
    title: str = ""
    effect: str = "move"
    guards: tuple[GuardSpec, ...] = ()
    from_phase: str | None = None
    to_phase: str | None = None
    outcome: str | None = None
    while_paused: bool = False
    source_file: str = ""
    # Where in its file: `transitions[2]`, for faults about its guards.
    key: str = ""


@frozen
class StageSpec:
    id: str
    title: str
    order: int
    review_days: int | None
    phases: tuple[str, ...] = ()
    phase_review_days: Mapping[str, int] = attrs.field(factory=dict)
    source_file: str = ""

    def review_days_for(self, phase: str | None) -> int | None:
        if phase and phase in self.phase_review_days:
            return self.phase_review_days[phase]
        return self.review_days


WAGE_BANDS = ("21_over", "18_20", "under_18", "apprentice")
"""The minimum-wage age bands (and the apprentice rate) a wage table may hold."""

ADULT_BAND = "21_over"


def age_band(date_of_birth: dt.date, on: dt.date) -> str:
    """The minimum-wage age band of someone born on `date_of_birth`, on day `on` (their age
    in whole years then: 21 and over, 18 to 20, under 18). THE rule: a job's band at its start
    is worked out here and kept with the job, never the date of birth."""
    age = (
        on.year
        - date_of_birth.year
        - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))
    )
    if age >= 21:
        return ADULT_BAND
    return "18_20" if age >= 18 else "under_18"


BAND_WORDS = {
    "21_over": "21 and over",
    "18_20": "18 to 20",
    "under_18": "under 18",
    "apprentice": "apprentices",
}


@frozen
class WageRate:
    effective_from: dt.date
    hourly: Decimal
    band: str = ADULT_BAND


@frozen
class ReopenSpec:
    dest: str
    record: str


@frozen
class JobRule:
    """Where a client list finds the job a case is in (`[workflow.names.job]`): while the case
    is in `stage`, the last `record` recorded before the case last fired `started_by`, as
    corrected since (a correction stands where the record it corrects stood, as spells have
    it). `fields` maps each detail of `DETAILS` the workflow names to the field holding it."""

    DETAILS: ClassVar[tuple[str, ...]] = ("employer", "role", "start_date", "hours", "pay")

    stage: str
    started_by: str
    record: str
    fields: Mapping[str, str] = attrs.field(factory=dict)

    def current(self, records: Sequence[Record], marks: Mapping[str, int]) -> dict[str, Any]:
        """The job's details by `DETAILS` name (absent: none known) from a case's records and
        trigger marks, as a store's snapshot gives them: with the records each correction
        supersedes (`Needs.superseded`), or a correction's chain is taken to start where the
        record it names stood."""
        started = marks.get(self.started_by)
        if started is None:
            return {}
        current, root = current_records(records)
        offers = [r for r in current if r.kind == self.record and root[r.seq] < started]
        if not offers:
            return {}
        values = max(offers, key=lambda r: root[r.seq]).fields
        return {detail: values.get(name) for detail, name in self.fields.items()}


OTHER_CLOSE_REASON = "other"
"""The close reason that says nothing by itself: a closure for it needs a note."""


@frozen
class Names:
    """The names code uses, from `[workflow.names]`: the trigger each convenience call fires
    (None: the workflow offers no such call), the referral's record kind, the job rule."""

    pause: str | None = None
    resume: str | None = None
    withdraw: str | None = None
    close: str | None = None
    referral: str | None = None
    job: JobRule | None = None


GuardCatalog = Mapping[str, Any]


@frozen(eq=False)
class Workflow:
    """A validated workflow. `machine` is its one definition-only `transitions.Machine`."""

    name: str
    title: str
    version: str
    initial: str
    final: str
    states: Mapping[str, StageSpec]
    transitions: tuple[TransitionSpec, ...]
    records: Mapping[str, RecordKind]
    minimum_wage: tuple[WageRate, ...]
    close_reasons: tuple[str, ...]
    reopen: ReopenSpec
    hash: str
    machine: Any
    source: str = ""
    names: Names = Names()
    # trigger -> source state -> its transitions, in the order the stage data gives them.
    index: Mapping[str, Mapping[str, tuple[TransitionSpec, ...]]] = attrs.field(
        factory=dict, repr=False
    )
    standards: tuple[StandardSpec, ...] = ()
    """Service standards and follow-along schedules (`_standards`), in stage-data order."""
    calendar: Calendar | None = None
    """The working-day calendar (`[calendar]` region plus the folder's closure days)."""

    @property
    def triggers(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.trigger, None)
        return tuple(seen)

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        """The numbered stages, in order (not `referred` or the final state)."""
        return tuple(
            sorted((s for s in self.states.values() if s.order > 0), key=lambda s: s.order)
        )

    @functools.cached_property
    def stage_groups(self) -> tuple[tuple[str, ...], ...]:
        """The states in stage order (`referred`, the numbered stages, then the final state),
        those of one rank together: the order `cases(sort="stage")` reads them in."""
        ranks: dict[tuple[bool, int], list[str]] = {}
        for spec in self.states.values():
            ranks.setdefault((spec.id == self.final, spec.order), []).append(spec.id)
        return tuple(tuple(ranks[r]) for r in sorted(ranks))

    def transition(self, trigger: str, state: str, phase: str | None) -> TransitionSpec | None:
        """The transition `trigger` takes from `state` (and `phase`)."""
        for spec in self.index.get(trigger, {}).get(state, ()):
            if spec.from_phase is None or spec.from_phase == phase:
                return spec
        return None

    def stage_id(self, stage: str) -> str:
        """The state `stage` names: its id, its number (`3`) or its title (any case and
        spacing, e.g. `job matching`). The one reading of a stage filter, wherever one is
        typed. Raises `InvalidInput` listing the stages."""
        if stage in self.states:
            return stage
        if not isinstance(stage, str):
            raise InvalidInput(
                f"stage must be text (an id, number or title), not {type(stage).__name__}",
                field="stage",
            )
        wanted = " ".join(stage.split()).casefold()
        # A blank filter names no stage (it would match the unnumbered states' empty "number").
        for spec in self.states.values() if wanted else ():
            if wanted in (str(spec.order) if spec.order else "", spec.title.casefold()):
                return spec.id
        known = ", ".join(f"{s.order} {s.title}" if s.order else s.id for s in self.states.values())
        raise InvalidInput(f"unknown stage {quoted(str(stage))}; stages: {known}", field="stage")

    def closes(self, trigger: str) -> bool:
        """Whether `trigger` takes a case to the final state from any stage: what cannot be
        undone (reopening makes a new case), so a person is asked first."""
        return any(t.trigger == trigger and t.dest == self.final for t in self.transitions)

    def check_closure_note(self, outcome: str | None, note: str | None) -> None:
        """A closure for the catch-all reason (`other`, where the workflow's close reasons
        have it) says why in a note: the reason alone tells a reader nothing. Raises
        `NoteRequired`."""
        if outcome != OTHER_CLOSE_REASON or outcome not in self.close_reasons:
            return
        if note is None or not note.strip() or note.strip().casefold() == outcome:
            raise NoteRequired(outcome)

    def trigger_for(self, call: str) -> str:
        """The trigger the convenience call `call` (pause, resume, withdraw, close) fires:
        as `[workflow.names]` names it, else the trigger of the call's own name (what every
        stage folder meant before the names table); `UnknownTrigger` when there is none."""
        trigger: str = getattr(self.names, call) or call
        if trigger not in self.triggers:
            raise UnknownTrigger(trigger, self.triggers)
        return trigger

    @property
    def referral_kind(self) -> str:
        """The record kind a referral writes: `[workflow.names] referral`, else the reopen
        record (what it was before the names table)."""
        return self.names.referral or self.reopen.record

    def available(self, state: str, phase: str | None) -> list[TransitionSpec]:
        out = []
        for trigger in self.machine.get_triggers(state):
            spec = self.transition(trigger, state, phase)
            if spec is not None:
                out.append(spec)
        return out

    def minimum_wage_on(self, day: dt.date, band: str | None = None) -> WageRate | None:
        """The rate for `band` (default: 21 and over) in force on `day`, if any."""
        wanted = band or ADULT_BAND
        in_force = [r for r in self.minimum_wage if r.effective_from <= day and r.band == wanted]
        return max(in_force, key=lambda r: r.effective_from) if in_force else None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for `workflow show --json`)."""
        # The names are not hashed (`_canonical_source`): they say which trigger a convenience
        # call fires and where an export looks, never what an event means or how it replays,
        # so renaming one leaves every stored event's workflow hash valid.
        return {**_canonical_source(self), "names": attrs.asdict(self.names)}


def _canonical_source(wf: Workflow) -> dict[str, Any]:
    return {
        "name": wf.name,
        "version": wf.version,
        "initial": wf.initial,
        "final": wf.final,
        "states": {
            s.id: {
                "title": s.title,
                "order": s.order,
                "review_days": s.review_days,
                "phases": list(s.phases),
                "phase_review_days": dict(s.phase_review_days),
            }
            for s in wf.states.values()
        },
        "transitions": [
            {
                "trigger": t.trigger,
                "sources": list(t.sources),
                "dest": t.dest,
                "effect": t.effect,
                "from_phase": t.from_phase,
                "to_phase": t.to_phase,
                "outcome": t.outcome,
                "while_paused": t.while_paused,
                "guards": [
                    {"guard": g.guard, "soft": g.soft, "title": g.title, **dict(g.params)}
                    for g in t.guards
                ],
            }
            for t in wf.transitions
        ],
        "records": {
            k.name: {
                "title": k.title,
                "contact": k.contact,
                "fields": [
                    {
                        "name": f.name,
                        "type": f.type,
                        "required": f.required,
                        "options": list(f.options),
                    }
                    for f in k.fields
                ],
            }
            for k in wf.records.values()
        },
        "minimum_wage": [
            {
                "effective_from": r.effective_from.isoformat(),
                "hourly": str(r.hourly),
                "band": r.band,
            }
            for r in wf.minimum_wage
        ],
        "close_reasons": list(wf.close_reasons),
        "reopen": {"dest": wf.reopen.dest, "record": wf.reopen.record},
        # Only when set: a stage folder without standards keeps the hash it always had.
        **({"standards": [s.describe() for s in wf.standards]} if wf.standards else {}),
        **(
            {
                "calendar": {
                    "id": wf.calendar.id,
                    "years": sorted(wf.calendar.years),
                    "closed": [d.isoformat() for d in wf.calendar.closed],
                }
            }
            if wf.calendar is not None
            else {}
        ),
    }


# --- building and the named checks ---------------------------------------------------------


class _Faults:
    def __init__(self) -> None:
        self.items: list[Fault] = []

    def add(self, check: str, message: str) -> None:
        self.items.append(Fault(check, message))


def _parse_records(
    parts: Sequence[tuple[str, StageFile]], faults: _Faults
) -> dict[str, RecordKind]:
    records: dict[str, RecordKind] = {}
    for source, part in parts:
        for name, raw in part.records.items():
            if name in records:
                faults.add(
                    "record_kinds_unique",
                    f"record kind {name!r} is declared in {records[name].source} and {source}",
                )
                continue
            fields = []
            for fname, fraw in raw.fields.items():
                if fraw.type not in FIELD_TYPES:
                    faults.add(
                        "field_types_known",
                        f"{source}: field {name}.{fname} has unknown type {fraw.type!r} "
                        f"(known: {', '.join(FIELD_TYPES)})",
                    )
                    continue
                if fraw.type == "choice" and not fraw.options:
                    faults.add(
                        "field_types_known", f"{source}: choice field {name}.{fname} has no options"
                    )
                fields.append(
                    FieldSpec(
                        name=fname,
                        type=fraw.type,
                        required=fraw.required,
                        title=fraw.title,
                        options=fraw.options,
                        money=fraw.money and fraw.type == "decimal",
                    )
                )
            # A kind whose fields were all refused above is already reported; not twice.
            if not raw.fields:
                faults.add(
                    "record_kinds_have_fields", f"{source}: record kind {name!r} declares no fields"
                )
            records[name] = RecordKind(
                name=name,
                title=name if raw.title is None else raw.title,
                fields=tuple(fields),
                contact=raw.contact,
                source=source,
            )
    return records


def build(
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    catalog: GuardCatalog,
    source: str = "<data>",
    calendars: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> Workflow:
    """Build a workflow from `(file name, parsed data)` parts; raise `WorkflowInvalid` listing
    every fault the shape of the data (`_schema`) and the named checks find. `calendars` holds
    the calendar files a `[calendar]` table may name, by region id: (file name, parsed data).

    A file with only unknown keys still feeds the named checks, so its typos are listed beside
    every other fault. A file whose values have the wrong type is left out, and the named
    checks wait until it is fixed: they would only report its stages and kinds as missing."""
    from ._schema import WorkflowTable, structure

    shaped: list[tuple[str, StageFile]] = []
    shape_faults: list[Fault] = []
    misshapen = False
    for src, data in parts:
        part, found = structure(src, data)
        shape_faults += found
        if part is None:
            misshapen = True
        else:
            shaped.append((src, part))
    if misshapen:
        raise WorkflowInvalid(source, shape_faults)
    faults = _Faults()
    faults.items += shape_faults

    header = WorkflowTable()
    states: dict[str, StageSpec] = {}
    transitions: list[TransitionSpec] = []
    close_reasons: tuple[str, ...] = ()
    reopen_raw: ReopenTable | None = None
    wages: list[WageRate] = []

    headers = [(src, p.workflow) for src, p in shaped if p.workflow is not None]
    if len(headers) != 1:
        faults.add(
            "one_initial_state",
            f"exactly one file must hold the [workflow] table with the initial state; found "
            f"{len(headers)} ({', '.join(src for src, _ in headers) or 'none'})",
        )
    if headers:
        # Go on checking against the first, so one duplicate does not hide every other fault.
        header = headers[0][1]

    for src, part in shaped:
        for sid, state in part.states.items():
            states[sid] = StageSpec(
                id=sid,
                title=sid if state.title is None else state.title,
                order=0,
                review_days=state.review_days,
                source_file=src,
            )
        stage = part.stage
        if stage is not None:
            if not stage.id:
                faults.add("stages_named", f"{src}: [stage] has no id")
                continue
            sid = stage.id
            if sid in states:
                faults.add(
                    "stages_unique",
                    f"stage {sid!r} is declared in {states[sid].source_file} and {src}",
                )
            states[sid] = StageSpec(
                id=sid,
                title=sid if stage.title is None else stage.title,
                order=stage.order or len(states) + 1,
                review_days=stage.review_days,
                phases=stage.phases,
                phase_review_days=dict(stage.phase_review_days),
                source_file=src,
            )
        for i, raw in enumerate(part.transitions):
            transitions.append(_parse_transition(src, f"transitions[{i}]", raw, faults))
        if part.close_reasons is not None:
            close_reasons = part.close_reasons
        if part.reopen is not None:
            reopen_raw = part.reopen
        for wage in part.minimum_wage:
            band = wage.band or ADULT_BAND
            if band not in WAGE_BANDS:
                faults.add(
                    "minimum_wage_valid",
                    f"{src}: minimum wage entry from {wage.effective_from}: unknown band "
                    f"{band!r} (bands: {', '.join(WAGE_BANDS)})",
                )
                continue
            wages.append(
                WageRate(effective_from=wage.effective_from, hourly=wage.hourly, band=band)
            )
            problem = date_fault(wage.effective_from)
            if problem is not None:
                faults.add("minimum_wage_valid", f"{src}: minimum wage entry: {problem}")

    records = _parse_records(shaped, faults)
    initial = header.initial
    final = header.final

    # Expand "*" (every non-final state) now, so the checks see the real graph.
    concrete = [s for s in states if s != final]
    expanded = []
    for t in transitions:
        sources = tuple(concrete) if "*" in t.sources else t.sources
        expanded.append(attrs.evolve(t, sources=sources))
    transitions = expanded

    _check_states(states, initial, final, faults)
    _check_transitions(transitions, states, final, records, close_reasons, catalog, faults)
    _check_graph(transitions, states, initial, final, reopen_raw, faults)
    _check_reviews(states, final, faults)
    if not wages:
        faults.add("minimum_wage_valid", "no [[minimum_wage]] table: pay cannot be checked")
    dates = [(w.effective_from, w.band) for w in wages]
    if len(set(dates)) != len(dates):
        faults.add(
            "minimum_wage_valid", "two minimum wage rates of one band share an effective date"
        )

    reopen = ReopenSpec(dest="", record="")
    if reopen_raw is None:
        faults.add("reopen_defined", "no [reopen] table: closed cases could never be reopened")
    else:
        reopen = ReopenSpec(dest=reopen_raw.dest, record=reopen_raw.record)
        if reopen.dest not in states or reopen.dest == final:
            faults.add("reopen_defined", f"[reopen] dest {reopen.dest!r} is not an active state")
        if reopen.record not in records:
            faults.add(
                "record_kinds_exist", f"[reopen] record {reopen.record!r} is not a record kind"
            )
    names = _names(headers[0][0] if headers else "", header, states, transitions, records, faults)

    calendar = _calendar(parts, calendars or {}, faults)
    standards, problems = parse_standards(
        parts,
        records=records,
        triggers={t.trigger for t in transitions},
        has_calendar=calendar is not None,
    )
    faults.items.extend(problems)

    if faults.items:
        raise WorkflowInvalid(source, faults.items)

    machine = Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        send_event=False,
    )
    index: dict[str, dict[str, list[TransitionSpec]]] = {}
    for t in transitions:
        for src_state in t.sources:
            machine.add_transition(t.trigger, src_state, t.dest if t.dest else src_state)
            index.setdefault(t.trigger, {}).setdefault(src_state, []).append(t)

    wf = Workflow(
        name=header.name,
        title=header.name if header.title is None else header.title,
        version=header.version,
        initial=initial,
        final=final,
        states=states,
        transitions=tuple(transitions),
        records=records,
        minimum_wage=tuple(sorted(wages, key=lambda w: (w.effective_from, w.band))),
        close_reasons=close_reasons,
        reopen=reopen,
        hash="",
        machine=machine,
        source=source,
        names=names,
        index={
            trigger: {state: tuple(specs) for state, specs in by_state.items()}
            for trigger, by_state in index.items()
        },
        standards=standards,
        calendar=calendar,
    )
    digest = hashlib.sha256(
        json.dumps(_canonical_source(wf), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    object.__setattr__(wf, "hash", digest)
    return wf


_CALENDAR_KEYS = {"region", "closures"}


def _calendar(
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    calendars: Mapping[str, tuple[str, Mapping[str, Any]]],
    faults: _Faults,
) -> Calendar | None:
    """The `[calendar]` table's region (a shipped calendar file) plus its closure days."""
    tables = [(src, p["calendar"]) for src, p in parts if "calendar" in p]
    if not tables:
        return None
    if len(tables) > 1:
        faults.add(
            "calendar_known",
            f"[calendar] is set in {', '.join(src for src, _ in tables)}: set it once",
        )
    src, table = tables[0]
    if not isinstance(table, Mapping):
        faults.add("calendar_known", f"{src}: calendar must be a table")
        return None
    for key in table:
        if key not in _CALENDAR_KEYS:
            faults.add("calendar_known", f"{src}: [calendar] unknown key {key!r}")
    region = table.get("region")
    found = calendars.get(str(region)) if isinstance(region, str) else None
    if found is None:
        faults.add(
            "calendar_known",
            f"{src}: [calendar] region {region!r} is not a calendar se-flow has "
            f"(known: {', '.join(sorted(calendars)) or 'none'})",
        )
        return None
    file_name, data = found
    calendar, problems = parse_calendar(file_name, data, table.get("closures"), src)
    faults.items.extend(problems)
    return calendar


def _parse_transition(src: str, key: str, raw: TransitionTable, faults: _Faults) -> TransitionSpec:
    trigger = raw.trigger
    if not trigger:
        faults.add("triggers_named", f"{src}: a [[transitions]] entry has no trigger")
    guards = [
        GuardSpec(guard=g.guard, soft=g.soft, title=g.title, params=dict(g.params))
        for g in raw.guards
    ]
    return TransitionSpec(
        trigger=trigger,
        sources=raw.source,
        dest=raw.dest,
        title=trigger if raw.title is None else raw.title,
        effect=raw.effect or ("phase" if raw.to_phase else "move"),
        guards=tuple(guards),
        from_phase=raw.from_phase,
        to_phase=raw.to_phase,
        outcome=raw.outcome,
        while_paused=raw.while_paused,
        source_file=src,
        key=key,
    )


def _names(
    src: str,
    header: WorkflowTable,
    states: Mapping[str, StageSpec],
    transitions: Sequence[TransitionSpec],
    records: Mapping[str, RecordKind],
    faults: _Faults,
) -> Names:
    """The `[workflow.names]` table, each name checked against what the workflow declares."""
    from ._schema import NamesTable

    raw = header.names or NamesTable()
    where = f"{src}: [workflow.names]"
    effects = {t.trigger: t.effect for t in transitions}
    for call in ("pause", "resume", "withdraw", "close"):
        trigger = getattr(raw, call)
        if trigger is not None and trigger not in effects:
            faults.add("names_exist", f"{where} {call} = {trigger!r} is not a trigger")
    for call in ("pause", "resume"):
        trigger = getattr(raw, call)
        if trigger in effects and effects[trigger] != call:
            faults.add(
                "names_exist",
                f"{where} {call} = {trigger!r} has effect {effects[trigger]!r}, not {call!r}",
            )
    if raw.referral is not None and raw.referral not in records:
        faults.add("names_exist", f"{where} referral = {raw.referral!r} is not a record kind")
    job: JobRule | None = None
    if raw.job is not None:
        rule = raw.job
        if rule.stage not in states:
            faults.add("names_exist", f"{where} job.stage = {rule.stage!r} is not a stage")
        if rule.started_by not in effects:
            faults.add(
                "names_exist", f"{where} job.started_by = {rule.started_by!r} is not a trigger"
            )
        kind = records.get(rule.record)
        if kind is None:
            faults.add("names_exist", f"{where} job.record = {rule.record!r} is not a record kind")
        fields = {
            detail: name
            for detail in JobRule.DETAILS
            if (name := getattr(rule, detail)) is not None
        }
        for detail, name in fields.items():
            if kind is not None and kind.field(name) is None:
                faults.add(
                    "names_exist",
                    f"{where} job.{detail} = {name!r} is not a field of {rule.record} "
                    f"(fields: {', '.join(f.name for f in kind.fields)})",
                )
        job = JobRule(
            stage=rule.stage, started_by=rule.started_by, record=rule.record, fields=fields
        )
    return Names(
        pause=raw.pause,
        resume=raw.resume,
        withdraw=raw.withdraw,
        close=raw.close,
        referral=raw.referral,
        job=job,
    )


def _check_states(
    states: Mapping[str, StageSpec], initial: str, final: str, faults: _Faults
) -> None:
    if not initial or initial not in states:
        faults.add("one_initial_state", f"initial state {initial!r} is not declared")
    if not final or final not in states:
        faults.add("one_final_state", f"final state {final!r} is not declared")
    orders = [s.order for s in states.values() if s.order]
    if len(set(orders)) != len(orders):
        faults.add("stages_unique", "two stages share an order number")


def _check_transitions(
    transitions: Sequence[TransitionSpec],
    states: Mapping[str, StageSpec],
    final: str,
    records: Mapping[str, RecordKind],
    close_reasons: Sequence[str],
    catalog: GuardCatalog,
    faults: _Faults,
) -> None:
    seen: dict[tuple[str, str, str | None], str] = {}
    for t in transitions:
        where = f"{t.source_file}: {t.trigger}"
        if t.effect not in EFFECTS:
            faults.add(
                "effects_known",
                f"{where}: unknown effect {t.effect!r} (known: {', '.join(EFFECTS)})",
            )
        if not t.sources:
            faults.add("states_exist", f"{where}: no source state")
        for s in t.sources:
            if s not in states:
                faults.add("states_exist", f"{where}: source {s!r} is not a declared state")
            elif s == final:
                faults.add("final_state_has_no_exits", f"{where}: leaves the final state {final!r}")
            key = (t.trigger, s, t.from_phase)
            if key in seen:
                faults.add(
                    "triggers_unambiguous",
                    f"{where}: {t.trigger} from {s} is also defined in {seen[key]}",
                )
            seen[key] = t.source_file
        if t.effect == "move" and not t.guards and t.dest in t.sources:
            # Fired by anyone at any time, it moves nothing and only fills the log.
            faults.add(
                "no_idle_self_loops",
                f"{where}: moves from {t.dest} back to {t.dest} with no guards: it does nothing",
            )
        if t.effect in ("move", "phase"):
            if t.dest is None:
                faults.add("states_exist", f"{where}: no dest state")
            elif t.dest not in states:
                faults.add("states_exist", f"{where}: dest {t.dest!r} is not a declared state")
        # A closure names its outcome, or takes it from the caller through a close_reason guard
        # (whatever the trigger is called in this stage folder).
        asks_reason = any(g.guard == "close_reason" for g in t.guards)
        if t.dest == final and not t.outcome and not asks_reason:
            faults.add("closures_have_outcome", f"{where}: goes to {final} without an outcome")
        if t.to_phase or t.from_phase:
            stage = states.get(t.dest or "") if t.dest else None
            phases = stage.phases if stage else ()
            for ph in (t.from_phase, t.to_phase):
                if ph and ph not in phases:
                    faults.add("phases_exist", f"{where}: phase {ph!r} is not a phase of {t.dest}")
        for i, g in enumerate(t.guards):
            _check_guard(
                f"{where}: {t.key}.guards[{i}]", g, records, close_reasons, catalog, faults
            )


def _check_guard(
    where: str,
    g: GuardSpec,
    records: Mapping[str, RecordKind],
    close_reasons: Sequence[str],
    catalog: GuardCatalog,
    faults: _Faults,
) -> None:
    definition = catalog.get(g.guard)
    if definition is None:
        faults.add(
            "guards_exist",
            f"{where}: unknown guard {g.guard!r} (known: {', '.join(sorted(catalog))})",
        )
        return
    for problem in definition.check_params(g.params, records, close_reasons):
        faults.add(
            "guard_params_valid" if "record kind" not in problem else "record_kinds_exist",
            f"{where}: guard {g.guard}: {problem}",
        )


def _check_graph(
    transitions: Sequence[TransitionSpec],
    states: Mapping[str, StageSpec],
    initial: str,
    final: str,
    reopen_raw: ReopenTable | None,
    faults: _Faults,
) -> None:
    edges: dict[str, set[str]] = {s: set() for s in states}
    for t in transitions:
        for s in t.sources:
            if s in edges and t.dest is not None and t.dest in states:
                edges[s].add(t.dest)
    # Reopen is an edge into the graph too: a new episode starts there.
    roots = {initial}
    if reopen_raw is not None and reopen_raw.dest in states:
        roots.add(reopen_raw.dest)
    reached = _reach(roots & set(states), edges)
    for s in states:
        if s not in reached:
            faults.add("every_state_reachable", f"state {s!r} cannot be reached from {initial!r}")
    reverse: dict[str, set[str]] = {s: set() for s in states}
    for s, dests in edges.items():
        for d in dests:
            reverse[d].add(s)
    if final in states:
        can_finish = _reach({final}, reverse)
        for s in states:
            if s not in can_finish:
                faults.add(
                    "every_state_can_close", f"state {s!r} is a dead end: it cannot reach {final!r}"
                )


def _reach(roots: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(roots)
    todo = list(seen)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# Ten years: a review cadence beyond it is a typo, and one of 99,999,999,999 days made every
# move overflow in date arithmetic.
MAX_REVIEW_DAYS = 3660


def _check_reviews(states: Mapping[str, StageSpec], final: str, faults: _Faults) -> None:
    for s in states.values():
        if s.id == final:
            continue
        days = [s.review_days, *s.phase_review_days.values()]
        for d in days:
            if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= MAX_REVIEW_DAYS:
                faults.add(
                    "review_cadence_valid",
                    f"{s.source_file}: {s.id} review_days must be a whole number of days from "
                    f"1 to {MAX_REVIEW_DAYS:,}, got {_shown(d)}",
                )
        for ph in s.phase_review_days:
            if ph not in s.phases:
                faults.add(
                    "phases_exist", f"{s.source_file}: phase_review_days names unknown phase {ph!r}"
                )
