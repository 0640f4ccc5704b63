"""A workflow definition: stages, triggers, guards and record kinds, validated as a whole.

Built from plain data (what `_loader` reads from a stage folder) by `build()`, which runs every
named check and reports every fault at once. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from attrs import frozen
from transitions import Machine

from ._limits import date_fault, text_fault
from .errors import Fault, WorkflowInvalid

__all__ = [
    "FIELD_TYPES",
    "WAGE_BANDS",
    "FieldSpec",
    "GuardSpec",
    "RecordKind",
    "ReopenSpec",
    "StageSpec",
    "TransitionSpec",
    "WageRate",
    "Workflow",
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

    def parse(self, value: Any) -> Any:
        if self.type == "choice":
            return _choice_parser(self.options)(value)
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

    def transition(self, trigger: str, state: str, phase: str | None) -> TransitionSpec | None:
        """The transition `trigger` takes from `state` (and `phase`), via the machine."""
        event = self.machine.events.get(trigger)
        if event is None:
            return None
        for candidate in event.transitions.get(state, ()):
            spec: TransitionSpec = candidate.__dict__["_se_spec"]
            if spec.from_phase is None or spec.from_phase == phase:
                return spec
        return None

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

    def record_kind(self, name: str) -> RecordKind | None:
        return self.records.get(name)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for `workflow show --json`)."""
        return _canonical_source(self)


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
    }


# --- building and the named checks ---------------------------------------------------------


class _Faults:
    def __init__(self) -> None:
        self.items: list[Fault] = []

    def add(self, check: str, message: str) -> None:
        self.items.append(Fault(check, message))


