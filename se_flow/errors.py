"""Every refusal se-flow makes, as one exception tree.

```
SEFlowError                               exit 1
├── WorkflowInvalid(ValueError)           exit 3   stage data with faults (all of them listed)
│   └── ProgrammeInvalid                           a funder definition file with faults
├── NotFound(LookupError)                 exit 4
│   ├── CaseNotFound
│   ├── StaffNotFound
│   ├── UnknownTrigger
│   ├── UnknownRecordKind
│   ├── UnknownProgramme                  no funder definition of that id (and version)
│   └── TextNotFound                      no free text kept apart at that event and slot
├── InvalidInput(ValueError)              exit 5
│   ├── InvalidRecord                     a record field missing, unknown or of the wrong type
│   ├── FutureEffectiveDate               effective_at later than now
│   ├── InvalidExportRequest              an export asked for something that cannot be given
│   ├── ClaimRefused                      a milestone that cannot be claimed: what is missing
│   ├── WorkflowMismatch                  a write under another workflow than the log's
│   ├── CommandIdReused                   a command id already used for a different command
│   ├── StoreNotEmpty                     a `store copy` destination that holds data
│   ├── CheckpointFileRefused             a checkpoint file that is not append-only, or not
│   │                                     ours (another database's, not checkpoints at all)
│   ├── StaffHoldsCases                   deactivating someone with open cases, unconfirmed
│   ├── ImportRefused                     an imported case refused (line, case, command, rule)
│   ├── NoteRequired                      a closure for the reason `other` with no note
│   └── TextAlreadyErased                 erasing a free text an admin already erased
├── TransitionRefused                     exit 6   (also `se-flow check` when a guard blocks)
│   ├── TriggerNotAvailable               the trigger does not leave the case's stage or phase
│   ├── CaseClosed                        the case is closed: reopen makes a new case
│   ├── CasePaused                        no stage move while paused
│   └── GuardsFailed                      evidence missing: carries every guard result
├── PermissionDenied(PermissionError)     exit 7   not (active) staff, or the role may not do this
│                                                  (auditor writing, override by a coach, ...)
├── CaseConflict                          exit 8   lost race: the case changed since it was read
├── CommandRepeated                       exit 8   a store refused an event whose command id is
│                                                  already logged (the API answers with the first)
├── AuditError                            exit 9
│   ├── ChainBroken                       verify found an event that does not fit
│   └── ExportMismatch                    an export does not match its manifest
└── StoreError(OSError)                   exit 10
    ├── StoreUnavailable                  cannot open, not a database, or corrupt
    │   └── SealKeyUnusable               the sealing key file is missing, exposed, another
    │                                     database's, or ahead of the clock: no write
    └── StoreBusy                         another writer held the lock past the busy timeout
```

Each class carries the context a caller needs (case id, trigger, guard results) as attributes,
and `exit_code`, the CLI's documented exit status for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

# The one "blocked only by soft guards" test (`_model` imports nothing of se-flow's).
from ._model import soft_only

if TYPE_CHECKING:
    from ._import import ImportFailure
    from ._model import GuardResult

__all__ = [
    "AuditError",
    "CaseClosed",
    "CaseConflict",
    "CaseNotFound",
    "CasePaused",
    "ChainBroken",
    "CheckpointFileRefused",
    "ClaimRefused",
    "CommandIdReused",
    "CommandRepeated",
    "ExportMismatch",
    "Fault",
    "FutureEffectiveDate",
    "GuardsFailed",
    "ImportRefused",
    "InvalidExportRequest",
    "InvalidInput",
    "InvalidRecord",
    "NotFound",
    "NoteRequired",
    "PermissionDenied",
    "ProgrammeInvalid",
    "SEFlowError",
    "SealKeyUnusable",
    "StaffHoldsCases",
    "StaffNotFound",
    "StoreBusy",
    "StoreError",
    "StoreNotEmpty",
    "StoreUnavailable",
    "TextAlreadyErased",
    "TextNotFound",
    "TransitionRefused",
    "TriggerNotAvailable",
    "UnknownProgramme",
    "UnknownRecordKind",
    "UnknownTrigger",
    "WorkflowInvalid",
    "WorkflowMismatch",
    "quoted",
]

# How much of a value a message quotes: an id or name typed wrong is shown whole, a pasted
# megabyte is not (the message is one terminal line, and a log line for an embedding app).
QUOTED = 60


def quoted(value: object, limit: int = QUOTED) -> str:
    """`value` as a message quotes it (its repr), cut to at most `limit` characters with "…"."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # never repr a megabyte only to cut it
        text = repr(value)
        return text[: limit - 1] + "…"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut(text: str, limit: int = QUOTED) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SEFlowError(Exception):
    """Base of every error se-flow raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- workflow definition -------------------------------------------------------------------


class Fault:
    """One fault found by one named check of a stage folder."""

    __slots__ = ("check", "message")

    def __init__(self, check: str, message: str) -> None:
        self.check = check
        self.message = message

    def __repr__(self) -> str:
        return f"Fault({self.check!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and (self.check, self.message) == (
            other.check,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.check, self.message))


class WorkflowInvalid(SEFlowError, ValueError):
    """The stage data failed one or more named checks; `faults` lists every one."""

    exit_code = 3

    def __init__(self, source: str, faults: Sequence[Fault]) -> None:
        self.source = source
        self.faults = tuple(faults)
        lines = "; ".join(str(f) for f in self.faults)
        super().__init__(f"workflow {source} has {len(self.faults)} fault(s): {lines}")


class ProgrammeInvalid(WorkflowInvalid):
    """A funder definition failed one or more named checks; each fault names file and key."""

    def __init__(self, source: str, faults: Sequence[Fault]) -> None:
        super().__init__(source, faults)
        lines = "; ".join(str(f) for f in self.faults)
        self.args = (f"programme {source} has {len(self.faults)} fault(s): {lines}",)


# --- not found -----------------------------------------------------------------------------


class NotFound(SEFlowError, LookupError):
    exit_code = 4


class CaseNotFound(NotFound):
    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"no case {quoted(case_id)}")


class StaffNotFound(NotFound):
    """`listed`: the id was a filter (whose cases to list), not someone to act or write for:
    the hint is then the staff list, not adding them."""

    def __init__(self, staff_id: str, *, listed: bool = False) -> None:
        self.staff_id = staff_id
        shown = quoted(staff_id)
        if listed:
            super().__init__(
                f"no staff member {shown}, so no cases of theirs to list "
                "(se-flow staff list shows the team)"
            )
            return
        # The id itself in the hint only where it could be typed as shown.
        as_typed = staff_id if shown == repr(staff_id) and staff_id.isprintable() else "ID"
        super().__init__(
            f"no staff member {shown}: add them first (se-flow staff add {as_typed} ...)"
        )


class UnknownTrigger(NotFound):
    def __init__(self, trigger: str, known: Sequence[str]) -> None:
        self.trigger = trigger
        self.known = tuple(known)
        super().__init__(f"unknown trigger {quoted(trigger)}; known: {', '.join(self.known)}")


class UnknownRecordKind(NotFound):
    def __init__(self, kind: str, known: Sequence[str]) -> None:
        self.kind = kind
        self.known = tuple(known)
        super().__init__(f"unknown record kind {quoted(kind)}; known: {', '.join(self.known)}")


class UnknownProgramme(NotFound):
    def __init__(self, programme: str, known: Sequence[str]) -> None:
        self.programme = programme
        self.known = tuple(known)
        super().__init__(f"unknown programme {quoted(programme)}; known: {', '.join(self.known)}")


class TextNotFound(NotFound):
    """No free text kept apart (`_texts`) at event `seq`, slot `slot`."""

    def __init__(self, seq: int, slot: str, why: str) -> None:
        self.seq = seq
        self.slot = slot
        super().__init__(f"event {seq}: no free text {quoted(slot)} to erase: {why}")


# --- invalid input -------------------------------------------------------------------------


class InvalidInput(SEFlowError, ValueError):
    """`field`, when set, is the parameter the message starts by naming (`limit`,
    `within_days`, `coach`): a front end may name its own option for it instead."""

    exit_code = 5

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CheckpointFileRefused(InvalidInput):
    """An external checkpoint file se-flow will not append to or trust: not a regular file,
    writable by others, not ours, or changed other than by appending. Nothing was written."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"checkpoint file {path}: {why}")


