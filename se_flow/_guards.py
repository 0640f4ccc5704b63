"""The guard library: the checks stage data can name, each explaining itself in plain words.

A guard takes a `GuardContext` (the case, its current records, who is acting, when, and what
they said) plus the parameters the stage data gave it, and returns passed or failed with a
reason. Stage folders compose their own rules from these; nothing here knows stage names.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from attrs import frozen

from ._model import Case, Record, Role, Staff
from ._workflow import BAND_WORDS, RecordKind, Workflow
from .errors import quoted
from .ports import Needs

__all__ = ["GUARDS", "GuardContext", "GuardDef"]


@frozen
class GuardContext:
    """Everything a guard may look at. `marks` maps a trigger to the seq of its last event on
    this case, so guards can ask for evidence recorded since, say, the last job ended."""

    case: Case
    records: tuple[Record, ...]
    marks: Mapping[str, int]
    actor: Staff
    now: dt.datetime
    effective_at: dt.datetime
    workflow: Workflow
    reason: str | None = None
    review_date: dt.date | None = None
    outcome: str | None = None

    def of_kind(self, kind: str, since: Sequence[str] = ()) -> list[Record]:
        floor = max((self.marks.get(t, 0) for t in since), default=0) if since else 0
        return [r for r in self.records if r.kind == kind and r.seq > floor]

    def latest(self, kind: str, since: Sequence[str] = ()) -> Record | None:
        found = self.of_kind(kind, since)
        if len(found) < 2:
            # Most guards read one record of a kind (`Needs.latest`): nothing to compare.
            return found[0] if found else None
        return max(found, key=_effective_then_seq)


def _effective_then_seq(record: Record) -> tuple[dt.datetime, int]:
    return record.effective_at, record.seq


Result = tuple[bool, str]
GuardFn = Callable[..., Result]


@frozen
class GuardDef:
    """A guard and the parameters it takes. `kind_params` name record kinds; `field_params`
    name fields of the kind given as `kind`."""

    name: str
    fn: GuardFn
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    kind_params: tuple[str, ...] = ()
    field_params: tuple[str, ...] = ()
    default_kinds: tuple[str, ...] = ()
    reads_contacts: bool = False
    """Reads the last contact and its kinds' records since (`Needs.since_contact`)."""
    latest_only: bool = False
    """Reads only the latest record of each kind it names, unless given `since` (the latest
    since a trigger may be an earlier one)."""

    def needs(self, params: Mapping[str, Any], workflow: Workflow) -> Needs:
        """What this guard reads of a case, so a command loads only that: on a case of
        thousands of records, a few of them."""
        kinds = frozenset(
            {params[p] for p in self.kind_params if p in params} | set(self.default_kinds)
        )
        since = frozenset(params.get("since") or ())
        if self.reads_contacts:
            contacts = frozenset(k.name for k in workflow.records.values() if k.contact)
            return Needs(kinds=frozenset(), triggers=since, contacts=contacts, since_contact=kinds)
        if self.latest_only and not since:
            return Needs(kinds=frozenset(), triggers=since, latest=kinds)
        return Needs(kinds=kinds, triggers=since)

    def check_params(
        self,
        params: Mapping[str, Any],
        records: Mapping[str, RecordKind],
        close_reasons: Sequence[str],
    ) -> list[str]:
        problems = []
        allowed = set(self.required) | set(self.optional)
        for p in self.required:
            if p not in params:
                problems.append(f"missing parameter {p!r}")
        for p in params:
            if p not in allowed:
                # A typo of one of the guard entry's own keys lands here too (`sfot = true`).
                near = difflib.get_close_matches(p, [*allowed, "guard", "soft", "title"], n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                problems.append(
                    f"unknown parameter {p!r} (takes: {', '.join(sorted(allowed)) or 'none'}{hint})"
                )
        for p in self.kind_params:
            kind = params.get(p)
            if kind is not None and kind not in records:
                problems.append(f"{p} names unknown record kind {kind!r}")
        kind_spec = records.get(params.get("kind", ""))
        if kind_spec is not None:
            for p in self.field_params:
                names = params.get(p)
                for name in [names] if isinstance(names, str) else (names or []):
                    if kind_spec.field(name) is None:
                        problems.append(
                            f"{p} names {name!r}, which is not a field of {kind_spec.name}"
                        )
        if self.name == "role" and params.get("role") not in {r.value for r in Role}:
            problems.append(
                f"role {params.get('role')!r} is not a role ({', '.join(r.value for r in Role)})"
            )
        for p, value in params.items():
            # Counts the guard compares with: a text or a huge number would fail only when run.
            if p.startswith("min_") and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000
            ):
                problems.append(f"{p} must be a whole number from 0 to 10,000, got {value!r}")
        if self.name == "close_reason" and not close_reasons:
            problems.append("no close_reasons are declared")
        return problems

    def __call__(self, ctx: GuardContext, params: Mapping[str, Any]) -> Result:
        return self.fn(ctx, **params)