def _as_tuple(value: Any, what: str, faults: _Faults) -> tuple[str, ...]:
    """A name or a list of names; anything else is a fault (a number in close_reasons made
    `next` raise TypeError long after the folder was accepted)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        faults.add("names_are_text", f"{what} must be a name or a list of names, got {value!r}")
        return ()
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        faults.add("names_are_text", f"{what} holds {bad[0]!r}, not a name")
    return tuple(v for v in value if isinstance(v, str) and v)


def _parse_records(
    parts: Sequence[tuple[str, Mapping[str, Any]]], faults: _Faults
) -> dict[str, RecordKind]:
    records: dict[str, RecordKind] = {}
    for source, part in parts:
        for name, raw in (part.get("records") or {}).items():
            if name in records:
                faults.add(
                    "record_kinds_unique",
                    f"record kind {name!r} is declared in {records[name].source} and {source}",
                )
                continue
            fields = []
            for fname, fraw in (raw.get("fields") or {}).items():
                ftype = fraw.get("type")
                if ftype not in FIELD_TYPES:
                    faults.add(
                        "field_types_known",
                        f"{source}: field {name}.{fname} has unknown type {ftype!r} "
                        f"(known: {', '.join(FIELD_TYPES)})",
                    )
                    continue
                options = _as_tuple(
                    fraw.get("options"), f"{source}: {name}.{fname} options", faults
                )
                if ftype == "choice" and not options:
                    faults.add(
                        "field_types_known", f"{source}: choice field {name}.{fname} has no options"
                    )
                fields.append(
                    FieldSpec(
                        name=fname,
                        type=ftype,
                        required=bool(fraw.get("required", True)),
                        title=str(fraw.get("title", "")),
                        options=options,
                    )
                )
            # A kind whose fields were all refused above is already reported; not twice.
            if not raw.get("fields"):
                faults.add(
                    "record_kinds_have_fields", f"{source}: record kind {name!r} declares no fields"
                )
            records[name] = RecordKind(
                name=name,
                title=str(raw.get("title", name)),
                fields=tuple(fields),
                contact=bool(raw.get("contact", False)),
                source=source,
            )
    return records


def build(
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    catalog: GuardCatalog,
    source: str = "<data>",
) -> Workflow:
    """Build a workflow from `(file name, parsed data)` parts; raise `WorkflowInvalid` listing
    every fault the named checks find."""
    faults = _Faults()
    header: Mapping[str, Any] = {}
    states: dict[str, StageSpec] = {}
    transitions: list[TransitionSpec] = []
    close_reasons: tuple[str, ...] = ()
    reopen_raw: Mapping[str, Any] | None = None
    wages: list[WageRate] = []

    headers = [(src, p) for src, p in parts if "workflow" in p]
    if len(headers) != 1:
        faults.add(
            "one_initial_state",
            f"exactly one file must hold the [workflow] table with the initial state; found "
            f"{len(headers)} ({', '.join(src for src, _ in headers) or 'none'})",
        )
    if headers:
        # Go on checking against the first, so one duplicate does not hide every other fault.
        header = headers[0][1]["workflow"]

    for src, part in parts:
        for sid, raw in (part.get("states") or {}).items():
            states[sid] = StageSpec(
                id=sid,
                title=str(raw.get("title", sid)),
                order=0,
                review_days=raw.get("review_days"),
                source_file=src,
            )
        stage = part.get("stage")
        if stage is not None:
            sid = stage.get("id")
            if not sid:
                faults.add("stages_named", f"{src}: [stage] has no id")
                continue
            if sid in states:
                faults.add(
                    "stages_unique",
                    f"stage {sid!r} is declared in {states[sid].source_file} and {src}",
                )
            states[sid] = StageSpec(
                id=sid,
                title=str(stage.get("title", sid)),
                order=int(stage.get("order", 0)) or len(states) + 1,
                review_days=stage.get("review_days"),
                phases=_as_tuple(stage.get("phases"), f"{src}: {sid} phases", faults),
                phase_review_days=dict(stage.get("phase_review_days") or {}),
                source_file=src,
            )
        for raw in part.get("transitions") or []:
            transitions.append(_parse_transition(src, raw, faults))
        if "close_reasons" in part:
            close_reasons = _as_tuple(part["close_reasons"], f"{src}: close_reasons", faults)
        if "reopen" in part:
            reopen_raw = part["reopen"]
        for raw in part.get("minimum_wage") or []:
            band = raw.get("band", ADULT_BAND)
            if band not in WAGE_BANDS:
                faults.add(
                    "minimum_wage_valid",
                    f"{src}: minimum wage entry {raw!r}: unknown band {band!r} "
                    f"(bands: {', '.join(WAGE_BANDS)})",
                )
                continue
            try:
                wages.append(
                    WageRate(
                        effective_from=_to_date(raw.get("effective_from")),
                        hourly=_to_decimal(raw.get("hourly")),
                        band=band,
                    )
                )
            except ValueError as exc:
                faults.add("minimum_wage_valid", f"{src}: minimum wage entry {raw!r}: {exc}")

    records = _parse_records(parts, faults)
    initial = str(header.get("initial", ""))
    final = str(header.get("final", ""))

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
        reopen = ReopenSpec(
            dest=str(reopen_raw.get("dest", "")), record=str(reopen_raw.get("record", ""))
        )
        if reopen.dest not in states or reopen.dest == final:
            faults.add("reopen_defined", f"[reopen] dest {reopen.dest!r} is not an active state")
        if reopen.record not in records:
            faults.add(
                "record_kinds_exist", f"[reopen] record {reopen.record!r} is not a record kind"
            )

    if faults.items:
        raise WorkflowInvalid(source, faults.items)

    machine = Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        send_event=False,
    )
    for t in transitions:
        for src_state in t.sources:
            machine.add_transition(t.trigger, src_state, t.dest if t.dest else src_state)
            # Tag the machine's transition with our spec, so lookups go through the machine.
            machine.events[t.trigger].transitions[src_state][-1].__dict__["_se_spec"] = t

    wf = Workflow(
        name=str(header.get("name", "workflow")),
        title=str(header.get("title", header.get("name", ""))),
        version=str(header.get("version", "1")),
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
    )
    digest = hashlib.sha256(
        json.dumps(_canonical_source(wf), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    object.__setattr__(wf, "hash", digest)
    return wf


_TRANSITION_KEYS = {
    "trigger",
    "title",
    "source",
    "dest",
    "effect",
    "guards",
    "from_phase",
    "to_phase",
    "outcome",
    "while_paused",
}


def _parse_transition(src: str, raw: Mapping[str, Any], faults: _Faults) -> TransitionSpec:
    trigger = str(raw.get("trigger", ""))
    if not trigger:
        faults.add("triggers_named", f"{src}: a [[transitions]] entry has no trigger")
    for key in raw:
        if key not in _TRANSITION_KEYS:
            faults.add("transition_keys_known", f"{src}: {trigger}: unknown key {key!r}")
    guards = []
    for g in raw.get("guards") or []:
        params = {k: v for k, v in g.items() if k not in ("guard", "soft", "title")}
        guards.append(
            GuardSpec(
                guard=str(g.get("guard", "")),
                soft=bool(g.get("soft", False)),
                title=str(g.get("title", "")),
                params=params,
            )
        )
    effect = str(raw.get("effect", "phase" if raw.get("to_phase") else "move"))
    return TransitionSpec(
        trigger=trigger,
        sources=_as_tuple(raw.get("source"), f"{src}: {trigger} source", faults),
        dest=raw.get("dest"),
        title=str(raw.get("title", trigger)),
        effect=effect,
        guards=tuple(guards),
        from_phase=raw.get("from_phase"),
        to_phase=raw.get("to_phase"),
        outcome=raw.get("outcome"),
        while_paused=bool(raw.get("while_paused", False)),
        source_file=src,
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
        for g in t.guards:
            _check_guard(where, g, records, close_reasons, catalog, faults)


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
    reopen_raw: Mapping[str, Any] | None,
    faults: _Faults,
) -> None:
    edges: dict[str, set[str]] = {s: set() for s in states}
    for t in transitions:
        for s in t.sources:
            if s in edges and t.dest is not None and t.dest in states:
                edges[s].add(t.dest)
    # Reopen is an edge into the graph too: a new episode starts there.
    roots = {initial}
    if reopen_raw and reopen_raw.get("dest") in states:
        roots.add(str(reopen_raw["dest"]))
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