class StaffHoldsCases(InvalidInput):
    """Deactivating a staff member who still holds open cases, without saying so was meant
    (`confirm`): the cases would be left with nobody working them. Nothing was written."""

    def __init__(self, staff_id: str, case_ids: Sequence[str]) -> None:
        self.staff_id = staff_id
        self.case_ids = tuple(case_ids)
        shown = ", ".join(self.case_ids[:5]) + (", ..." if len(self.case_ids) > 5 else "")
        super().__init__(
            f"{staff_id} still holds {len(self.case_ids)} open case(s) ({shown}): assign them "
            "to someone else first, or confirm (--yes) to deactivate anyway"
        )


class NoteRequired(InvalidInput):
    """A case closed for the catch-all reason (`other`) without a note saying why: the reason
    alone tells nobody reading the case later what happened. Nothing was written."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"note missing: closing for the reason {quoted(reason)} needs one saying why",
            field="note",
        )


class InvalidRecord(InvalidInput):
    """A record was refused; `problems` maps each field at fault to what is wrong with it."""

    def __init__(self, kind: str, problems: dict[str, str], case_id: str | None = None) -> None:
        self.kind = kind
        self.case_id = case_id
        self.problems = dict(problems)
        # A field name as typed may be a pasted page: its start only.
        detail = "; ".join(f"{_cut(name)}: {why}" for name, why in self.problems.items())
        where = f" on case {case_id}" if case_id else ""
        super().__init__(f"{kind} record refused{where}: {detail}")


class FutureEffectiveDate(InvalidInput):
    """`effective_at` and `now` as ISO 8601 text; the message says them as a person would:
    days for a later day, minutes for later today."""

    def __init__(self, effective_at: str, now: str) -> None:
        self.effective_at = effective_at
        self.now = now
        at, then = dt.datetime.fromisoformat(effective_at), dt.datetime.fromisoformat(now)
        if at.date() != then.date():
            said = f"{at.date().isoformat()} is in the future (today is {then.date().isoformat()})"
        else:
            said = (
                f"{at.isoformat(timespec='minutes')} is in the future "
                f"(now is {then.isoformat(timespec='minutes')})"
            )
        super().__init__(
            f"effective_at {said}; things can be back-dated, never forward-dated",
            field="effective_at",
        )


class InvalidExportRequest(InvalidInput):
    pass


class ClaimRefused(InvalidInput):
    """A milestone cannot be claimed; `missing` names each thing missing (not reached, work
    evidence, a verified definition, a reference), in words a person can act on."""

    def __init__(self, case_id: str, milestone: str, missing: Sequence[str]) -> None:
        self.case_id = case_id
        self.milestone = milestone
        self.missing = tuple(missing)
        super().__init__(
            f"case {case_id}: {milestone} cannot be claimed: {'; '.join(self.missing)}",
            field="milestone",
        )


class WorkflowMismatch(InvalidInput):
    """The workflow given is not the one the database's log was last written under: writing
    would mix events of two workflows (and records of two field typings) in one log."""

    def __init__(self, logged: str, loaded: str) -> None:
        self.logged = logged
        self.loaded = loaded
        super().__init__(
            f"the workflow given ({loaded[:12]}) is not the one this database was written "
            f"under ({logged[:12]}): writes are refused; use the stage folder (--stages) the "
            "database was made with, or have an admin adopt this workflow "
            "(`se-flow workflow adopt`, `SEFlow.adopt_workflow`)"
        )


class TextAlreadyErased(InvalidInput):
    def __init__(self, seq: int, slot: str) -> None:
        self.seq = seq
        self.slot = slot
        super().__init__(f"event {seq}: its text {quoted(slot)} is already erased")


# --- refused transitions -------------------------------------------------------------------


class CommandIdReused(InvalidInput):
    """A write named a command id the log already holds for a different command: a retry
    must repeat its command exactly; a new command needs a new id."""

    def __init__(self, command_id: str, seq: int) -> None:
        self.command_id = command_id
        self.seq = seq
        super().__init__(
            f"command id {quoted(command_id)} was already used for another command (event "
            f"{seq}); a retry repeats its command exactly, a new command needs a new id"
        )


class ImportRefused(InvalidInput):
    """An import (`SEFlow.import_history`) met a case it cannot take: `failure` names its
    line, its reference, the command at fault, the field and the rule broken (and the exit
    code that rule's own error has). Without `skip_bad`, nothing of the import was written."""

    def __init__(self, failure: ImportFailure) -> None:
        self.failure = failure
        super().__init__(f"{failure.words()}; nothing was imported", field=failure.field)


class StoreNotEmpty(InvalidInput):
    """`store copy` refuses a destination that already holds events or staff."""


class TransitionRefused(SEFlowError):
    exit_code = 6

    def __init__(self, message: str, case_id: str, trigger: str) -> None:
        self.case_id = case_id
        self.trigger = trigger
        super().__init__(message)


class TriggerNotAvailable(TransitionRefused):
    """`state`: where the case is, by ids (`state (phase)`, `, paused`); `where` says it in
    the stage data's words for the message, and `why` replaces "not possible from" where
    there is a plainer reason (a case that is not paused has nothing to resume)."""

    def __init__(
        self,
        case_id: str,
        trigger: str,
        state: str,
        available: Sequence[str],
        *,
        where: str | None = None,
        why: str | None = None,
    ) -> None:
        self.state = state
        self.available = tuple(available)
        options = ", ".join(self.available) or "none"
        refusal = why or f"{trigger!r} is not possible from {where or state}"
        super().__init__(f"case {case_id}: {refusal}; possible now: {options}", case_id, trigger)


class CaseClosed(TransitionRefused):
    def __init__(self, case_id: str, trigger: str) -> None:
        super().__init__(
            f"case {case_id} is closed; reopen it to start a new episode", case_id, trigger
        )


class CasePaused(TransitionRefused):
    def __init__(self, case_id: str, trigger: str) -> None:
        super().__init__(
            f"case {case_id} is paused: resume it before {trigger!r}", case_id, trigger
        )


class GuardsFailed(TransitionRefused):
    """`results` holds every guard's result, passed and failed, in definition order."""

    def __init__(self, case_id: str, trigger: str, results: Sequence[GuardResult]) -> None:
        self.results = tuple(results)
        failed = [r for r in self.results if not r.passed]
        self.failed = tuple(failed)
        self.soft_only = soft_only(self.results)
        detail = "; ".join(f"{r.label}: {r.reason}" for r in failed)
        hint = (
            " (soft guards only: a team leader may override with a reason)"
            if self.soft_only
            else ""
        )
        super().__init__(f"case {case_id}: {trigger} refused: {detail}{hint}", case_id, trigger)


# --- permissions, races --------------------------------------------------------------------


class PermissionDenied(SEFlowError, PermissionError):
    exit_code = 7

    def __init__(self, message: str, actor: str | None = None) -> None:
        self.actor = actor
        super().__init__(message)


class CaseConflict(SEFlowError):
    exit_code = 8

    def __init__(self, case_id: str, expected_version: int, actual_version: int) -> None:
        self.case_id = case_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"case {case_id} changed while you were working on it "
            f"(you had version {expected_version}, it is now {actual_version}); "
            "look at it again and retry"
        )


