"""The shape of a stage file: what tables and keys it may hold and the type of each value.

`structure(file, data)` turns one file's parsed TOML into a `StageFile` with cattrs, and every
way the data does not fit (an unknown key, a missing one, a value of the wrong type) into a
`Fault` naming the file and the dotted key path, all at once. What the values mean (a dest that
is a declared state, a review cadence in range, ...) is for the named checks in `_workflow`.
No I/O here.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs
from attrs import define, field
from cattrs.cols import is_mapping, is_sequence, list_structure_factory, mapping_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ForbiddenExtraKeysError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn

from .errors import Fault

__all__ = [
    "FieldTable",
    "GuardTable",
    "JobTable",
    "NamesTable",
    "RecordTable",
    "ReopenTable",
    "StageFile",
    "StageTable",
    "StateTable",
    "TransitionTable",
    "WageTable",
    "WorkflowTable",
    "structure",
]

# A name or a list of names (`source = "*"`, `phases = [...]`, `close_reasons = [...]`).
Names = tuple[str, ...]


@define
class FieldTable:
    type: str
    required: bool = True
    title: str = ""
    options: Names = ()
    # A decimal that is an amount in pounds: typed as 12.50 or £12.50, shown as £12.50.
    money: bool = False


@define
class RecordTable:
    title: str | None = None
    contact: bool = False
    fields: dict[str, FieldTable] = field(factory=dict)


@define
class GuardTable:
    """A guard entry: its own keys; every other key is a parameter of the guard, checked
    against the guard catalog by `guard_params_valid`."""

    guard: str
    soft: bool = False
    title: str = ""
    params: dict[str, Any] = field(factory=dict)


@define
class TransitionTable:
    # Absent trigger or source: named checks (`triggers_named`, `states_exist`) report those.
    trigger: str = ""
    title: str | None = None
    source: Names = ()
    dest: str | None = None
    effect: str | None = None
    guards: list[GuardTable] = field(factory=list)
    from_phase: str | None = None
    to_phase: str | None = None
    outcome: str | None = None
    while_paused: bool = False


@define
class StateTable:
    title: str | None = None
    review_days: int | None = None


@define
class StageTable:
    id: str | None = None
    title: str | None = None
    order: int = 0
    review_days: int | None = None
    phases: Names = ()
    phase_review_days: dict[str, int] = field(factory=dict)


@define
class WageTable:
    effective_from: dt.date
    hourly: Decimal
    band: str | None = None
    """The age band the rate is for (`_workflow.WAGE_BANDS`); none: adults."""


@define
class ReopenTable:
    dest: str = ""
    record: str = ""


@define
class JobTable:
    """Where a client list finds a case's job: while the case is in `stage`, the last `record`
    recorded before the case last fired `started_by`; each other key names the field of it
    that holds that detail."""

    stage: str
    started_by: str
    record: str
    employer: str | None = None
    role: str | None = None
    start_date: str | None = None
    hours: str | None = None
    pay: str | None = None


@define
class NamesTable:
    """The names code uses: the trigger each convenience call fires, the referral's record kind
    and the job rule of the client list. A name left out is a call the workflow does not offer."""

    pause: str | None = None
    resume: str | None = None
    withdraw: str | None = None
    close: str | None = None
    referral: str | None = None
    job: JobTable | None = None


@define
class WorkflowTable:
    name: str = "workflow"
    title: str | None = None
    version: str = "1"
    # Absent: `one_initial_state` / `one_final_state` report it.
    initial: str = ""
    final: str = ""
    names: NamesTable | None = None


@define
class StageFile:
    workflow: WorkflowTable | None = None
    stage: StageTable | None = None
    states: dict[str, StateTable] = field(factory=dict)
    records: dict[str, RecordTable] = field(factory=dict)
    transitions: list[TransitionTable] = field(factory=list)
    close_reasons: Names | None = None
    reopen: ReopenTable | None = None
    minimum_wage: list[WageTable] = field(factory=list)
    # Service standards and the working-day calendar have named checks of their own
    # (`_standards`, `_workflow._calendar`), which read them as given.
    standards: list[dict[str, Any]] = field(factory=list)
    calendar: dict[str, Any] | None = None


# The check an unknown key in each table fails, so a script can tell them apart.
_KEYS_CHECK: Mapping[type, str] = {
    StageFile: "file_keys_known",
    WorkflowTable: "workflow_keys_known",
    NamesTable: "names_keys_known",
    JobTable: "names_keys_known",
    StageTable: "stage_keys_known",
    StateTable: "state_keys_known",
    RecordTable: "record_keys_known",
    FieldTable: "field_keys_known",
    TransitionTable: "transition_keys_known",
    WageTable: "minimum_wage_keys_known",
    ReopenTable: "reopen_keys_known",
}


class _Misfit(ValueError):
    """A value that does not fit its key; the message says what was expected."""

    def __init__(self, message: str, check: str = "value_types_valid") -> None:
        super().__init__(message)
        self.check = check


def _kind_of(value: Any) -> str:
    """`value` as a fault names it: its TOML type and, for a scalar, the value (clipped)."""
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    shown = repr(value) if isinstance(value, str) else str(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(value, str):
        return f"text {shown}"
    if isinstance(value, int):
        return f"a whole number {shown}"
    if isinstance(value, float):
        return f"a number {shown}"
    if isinstance(value, dt.datetime):
        return f"a date and time {shown}"
    if isinstance(value, dt.date | dt.time):
        return f"a date {shown}" if isinstance(value, dt.date) else f"a time {shown}"
    return type(value).__name__


def _text(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _Misfit(f"expected text, got {_kind_of(value)}")
    return value


def _whole(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Misfit(f"expected a whole number, got {_kind_of(value)}")
    return value


def _yes_no(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _Misfit(f"expected true or false, got {_kind_of(value)}")
    return value


def _names(value: Any, _: Any) -> Names:
    # A number in close_reasons once made `next` raise TypeError long after the folder loaded.
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Misfit(
            f"expected a name or a list of names, got {_kind_of(value)}", "names_are_text"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _Misfit(f"item {i + 1} is {_kind_of(item)}, not a name", "names_are_text")
    return tuple(value)


def _day(value: Any, _: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _Misfit(f"expected a date (YYYY-MM-DD), got {_kind_of(value)}", "minimum_wage_valid")


def _amount(value: Any, _: Any) -> Decimal:
    if not isinstance(value, bool) and isinstance(value, str | int | float):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            pass
        else:
            if amount.is_finite() and amount >= 0:
                return amount
    raise _Misfit(
        f'expected an amount such as "12.50", got {_kind_of(value)}', "minimum_wage_valid"
    )


def _strict(
    factory: Callable[[Any, cattrs.Converter], Callable[[Any, Any], Any]],
    expected: type,
    what: str,
) -> Callable[[Any, cattrs.Converter], Callable[[Any, Any], Any]]:
    """`factory`'s hook, refusing a value that is not `expected` first: cattrs would iterate
    a text as a list of letters, or index it as a table."""

    def make(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        inner = factory(cl, converter)

        def hook(value: Any, target: Any) -> Any:
            if not isinstance(value, expected):
                raise _Misfit(f"expected {what}, got {_kind_of(value)}")
            return inner(value, target)

        return hook

    return make


def _converter(forbid_extra_keys: bool) -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=forbid_extra_keys, detailed_validation=True)
    conv.register_structure_hook(str, _text)
    conv.register_structure_hook(int, _whole)
    conv.register_structure_hook(bool, _yes_no)
    conv.register_structure_hook(dt.date, _day)
    conv.register_structure_hook(Decimal, _amount)
    conv.register_structure_hook_factory(
        is_mapping, _strict(mapping_structure_factory, dict, "a table")
    )
    conv.register_structure_hook_factory(
        is_sequence, _strict(list_structure_factory, list, "a list")
    )

    def table(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        return make_dict_structure_fn(cl, converter)

    conv.register_structure_hook_factory(attrs.has, _strict(table, dict, "a table"))
    own = _strict(table, dict, "a table")(GuardTable, conv)
    keys = {a.name for a in attrs.fields(GuardTable)} - {"params"}

    def guard(value: Any, target: Any) -> GuardTable:
        if not isinstance(value, dict):
            raise _Misfit(f"expected a table, got {_kind_of(value)}")
        spec: GuardTable = own({k: v for k, v in value.items() if k in keys}, target)
        spec.params = {k: v for k, v in value.items() if k not in keys}
        return spec

    conv.register_structure_hook(GuardTable, guard)
    # Last, so it wins over the sequence hook for this one tuple type.
    conv.register_structure_hook_func(lambda t: t == Names, _names)
    return conv


_STRICT = _converter(forbid_extra_keys=True)
# Unknown keys ignored: a file whose only faults are unknown keys still feeds the named checks,
# so a typo is reported beside every other fault instead of hiding them.
_LENIENT = _converter(forbid_extra_keys=False)


def structure(file: str, data: Mapping[str, Any]) -> tuple[StageFile | None, list[Fault]]:
    """One file's data as a `StageFile` and every shape fault in it. The file is None when a
    value has the wrong type or a key is missing; with only unknown keys it is still given."""
    try:
        return _STRICT.structure(data, StageFile), []
    except (BaseValidationError, _Misfit) as exc:
        faults = list(_faults(file, exc, ()))
    try:
        return _LENIENT.structure(data, StageFile), faults
    except (BaseValidationError, _Misfit):
        return None, faults


def _faults(file: str, exc: BaseException, path: tuple[str | int, ...]) -> Iterator[Fault]:
    if isinstance(exc, BaseValidationError):
        for sub in exc.exceptions:
            yield from _faults(file, sub, (*path, *_steps(sub)))
        return
    where = f"{file}: {_dotted(path)}" if path else file
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)]
        check = _KEYS_CHECK.get(exc.cl, "keys_known")
        for extra in sorted(exc.extra_fields):
            close = difflib.get_close_matches(extra, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            yield Fault(check, f"{where}: unknown key {extra!r} ({hint})")
        return
    if isinstance(exc, KeyError):
        # The note names the missing attribute; the path so far is the table that lacks it.
        head = path[:-1]
        key: str | int = path[-1] if path else "?"
        table = f"{file}: {_dotted(head)}" if head else file
        yield Fault("keys_present", f"{table}: missing key {key!r}")
        return
    check = exc.check if isinstance(exc, _Misfit) else "value_types_valid"
    yield Fault(check, f"{where}: {exc}")


def _steps(exc: BaseException) -> tuple[str | int, ...]:
    """The key or index a cattrs note says `exc` was raised at."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return (note.name,)
        if isinstance(note, IterableValidationNote):
            return (note.index,)
    return ()


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _dotted(path: tuple[str | int, ...]) -> str:
    """`records.job_analysis.fields.role`, `transitions[2].guards[0]`: as TOML names keys."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            key = step if _BARE.match(step) else f'"{step}"'
            out += f".{key}" if out else key
    return out
