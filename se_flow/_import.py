"""History from another case system, as values: what an import hands se-flow, and what it says.

An imported case is what another system knows of one case: its own reference for it (`ref`),
the participant's personal details, the referral (when, from whom, to which coach) and the
case's dated commands after it in the order they happened: records of evidence and triggers
fired, each with its effective date, its actor, and a reason or an override where it had one.
`SEFlow.import_history` runs each case's commands through the same engine, guards and policy
as a write, in memory, then writes every case that passed in bulk (`ports.Writer.append`).

`parse_case` reads one JSON object (a line of a `.jsonl` file, `se-flow import`) into an
`ImportedCase`, refusing bad input with one line naming the line, the case and the field.
`check_appended` is what every store checks of the rows before writing them. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from attrs import frozen

from ._model import EventKind, PersonalDetails
from .errors import InvalidInput, WorkflowMismatch, quoted
from .ports import Appended, LogHead

__all__ = [
    "ImportFailure",
    "ImportReport",
    "ImportedCase",
    "ImportedCommand",
    "ImportedRecord",
    "ImportedTrigger",
    "as_cases",
    "check_appended",
    "parse_case",
    "read_lines",
    "referral_command_id",
]

Day = dt.date | dt.datetime
"""An effective date: a day (taken as midnight UTC) or an aware time."""


@frozen
class ImportedRecord:
    """Evidence of `kind` recorded on the case, effective `effective_at`. `supersedes` is the
    index (in the case's `commands`) of the record this one corrects."""

    kind: str
    fields: Mapping[str, Any]
    effective_at: Day
    actor: str | None = None
    supersedes: int | None = None
    command_id: str | None = None


@frozen
class ImportedTrigger:
    """`trigger` fired on the case, effective `effective_at`, as `SEFlow.advance` takes it."""

    trigger: str
    effective_at: Day
    actor: str | None = None
    reason: str | None = None
    override: str | None = None
    review_date: dt.date | None = None
    outcome: str | None = None
    command_id: str | None = None


ImportedCommand = ImportedRecord | ImportedTrigger


@frozen
class ImportedCase:
    """One case from another system: referred on `referred_at` (the referral's record fields
    in `referral`, e.g. its `source`), then its `commands` in the order they happened.
    `actor` acts where a command names nobody (default: the import's `by`); `coach` holds the
    case. `ref` is the other system's case number: the referral is logged under command id
    `import:<ref>`, so a case is imported once. `line` is where it was read (None: not from
    a file)."""

    ref: str
    person: PersonalDetails
    referred_at: Day
    referral: Mapping[str, Any]
    commands: tuple[ImportedCommand, ...] = ()
    coach: str | None = None
    actor: str | None = None
    programme: str | None = None
    line: int | None = None


@frozen
class ImportFailure:
    """Why a case was not imported: the line it was read from, its `ref`, the command at
    fault (its index in `commands`; None for the referral or the case as a whole), the field
    named (if one is), the rule broken in words, and that error's exit code."""

    message: str
    ref: str | None = None
    line: int | None = None
    command: int | None = None
    field: str | None = None
    exit_code: int = InvalidInput.exit_code

    def words(self) -> str:
        """One line: where, then why."""
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.ref is not None:
            where.append(f"case {quoted(self.ref)}")
        if self.command is not None:
            where.append(f"command {self.command}")
        return (", ".join(where) + ": " if where else "") + self.message


@frozen
class ImportReport:
    """What an import did: the cases imported as (ref, case id) in order, the events and
    records written, and the cases skipped (`skip_bad`) with why."""

    imported: tuple[tuple[str, str], ...]
    events: int
    records: int
    skipped: tuple[ImportFailure, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": len(self.imported),
            "events": self.events,
            "records": self.records,
            "cases": [{"ref": ref, "case_id": case_id} for ref, case_id in self.imported],
            "skipped": [
                {
                    "line": f.line,
                    "ref": f.ref,
                    "command": f.command,
                    "field": f.field,
                    "error": f.message,
                }
                for f in self.skipped
            ],
        }


def referral_command_id(ref: str) -> str:
    return f"import:{ref}"


# --- reading a case from JSON ------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, message: str, field: str | None = None, command: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.command = command


_CASE_KEYS = frozenset(
    {"ref", "person", "referred", "referral", "coach", "by", "programme", "commands"}
)
_PERSON_KEYS = frozenset({"name", "contact", "date_of_birth", "health_notes"})
_RECORD_KEYS = frozenset({"record", "on", "fields", "by", "supersedes", "id"})
_TRIGGER_KEYS = frozenset(
    {"fire", "on", "by", "reason", "override", "review_date", "outcome", "id"}
)


def _text(obj: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _Bad(f"{what} is missing", key)
        return None
    if not isinstance(value, str):
        raise _Bad(f"{what} must be text, not {type(value).__name__}", key)
    if required and not value.strip():
        raise _Bad(f"{what} is empty", key)
    return value


def _day(value: Any, key: str, what: str) -> Day:
    if not isinstance(value, str):
        raise _Bad(f"{what} must be an ISO date or time (text), not {quoted(value)}", key)
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{what} {quoted(value)} is not an ISO date or time", key) from None
    if at.tzinfo is None:
        raise _Bad(f"{what} {quoted(value)} has no time zone", key)
    return at


def _date(value: Any, key: str, what: str) -> dt.date:
    day = _day(value, key, what)
    if isinstance(day, dt.datetime):
        raise _Bad(f"{what} must be a date (YYYY-MM-DD), not {quoted(value)}", key)
    return day


def _unknown(obj: Mapping[str, Any], known: frozenset[str], what: str) -> None:
    extra = sorted(set(obj) - known)
    if extra:
        raise _Bad(
            f"{what}: unknown key {quoted(extra[0])} (known: {', '.join(sorted(known))})",
            extra[0],
        )


def _command(obj: Any, index: int) -> ImportedCommand:
    if not isinstance(obj, Mapping):
        raise _Bad("a command must be an object", None)
    if ("record" in obj) == ("fire" in obj):
        raise _Bad('a command has either "record" (a record kind) or "fire" (a trigger)', None)
    on = obj.get("on")
    if on is None:
        raise _Bad("its effective date (on) is missing", "on")
    at = _day(on, "on", "on")
    actor = _text(obj, "by", "by")
    command_id = _text(obj, "id", "id")
    if "record" in obj:
        _unknown(obj, _RECORD_KEYS, "a record")
        kind = _text(obj, "record", "record kind", required=True)
        fields = obj.get("fields", {})
        if not isinstance(fields, Mapping):
            raise _Bad("fields must be an object", "fields")
        supersedes = obj.get("supersedes")
        if supersedes is not None and (type(supersedes) is not int or not 0 <= supersedes < index):
            raise _Bad(
                "supersedes must be the index of an earlier command of this case (from 0)",
                "supersedes",
            )
        assert kind is not None
        return ImportedRecord(kind, dict(fields), at, actor, supersedes, command_id)
    _unknown(obj, _TRIGGER_KEYS, "a trigger")
    trigger = _text(obj, "fire", "trigger", required=True)
    assert trigger is not None
    review = obj.get("review_date")
    return ImportedTrigger(
        trigger,
        at,
        actor,
        reason=_text(obj, "reason", "reason"),
        override=_text(obj, "override", "override"),
        review_date=_date(review, "review_date", "review_date") if review is not None else None,
        outcome=_text(obj, "outcome", "outcome"),
        command_id=command_id,
    )


def parse_case(obj: Any, line: int | None = None) -> ImportedCase | ImportFailure:
    """One imported case from its JSON object, or the failure naming what is wrong with it
    (its line, its ref if it has one, the command and the field)."""
    ref = obj.get("ref") if isinstance(obj, Mapping) else None
    shown_ref = ref if isinstance(ref, str) else None
    index: int | None = None
    try:
        if not isinstance(obj, Mapping):
            raise _Bad("a case must be a JSON object")
        _unknown(obj, _CASE_KEYS, "a case")
        ref = _text(obj, "ref", "ref (the other system's case number)", required=True)
        person = obj.get("person")
        if isinstance(person, str):
            person = {"name": person}
        if not isinstance(person, Mapping):
            raise _Bad("person must be an object with at least a name", "person")
        _unknown(person, _PERSON_KEYS, "person")
        name = _text(person, "name", "person's name", required=True)
        born = person.get("date_of_birth")
        details = PersonalDetails(
            name=name or "",
            contact=_text(person, "contact", "person's contact"),
            date_of_birth=_date(born, "date_of_birth", "date_of_birth") if born else None,
            health_notes=_text(person, "health_notes", "person's health notes"),
        )
        referred = obj.get("referred")
        if referred is None:
            raise _Bad("the referral date (referred) is missing", "referred")
        referral = obj.get("referral", {})
        if not isinstance(referral, Mapping):
            raise _Bad("referral must be an object (the referral record's fields)", "referral")
        commands = obj.get("commands", [])
        if not isinstance(commands, list):
            raise _Bad("commands must be a list", "commands")
        made: list[ImportedCommand] = []
        for index, command in enumerate(commands):
            made.append(_command(command, index))
        index = None
        assert ref is not None
        return ImportedCase(
            ref=ref,
            person=details,
            referred_at=_day(referred, "referred", "referred"),
            referral=dict(referral),
            commands=tuple(made),
            coach=_text(obj, "coach", "coach"),
            actor=_text(obj, "by", "by"),
            programme=_text(obj, "programme", "programme"),
            line=line,
        )
    except _Bad as bad:
        return ImportFailure(bad.message, shown_ref, line, index, bad.field)


def read_lines(lines: Iterable[str]) -> Iterator[ImportedCase | ImportFailure]:
    """The cases of a JSON Lines text (one object a line; blank lines skipped), numbered from
    line 1: each an `ImportedCase` or the failure naming what is wrong with its line."""
    for number, text in enumerate(lines, 1):
        if not isinstance(text, str):
            yield ImportFailure(f"not text but {type(text).__name__}", None, number)
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            yield ImportFailure(f"not JSON: {exc}", None, number)
            continue
        yield parse_case(obj, number)


def as_cases(cases: Iterable[Any]) -> Iterator[ImportedCase | ImportFailure]:
    """`cases` as `SEFlow.import_history` takes them: anything but an `ImportedCase` (a
    path to a .jsonl file, say) is refused as its own case, numbered from 1."""
    for number, case in enumerate(cases, 1):
        if isinstance(case, ImportedCase):
            yield _shape_fault(case, number) or case
            continue
        why = f"case {number} of the import is {type(case).__name__}, not an ImportedCase"
        if isinstance(case, str):
            why += " (a JSON Lines file goes to import_lines, a line at a time)"
        yield ImportFailure(why)


def _shape_fault(case: ImportedCase, number: int) -> ImportFailure | None:
    """An `ImportedCase` built in code holds what its types say, or is refused as a case of
    its own (before any of it runs, so with `skip_bad` the others still go in): a file's
    line gets the same checks from `parse_case`."""
    ref = case.ref if isinstance(case.ref, str) else None
    if ref is None or not ref.strip():
        why = f"case {number} of the import has no ref (the other system's case number)"
        return ImportFailure(why, None, case.line, field="ref")
    if not isinstance(case.referral, Mapping):
        why = f"referral must be a mapping of its fields, not {type(case.referral).__name__}"
        return ImportFailure(why, ref, case.line, field="referral")
    commands = case.commands
    if isinstance(commands, str | bytes) or not isinstance(commands, Sequence):
        why = f"commands must be a list of commands, not {type(commands).__name__}"
        return ImportFailure(why, ref, case.line, field="commands")
    for index, step in enumerate(commands):
        if not isinstance(step, ImportedRecord | ImportedTrigger):
            why = f"is {type(step).__name__}, not an ImportedRecord or ImportedTrigger"
            return ImportFailure(why, ref, case.line, index)
        if isinstance(step, ImportedRecord) and not isinstance(step.fields, Mapping):
            shape = type(step.fields).__name__
            why = f"fields must be a mapping of field names to values, not {shape}"
            return ImportFailure(why, ref, case.line, index, "fields")
    return None


# --- what a store checks before writing ----------------------------------------------------


def check_appended(head: LogHead, rows: Appended) -> None:
    """Refuse rows that do not chain on from `head` (seq after seq, each `prev_hash` the hash
    before it), that were drafted under another workflow than the log's last, or whose due
    rows are of a case not among them."""
    seq, prev = head.seq, head.hash
    logged = head.workflow_hash
    for row in rows.events:
        if row["seq"] != seq + 1 or row["prev_hash"] != prev:
            raise InvalidInput(
                f"appended event {row['seq']} does not chain on from event {seq} of the log: "
                "nothing was written"
            )
        moved_on = row["kind"] == EventKind.WORKFLOW
        if logged is not None and row["workflow_hash"] != logged and not moved_on:
            raise WorkflowMismatch(logged=logged, loaded=row["workflow_hash"])
        logged = row["workflow_hash"]
        seq, prev = row["seq"], row["hash"]
    if rows.due:
        new = {c.id for c in rows.cases}
        stray = next((r.case_id for r in rows.due if r.case_id not in new), None)
        if stray is not None:
            raise InvalidInput(
                f"appended due rows of case {stray}, which is not among the cases appended: "
                "nothing was written"
            )