def _title(ctx: GuardContext, kind: str) -> str:
    spec = ctx.workflow.records.get(kind)
    return spec.title.lower() if spec else kind.replace("_", " ")


def _pounds(value: Any) -> str:
    """An amount as a coach reads it: £12.80."""
    try:
        return f"£{Decimal(value).quantize(Decimal('0.01')):,}"
    except (ArithmeticError, TypeError, ValueError):
        return str(value)


def _as_written(value: Any) -> str:
    """A field's value as a coach types it: yes/no, not True/False; text unquoted."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "nothing" if value is None else str(value)


def _when(record: Record) -> str:
    return record.effective_at.date().isoformat()


def _since_words(ctx: GuardContext, since: Sequence[str]) -> str:
    seen = [t for t in since if t in ctx.marks]
    return f" since the last {' or '.join(seen)}" if seen else ""


def record(ctx: GuardContext, kind: str, since: Sequence[str] = ()) -> Result:
    found = ctx.latest(kind, since)
    if found is None:
        return False, f"no {_title(ctx, kind)} recorded{_since_words(ctx, since)}"
    return True, f"{_title(ctx, kind)} recorded on {_when(found)}"


def field_equals(
    ctx: GuardContext, kind: str, field: str, value: Any, since: Sequence[str] = ()
) -> Result:
    found = ctx.latest(kind, since)
    if found is None:
        return False, f"no {_title(ctx, kind)} recorded{_since_words(ctx, since)}"
    actual = found.get(field)
    if actual != value:
        return (
            False,
            f"{_title(ctx, kind)} of {_when(found)} has {field} = {_as_written(actual)}, "
            f"needs {_as_written(value)}",
        )
    return True, f"{_title(ctx, kind)} of {_when(found)} has {field} = {_as_written(value)}"


def field_nonempty(ctx: GuardContext, kind: str, field: str, since: Sequence[str] = ()) -> Result:
    found = ctx.latest(kind, since)
    if found is None:
        return False, f"no {_title(ctx, kind)} recorded{_since_words(ctx, since)}"
    value = found.get(field)
    if not value:
        return False, f"{_title(ctx, kind)} of {_when(found)} has no {field}"
    count = len(value) if isinstance(value, list | tuple) else 1
    return True, f"{_title(ctx, kind)} of {_when(found)} has {count} {field.replace('_', ' ')}"


def any_field_true(
    ctx: GuardContext, kind: str, fields: Sequence[str], since: Sequence[str] = ()
) -> Result:
    found = ctx.latest(kind, since)
    if found is None:
        return False, f"no {_title(ctx, kind)} recorded{_since_words(ctx, since)}"
    hits = [f for f in fields if found.get(f) is True]
    if not hits:
        return False, f"{_title(ctx, kind)} of {_when(found)} has none of {', '.join(fields)}"
    return True, f"{_title(ctx, kind)} of {_when(found)} has {', '.join(hits)}"


def consent(ctx: GuardContext, fields: Sequence[str], kind: str = "consent") -> Result:
    found = ctx.latest(kind)
    if found is None:
        return False, "no consent recorded"
    if found.get("withdrawn") is True:
        return False, f"consent was withdrawn on {_when(found)}"
    missing = [f.replace("_", " ") for f in fields if found.get(f) is not True]
    if missing:
        return False, f"consent of {_when(found)} does not cover {', '.join(missing)}"
    return (
        True,
        f"consent to {', '.join(f.replace('_', ' ') for f in fields)} given on {_when(found)}",
    )


def records_match(
    ctx: GuardContext, kind: str, other: str, field: str, since: Sequence[str] = ()
) -> Result:
    mine = ctx.of_kind(kind, since)
    theirs = {r.get(field) for r in ctx.of_kind(other)}
    if not mine:
        return False, f"no {_title(ctx, kind)} recorded{_since_words(ctx, since)}"
    if not theirs:
        return False, f"no {_title(ctx, other)} recorded"
    matched = [r for r in mine if r.get(field) in theirs]
    if not matched:
        names = ", ".join(sorted(str(r.get(field)) for r in mine))
        return False, f"no {_title(ctx, other)} recorded for {field} {names}"
    return True, f"{_title(ctx, kind)} and {_title(ctx, other)} for {matched[-1].get(field)}"


def minimum_wage(
    ctx: GuardContext,
    kind: str,
    date_field: str,
    pay_field: str,
    since: Sequence[str] = (),
    band_field: str | None = None,
    job_kind_field: str | None = None,
) -> Result:
    """Pay at least the minimum wage in force on the date, for the age band the record keeps
    in `band_field` (the adult rate when it keeps none); an apprenticeship (`job_kind_field`)
    at the apprentice rate."""
    found = ctx.latest(kind, since)
    if found is None:
        return False, f"no {_title(ctx, kind)} recorded to check pay against"
    day, pay = found.get(date_field), found.get(pay_field)
    band = found.get(band_field) if band_field else None
    if job_kind_field and found.get(job_kind_field) == "apprenticeship":
        band = "apprentice"
    rate = ctx.workflow.minimum_wage_on(day, band)
    which = f" for {BAND_WORDS.get(band, band)}" if band else ""
    if rate is None:
        return False, f"no minimum wage rate{which} in force on {day}: add one to the stage data"
    if pay < rate.hourly:
        return False, (
            f"pay {_pounds(pay)} an hour is below the minimum wage{which} of "
            f"{_pounds(rate.hourly)} in force on {day} (since {rate.effective_from})"
        )
    return True, (
        f"pay {_pounds(pay)} an hour meets the minimum wage{which} of {_pounds(rate.hourly)} "
        f"in force on {day}"
    )


def disclosure_consent(
    ctx: GuardContext,
    kind: str,
    field: str,
    unless: str,
    consent_field: str,
    consent_kind: str = "consent",
) -> Result:
    preference = ctx.latest(kind)
    level = preference.get(field) if preference else None
    if level is None or level == unless:
        return True, f"no disclosure to employers planned ({field}: {level or 'not recorded'})"
    agreed = ctx.latest(consent_kind)
    if agreed is None or agreed.get(consent_field) is not True or agreed.get("withdrawn") is True:
        return False, (
            f"disclosure is {level!r} but there is no consent to talk to the employer "
            f"({consent_kind}.{consent_field})"
        )
    return True, f"disclosure {level!r} with consent to talk to the employer"


def reason(ctx: GuardContext) -> Result:
    if ctx.reason and ctx.reason.strip():
        return True, f"reason given: {ctx.reason.strip()}"
    return False, "a reason is required"


def review_date(ctx: GuardContext) -> Result:
    if ctx.review_date is None:
        return False, "a review date is required"
    if ctx.review_date < ctx.now.date():
        return False, f"review date {ctx.review_date} is already past"
    return True, f"review on {ctx.review_date}"


def close_reason(ctx: GuardContext) -> Result:
    allowed = ctx.workflow.close_reasons
    if not ctx.outcome:
        return False, f"a closure reason is required (one of {', '.join(allowed)})"
    if ctx.outcome not in allowed:
        return False, f"{quoted(ctx.outcome)} is not a closure reason (one of {', '.join(allowed)})"
    return True, f"closure reason: {ctx.outcome}"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def role(ctx: GuardContext, role: str, when_outcome: Iterable[str] | None = None) -> Result:
    wanted = role.replace("_", " ")
    if when_outcome is not None and ctx.outcome not in set(when_outcome):
        return True, f"no {wanted} needed for this"
    if ctx.actor.role == Role(role):
        return True, f"{ctx.actor.id} is {_a(wanted)}"
    has = ctx.actor.role.value.replace("_", " ")
    return False, f"only {_a(wanted)} may do this; {ctx.actor.id} is {_a(has)}"


def outreach(
    ctx: GuardContext,
    min_attempts: int,
    min_channels: int,
    min_span_days: int,
    kind: str = "outreach_attempt",
    channel_field: str = "channel",
) -> Result:
    contact_kinds = {k.name for k in ctx.workflow.records.values() if k.contact}
    last_contact = max(
        (r.effective_at for r in ctx.records if r.kind in contact_kinds), default=None
    )
    attempts = [
        r for r in ctx.of_kind(kind) if last_contact is None or r.effective_at > last_contact
    ]
    channels = {r.get(channel_field) for r in attempts}
    span = (
        (max(r.effective_at for r in attempts) - min(r.effective_at for r in attempts)).days
        if attempts
        else 0
    )
    summary = f"{len(attempts)} attempt(s) over {len(channels)} channel(s) spanning {span} day(s)"
    if len(attempts) < min_attempts or len(channels) < min_channels or span < min_span_days:
        return False, (
            f"{summary} since the last contact; needs at least {min_attempts} attempts over "
            f"{min_channels} channels spanning {min_span_days} days"
        )
    return True, summary


def _def(fn: GuardFn, required: Sequence[str], optional: Sequence[str] = (), **kw: Any) -> GuardDef:
    return GuardDef(
        name=fn.__name__,
        fn=fn,
        required=tuple(required),
        optional=tuple(optional),
        **kw,
    )


GUARDS: Mapping[str, GuardDef] = {
    g.name: g
    for g in (
        _def(record, ["kind"], ["since"], kind_params=("kind",), latest_only=True),
        _def(
            field_equals,
            ["kind", "field", "value"],
            ["since"],
            kind_params=("kind",),
            field_params=("field",),
            latest_only=True,
        ),
        _def(
            field_nonempty,
            ["kind", "field"],
            ["since"],
            kind_params=("kind",),
            field_params=("field",),
            latest_only=True,
        ),
        _def(
            any_field_true,
            ["kind", "fields"],
            ["since"],
            kind_params=("kind",),
            field_params=("fields",),
            latest_only=True,
        ),
        _def(
            consent,
            ["fields"],
            ["kind"],
            kind_params=("kind",),
            default_kinds=("consent",),
            latest_only=True,
        ),
        _def(
            records_match,
            ["kind", "other", "field"],
            ["since"],
            kind_params=("kind", "other"),
            field_params=("field",),
        ),
        _def(
            minimum_wage,
            ["kind", "date_field", "pay_field"],
            ["since", "band_field", "job_kind_field"],
            kind_params=("kind",),
            field_params=("date_field", "pay_field", "band_field", "job_kind_field"),
            latest_only=True,
        ),
        _def(
            disclosure_consent,
            ["kind", "field", "unless", "consent_field"],
            ["consent_kind"],
            kind_params=("kind", "consent_kind"),
            field_params=("field",),
            default_kinds=("consent",),
            latest_only=True,
        ),
        _def(reason, []),
        _def(review_date, []),
        _def(close_reason, []),
        _def(role, ["role"], ["when_outcome"]),
        _def(
            outreach,
            ["min_attempts", "min_channels", "min_span_days"],
            ["kind", "channel_field"],
            kind_params=("kind",),
            default_kinds=("outreach_attempt",),
            reads_contacts=True,
        ),
    )
}