class CommandRepeated(SEFlowError):
    """A store's refusal to append an event whose command id is already in the log (a retry
    racing its first attempt). `SEFlow` catches it and returns what the first attempt made."""

    exit_code = 8

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        super().__init__(f"command id {quoted(command_id)} is already in the log; nothing written")


# --- audit ---------------------------------------------------------------------------------


class AuditError(SEFlowError):
    exit_code = 9


class ChainBroken(AuditError):
    def __init__(self, seq: int | None, why: str) -> None:
        self.seq = seq
        self.why = why
        # Without an event to name (a wrong key, a checkpoint that does not fit) the chain
        # itself may be whole: the log was not verified, which is what is said.
        head = f"audit chain broken at event {seq}" if seq is not None else "not verified"
        super().__init__(f"{head}: {why}")


class ExportMismatch(AuditError):
    pass


# --- storage -------------------------------------------------------------------------------


class StoreError(SEFlowError, OSError):
    exit_code = 10


class StoreUnavailable(StoreError):
    pass


class StoreBusy(StoreError):
    pass


class SealKeyUnusable(StoreUnavailable):
    """The database seals its events, and its sealing key file cannot be used for this write
    (missing, readable by others, another database's, unreadable, or at a later epoch than the
    event's): nothing was written. Reading and verifying need no key file."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"sealing key file {path}: {why}; nothing was written")
