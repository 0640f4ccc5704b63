"""The facade embedding apps (and the CLI) use: `se_flow.open(...)` returns an `SEFlow`."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import functools
import hashlib
import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    # Exports, reports and the outcomes evaluator are imported on first use: most commands
    # never need them (and `se-flow cases` starts faster without them).
    from ._export import Manifest, Progress
    from ._memory import ScratchStore
    from ._outcomes import Outcomes, Programme
    from ._report import KPI, Period, Report
    from ._report import CaseView as ReportCase  # a case as the reports read it
    from ._verify_export import ExportVerification

from ._audit import Checkpoint, take_checkpoint, verify_log
from ._engine import JOBS, Engine, context
from ._import import (
    ImportedCase,
    ImportedRecord,
    ImportFailure,
    ImportReport,
    as_cases,
    read_lines,
    referral_command_id,
)
from ._keyfile import SealKeyFile
from ._limits import (
    COMMAND_ID,
    check_command_id,
    check_date,
    check_day,
    check_days,
    check_flags,
    check_limit,
    check_login,
    check_staff_id,
    check_staff_name,
    check_text,
)
from ._loader import load_programmes, load_workflow
from ._milestones import (
    HISTORY_TRIGGERS,
    Logged,
    OutcomeDue,
    case_facts,
    changes,
    coming_up,
    enrolment,
    evaluate_case,
    logged,
    prior_counted,
    read_kinds,
    touches,
)
from ._model import (
    Case,
    Check,
    DatabaseSettings,
    Done,
    Event,
    EventKind,
    GuardResult,
    Participant,
    PersonalDetails,
    PersonFound,
    Record,
    Role,
    Staff,
    Status,
    TeamLine,
    Verification,
)
from ._policy import acting
from ._projections import replay_cases
from ._seal import DAY, VerificationKey
from ._spells import JOB_RECORD_KINDS, OUTCOME_RECORD_KINDS, START_TRIGGER, build_employment
from ._sqlite import SQLiteStore
from ._standards import DueItem, DueList, Verdicts, due_key
from ._texts import text_fields, withhold_event, withhold_record
from ._urls import shown_database
from ._views import Caseload, CaseView, DueView, HistoryPage, NextSteps, SetUp
from ._workflow import Workflow, age_band
from .errors import (
    ChainBroken,
    CheckpointFileRefused,
    ClaimRefused,
    CommandIdReused,
    ImportRefused,
    InvalidInput,
    InvalidRecord,
    NotFound,
    PermissionDenied,
    SEFlowError,
    StaffHoldsCases,
    StaffNotFound,
    StoreUnavailable,
    UnknownProgramme,
    WorkflowMismatch,
    quoted,
)
from .ports import (
    CASE_SORTS,
    NOTHING,
    Appended,
    CaseFilter,
    Change,
    LogHead,
    Needs,
    SealKeys,
    Snapshot,
    Store,
    StoreCopy,
    Tx,
)

__all__ = ["CheckpointAppended", "Copied", "SEFlow", "copy_store", "open"]

Clock = Callable[[], dt.datetime]

PAGE = 20
"""How many events (and records) a view shows by default: a screen's worth."""
COMPLETIONS = 200
"""The most words `SEFlow.completions` offers: past that a shell list helps nobody."""


@attrs.frozen
class CheckpointAppended:
    """A checkpoint appended to an external checkpoint file: which line, and what keeps the
    file append-only beyond se-flow's own checks (`protection`, None if nothing se-flow can
    see)."""

    checkpoint: Checkpoint
    path: str
    line: int
    protection: str | None


def _os_user_exists(login: str) -> None:
    """A login to bind must be an OS user of this machine (where the CLI checks it)."""
    try:
        import pwd
    except ImportError:  # pragma: no cover - not Unix: nothing to look it up in
        return
    try:
        pwd.getpwnam(login)
    except KeyError:
        raise InvalidInput(
            f"login {quoted(login)}: no OS user of that name on this machine", field="login"
        ) from None


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open(
    path: str | Path = ":memory:",
    *,
    stages: str | Path | None = None,
    workflow: Workflow | None = None,
    actor: str | None = None,
    clock: Clock | None = None,
    synchronous: str = "FULL",
    busy_timeout: float = 10.0,
    create: bool = True,
    read_only: bool = False,
    programmes: str | Path | None = None,
    seal_key: str | Path | None = None,
    login: str | None = None,
) -> SEFlow:
    """Open (creating if need be) an se-flow database: an SQLite file (or ":memory:"), or a
    PostgreSQL database named by a `postgresql://` URL (the `postgres` extra; `synchronous`
    does not apply: commits there are always durable).

    `stages` is a stage folder to use instead of the default workflow (or pass a loaded
    `workflow`). `actor` is the staff id used when a call names none. `clock` returns the
    current time as an aware datetime (inject one in tests). `create=False` refuses to make a
    new database; even with `create` only a missing or empty file becomes one, never a file
    holding anything else. `read_only` opens for reading only and changes nothing about the
    file (as does a file or folder this process cannot write): writes then raise
    `StoreUnavailable`. `programmes` is a folder of funder definitions to use instead of the
    shipped ones (read when outcomes are first asked for). `seal_key` is the sealing key file
    (default: `<database>.sealkey` beside it; SQLite only): read only when a write must seal,
    so a reader needs none; on PostgreSQL there is no default (give one to seal there).

    `login` is the OS login of the person at the terminal (the CLI passes it): a staff member
    bound to a login may then be acted as only from that login (unless the database allows a
    shared terminal). An embedding application passes None and the actors it authenticated
    itself: se-flow cannot check who is behind a call it did not see. Raises
    `WorkflowInvalid`, `StoreUnavailable`."""
    check_flags(create=create, read_only=read_only)
    _check_path(path, "path")
    if stages is not None:
        _check_path(stages, "stages")
    if seal_key is not None:
        _check_path(seal_key, "seal_key")
    # Checked before the file is touched: a refused open leaves no empty database behind.
    if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
        raise InvalidInput(
            f"busy_timeout must be a number of seconds, not {quoted(busy_timeout)}"[:200],
            field="busy_timeout",
        )
    if workflow is not None and not isinstance(workflow, Workflow):
        raise InvalidInput(
            f"workflow must be a loaded Workflow (or pass stages=), not {type(workflow).__name__}",
            field="workflow",
        )
    if clock is not None and not callable(clock):
        raise InvalidInput(
            f"clock must be a function returning an aware datetime, not {type(clock).__name__}",
            field="clock",
        )
    wf = workflow or load_workflow(stages)
    if isinstance(path, str) and is_database_url(path):
        keys = SealKeyFile(Path(seal_key).expanduser()) if seal_key is not None else None
        return SEFlow(
            _postgres_store(path, wf, busy_timeout, create, read_only, keys),
            wf,
            actor=actor,
            clock=clock,
            login=login,
        )
    store = SQLiteStore(
        path,
        wf,
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        create=create,
        read_only=read_only,
        seal_keys=_seal_keys(path, seal_key),
    )
    return SEFlow(store, wf, actor=actor, clock=clock, programmes=programmes, login=login)


@attrs.frozen
class Copied:
    """What `copy_store` did: how many events it copied, between which databases (as shown,
    without a password), and the destination's own verification, made before it committed."""

    source: str
    destination: str
    events: int
    verification: Verification


def copy_store(
    source: str | Path,
    destination: str | Path,
    *,
    stages: str | Path | None = None,
    workflow: Workflow | None = None,
    busy_timeout: float = 10.0,
) -> Copied:
    """Copy a whole se-flow database into a new or empty one: SQLite file to PostgreSQL URL,
    the reverse (an auditor takes a provider's log home as one file), or file to file. The
    events go as they are, never re-sealed (same hashes, same seqs, the source's store id, so
    its checkpoints prove the copy), with the case, record, staff, participant and personal-
    data tables, the database's settings, the free texts kept apart (erased ones as the
    tombstones they are), and the seals and sealing settings (never the sealing key file).

    One transaction at the destination: the chain and every table are verified there
    (`verify`) before it commits; on any failure nothing is kept (a file this call made is
    removed). The source is read in one snapshot, so writers there may go on. Raises
    `StoreNotEmpty` (the destination holds events or staff), `InvalidInput` (a URL that does
    not parse, the same database twice), `ChainBroken` (the
    copy does not verify), `StoreUnavailable` (a database missing, refusing the connection)."""
    wf = workflow or load_workflow(stages)
    src_name, dst_name = shown_database(str(source)), shown_database(str(destination))
    file = None if is_database_url(str(destination)) else Path(destination).expanduser()
    same = file is not None and not is_database_url(str(source))
    if same and file is not None and Path(source).expanduser().resolve() == file.resolve():
        raise InvalidInput(f"{src_name} is both source and destination: nothing was copied")
    made = file is not None and not file.exists()
    try:
        with (
            open(
                source, workflow=wf, read_only=True, create=False, busy_timeout=busy_timeout
            ) as src,
            open(destination, workflow=wf, busy_timeout=busy_timeout) as dst,
            src.store.read_snapshot(),
            dst.store.batch(),
        ):
            written = dst.store.restore(_copy_of(src.store))
            result = verify_log(dst.store, wf)
            if not result.ok:
                raise ChainBroken(
                    result.bad_seq,
                    f"{result.problem} (at the destination {dst_name}; nothing was copied)",
                )
    except BaseException:
        if made and file is not None:
            for leftover in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
                leftover.unlink(missing_ok=True)
        raise
    return Copied(src_name, dst_name, written, result)


def _copy_of(store: Store) -> StoreCopy:
    """All of `store`, for another store's `restore`: the long parts streamed."""
    cases = {c.id: c for c in store.cases(CaseFilter())}
    tx = store.read()
    participants: dict[str, Participant] = {}
    for case in cases.values():
        pid = case.participant_id
        if pid not in participants:
            found = tx.participant(pid)
            if found is not None:
                details = store.personal_details(pid)
                participants[pid] = attrs.evolve(found, details=details)
    return StoreCopy(
        store_id=store.store_id(),
        events=store.event_rows(),
        records=store.record_rows(),
        cases=cases,
        participants=participants,
        staff=tuple(store.list_staff()),
        sealing=store.sealing(),
        seals=store.seal_rows(),
        settings=tx.settings(),
        texts=store.text_rows(),
    )


def seal_key_path(path: str | Path, seal_key: str | Path | None = None) -> Path | None:
    """The sealing key file of the database at `path`: `seal_key`, else `<path>.sealkey`
    beside it (None for a database in memory, which has no folder)."""
    if seal_key is not None:
        return Path(seal_key).expanduser()
    if str(path) == ":memory:":
        return None
    return Path(f"{Path(path).expanduser()}.sealkey")


def _seal_keys(path: str | Path, seal_key: str | Path | None) -> SealKeys:
    found = seal_key_path(path, seal_key)
    if found is not None:
        return SealKeyFile(found)
    from ._memory import KeyInMemory  # the memory store loads only for a database in memory

    # A database in memory keeps its sealing key in memory too: both go with the process.
    return KeyInMemory()


def is_database_url(target: str) -> bool:
    """Whether a database target (`--db`, `SE_FLOW_DB`) names a PostgreSQL database, not a
    file."""
    return target.startswith(("postgresql://", "postgres://"))


def _postgres_store(
    url: str,
    workflow: Workflow,
    busy_timeout: float,
    create: bool,
    read_only: bool,
    seal_keys: SealKeyFile | None = None,
) -> Store:
    try:
        from ._postgres import PostgresStore
    except ImportError as exc:
        raise StoreUnavailable(
            f"a PostgreSQL database needs se-flow's postgres extra "
            f"(pip install 'se-flow[postgres]'): {exc}"
        ) from None
    return PostgresStore(
        url,
        workflow,
        busy_timeout=busy_timeout,
        create=create,
        read_only=read_only,
        seal_keys=seal_keys,
    )


def _at(value: dt.datetime | dt.date | None, now: dt.datetime) -> dt.datetime:
    if value is None:
        return now
    # Before converting to UTC: a date near year 1 (or 9999) overflows in the conversion.
    check_date(value, "effective_at")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"effective_at {value.isoformat()} has no time zone")
        return value.astimezone(dt.UTC)
    return dt.datetime.combine(value, dt.time(0, 0), tzinfo=dt.UTC)


def _whose(by: Staff, coach: str | None, everyone: bool) -> str | None:
    """Whose due list `by` asks for: `coach`'s, else (unless `everyone`) their own if they
    are a coach, else everyone's (None)."""
    if coach is None and not everyone and by.role is Role.COACH:
        return by.id
    return coach


PAGE_SIZE = 1000
"""Cases a page of `caseload_pages`: few enough to hold, many enough that
the page's own reads (the keyset seek, the names) are a small part of its cost."""


def _squash(text: str) -> str:
    """A contact as compared: no spaces, dashes or brackets, any case."""
    return "".join(ch for ch in text.casefold() if ch not in " -()")


def _check_path(value: Any, what: str) -> Any:
    """`value` if it can name a file or folder (text or a path object); else `InvalidInput`
    naming `what` (not pathlib's TypeError from deep inside). Here, not in `_limits`: the
    core imports no `os`."""
    if not isinstance(value, str | os.PathLike):
        raise InvalidInput(
            f"{what} must be a path (text or pathlib.Path), not {type(value).__name__}",
            field=what,
        )
    return value


def _target(coach: str | None) -> None:
    """A staff id named as the target of a command or filter (a coach), checked before it
    reaches a lookup or a message: a pasted megabyte is refused as an id, not quoted whole."""
    if coach is not None:
        check_staff_id(coach, "coach")


def _mismatch_words(logged: str | None, loaded: str) -> str | None:
    if logged is None or logged == loaded:
        return None
    return (
        f"the workflow loaded ({loaded[:12]}) is not the one the log was last written under "
        f"({logged[:12]}): records are shown as stored where their field types differ"
    )


_ENROL = EventKind.ENROL.value
# With the case's `enrol` mark: whether the milestone check has anything to look at.
_RECORD_JOBS = attrs.evolve(JOBS, triggers=frozenset({START_TRIGGER, _ENROL}))
_RECORD_NOTHING = attrs.evolve(NOTHING, triggers=frozenset({_ENROL}))


def _record_needs(kind: str, supersedes: int | None) -> Needs:
    """What recording `kind` reads of the case: the record it corrects (whatever its kind, so
    a correction of another kind is refused saying so), and for jobs and work the case's jobs
    and work (`_spells.record_problems`); and the case's `enrol` mark, for `_Probe`."""
    need = _RECORD_JOBS if kind in OUTCOME_RECORD_KINDS else _RECORD_NOTHING
    return need if supersedes is None else need | Needs(kinds=frozenset(), record=supersedes)


# What the outcomes of a case read of its history: whether it is enrolled; every job start,
# enrolment, milestone and claim (and with them every record, for the `events` tests).
_ENROLMENT = Needs(
    kinds=frozenset(), triggers=frozenset(), history=frozenset({EventKind.ENROL.value})
)
_OUTCOME_HISTORY = Needs(kinds=frozenset(), triggers=frozenset(), history=HISTORY_TRIGGERS)
_MILESTONE_HISTORY = Needs(
    kinds=frozenset(), triggers=frozenset(), history=frozenset({EventKind.MILESTONE.value})
)


def _starts(history: tuple[Event, ...]) -> list[int]:
    return [e.seq for e in history if e.kind == EventKind.TRANSITION and e.trigger == START_TRIGGER]


def _with_outcomes(
    found: DueList, coming: tuple[OutcomeDue, ...], overdue_only: bool, limit: int | None
) -> DueList:
    """The due list with outcomes' milestones and claims among its items, by date."""
    extra = [
        DueItem(
            case_id=d.case_id,
            coach=d.coach,
            what=d.what,
            name=d.milestone,
            title=f"{d.milestone} ({d.programme}): {d.detail}",
            due_on=d.due_on,
            overdue=d.overdue,
            does_it=(),
            commands=(
                f"se-flow claims mark {d.case_id} {d.milestone} --reference REF"
                if d.what == "claim"
                else f"se-flow outcomes {d.case_id}",
            ),
        )
        for d in coming
        if d.overdue or not overdue_only
    ]
    items = sorted(
        (*found.items, *extra),
        key=lambda i: due_key(i.due_on, i.case_id, i.what != "review", i.title, i.occurrence),
    )
    return DueList(tuple(items[:limit] if limit is not None else items), found.warnings)


def _version_key(version: str) -> tuple[int, ...] | tuple[str]:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (version,)


def _ids(values: object, what: str) -> list[str]:
    """Ids asked for together: a list (any iterable) of text. One id given alone, or not
    text, is refused naming `what`: a string is an iterable of its letters."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{what} must be a list of ids, not {type(values).__name__}", field=what)
    found = list(values)
    for value in found:
        if not isinstance(value, str):
            raise InvalidInput(
                f"{what} must hold ids (text), not {type(value).__name__}", field=what
            )
    return found


def _mapping(value: object, what: str) -> dict[str, Any]:
    """A record's fields (or a referral's) as given: a mapping of field names to values, or
    None for none; anything else refused naming `what`, before it is read."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"{what} must be a mapping of field names to values (a dict), not "
            f"{type(value).__name__}",
            field=what,
        )
    return dict(value)


def _case_id(case_id: Any, what: str = "case id") -> str:
    """`case_id` if it is text a store can look up (bounded, valid UTF-8); else `InvalidInput`
    naming it, before it reaches a query (where a lone surrogate could name no field)."""
    if case_id is None:
        raise InvalidInput(f"no {what} given")
    checked: str = check_text(case_id, what)
    return checked


def _caseworker(tx: Tx, staff_id: str) -> Staff:
    """The staff member a case is assigned to: an active coach or team leader."""
    staff = tx.staff(staff_id)
    if not staff.active or staff.role not in (Role.COACH, Role.TEAM_LEADER):
        what = "no longer active" if not staff.active else f"an {staff.role.value}"
        raise InvalidInput(f"{staff_id} cannot hold cases: they are {what}")
    return staff


def _plain(value: Any) -> Any:
    """A command argument as JSON can hold it, for its fingerprint."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    return repr(value)


@attrs.frozen
class _Command:
    """A write's command id and the fingerprint of the command as asked (`command_hash`)."""

    id: str
    hash: str


# Arguments that are free text (a reason, an override's reason): never fingerprinted.
_FREE_TEXT_ARGS = frozenset({"reason", "override"})
_TEXT = "<text>"


def _command(
    command_id: str | None, what: str, *, text_fields: Iterable[str] = (), **args: Any
) -> _Command | None:
    """The command a write names by `command_id`: its name and arguments as asked,
    fingerprinted. Never personal data (the log holds none, not even hashed), and never free
    text (a reason, or a record field of type text, named by `text_fields`): an admin may
    erase a text (`erase_text`), and an unsalted hash of it left in the log would let anyone
    confirm a guess of what it said. So a retry that differs only in its words is the same
    command, and returns what the first made."""
    if command_id is None:
        return None
    check_command_id(command_id)
    free = frozenset(text_fields)
    shown = {k: _TEXT if k in _FREE_TEXT_ARGS and v is not None else v for k, v in args.items()}
    fields = shown.get("fields")
    if isinstance(fields, Mapping) and free:
        shown["fields"] = {
            k: _TEXT if k in free and v is not None else v for k, v in fields.items()
        }
    text = json.dumps(
        [what, shown], sort_keys=True, default=_plain, separators=(",", ":"), ensure_ascii=False
    )
    return _Command(command_id, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def _import_ids(case: ImportedCase) -> list[str]:
    """The command ids an imported case logs: its referral's (`import:<ref>`), then those its
    commands give, in order."""
    mine = [referral_command_id(case.ref)]
    mine.extend(c.command_id for c in case.commands if c.command_id is not None)
    return mine


class _CaseRefused(Exception):
    """Inside an import: one case refused (`failure`); nothing of it is kept."""

    def __init__(self, failure: ImportFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _refused(case: ImportedCase, exc: SEFlowError, command: int | None) -> _CaseRefused:
    return _CaseRefused(
        ImportFailure(
            exc.message,
            case.ref,
            case.line,
            command,
            getattr(exc, "field", None),
            exc.exit_code,
        )
    )


@attrs.define
class _Probe:
    """Whether a write's own snapshot found its case enrolled (an `enrol` mark): a case on no
    programme has no milestones, so its write needs neither the check nor its batch."""

    case_id: str
    enrolled: bool = False


class _Enrolled(Exception):
    """Inside a write tried without the milestone batch: its case is enrolled after all."""


class _Logged(Exception):
    """Inside a write: the command id is already in the log (`event`); nothing is written."""

    def __init__(self, event: Event) -> None:
        super().__init__(event.seq)
        self.event = event


class SEFlow:
    """A workflow and its store. Every write is one transaction, attributed to an actor."""

    def __init__(
        self,
        store: Store,
        workflow: Workflow,
        *,
        actor: str | None = None,
        clock: Clock | None = None,
        programmes: str | Path | None = None,
        login: str | None = None,
    ) -> None:
        self.store = store
        self.login = login
        """The OS login at the terminal (the CLI's), checked against staff bindings."""
        self.checkpoint_warning: str | None = None
        """Why the last automatic checkpoint could not be appended (the write itself was
        committed), or None."""
        self._batching = False
        self._programmes_dir = programmes
        self._programmes: tuple[Programme, ...] | None = None
        self.workflow = workflow
        self.engine = Engine(workflow)
        self.default_actor = actor
        self._clock = clock or _system_clock
        self._enrolled: set[str] = set()
        """Cases seen enrolled: their writes take the milestone batch without a try first."""
        self.milestone_check = True
        """Whether each write to an enrolled case logs the milestones it makes due (off only
        to measure what the check costs: `verify` then finds the milestone events missing)."""
        # One seek at open: reads under another workflow than the log's still work (records
        # read back untyped where their types differ), but say so.
        self._logged_workflow = store.head_workflow_hash()

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> SEFlow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def disconnect(self) -> None:
        """Close the database connection (`close` closes a case)."""
        self.store.close()

    @property
    def workflow_mismatch(self) -> str | None:
        """Set when the loaded workflow is not the one the log was last written under (as
        found at open): writes raise `WorkflowMismatch` until an admin `adopt_workflow`s it."""
        return _mismatch_words(self._logged_workflow, self.workflow.hash)

    @property
    def exposure(self) -> str | None:
        """Why other local users can read this database's personal data (its file mode), or
        None: a warning for the owner, not an error."""
        return self.store.exposure()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Run many commands as one transaction, for bulk loads (history from another system):

            with flow.batch():
                for row in rows:
                    case = flow.refer(...).case
                    flow.record(case.id, ...); flow.advance(case.id, ...)

        Every command is still validated and chained; one that is refused raises and undoes
        only itself (catch it to go on); the batch commits once at the end, or not at all if
        an exception leaves the block."""
        return self._batch()

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        if self._batching:
            yield
            return
        before, _ = self.store.head()
        self._batching = True
        try:
            with self.store.batch():
                yield
        finally:
            self._batching = False
        self._auto_checkpoint(before)

    # --- history from another system ------------------------------------------------------

    def import_history(
        self,
        cases: Iterable[ImportedCase],
        *,
        by: str | None = None,
        skip_bad: bool = False,
        chunk: int = 1000,
    ) -> ImportReport:
        """Import cases from another system: each case's referral and dated commands are run
        in memory through the same facade, engine, guards and policy as any write (against a
        scratch store that continues this log: the same events, hash for hash, as the same
        commands entered one by one now), then written in bulk (`ports.Writer.append`), chunk
        by chunk, chained and sealed as usual. Actors are staff here: `by` (default: the
        actor) acts where a case or command names nobody.

        A case is refused whole (nothing of it written) if any of its commands is, if its
        `ref` appears twice, or if its referral's command id (`import:<ref>`) or a command id
        it gives is already logged or used twice. Without `skip_bad` the import is all or
        nothing: the first refused case raises `ImportRefused` naming its line, case, command
        and rule, and nothing is written (one transaction for all of it). With `skip_bad`
        each chunk of `chunk` cases commits on its own and refused cases are left out and
        listed in the report. Raises `PermissionDenied` if `by` may not write cases."""
        check_flags(skip_bad=skip_bad)
        if isinstance(cases, str | bytes) or not isinstance(cases, Iterable):
            raise InvalidInput(
                f"cases must be ImportedCase values (a list, or any iterable), not "
                f"{type(cases).__name__}; a JSON Lines file goes to import_lines",
                field="cases",
            )
        return self._import(as_cases(cases), by, skip_bad, chunk)

    def import_lines(
        self,
        lines: Iterable[str],
        *,
        by: str | None = None,
        skip_bad: bool = False,
        chunk: int = 1000,
    ) -> ImportReport:
        """`import_history` of a JSON Lines text, one case a line (`_import.parse_case`, the
        format in the README): a line that is not a case is refused like a bad case. A
        whole text (one `str`) is taken a line at a time."""
        check_flags(skip_bad=skip_bad)
        if isinstance(lines, str):
            lines = lines.splitlines()
        elif isinstance(lines, bytes) or not isinstance(lines, Iterable):
            raise InvalidInput(
                f"lines must be text lines (an open text file, or a list of str), not "
                f"{type(lines).__name__}",
                field="lines",
            )
        return self._import(read_lines(lines), by, skip_bad, chunk)

    def _import(
        self,
        items: Iterable[ImportedCase | ImportFailure],
        by: str | None,
        skip_bad: bool,
        chunk: int,
    ) -> ImportReport:
        who = self._actor_id(by)
        check_limit(chunk, "chunk")
        importer = acting(self.store.read(), who)
        if not self.engine.writes_cases(importer):
            raise PermissionDenied(f"{who} may not write cases: nothing imported", who)
        imported: list[tuple[str, str]] = []
        skipped: list[ImportFailure] = []
        written = [0, 0]
        refs: set[str] = set()
        ids: set[str] = set()
        before, _ = self.store.head()

        def chunks() -> Iterator[list[ImportedCase | ImportFailure]]:
            group: list[ImportedCase | ImportFailure] = []
            for item in items:
                group.append(item)
                if len(group) >= chunk:
                    yield group
                    group = []
            if group:
                yield group

        def build(group: list[ImportedCase | ImportFailure], tx: Tx, head: LogHead) -> Appended:
            from ._memory import ScratchStore  # loads only for an import

            scratch = ScratchStore(self.workflow, head, tx)
            flow = SEFlow(scratch, self.workflow, actor=who, clock=self._clock, login=self.login)
            flow._programmes_dir, flow._programmes = self._programmes_dir, self._programmes
            flow.milestone_check = self.milestone_check
            made: list[tuple[str, str]] = []
            # The chunk's command ids already logged, in one read (each case is refused by
            # the first of its own, in `_import_case`; one not valid never reaches a query).
            logged = tx.logged(
                [
                    command_id
                    for item in group
                    if isinstance(item, ImportedCase)
                    for command_id in _import_ids(item)
                    if COMMAND_ID.fullmatch(command_id)
                ]
            )
            for item in group:
                try:
                    if isinstance(item, ImportFailure):
                        raise _CaseRefused(item)
                    case_id = self._import_case(flow, scratch, item, refs, ids, logged)
                    made.append((item.ref, case_id))
                except _CaseRefused as refused:
                    if not skip_bad:
                        raise ImportRefused(refused.failure) from None
                    skipped.append(refused.failure)
            self._programmes = flow._programmes
            rows = scratch.appended()
            imported.extend(made)
            written[0] += len(rows.events)
            written[1] += len(rows.records)
            return rows

        if skip_bad:
            for group in chunks():
                self.store.append(functools.partial(build, group))
        else:
            with self._batch():
                for group in chunks():
                    self.store.append(functools.partial(build, group))
        if skip_bad:
            self._auto_checkpoint(before)
        return ImportReport(tuple(imported), written[0], written[1], tuple(skipped))

    def _import_case(
        self,
        flow: SEFlow,
        scratch: ScratchStore,
        case: ImportedCase,
        refs: set[str],
        ids: set[str],
        logged: Mapping[str, int],
    ) -> str:
        """Run one imported case in `flow` (over `scratch`): its new case id, or `_CaseRefused`
        with nothing of it kept. `refs` and `ids` are the refs and command ids taken so far,
        `logged` the seq of each of its command ids the log holds (`Tx.logged`)."""
        if case.ref in refs:
            raise _CaseRefused(
                ImportFailure("this case's ref appears twice in the import", case.ref, case.line)
            )
        mine = _import_ids(case)
        # Where each id is given: the referral (None), then its command's index.
        where = [None, *(i for i, c in enumerate(case.commands) if c.command_id is not None)]
        for index, (command_id, at) in enumerate(zip(mine, where, strict=True)):
            try:
                check_command_id(command_id)
            except InvalidInput as exc:
                raise _refused(case, exc, at) from None
            if command_id in ids or command_id in mine[:index]:
                why = f"command id {quoted(command_id)} is used twice in the import"
                raise _CaseRefused(ImportFailure(why, case.ref, case.line, at, "id"))
            seq = logged.get(command_id)
            if seq is not None:
                what = "this case was already imported" if index == 0 else "its command id"
                why = f"{what}: command id {quoted(command_id)} is logged (event {seq})"
                raise _CaseRefused(ImportFailure(why, case.ref, case.line, at, "id"))
        actor = case.actor
        command: int | None = None
        try:
            with scratch.batch():
                flow.milestone_check = self.milestone_check
                done = flow.refer(
                    case.person,
                    referral=case.referral,
                    coach=case.coach,
                    actor=actor,
                    effective_at=case.referred_at,
                    programme=case.programme,
                    command_id=mine[0],
                )
                case_id = done.case.id
                # A case on no programme makes no milestones (`_sync_milestones` finds no
                # enrolment): not asked after each of its commands. Only its referral enrols.
                flow.milestone_check = self.milestone_check and scratch.enrolled(case_id)
                seqs: list[int | None] = []
                for index, step in enumerate(case.commands):
                    command = index
                    if isinstance(step, ImportedRecord):
                        corrects = None
                        if step.supersedes is not None:
                            corrects = seqs[step.supersedes]
                            if corrects is None:
                                raise InvalidInput(
                                    f"supersedes {step.supersedes}: that command is no record",
                                    field="supersedes",
                                )
                        made = flow.record(
                            case_id,
                            step.kind,
                            step.fields,
                            actor=step.actor or actor,
                            effective_at=step.effective_at,
                            supersedes=corrects,
                            command_id=step.command_id,
                        )
                        seqs.append(made.event.seq)
                    else:
                        flow.advance(
                            case_id,
                            step.trigger,
                            actor=step.actor or actor,
                            reason=step.reason,
                            override=step.override,
                            effective_at=step.effective_at,
                            review_date=step.review_date,
                            outcome=step.outcome,
                            command_id=step.command_id,
                        )
                        seqs.append(None)
        except SEFlowError as exc:
            raise _refused(case, exc, command) from None
        refs.add(case.ref)
        ids.update(mine)
        return case_id

    def now(self) -> dt.datetime:
        now = self._clock()
        if not isinstance(now, dt.datetime):
            raise InvalidInput(
                f"the clock must return an aware datetime, not {type(now).__name__}",
                field="clock",
            )
        if now.tzinfo is None:
            raise InvalidInput("the clock must return an aware datetime (with a time zone)")
        return now.astimezone(dt.UTC)

    def _actor_id(self, actor: str | None) -> str:
        # An empty id is a caller's mistake (an unauthenticated user?), not the default actor.
        who: str | None = check_text(actor if actor is not None else self.default_actor, "actor")
        if not who:
            raise InvalidInput("no actor: say who is acting (actor=..., or --as / SE_FLOW_ACTOR)")
        # An id no staff member could have is refused before it reaches a query or a message.
        checked = check_staff_id(who, "actor")
        if self.login is not None:
            self._check_login(checked)
        return checked

    def _check_login(self, who: str) -> None:
        """Refuse to act as a member bound to another login than the one at the terminal."""
        tx = self.store.read()
        try:
            by = tx.staff(who)
        except StaffNotFound:
            return  # refused (or bootstrapped) by the command itself, in its own words
        if by.login is not None and by.login != self.login:
            self.engine.may_act_from(by, self.login, tx.settings().shared_terminal)

    def _reader(self, actor: str | None) -> Staff:
        """The actor of a read, who must be active staff (checked before anything is looked
        up, so a stranger cannot even learn whether a case exists)."""
        by = acting(self.store.read(), self._actor_id(actor))
        self.engine.may_read(by)
        return by

    def _shows_text(self, by: Staff) -> bool:
        granted = by.role is Role.AUDITOR and self.store.read().text_granted(by.id)
        return self.engine.shows_text(by, granted)

    def _events_for(self, by: Staff, events: list[Event]) -> list[Event]:
        """`events` as `by` may read them: free texts `WITHHELD` unless they may see them."""
        if self._shows_text(by):
            return events
        return [withhold_event(e) for e in events]

    def _write(
        self,
        decide: Callable[[Tx], Change],
        command: _Command | None = None,
        *,
        on_case: bool = False,
        milestones: bool = True,
        probe: _Probe | None = None,
    ) -> tuple[Case | None, Event, Record | None]:
        """Commit what `decide` returns: the case as written, the sealed event and the record
        it added, so no write reads anything back to say what it did. A write `on_case` also
        appends, in its transaction, the milestone events it makes due (`_sync_milestones`);
        staff, settings and other writes of no case begin their transaction as before.

        Under a `command` id, once: a retry after an ambiguous commit (a lost connection, a
        timeout) with the same id appends nothing, however it races the first attempt, and
        answers with what the first attempt made; the same id for a different command raises
        `CommandIdReused`. A write known not to be `milestones`' business (a transition
        other than `start_job`: `_milestones.touches`) skips that check and its batch; so does
        one whose `probe` finds its case on no programme (tried unbatched first, and again in
        the batch if the case turns out enrolled)."""
        made: list[Change] = []
        # The settings as the write's transaction saw them: a write on a case changes none, so
        # they are those at its commit, and the checkpoint after it needs no read of its own.
        seen: list[DatabaseSettings] = []
        unbatched = False

        def deciding(tx: Tx) -> Change:
            if command is not None:
                logged = tx.command(command.id)
                if logged is not None:
                    raise _Logged(logged)
            change = decide(tx)
            if unbatched and probe is not None and probe.enrolled:
                raise _Enrolled
            if command is not None:
                named = attrs.evolve(change.event, command_id=command.id, command_hash=command.hash)
                change = attrs.evolve(change, event=named)
            if on_case:
                seen.append(tx.settings())
            # The store may run `decide` again (a busy database): the last run is the one kept.
            made.append(change)
            return change

        check = on_case and milestones and self.milestone_check
        head: int | None
        try:
            written = None
            if check and probe is not None and probe.case_id not in self._enrolled:
                unbatched = True
                try:
                    written = self.store.write(deciding)
                except _Enrolled:
                    # Once enrolled, always (enrolments are never undone): the batch first.
                    self._enrolled.add(probe.case_id)
                unbatched = False
            if written is not None:
                case, event = written
                head = event.seq
            elif check:
                # The milestones a write to an enrolled case makes due go in its transaction.
                with self.store.batch():
                    case, event = self.store.write(deciding)
                    after = (
                        self._sync_milestones(case.id, event.actor, event.recorded_at, event)
                        if case is not None
                        else None
                    )
                # After milestone events the head is past the write's own event: read it then.
                head = event.seq if after is None else None
                case = after or case
            else:
                case, event = self.store.write(deciding)
                head = event.seq
        except _Logged as found:
            assert command is not None
            return self._replayed(found.event, command)
        except SEFlowError:
            if command is None:
                raise
            # Refused (`CommandRepeated`, or a guard that saw what the first attempt did) while
            # the first attempt committed: that attempt is the answer.
            try:
                again = self.store.read().command(command.id)
            except SEFlowError:
                again = None
            if again is None:
                raise
            return self._replayed(again, command)
        if not self._batching:
            # An automatic checkpoint, if one is due (a batch keeps it for its end).
            self._auto_checkpoint(event.seq - 1, head, seen[-1] if seen else None)
        draft = made[-1].record
        record = draft.made(case.id, event) if draft is not None and case is not None else None
        return case, event, record

    def _replayed(
        self, logged: Event, command: _Command
    ) -> tuple[Case | None, Event, Record | None]:
        """What the write logged under `command`'s id made: the case as that event left it,
        the event, its record."""
        if logged.command_hash != command.hash:
            raise CommandIdReused(command.id, logged.seq)
        if logged.case_id is None:
            return None, logged, None
        upto = itertools.takewhile(
            lambda e: e.seq <= logged.seq, self.store.events(case_id=logged.case_id)
        )
        case = replay_cases(self.workflow, upto).get(logged.case_id)
        record = next((r for r in self.store.records(logged.case_id) if r.seq == logged.seq), None)
        return case, logged, record

    def _case_done(
        self,
        decide: Callable[[Tx], Change],
        command: _Command | None = None,
        *,
        milestones: bool = True,
    ) -> Done[Case, None]:
        case, event, _ = self._write(decide, command, on_case=True, milestones=milestones)
        assert case is not None
        return Done(case=case, event=event, record=None)

    def _recorded(
        self,
        decide: Callable[[Tx], Change],
        command: _Command | None = None,
        probe: _Probe | None = None,
    ) -> Done[Case, Record]:
        case, event, record = self._write(decide, command, on_case=True, probe=probe)
        assert case is not None and record is not None
        return Done(case=case, event=event, record=record)

    def _logged(
        self, decide: Callable[[Tx], Change], command: _Command | None = None
    ) -> Done[None, None]:
        _, event, _ = self._write(decide, command)
        return Done(case=None, event=event, record=None)

    # --- staff ---------------------------------------------------------------------------

    def add_staff(
        self,
        staff_id: str,
        name: str,
        role: Role | str,
        *,
        actor: str | None = None,
        active: bool = True,
        login: str | None = None,
        command_id: str | None = None,
    ) -> Staff:
        """Add (or update) a staff member. The very first may be added by anyone; after that
        a team leader or admin adds staff; only an admin grants admin or auditor, or changes
        an admin or auditor; the last active admin cannot be demoted or deactivated. `login`
        binds them to an OS login (`edit_staff`); `init` binds the first admin to its own.

        Returns the member as written (name trimmed), not a `Done` as other writes do: a
        staff change touches no case and adds no record, and the member is what every caller
        shows (its event is in the log, `events()`)."""
        check_flags(active=active)
        who = self._actor_id(actor)
        # Not stripped: the id is exactly what they will give to --as.
        check_staff_id(staff_id)
        full_name = check_staff_name(name)
        if login is not None:
            check_login(login)
        try:
            new = Staff(id=staff_id, name=full_name, role=Role(role), active=active, login=login)
        except ValueError:
            raise InvalidInput(
                f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}"
            ) from None
        now = self.now()
        written = [new]
        command = _command(
            command_id,
            "add_staff",
            id=staff_id,
            name=full_name,
            role=new.role,
            active=active,
            login=login,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            written[0] = new
            if not tx.has_staff():
                return self.engine.add_staff(
                    new, actor=who, by=None, before=None, active_admins=0, now=now
                )
            by = acting(tx, who)
            try:
                before: Staff | None = tx.staff(new.id)
            except StaffNotFound:
                before = None
            if before is not None and login is None:
                # Changing someone keeps their login binding: only `edit_staff` removes it.
                written[0] = attrs.evolve(new, login=before.login)
            return self.engine.add_staff(
                written[0],
                actor=who,
                by=by,
                before=before,
                active_admins=tx.count_active_admins(),
                now=now,
            )

        self._write(decide, command)
        return written[0]

    def edit_staff(
        self,
        staff_id: str,
        *,
        name: str | None = None,
        role: Role | str | None = None,
        active: bool | None = None,
        login: str | None = None,
        unbind_login: bool = False,
        confirm: bool = False,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Staff:
        """Change what is given of staff member `staff_id`, keeping the rest (the same rules as
        `add_staff`). `login` binds them to an OS login, which must exist on this machine;
        `unbind_login` removes a binding. Deactivating someone who still holds open cases
        raises `StaffHoldsCases` (nothing written) unless `confirm`. Raises `StaffNotFound`,
        `InvalidInput` (a login no OS user has), `PermissionDenied`."""
        check_flags(("active",), active=active, unbind_login=unbind_login, confirm=confirm)
        who = self._actor_id(actor)
        check_staff_id(staff_id)
        if login is not None:
            _os_user_exists(check_login(login))
        if login is not None and unbind_login:
            raise InvalidInput("give a login to bind or unbind the login, not both")
        full_name = check_staff_name(name) if name is not None else None
        try:
            new_role = Role(role) if role is not None else None
        except ValueError:
            raise InvalidInput(
                f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}"
            ) from None
        now = self.now()
        command = _command(
            command_id,
            "edit_staff",
            id=staff_id,
            name=full_name,
            role=new_role,
            active=active,
            login=login,
            unbind_login=unbind_login,
            confirm=confirm,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            before = tx.staff(staff_id)
            after = attrs.evolve(
                before,
                name=full_name if full_name is not None else before.name,
                role=new_role if new_role is not None else before.role,
                active=active if active is not None else before.active,
                login=None if unbind_login else login if login is not None else before.login,
            )
            if after == before:
                raise InvalidInput(f"staff {staff_id} is already so: nothing to change")
            if before.active and not after.active and not confirm:
                held = [c.id for c in self.store.cases(CaseFilter(coach=staff_id, open_only=True))]
                if held:
                    raise StaffHoldsCases(staff_id, held)
            return self.engine.add_staff(
                after,
                actor=who,
                by=by,
                before=before,
                active_admins=tx.count_active_admins(),
                now=now,
            )

        self._write(decide, command)
        return self.store.read().staff(staff_id)

    def settings(self, *, actor: str | None = None) -> DatabaseSettings:
        """The database's settings (`DatabaseSettings`): any active staff may read them."""
        self._reader(actor)
        return self.store.read().settings()

    def change_settings(
        self,
        *,
        shared_terminal: bool | None = None,
        checkpoint_file: str | Path | None = None,
        checkpoint_every: int | None = None,
        checkpoint_on_export: bool | None = None,
        no_checkpoint_file: bool = False,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> DatabaseSettings:
        """An admin changes the database's settings; each change is an audit event (`setting`)
        holding all of them. `checkpoint_file` is the external append-only file checkpoints go
        to (checked now: see `_checkpoint_file`); `checkpoint_every` N appends one after every
        N events (0: not by count); `checkpoint_on_export` one after every export;
        `no_checkpoint_file` stops them. Raises `PermissionDenied`, `InvalidInput`,
        `CheckpointFileRefused`."""
        check_flags(
            ("shared_terminal", "checkpoint_on_export"),
            shared_terminal=shared_terminal,
            checkpoint_on_export=checkpoint_on_export,
            no_checkpoint_file=no_checkpoint_file,
        )
        who = self._actor_id(actor)
        if checkpoint_every:
            check_limit(checkpoint_every, "checkpoint_every")
        if checkpoint_file is not None:
            _check_path(checkpoint_file, "checkpoint_file")
        path = str(Path(checkpoint_file).expanduser().absolute()) if checkpoint_file else None
        if path is not None:
            from ._checkpoint_file import CheckpointFile

            target = CheckpointFile(path)
            if target.path.exists() or target.path.is_symlink():
                target.read(self.store.store_id())
            elif not target.path.parent.is_dir():
                raise CheckpointFileRefused(path, "its folder does not exist")
        now = self.now()
        command = _command(
            command_id,
            "change_settings",
            shared_terminal=shared_terminal,
            checkpoint_file=path,
            checkpoint_every=checkpoint_every,
            checkpoint_on_export=checkpoint_on_export,
            no_checkpoint_file=no_checkpoint_file,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            before = tx.settings()
            after = attrs.evolve(
                before,
                shared_terminal=(
                    shared_terminal if shared_terminal is not None else before.shared_terminal
                ),
                checkpoint_file=None if no_checkpoint_file else path or before.checkpoint_file,
                checkpoint_every=(
                    (checkpoint_every or None)
                    if checkpoint_every is not None
                    else before.checkpoint_every
                ),
                checkpoint_on_export=(
                    checkpoint_on_export
                    if checkpoint_on_export is not None
                    else before.checkpoint_on_export
                ),
            )
            if no_checkpoint_file:
                after = attrs.evolve(after, checkpoint_every=None, checkpoint_on_export=False)
            if after.checkpoint_file is None and (
                after.checkpoint_every or after.checkpoint_on_export
            ):
                raise InvalidInput("automatic checkpoints need a checkpoint file: give --file PATH")
            return self.engine.change_settings(before, after, by=by, now=now)

        self._write(decide, command)
        return self.store.read().settings()

    def set_up(
        self,
        name: str | None = None,
        role: Role | str = Role.ADMIN,
        *,
        seal: bool = False,
        epoch_seconds: int = DAY,
        login: str | None = None,
        actor: str | None = None,
    ) -> SetUp:
        """Set up a new database: the actor becomes its first staff member (`name`, default
        their id; `role`, default admin; bound to the OS `login` if given, as `add_staff`),
        after `start_sealing` if `seal`. Raises `InvalidInput` if anyone is on the staff list
        already (nothing is written)."""
        check_flags(seal=seal)
        if self.has_staff():
            raise InvalidInput(
                "the database is already set up; add people with `se-flow staff add` (add_staff)"
            )
        who = self._actor_id(actor)
        key = self.start_sealing(epoch_seconds=epoch_seconds, actor=who) if seal else None
        member = self.add_staff(who, name or who, role, actor=who, login=login)
        return SetUp(staff=member, key=key)

    def has_staff(self) -> bool:
        """Whether anyone is on the staff list yet: needs no actor (before the first staff
        member there is nobody to be), and tells only whether the database is set up."""
        return self.store.read().has_staff()

    def staff(self, *, actor: str | None = None) -> list[Staff]:
        self._reader(actor)
        return self.store.list_staff()

    def staff_member(self, staff_id: str, *, actor: str | None = None) -> Staff:
        self._reader(actor)
        return self.store.read().staff(check_staff_id(staff_id))

    # --- cases ---------------------------------------------------------------------------

    def refer(
        self,
        person: PersonalDetails | str,
        *,
        source: str | None = None,
        referral: Mapping[str, Any] | None = None,
        coach: str | None = None,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        programme: str | None = None,
        command_id: str | None = None,
    ) -> Done[Case, Record]:
        """Refer a new participant: their personal details go to the personal-data table, the
        log knows them only by a pseudonymous id. Returns the new case (state `referred`), its
        referral event and record.

        `programme` (`id` or `id@version`; else the referral's `programme` field) enrols the
        case on that funder definition in the same transaction, as `enrol` would: an audited
        `enrol` event pinning the version (the case returned is the case after it). Raises
        `UnknownProgramme` before writing anything.

        Every write takes `command_id`: a retry under the same id (after a lost connection
        or a timeout left unknown whether the first attempt committed) appends nothing and
        returns what the first attempt made; the same id for another command (other
        arguments, actor or write) raises `CommandIdReused`. The personal details are no part
        of what is compared: the log holds no personal data, not even hashed. A referral that
        enrols logs its `enrol` event under `<command_id>:enrol`."""
        who = self._actor_id(actor)
        referral = _mapping(referral, "referral")
        if programme is None and referral.get("programme"):
            programme = str(referral["programme"])
        on = self.programme(programme) if programme is not None else None
        details = PersonalDetails(name=person) if isinstance(person, str) else person
        if not isinstance(details, PersonalDetails):
            raise InvalidInput(
                f"person must be a name (text) or PersonalDetails, not {type(person).__name__}",
                field="person",
            )
        check_text(details.name, "name")
        check_text(details.contact, "contact")
        check_text(details.health_notes, "health notes")
        now = self.now()
        if details.date_of_birth is not None:
            born = check_day(details.date_of_birth, "date of birth")
            details = attrs.evolve(details, date_of_birth=born)
            # Age bands and the reports count from it: a birth still to come is a typo.
            if born > now.date():
                raise InvalidInput(
                    f"date of birth {born.isoformat()} is in the future "
                    f"(today is {now.date().isoformat()})",
                    field="date of birth",
                )
        _target(coach)
        if not isinstance(details.name, str) or not details.name.strip():
            raise InvalidInput("a participant needs a name", field="name")
        fields = _mapping(referral, "referral")
        if source is not None:
            fields["source"] = source
        at = _at(effective_at, now)
        command = _command(
            command_id,
            "refer",
            text_fields=text_fields(self.workflow, self.workflow.referral_kind),
            fields=fields,
            coach=coach,
            actor=who,
            effective_at=effective_at,
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            if coach is not None:
                _caseworker(tx, coach)
            pid = "P-" + secrets.token_hex(5)
            while tx.participant(pid) is not None:  # pragma: no cover - 1 in 10^12
                pid = "P-" + secrets.token_hex(5)
            participant = Participant(id=pid, created_at=now, details=details)
            return self.engine.open_case(
                tx.new_case_id(),
                participant,
                fields,
                actor=by,
                now=now,
                effective_at=at,
                coach=coach or (who if by.role is Role.COACH else None),
            )

        if on is None:
            return self._recorded(decide, command)
        # The enrolment is a second event: under an id of its own, so a retry replays both.
        enrol_id = None if command_id is None else check_command_id(f"{command_id}:enrol")
        with self._batch():
            done = self._recorded(decide, command)
            enrolling = self._enrolling(done.case.id, on, who, now, at, None)
            enrol_command = _command(
                enrol_id, "enrol", case_id=done.case.id, programme=programme, actor=who
            )
            enrolled = self._case_done(enrolling, enrol_command)
        return Done(case=enrolled.case, event=done.event, record=done.record)

    def reopen(
        self,
        case_id: str,
        *,
        source: str | None = None,
        referral: Mapping[str, Any] | None = None,
        coach: str | None = None,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        command_id: str | None = None,
    ) -> Done[Case, Record]:
        """Start a new episode (a new case) for the participant of closed case `case_id`:
        returns the new case, its event and its opening record."""
        who = self._actor_id(actor)
        _case_id(case_id)
        _target(coach)
        fields = _mapping(referral, "referral")
        if source is not None:
            fields["source"] = source
        now = self.now()
        at = _at(effective_at, now)
        command = _command(
            command_id,
            "reopen",
            text_fields=text_fields(self.workflow, self.workflow.reopen.record),
            case_id=case_id,
            fields=fields,
            coach=coach,
            actor=who,
            effective_at=effective_at,
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            if coach is not None:
                _caseworker(tx, coach)
            previous = tx.snapshot(case_id, lambda _case: NOTHING).case
            newer = [
                c
                for c in self.store.cases(CaseFilter(participant_id=previous.participant_id))
                if c.episode > previous.episode
            ]
            if newer:
                raise InvalidInput(
                    f"case {case_id} was already reopened as {newer[0].id}; work on that case"
                )
            participant = tx.participant(previous.participant_id)
            assert participant is not None
            return self.engine.open_case(
                tx.new_case_id(),
                participant,
                fields,
                actor=by,
                now=now,
                effective_at=at,
                coach=coach or previous.coach,
                previous=previous,
                new_participant=False,
            )

        return self._recorded(decide, command)

    def record(
        self,
        case_id: str,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        supersedes: int | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
        **more: Any,
    ) -> Done[Case, Record]:
        """Record evidence of `kind` on a case. Field values may be typed (date, Decimal,
        bool, list) or text as a coach types it. `supersedes` names the record (its seq) this
        one corrects; both are kept. Returns the record (`.record.seq` is its id), its event
        and the case. Raises `InvalidRecord` naming every field at fault."""
        who = self._actor_id(actor)
        _case_id(case_id)
        values = _mapping(fields, "fields")
        twice = sorted(set(values) & set(more))
        if twice:
            raise InvalidInput(
                f"{', '.join(map(str, twice))}: given twice, in fields and as a keyword",
                field=str(twice[0]),
            )
        values.update(more)
        now = self.now()
        at = _at(effective_at, now)
        if kind in JOB_RECORD_KINDS:
            values = self._with_age_band(case_id, kind, values, who, at)
        command = _command(
            command_id,
            "record",
            text_fields=text_fields(self.workflow, kind),
            case_id=case_id,
            kind=kind,
            fields=values,
            actor=who,
            effective_at=effective_at,
            supersedes=supersedes,
            expected_version=expected_version,
        )

        probe = _Probe(case_id)

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            snap = tx.snapshot(case_id, _record_needs(kind, supersedes))
            probe.enrolled = _ENROL in snap.marks
            change = self.engine.add_record(
                snap,
                kind,
                values,
                actor=by,
                now=now,
                effective_at=at,
                supersedes=supersedes,
                expected_version=expected_version,
            )
            return change

        return self._recorded(decide, command, probe)

    def _with_age_band(
        self, case_id: str, kind: str, values: dict[str, Any], who: str, at: dt.datetime
    ) -> dict[str, Any]:
        """A job's record with the participant's minimum-wage age band at the job's start
        (`_workflow.age_band`), worked out from the date of birth in the personal-data table:
        the band goes into the log, the date of birth never does. A band given that the date
        of birth contradicts is refused naming the field; with no date of birth on file the
        band is as given (or none)."""
        spec = self.workflow.records.get(kind)
        if spec is None or spec.field("age_band") is None:
            return values
        by = acting(self.store.read(), who)
        if not self.engine.writes_cases(by):
            return values  # refused by the write itself, in its own words
        fields = self.engine.parse_record(kind, values, case_id)
        details = self.store.personal_details(self.store.case(case_id).participant_id)
        if details is None or details.date_of_birth is None:
            return values
        start = fields.get("start_date")
        day = start if isinstance(start, dt.date) else at.date()
        band = age_band(details.date_of_birth, day)
        given = fields.get("age_band")
        if given is None:
            return {**values, "age_band": band}
        if given != band:
            raise InvalidRecord(
                kind,
                {"age_band": f"{given} does not fit the date of birth on file: {band} on {day}"},
                case_id,
            )
        return values

    def _ctx_args(
        self,
        snap: Snapshot,
        actor: Staff,
        now: dt.datetime,
        effective_at: dt.datetime | dt.date | None,
        reason: str | None,
        review_date: dt.date | None,
        outcome: str | None,
    ) -> Any:
        check_text(reason, "reason")
        check_text(outcome, "close reason")
        if review_date is not None:
            review_date = check_day(review_date, "review date")
        return context(
            self.engine,
            snap,
            actor,
            now,
            _at(effective_at, now),
            reason=reason,
            review_date=review_date,
            outcome=outcome,
        )

    def check(
        self,
        case_id: str,
        trigger: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        review_date: dt.date | None = None,
        outcome: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
    ) -> Check:
        """A dry run of `trigger`: every guard's result, nothing written."""
        by = self._reader(actor)
        _case_id(case_id)
        tx = self.store.read()
        snap = tx.snapshot(case_id, lambda case: self.engine.needs(case, trigger))
        now = self.now()
        ctx = self._ctx_args(snap, by, now, effective_at, reason, review_date, outcome)
        return self._as_written(self.engine.check(snap, ctx, trigger))

    def available(self, case_id: str, *, actor: str | None = None) -> list[Check]:
        """Every trigger open from the case's stage now, each with its guards' results."""
        return list(self.next_steps(case_id, actor=actor).checks)

    def completions(
        self,
        kind: str,
        prefix: str = "",
        *,
        case_id: str | None = None,
        actor: str | None = None,
    ) -> tuple[str, ...]:
        """The words a shell may offer for a `kind` of argument that start with `prefix`:
        `case` (case ids, by number), `trigger` (those open from `case_id`'s stage now, else
        every trigger), `record` (record kinds), `staff` (active staff ids) or `coach` (those
        who may hold cases). Ids only, never a name or other personal data; reads without
        writing or auditing anything. At most `COMPLETIONS` words. Raises as any read does
        (the actor must be active staff) and `InvalidInput` for an unknown `kind`."""
        by = self._reader(actor)
        words: Iterable[str]
        if kind == "case":
            words = self._case_words(prefix, by.id)
        elif kind == "trigger":
            if case_id is None:
                words = self.workflow.triggers
            else:
                words = (c.trigger for c in self.next_steps(case_id, actor=actor).checks)
        elif kind == "record":
            words = self.workflow.records
        elif kind in ("staff", "coach"):
            holds = (Role.COACH, Role.TEAM_LEADER) if kind == "coach" else tuple(Role)
            words = (s.id for s in self.store.list_staff() if s.active and s.role in holds)
        else:
            raise InvalidInput(
                f"unknown completion {quoted(kind)}; kinds: case, trigger, record, staff, coach",
                field="kind",
            )
        found: dict[str, None] = {}
        for word in words:
            if word.startswith(prefix):
                found.setdefault(word, None)
                if len(found) == COMPLETIONS:
                    break
        return tuple(found)

    def _case_words(self, prefix: str, staff_id: str) -> Iterator[str]:
        """Case ids starting with `prefix`: the reader's own open cases first, then any, each
        read picked and limited by the store (an index range), never every case."""
        try:
            check_text(prefix, "case id")
        except InvalidInput:
            return
        if not prefix.isprintable():
            # No case id holds a control character (PostgreSQL refuses a NUL in a query).
            return
        for where in (
            CaseFilter(coach=staff_id, open_only=True, id_prefix=prefix, limit=COMPLETIONS),
            CaseFilter(id_prefix=prefix, limit=COMPLETIONS),
        ):
            for case in self.store.cases(where):
                yield case.id

    def _as_written(self, check: Check) -> Check:
        """`check` as a write would meet it: under a workflow other than the log's every write
        is refused (`WorkflowMismatch`), so a dry run fails a guard saying so rather than
        reporting ready."""
        logged = self._logged_workflow
        if logged is None or logged == self.workflow.hash:
            return check
        refusal = WorkflowMismatch(logged=logged, loaded=self.workflow.hash)
        blocked = GuardResult(
            guard="workflow_matches",
            passed=False,
            reason=refusal.message,
            title="workflow matches the database",
        )
        return attrs.evolve(check, results=(*check.results, blocked))

    def advance(
        self,
        case_id: str,
        trigger: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        override: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        review_date: dt.date | None = None,
        outcome: str | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """Fire `trigger` on a case. Guards are checked inside the write transaction; a
        refusal raises `GuardsFailed` carrying every result. `override` (a reason) lets a
        team leader past soft guards. `expected_version` turns a concurrent change into
        `CaseConflict` instead of acting on a case that moved."""
        who = self._actor_id(actor)
        _case_id(case_id)
        check_text(override, "override reason")
        now = self.now()
        command = (
            None
            if command_id is None
            else _command(
                command_id,
                "advance",
                case_id=case_id,
                trigger=trigger,
                actor=who,
                reason=reason,
                override=override,
                effective_at=effective_at,
                review_date=review_date,
                outcome=outcome,
                expected_version=expected_version,
            )
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            snap = tx.snapshot(case_id, lambda case: self.engine.needs(case, trigger))
            ctx = self._ctx_args(snap, by, now, effective_at, reason, review_date, outcome)
            return self.engine.fire(
                snap, ctx, trigger, override=override, expected_version=expected_version
            )

        # Of the transitions only `start_job` (a job taken up) can change a milestone.
        return self._case_done(decide, command, milestones=trigger == START_TRIGGER)

    def pause(
        self,
        case_id: str,
        *,
        reason: str,
        review_date: dt.date,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        return self.advance(
            case_id,
            self.workflow.trigger_for("pause"),
            actor=actor,
            reason=reason,
            review_date=review_date,
            effective_at=effective_at,
            expected_version=expected_version,
            command_id=command_id,
        )

    def resume(
        self,
        case_id: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        return self.advance(
            case_id,
            self.workflow.trigger_for("resume"),
            actor=actor,
            reason=reason,
            effective_at=effective_at,
            expected_version=expected_version,
            command_id=command_id,
        )

    def withdraw(
        self,
        case_id: str,
        *,
        reason: str,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """The participant withdraws: needs only a date and a reason, never an approval."""
        return self.advance(
            case_id,
            self.workflow.trigger_for("withdraw"),
            actor=actor,
            reason=reason,
            effective_at=effective_at,
            expected_version=expected_version,
            command_id=command_id,
        )

    def close(
        self,
        case_id: str,
        reason: str,
        *,
        note: str | None = None,
        actor: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        expected_version: int | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """Close for one of the workflow's `close_reasons` (`ineligible` needs a team leader;
        `other` a `note`, else `NoteRequired`). For withdrawal, disengagement or completion
        use their own triggers."""
        return self.advance(
            case_id,
            self.workflow.trigger_for("close"),
            actor=actor,
            outcome=reason,
            reason=note or reason,
            effective_at=effective_at,
            expected_version=expected_version,
            command_id=command_id,
        )

    def assign(
        self,
        case_id: str,
        coach: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        who = self._actor_id(actor)
        _case_id(case_id)
        check_staff_id(coach, "coach")
        check_text(reason, "reason")
        now = self.now()
        command = _command(
            command_id, "assign", case_id=case_id, coach=coach, actor=who, reason=reason
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            _caseworker(tx, coach)
            return self.engine.assign(
                tx.snapshot(case_id, lambda _case: NOTHING),
                coach,
                actor=by,
                now=now,
                reason=reason,
            )

        return self._case_done(decide, command)

    def erase_personal_data(
        self,
        participant_id: str,
        *,
        reason: str,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Done[None, None]:
        """Erase a participant's personal data (UK GDPR Art. 17), admin only. The log never
        held it, so the chain stays whole; the erasure itself is an audit event."""
        who = self._actor_id(actor)
        _case_id(participant_id, "participant id")
        check_text(reason, "reason")
        if not reason or not reason.strip():
            raise InvalidInput("an erasure needs a reason (the request and its legal basis)")
        now = self.now()
        command = _command(
            command_id,
            "erase_personal_data",
            participant_id=participant_id,
            reason=reason,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            return self.engine.erase_personal_data(
                participant_id,
                tx.participant(participant_id),
                by=acting(tx, who),
                reason=reason,
                now=now,
                texts=tx.participant_texts(participant_id),
            )

        return self._logged(decide, command)

    def erase_text(
        self,
        seq: int,
        slot: str,
        *,
        reason: str,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Done[None, None]:
        """Erase the free text of event `seq` in `slot` (`reason`, `override.reason` or
        `record.FIELD`), admin only: its salt and text are cleared from the text table, and an
        audit event names which text was erased (never what it said). The chain stays whole;
        `verify` counts it as erased. Raises `TextNotFound` (no such event or text, or one
        kept inline by an event from before texts were kept apart), `TextAlreadyErased`,
        `PermissionDenied`; nothing is written then."""
        who = self._actor_id(actor)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise InvalidInput(
                f"seq: expected an event number (1 or more), got {seq!r}", field="seq"
            )
        check_text(slot, "slot")
        check_text(reason, "reason")
        if not reason or not reason.strip():
            raise InvalidInput("erasing a text needs a reason (the request and its basis)")
        now = self.now()
        command = _command(command_id, "erase_text", seq=seq, slot=slot, reason=reason, actor=who)

        def decide(tx: Tx) -> Change:
            return self.engine.erase_text(
                seq, slot, tx.text_slots(seq), by=acting(tx, who), reason=reason, now=now
            )

        return self._logged(decide, command)

    def grant_texts(
        self,
        staff_id: str,
        *,
        reason: str,
        granted: bool = True,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Done[None, None]:
        """Let auditor `staff_id` read and export free texts (`granted`), or take that back
        (`granted=False`), admin only; the grant is an audit event. Raises `PermissionDenied`,
        `StaffNotFound`, `InvalidInput` (not an auditor, already so)."""
        check_flags(granted=granted)
        who = self._actor_id(actor)
        check_staff_id(staff_id, "staff id")
        check_text(reason, "reason")
        if not reason or not reason.strip():
            raise InvalidInput("a grant of free texts needs a reason")
        now = self.now()
        command = _command(
            command_id,
            "grant_texts",
            staff_id=staff_id,
            reason=reason,
            granted=granted,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            target = tx.staff(staff_id)
            return self.engine.grant_texts(
                target, granted, tx.text_granted(staff_id), by=by, reason=reason, now=now
            )

        return self._logged(decide, command)

    def adopt_workflow(
        self, *, reason: str, actor: str | None = None, command_id: str | None = None
    ) -> Done[None, None]:
        """Move the database on to the loaded workflow, admin only: an audit event records
        from which workflow to which and why; later writes are under the new one. Records
        already written keep their values; where the new workflow types a field otherwise
        they read back as stored."""
        who = self._actor_id(actor)
        check_text(reason, "reason")
        if not reason or not reason.strip():
            raise InvalidInput("adopting a workflow needs a reason")
        now = self.now()
        command = _command(
            command_id, "adopt_workflow", workflow=self.workflow.hash, reason=reason, actor=who
        )

        def decide(tx: Tx) -> Change:
            by = acting(tx, who)
            return self.engine.adopt_workflow(
                self.store.head_workflow_hash(), by=by, reason=reason, now=now
            )

        done = self._logged(decide, command)
        self._logged_workflow = self.workflow.hash
        return done

    # --- outcomes ------------------------------------------------------------------------

    def _sync_milestones(
        self, case_id: str, who: str, now: dt.datetime, event: Event
    ) -> Case | None:
        """After `event` (a write to the case), append a `milestone` event for each change
        the evidence now makes to what the log holds of the case's milestones
        (`_milestones.changes`), as `who` at `now`: nothing for a case on no programme, or
        for a write outcomes do not read (`_milestones.touches`). Runs inside the caller's
        transaction (a batch); returns the case after the last event appended, or None."""
        tx = self.store.read()
        enrolments = tx.snapshot(case_id, lambda _case: _ENROLMENT).history
        enrolled = enrolment(enrolments)
        if enrolled is None:
            return None
        programme = self.programme(enrolled.ref)
        if not touches(programme, self.workflow, event):
            return None
        # Only the kinds the programme reads, corrections and all: the same evaluation as
        # from every record (`verify`), without decoding a long history of other kinds.
        wanted = Needs(
            kinds=read_kinds(programme, self.workflow),
            triggers=frozenset(),
            history=HISTORY_TRIGGERS,
            superseded=True,
        )
        snap = tx.snapshot(case_id, lambda _case: wanted)
        records = list(snap.records)
        starts = _starts(snap.history)
        evaluated = evaluate_case(
            programme,
            self.workflow,
            snap.case,
            records,
            starts,
            now.date(),
            project=False,
            prior=self._prior(programme, snap.case),
        )
        case: Case | None = None
        for payload in changes(programme, evaluated, logged(snap.history, programme.ref)):

            def decide(tx: Tx, payload: Mapping[str, Any] = payload) -> Change:
                return self.engine.milestone(
                    tx.snapshot(case_id, lambda _case: NOTHING),
                    payload,
                    actor=acting(tx, who),
                    now=now,
                )

            case, _ = self.store.write(decide)
        return case

    def _prior(self, programme: Programme, case: Case) -> dict[str, str]:
        """The milestones counted once per participant that another case of the same
        participant already holds (`_milestones.prior_counted`)."""
        if not any(m.once_per == "participant" for m in programme.milestones):
            return {}
        tx = self.store.read()
        others = {
            c.id: tx.snapshot(c.id, lambda _case: _MILESTONE_HISTORY).history
            for c in self.store.cases(CaseFilter(participant_id=case.participant_id))
            if c.id != case.id
        }
        return prior_counted(programme, others)

    def _enrolling(
        self,
        case_id: str,
        programme: Programme,
        who: str,
        now: dt.datetime,
        at: dt.datetime,
        reason: str | None,
    ) -> Callable[[Tx], Change]:
        def decide(tx: Tx) -> Change:
            return self.engine.enrol(
                tx.snapshot(case_id, lambda _case: _OUTCOME_HISTORY),
                programme,
                actor=acting(tx, who),
                now=now,
                effective_at=at,
                reason=reason,
            )

        return decide

    def enrol(
        self,
        case_id: str,
        programme: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        effective_at: dt.datetime | dt.date | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """Put a case on a programme: `programme` is a funder definition's `id` (its latest
        version) or `id@version`. The case keeps that version until a person moves it (this
        call again: a team leader, `_policy.may_enrol`). Audited as an `enrol` event; the
        milestones the case's evidence already reaches are logged in the same transaction.
        Raises `UnknownProgramme`, `PermissionDenied`, `CaseClosed`, `InvalidInput` (already on
        it)."""
        who = self._actor_id(actor)
        _case_id(case_id)
        check_text(reason, "reason")
        found = self.programme(programme)
        now = self.now()
        at = _at(effective_at, now)
        command = _command(
            command_id,
            "enrol",
            case_id=case_id,
            programme=programme,
            actor=who,
            reason=reason,
            effective_at=effective_at,
        )
        return self._case_done(self._enrolling(case_id, found, who, now, at, reason), command)

    def claim(
        self,
        case_id: str,
        milestone: str,
        reference: str,
        *,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """Mark a milestone of the case's programme claimed from the funder under its
        `reference` (`milestone`: its id, or an instance key such as `job_start:J7` for one
        counted per job). Audited as a `claim` event. Only a milestone the log holds as
        achieved on work evidence (not provisional), not claimed or flagged already, under a
        definition that is not `unverified`, and only by a team leader or admin: else
        `ClaimRefused` naming everything missing, or `PermissionDenied`."""
        who = self._actor_id(actor)
        _case_id(case_id)
        check_text(milestone, "milestone")
        check_text(reference, "reference")
        now = self.now()
        command = _command(
            command_id,
            "claim",
            case_id=case_id,
            milestone=milestone,
            reference=reference,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            snap = tx.snapshot(case_id, lambda _case: _OUTCOME_HISTORY)
            enrolled = enrolment(snap.history)
            if enrolled is None:
                raise ClaimRefused(case_id, milestone, ["a programme: the case is on none"])
            return self.engine.claim(
                snap,
                self.programme(enrolled.ref),
                milestone,
                reference or "",
                actor=acting(tx, who),
                now=now,
            )

        return self._case_done(decide, command)

    def resolve_claim(
        self,
        case_id: str,
        milestone: str,
        *,
        reason: str,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> Done[Case, None]:
        """Resolve a claimed milestone the evidence has changed since (flagged): the log then
        holds it as the evidence now says, or no longer reached, beside its claim (a team
        leader or admin, with a reason; audited). Raises `InvalidInput` if `milestone` names
        no flagged milestone of the case, `PermissionDenied`."""
        who = self._actor_id(actor)
        _case_id(case_id)
        check_text(milestone, "milestone")
        check_text(reason, "reason")
        now = self.now()
        command = _command(
            command_id,
            "resolve_claim",
            case_id=case_id,
            milestone=milestone,
            reason=reason,
            actor=who,
        )

        def decide(tx: Tx) -> Change:
            snap = tx.snapshot(case_id, lambda _case: _OUTCOME_HISTORY)
            enrolled = enrolment(snap.history)
            if enrolled is None:
                raise InvalidInput(f"case {case_id} is on no programme", field="milestone")
            return self.engine.resolve(
                snap,
                self.programme(enrolled.ref),
                milestone,
                reason or "",
                actor=acting(tx, who),
                now=now,
            )

        return self._case_done(decide, command)

    def outcomes_due(
        self,
        *,
        within_days: int = 14,
        coach: str | None = None,
        programme: str | None = None,
        as_of: dt.date | None = None,
        actor: str | None = None,
    ) -> tuple[OutcomeDue, ...]:
        """Across the caseload (one coach's with `coach`; one programme's with `programme`, an
        id): milestones of open cases coming up within `within_days` of `as_of` (default
        today), at their current hours, and claims not yet made whose window closes by then
        (past ones too), soonest first (`_milestones.coming_up`)."""
        self._reader(actor)
        self._known_coach(coach)
        check_days(within_days, "within_days", ahead_only=True)
        if as_of is not None:
            check_date(as_of, "as_of")
        wanted = self.programme(programme).id if programme is not None else None
        today = as_of or self.now().date()
        until = today + dt.timedelta(days=within_days)
        tx = self.store.read()
        found: list[OutcomeDue] = []
        for case in self.store.cases(CaseFilter(coach=coach)):
            if not tx.snapshot(case.id, lambda _c: _ENROLMENT).history:
                continue
            snap = tx.snapshot(case.id, lambda _case: _OUTCOME_HISTORY)
            enrolled = enrolment(snap.history)
            if enrolled is None or (wanted is not None and enrolled.programme != wanted):
                continue
            on = self.programme(enrolled.ref)
            evaluated = (
                evaluate_case(
                    on,
                    self.workflow,
                    snap.case,
                    self.store.records(case.id),
                    _starts(snap.history),
                    today,
                )
                if case.is_open
                else ()
            )
            held = logged(snap.history, on.ref)
            found += coming_up(on, snap.case, evaluated, held, today, until)
        return tuple(sorted(found, key=lambda d: (d.due_on, d.case_id, d.milestone)))

    def milestones(self, case_id: str, *, actor: str | None = None) -> tuple[Logged, ...]:
        """The milestones the case's log holds as reached under its current programme (each
        with its claim and any flag a person must resolve), in the order they were logged."""
        self._reader(actor)
        _case_id(case_id)
        snap = self.store.read().snapshot(case_id, lambda _case: _OUTCOME_HISTORY)
        enrolled = enrolment(snap.history)
        if enrolled is None:
            return ()
        held = logged(snap.history, enrolled.ref)
        return tuple(sorted(held.values(), key=lambda h: h.seq))

    def programmes(self) -> tuple[Programme, ...]:
        """The funder definitions this flow evaluates against (the shipped ones unless
        opened with `programmes=`), loaded once."""
        if self._programmes is None:
            self._programmes = load_programmes(self._programmes_dir)
        return self._programmes

    def programme(self, ref: str) -> Programme:
        """The definition `ref` names: `id` (its latest version) or `id@version`."""
        check_text(ref, "programme")
        pid, _, version = ref.partition("@")
        found = [p for p in self.programmes() if p.id == pid and version in ("", p.version)]
        if not found:
            raise UnknownProgramme(ref, [p.ref for p in self.programmes()])
        return max(found, key=lambda p: _version_key(p.version))

    def outcomes(
        self, case_id: str, *, on: dt.date | None = None, actor: str | None = None
    ) -> Outcomes:
        """The milestones of the case's programme (named by its referral record's `programme`
        field) as its evidence stands on `on` (default: today), with its employment spells.
        See `se_flow._outcomes` for what each test counts."""
        from ._outcomes import Outcomes, evaluate

        self._reader(actor)
        _case_id(case_id)
        if on is not None:
            check_date(on, "on")
        day = on or self.now().date()
        snap = self.store.read().snapshot(case_id, lambda _case: _OUTCOME_HISTORY)
        records = self.store.records(case_id)
        starts = _starts(snap.history)
        enrolled = enrolment(snap.history)
        if enrolled is None:
            return Outcomes(
                case_id=case_id,
                on=day,
                programme=None,
                spells=build_employment(records, starts).spells,
                milestones=(),
                note=f"case {case_id} is on no programme (se-flow enrol {case_id} PROGRAMME)",
            )
        programme = self.programme(enrolled.ref)
        facts = case_facts(self.workflow, snap.case, records, starts)
        held = logged(snap.history, enrolled.ref)
        return Outcomes(
            case_id=case_id,
            on=day,
            programme=programme,
            spells=facts.employment.spells,
            milestones=evaluate(programme, facts, day, prior=self._prior(programme, snap.case)),
            enrolment=enrolled,
            logged=tuple(sorted(held.values(), key=lambda h: h.seq)),
        )

    # --- reads ---------------------------------------------------------------------------

    # Every read names its actor (or uses the default one), who must be active staff: the
    # rules are `_policy.may_read` and `_policy.may_see_personal_data`, asked through the engine.

    def case(self, case_id: str, *, actor: str | None = None) -> Case:
        self._reader(actor)
        _case_id(case_id)
        return self.store.case(case_id)

    def cases(
        self,
        *,
        coach: str | None = None,
        stage: str | None = None,
        status: Status | str | None = None,
        participant_id: str | None = None,
        overdue: bool = False,
        limit: int | None = None,
        stuck_days: int | None = None,
        sort: str | None = None,
        after: str | None = None,
        actor: str | None = None,
    ) -> list[Case]:
        """The caseload, filtered, by case number. `status` is `active`, `paused`, `closed`,
        `open` (active or paused: a coach's caseload) or None / `all`; `overdue` keeps open
        cases whose review date has passed; `limit` keeps the first so many (all in the
        store's query, so a first page costs the same at any caseload size); `after` (the
        last case id of the page before) starts the next page, as deep as it goes. `stage` is
        a state id, a stage's number or its title (any case). `stuck_days` keeps open cases
        in their stage more than that many days; `sort` orders by `days` (longest in stage
        first), `due` (review date, soonest first), `seen` (longest since contact first),
        `coach` or `stage` (then case number; `CASE_SORTS` says each); with `stuck_days` and
        no `sort`, by `days`. Sorts are in the store's query too, so sorted, filtered and paged
        with `after`, a page of any status (or of all) costs the same at any size."""
        check_flags(overdue=overdue)
        self._reader(actor)
        self._known_coach(coach)
        check_text(participant_id, "participant id")
        check_limit(limit, "limit")
        if after is not None:
            # A page after a case that is not there would read as an empty page: say so.
            self.store.case(_case_id(after, "after"))
        if stuck_days is not None:
            check_days(stuck_days, "stuck_days", ahead_only=True)
        if sort is not None and sort not in CASE_SORTS:
            raise InvalidInput(
                f"unknown sort {quoted(sort)}; sort by: {', '.join(CASE_SORTS)}", field="sort"
            )
        stage = self.stage_id(stage)
        open_only = status == "open"
        try:
            wanted = Status(status) if status not in (None, "open", "all") else None
        except ValueError:
            raise InvalidInput(
                f"unknown status {status!r}; statuses: open, active, paused, closed, all"
            ) from None
        today = self.now().date()
        due_by = today - dt.timedelta(days=1) if overdue else None
        if stuck_days is not None and sort is None:
            # Longest first, and a page one index range: by number, a page of the stuck would
            # read every stuck case (or walk every case) to find its first few.
            sort = "days"
        return list(
            self.store.cases(
                CaseFilter(
                    coach=coach,
                    state=stage,
                    status=wanted,
                    open_only=open_only,
                    participant_id=participant_id,
                    due_by=due_by,
                    limit=limit,
                    after=after,
                    sort=sort,
                    entered_before=(
                        today - dt.timedelta(days=stuck_days) if stuck_days is not None else None
                    ),
                )
            )
        )

    def _known_coach(self, coach: str | None) -> None:
        """A coach a list is filtered by: a staff member, or `StaffNotFound` (a typo would
        otherwise read as a caseload with nothing in it)."""
        _target(coach)
        if coach is not None:
            try:
                self.store.read().staff(coach)
            except StaffNotFound:
                raise StaffNotFound(coach, listed=True) from None

    def stage_id(self, stage: str | None) -> str | None:
        """The state `stage` names: its id, its number (`3`) or its title (any case, e.g.
        `job matching`; `Workflow.stage_id`). Raises `InvalidInput` listing the stages."""
        return None if stage is None else self.workflow.stage_id(stage)

    def due(
        self,
        *,
        coach: str | None = None,
        within_days: int = 0,
        as_of: dt.date | None = None,
        limit: int | None = None,
        after: str | None = None,
        actor: str | None = None,
    ) -> list[Case]:
        """Open cases whose review is due on or before `as_of` + `within_days`, soonest (most
        overdue) first; `limit` keeps the first so many, `after` (the last case id of the
        page before) starts the next page."""
        self._reader(actor)
        self._known_coach(coach)
        check_days(within_days, "within_days", ahead_only=True)
        check_limit(limit, "limit")
        if after is not None:
            self.store.case(_case_id(after, "after"))
        if as_of is not None:
            check_date(as_of, "as_of")
        day = (as_of or self.now().date()) + dt.timedelta(days=within_days)
        return list(self.store.cases(CaseFilter(coach=coach, due_by=day, limit=limit, after=after)))

    def team(
        self,
        *,
        within_days: int = 7,
        quiet_days: int = 28,
        stuck_days: int = 90,
        actor: str | None = None,
    ) -> list[TeamLine]:
        """Per coach (every active coach, and anyone else holding open cases), by staff id:
        open cases by stage, what is due within `within_days` and overdue (the due list),
        reviews overdue, cases with no contact for more than `quiet_days` days, and cases in
        one stage more than `stuck_days` days. Cases with no coach are under "-"."""
        self._reader(actor)
        for value, what in ((within_days, "within_days"), (quiet_days, "quiet_days")):
            check_days(value, what, ahead_only=True)
        check_days(stuck_days, "stuck_days", ahead_only=True)
        today = self.now().date()
        with self.store.read_snapshot():
            staff = {s.id: s for s in self.store.list_staff()}
            cases = list(self.store.cases(CaseFilter(open_only=True)))
            due = self.due_items(within_days=within_days, actor=actor).items
        coaches = {s.id for s in staff.values() if s.active and s.role is Role.COACH}
        coaches |= {c.coach or "-" for c in cases}
        lines = []
        for coach in sorted(coaches):
            mine = [c for c in cases if (c.coach or "-") == coach]
            stages: dict[str, int] = {}
            for c in mine:
                stages[c.state] = stages.get(c.state, 0) + 1
            items = [i for i in due if (i.coach or "-") == coach]
            lines.append(
                TeamLine(
                    coach=coach,
                    name=staff[coach].name if coach in staff else "",
                    open=len(mine),
                    by_stage=stages,
                    due=len(items),
                    overdue=sum(1 for i in items if i.overdue or i.due_on < today),
                    reviews_overdue=sum(
                        1 for c in mine if c.review_due is not None and c.review_due < today
                    ),
                    no_contact=sum(
                        1
                        for c in mine
                        if (today - (c.last_contact_at or c.opened_at).date()).days > quiet_days
                    ),
                    stuck=sum(
                        1 for c in mine if (today - c.stage_entered_at.date()).days > stuck_days
                    ),
                )
            )
        return lines

    def due_items(
        self,
        *,
        coach: str | None = None,
        within_days: int = 0,
        overdue: bool = False,
        as_of: dt.date | None = None,
        limit: int | None = None,
        actor: str | None = None,
        outcomes: bool = False,
        after: str | None = None,
    ) -> DueList:
        """Everything due on open cases, in one list sorted by date (most overdue first):
        reviews (as `due` finds them) and every service standard and follow-along occurrence
        the stage data defines, computed from the log and `as_of` (default: today) at call
        time. `within_days` adds what falls due that many days ahead; `overdue` keeps only
        what is past its date. Each item says what satisfies it and the command that does.
        `warnings` names calendar years needed but not listed. `due` stays reviews only.
        `outcomes` adds the milestones and claims `outcomes_due` finds (`what` = milestone or
        claim): off by default, as it evaluates every enrolled case.

        Paged by whole cases, so no case is split over two pages: `limit` keeps everything
        due on the first so many cases (each placed by its most urgent item), `after` (the
        last case of the page before) starts after that case. Raises `CaseNotFound` for an
        `after` that is no case, `NotFound` for one with nothing on the list (any more). A
        page of today's list (or a later day's) reads only its cases' rows of the due table,
        however big the caseload."""
        check_flags(overdue=overdue, outcomes=outcomes)
        from ._due import by_cases, due_list

        self._reader(actor)
        self._known_coach(coach)
        check_days(within_days, "within_days", ahead_only=True)
        check_limit(limit, "limit")
        if after is not None:
            self.store.case(_case_id(after, "after"))
        if as_of is not None:
            check_date(as_of, "as_of")
        now = self.now().date()
        today = as_of or now
        found = due_list(
            self.store,
            self.workflow,
            today=today,
            coach=coach,
            within_days=within_days,
            overdue_only=overdue,
            # Paged here only without outcomes (added to the whole list below).
            limit=None if outcomes else limit,
            live=today >= now,
            after=None if outcomes else after,
        )
        if not outcomes:
            return found
        found = _with_outcomes(
            found,
            self.outcomes_due(within_days=within_days, coach=coach, as_of=today, actor=actor),
            overdue,
            None,
        )
        return by_cases(found, limit, after)

    def standards(
        self, case_id: str, *, as_of: dt.date | None = None, actor: str | None = None
    ) -> Verdicts:
        """Every service standard on one case as of `as_of` (default today): met (on which
        date, in how many days), due, overdue, missed or paused. Reading writes nothing."""
        from ._due import case_standards

        self._reader(actor)
        _case_id(case_id)
        if as_of is not None:
            check_date(as_of, "as_of")
        case = self.store.case(case_id)
        now = self.now().date()
        day = as_of or now
        return case_standards(self.store, self.workflow, case, day, live=day >= now)

    def records(
        self, case_id: str, *, include_superseded: bool = False, actor: str | None = None
    ) -> list[Record]:
        check_flags(include_superseded=include_superseded)
        by = self._reader(actor)
        _case_id(case_id)
        records = self.store.records(case_id)
        if not self._shows_text(by):
            records = [withhold_record(r, self.workflow) for r in records]
        if include_superseded:
            return records
        gone = {r.supersedes for r in records if r.supersedes is not None}
        return [r for r in records if r.seq not in gone]

    def participant(self, participant_id: str, *, actor: str | None = None) -> Participant:
        """The participant, with personal details only for active coaches, team leaders and
        admins (never auditors)."""
        viewer = self._reader(actor)
        _case_id(participant_id, "participant id")
        return self._participant(viewer, participant_id)

    def _participant(self, viewer: Staff, participant_id: str) -> Participant:
        found = self.store.read().participant(participant_id)
        if found is None:
            from .errors import NotFound

            raise NotFound(f"no participant {quoted(participant_id)}")
        if not self.engine.shows_personal_data(viewer):
            return found
        details = self.store.personal_details(participant_id)
        return Participant(id=found.id, created_at=found.created_at, details=details)

    def names(self, participant_ids: Iterable[str], *, actor: str | None = None) -> dict[str, str]:
        """The names of these participants, by id, for those who may see personal data
        (coaches, team leaders, admins); empty for an auditor, who sees pseudonyms only."""
        viewer = self._reader(actor)
        wanted = _ids(participant_ids, "participant_ids")
        if not self.engine.shows_personal_data(viewer):
            return {}
        return self.store.names_of(wanted)

    def case_names(self, case_ids: Iterable[str], *, actor: str | None = None) -> dict[str, str]:
        """The participant's name of each of these cases, by case id, for those who may see
        personal data (`names`); empty for an auditor."""
        viewer = self._reader(actor)
        wanted = list(dict.fromkeys(_ids(case_ids, "case_ids")))
        if not self.engine.shows_personal_data(viewer):
            return {}
        with self.store.read_snapshot():
            of = {cid: self.store.case(_case_id(cid)).participant_id for cid in wanted}
            names = self.store.names_of(list(of.values()))
        return {cid: names[pid] for cid, pid in of.items() if pid in names}

    def find(self, text: str, *, actor: str | None = None) -> list[PersonFound]:
        """Participants whose name or contact holds `text` (any case; spaces ignored in a
        contact), each with every case of theirs, by name. Coaches and team leaders only.

        An audited read: each search is an audit event (`EventKind.SEARCH`: who, when, how
        many matched and their pseudonyms, never the text), committed before the results
        are returned, so a store that cannot log it (opened read-only) refuses the search."""
        viewer = self._reader(actor)
        self.engine.may_find_people(viewer)
        check_text(text, "search text")
        needle = " ".join(text.split()).casefold()
        if not needle:
            raise InvalidInput("search text is empty: give part of a name or contact")
        squashed = _squash(needle)
        hits = [
            (pid, d)
            for pid, d in self.store.people()
            if needle in " ".join(d.name.split()).casefold()
            or (d.contact is not None and squashed in _squash(d.contact))
        ]
        found = self._found(sorted(hits, key=lambda hit: (hit[1].name.casefold(), hit[0])))
        matched = [person.participant_id for person in found]
        now = self.now()
        self.store.write(
            lambda tx: self.engine.record_search(matched, by=acting(tx, viewer.id), now=now)
        )
        return found

    def duplicates(
        self, details: PersonalDetails | str, *, actor: str | None = None
    ) -> list[PersonFound]:
        """Participants with an open case who are likely the person `details` describes: the
        same name (any case and spacing) and date of birth, or the same contact. Empty for
        those who may not see personal data. What `refer` warns of before a second referral.

        An audited read, as `find` is: each check is a `search` audit event (purpose
        `duplicates`: who, when, how many matched and their pseudonyms, never the details
        searched for), its own event rather than part of the referral's, since the check
        shows who matched whether or not the referral then goes ahead; committed before the
        results are returned."""
        viewer = self._reader(actor)
        if isinstance(details, str):
            details = PersonalDetails(name=details)
        if not isinstance(details, PersonalDetails) or not isinstance(details.name, str):
            raise InvalidInput(
                "details must be a name (text) or PersonalDetails with a name, not "
                f"{type(details).__name__}",
                field="details",
            )
        if not self.engine.shows_personal_data(viewer):
            return []
        name = " ".join(details.name.split()).casefold()
        contact = _squash(details.contact) if details.contact else None
        hits = [
            (pid, d)
            for pid, d in self.store.people()
            if (
                details.date_of_birth is not None
                and d.date_of_birth == details.date_of_birth
                and " ".join(d.name.split()).casefold() == name
            )
            or (contact and d.contact is not None and _squash(d.contact) == contact)
        ]
        found = [found for found in self._found(hits) if found.open_cases]
        matched = [person.participant_id for person in found]
        now = self.now()
        self.store.write(
            lambda tx: self.engine.record_search(
                matched, by=acting(tx, viewer.id), now=now, duplicates=True
            )
        )
        return found

    def _found(self, hits: Iterable[tuple[str, PersonalDetails]]) -> list[PersonFound]:
        return [
            PersonFound(
                participant_id=pid,
                details=d,
                cases=tuple(self.store.cases(CaseFilter(participant_id=pid))),
            )
            for pid, d in hits
        ]

    def history(self, case_id: str, *, actor: str | None = None) -> list[Event]:
        by = self._reader(actor)
        _case_id(case_id)
        self.store.case(case_id)
        return self._events_for(by, list(self.store.events(case_id=case_id)))

    def history_page(
        self,
        case_id: str,
        *,
        limit: int | None = PAGE,
        before_seq: int | None = None,
        actor: str | None = None,
    ) -> HistoryPage:
        """A page of the case's timeline: its last `limit` events (None: all) before seq
        `before_seq` (None: the newest), and how many come earlier. Read from the newest
        back: a first page costs the same on a case of 5,000 events as on one of 10."""
        by = self._reader(actor)
        _case_id(case_id)
        check_limit(limit, "limit")
        check_limit(before_seq, "before_seq")
        with self.store.read_snapshot():
            return self._history_page(self.store.case(case_id), limit, before_seq, by)

    def _history_page(
        self, case: Case, limit: int | None, before_seq: int | None, by: Staff
    ) -> HistoryPage:
        # A case's version counts its events (every event of a case moves it on by one, as
        # `verify` replays), so the newest page needs no count.
        size = case.version if limit is None else limit
        events = self.store.case_events(case.id, size, before_seq=before_seq)
        if not events:
            earlier = 0
        elif before_seq is None:
            earlier = case.version - len(events)
        else:
            earlier = self.store.count_case_events(case.id, events[0].seq)
        shown = self._events_for(by, events)
        return HistoryPage(case_id=case.id, events=tuple(shown), earlier=earlier)

    def case_view(
        self,
        case_id: str,
        *,
        limit: int | None = PAGE,
        before_seq: int | None = None,
        include_superseded: bool = False,
        as_of: dt.date | None = None,
        actor: str | None = None,
    ) -> CaseView:
        """Everything `show` presents, read in one snapshot: the case, its participant
        (personal details only for those who may see them, as `participant`), its latest
        `limit` current records (superseded ones too with `include_superseded`), its service
        standards as of `as_of` (default today) and a page of its timeline (`history_page`).
        `limit` None shows every record and event."""
        check_flags(include_superseded=include_superseded)
        viewer = self._reader(actor)
        _case_id(case_id)
        check_limit(limit, "limit")
        check_limit(before_seq, "before_seq")
        if as_of is not None:
            check_date(as_of, "as_of")
        now = self.now().date()
        today = as_of or now
        from ._due import case_standards

        with self.store.read_snapshot():
            case = self.store.case(case_id)
            participant = self._participant(viewer, case.participant_id)
            # One more than shown, to know whether older records were left out.
            wanted = case.version if limit is None else limit + 1
            records = self.store.latest_records(
                case_id, wanted, include_superseded=include_superseded
            )
            more = limit is not None and len(records) > limit
            shown = records[1:] if more else records
            if not self._shows_text(viewer):
                shown = [withhold_record(r, self.workflow) for r in shown]
            standards = case_standards(self.store, self.workflow, case, today, today >= now)
            history = self._history_page(case, limit, before_seq, viewer)
        return CaseView(
            case=case,
            participant=participant,
            records=tuple(shown),
            more_records=more,
            standards=standards,
            history=history,
            today=today,
        )

    def caseload(
        self,
        *,
        coach: str | None = None,
        stage: str | None = None,
        status: Status | str | None = "open",
        overdue: bool = False,
        limit: int | None = None,
        stuck_days: int | None = None,
        sort: str | None = None,
        after: str | None = None,
        names: bool = False,
        actor: str | None = None,
    ) -> Caseload:
        """`cases` (filters, status, limit and the keyset `after` all in the store's query)
        with the day their review dates are read against and, with `names`, the
        participants' names for those who may see them (`names()`)."""
        check_flags(overdue=overdue, names=names)
        found = self.cases(
            coach=coach,
            stage=stage,
            status=status,
            overdue=overdue,
            limit=limit,
            stuck_days=stuck_days,
            sort=sort,
            after=after,
            actor=actor,
        )
        shown = self.names((c.participant_id for c in found), actor=actor) if names else {}
        return Caseload(cases=tuple(found), today=self.now().date(), names=shown)

    def next_steps(self, case_id: str, *, actor: str | None = None) -> NextSteps:
        """The case and every trigger open from its stage now, each with its guards'
        results (`available`)."""
        by = self._reader(actor)
        _case_id(case_id)
        snap = self.store.read().snapshot(case_id, self.engine.needs_open)
        now = self.now()
        ctx = self._ctx_args(snap, by, now, None, None, None, None)
        checks = tuple(self._as_written(c) for c in self.engine.available(snap, ctx))
        return NextSteps(case=snap.case, checks=checks)

    def due_for(
        self,
        *,
        coach: str | None = None,
        everyone: bool = False,
        within_days: int = 0,
        overdue: bool = False,
        limit: int | None = None,
        outcomes: bool = False,
        names: bool = False,
        after: str | None = None,
        actor: str | None = None,
    ) -> DueView:
        """`due_items` for a caseload: `coach`'s, else (unless `everyone`) the actor's own if
        they are a coach, else everyone's. Says whose list it is and today's date. `limit`
        and `after` page it (see `due_items`)."""
        check_flags(everyone=everyone, overdue=overdue, outcomes=outcomes, names=names)
        by = self._reader(actor)
        coach = _whose(by, coach, everyone)
        today = self.now().date()
        found = self.due_items(
            coach=coach,
            within_days=within_days,
            overdue=overdue,
            as_of=today,
            limit=limit,
            actor=by.id,
            outcomes=outcomes,
            after=after,
        )
        shown = self.case_names((i.case_id for i in found.items), actor=by.id) if names else {}
        return DueView(items=found, coach=coach, today=today, names=shown)

    def due_pages(
        self,
        *,
        coach: str | None = None,
        everyone: bool = False,
        within_days: int = 0,
        overdue: bool = False,
        outcomes: bool = False,
        names: bool = False,
        page_size: int | None = None,
        actor: str | None = None,
    ) -> Iterator[DueView]:
        """The whole of a `due_for` list in pages, in its order (joined, their items are its
        items), each read from the due projection's index ranges after the one before
        (`page_size` rows of each, default `PAGE_SIZE`), all in one snapshot of the store:
        what streams a team's list of any size in constant memory. Raises what `due_for`
        raises, at the first page; nothing may be written through this `SEFlow` while the
        pages are read. With `outcomes` (evaluated for every enrolled case at once), or
        on a store whose projection does not answer, the list is one page."""
        check_flags(everyone=everyone, overdue=overdue, outcomes=outcomes, names=names)
        from ._due import due_chunks

        size = PAGE_SIZE if page_size is None else page_size
        check_limit(size, "page_size")
        by = self._reader(actor)
        if outcomes:
            yield self.due_for(
                coach=coach,
                everyone=everyone,
                within_days=within_days,
                overdue=overdue,
                outcomes=True,
                names=names,
                actor=by.id,
            )
            return
        self._known_coach(coach)
        check_days(within_days, "within_days", ahead_only=True)
        coach = _whose(by, coach, everyone)
        today = self.now().date()
        with self.store.read_snapshot():
            for found in due_chunks(
                self.store,
                self.workflow,
                today=today,
                coach=coach,
                within_days=within_days,
                overdue_only=overdue,
                size=size,
            ):
                ids = dict.fromkeys(i.case_id for i in found.items)
                shown = self.case_names(ids, actor=by.id) if names else {}
                yield DueView(items=found, coach=coach, today=today, names=shown)

    def caseload_pages(
        self,
        *,
        coach: str | None = None,
        stage: str | None = None,
        status: Status | str | None = "open",
        overdue: bool = False,
        stuck_days: int | None = None,
        sort: str | None = None,
        names: bool = False,
        page_size: int | None = None,
        actor: str | None = None,
    ) -> Iterator[Caseload]:
        """The whole of a `caseload`, `page_size` cases a page, each page a keyset read
        after the one before, all in one snapshot of the store (a write meanwhile is not
        seen, so no case is skipped or repeated): what streams a caseload of any size in
        constant memory. Raises what `caseload` raises, at the first page; nothing may be
        written through this `SEFlow` while the pages are read. `page_size` defaults to
        `PAGE_SIZE`."""
        check_flags(overdue=overdue, names=names)
        size = PAGE_SIZE if page_size is None else page_size
        check_limit(size, "page_size")
        with self.store.read_snapshot():
            after: str | None = None
            while True:
                page = self.caseload(
                    coach=coach,
                    stage=stage,
                    status=status,
                    overdue=overdue,
                    limit=size,
                    stuck_days=stuck_days,
                    sort=sort,
                    after=after,
                    names=names,
                    actor=actor,
                )
                if page.cases or after is None:
                    yield page
                if len(page.cases) < size:
                    return
                after = page.cases[-1].id

    def events(self, after_seq: int = 0, *, actor: str | None = None) -> list[Event]:
        by = self._reader(actor)
        if type(after_seq) is not int:
            raise InvalidInput(
                f"after_seq must be an event number (a whole number), not {after_seq!r}"[:120],
                field="after_seq",
            )
        return self._events_for(by, list(self.store.events(after_seq=after_seq)))

    def verify(
        self,
        checkpoint: Checkpoint | None = None,
        *,
        key: VerificationKey | str | None = None,
        checkpoints: str | Path | None = None,
        actor: str | None = None,
    ) -> Verification:
        """Walk the whole audit chain and check every table reads trust (cases, records,
        staff) against its replay from the log: ok, or the first thing that does not fit and
        why. Given a `checkpoint` (from `checkpoint()`), also prove the log was only appended
        to since: its event is still there, unchanged, and it came from this very database.
        Given the verification `key` (from `start_sealing`, or its text), also check every
        event's forward-secure seal: an event altered and re-chained, inserted, removed or
        moved is named with its epoch (`bad_epoch`); `seals` says what was proved, or what
        could not be without a key. Given `checkpoints` (an external checkpoint file, see
        `append_checkpoint`), every checkpoint in it must hold, so a database rolled back to an
        older copy fails; with the key, each checkpoint's own seal is checked too. A loaded
        workflow other than the log's is said in `workflow_mismatch`. Raises `InvalidInput` for
        key text that is not a key, `CheckpointFileRefused` for a checkpoint file that is not
        append-only or not ours."""
        if isinstance(key, str):
            key = VerificationKey.parse(key)
        elif key is not None and not isinstance(key, VerificationKey):
            raise InvalidInput(
                f"key must be a verification key (or its text), not {type(key).__name__}",
                field="key",
            )
        self._reader(actor)
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise InvalidInput(
                f"checkpoint must be a Checkpoint (checkpoint(), or Checkpoint.from_json of "
                f"its JSON), not {type(checkpoint).__name__}",
                field="checkpoint",
            )
        kept: list[Checkpoint] = [checkpoint] if checkpoint is not None else []
        if checkpoints is not None:
            _check_path(checkpoints, "checkpoints")
            # `checkpoints`: an external checkpoint file; every line in it must hold, so a
            # database rolled back to a copy older than the latest is caught.
            from ._checkpoint_file import CheckpointFile

            kept += CheckpointFile(checkpoints).read()
        result = verify_log(self.store, self.workflow, kept, key, self.programmes())
        words = _mismatch_words(self.store.head_workflow_hash(), self.workflow.hash)
        if words is not None:
            result = attrs.evolve(result, workflow_mismatch=words)
        return result

    def start_sealing(
        self, *, epoch_seconds: int = DAY, actor: str | None = None
    ) -> VerificationKey:
        """Seal every event from the next on with a forward-secure key (`se_flow._seal`): a
        new seed is made, its first epoch key written to the key file (mode 600, never over
        one), and the verification key returned, to be given to the auditor: se-flow keeps it
        nowhere. Epochs are `epoch_seconds` long (a UTC day by default). Before anyone is on
        the staff list (at set-up) anyone may; after, an active admin. Raises
        `PermissionDenied`, `InvalidInput` (already sealing, a bad epoch, a store that cannot
        seal), `SealKeyUnusable` (the key file exists or cannot be written)."""
        tx = self.store.read()
        by = acting(tx, self._actor_id(actor)) if tx.has_staff() else None
        self.engine.may_start_sealing(by)
        return self.store.start_sealing(self.now(), epoch_seconds)

    # --- exports and checkpoints (issue 4) ---

    def export(
        self,
        out_dir: str | Path,
        *,
        tables: tuple[str, ...] | list[str] | str = (
            "stage_histories",
            "events",
            "texts",
            "clients",
        ),
        fmt: str = "csv",
        since: dt.date | dt.datetime | str | None = None,
        until: dt.date | dt.datetime | str | None = None,
        case_id: str | None = None,
        coach: str | None = None,
        stage: str | None = None,
        status: Status | str | None = None,
        include_personal_data: bool = False,
        actor: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
        programme: str | None = None,
    ) -> Manifest:
        """Export `tables` (stage_histories, events, clients; claims: `export_claims`) as
        `fmt` (csv, jsonl, or json: one bundle file) into the new folder `out_dir`, with a
        `manifest.json` of row counts, the chain head and every file's SHA-256, streamed in
        constant memory. The export is itself an audit event. Pseudonymised:
        `include_personal_data` (admins only) adds name, contact and date of birth to
        clients. Filters and table contents: see `se_flow._export`.

        `force` replaces an earlier export in `out_dir`: only a folder holding exactly one (its
        manifest and the files it lists, unchanged), never the database's folder or one above it.
        `progress(table, rows_done)` is called as rows are written. Raises
        `InvalidExportRequest` (bad format, table, filter or folder), `PermissionDenied`,
        `StoreError` (the disk failed); a failed export leaves nothing behind and logs nothing
        (the files are placed before the audit event is committed, and taken away again if the
        commit fails)."""
        check_flags(include_personal_data=include_personal_data, force=force)
        from ._export import write_export

        _check_path(out_dir, "out_dir")
        check_text(case_id, "case id")
        _target(coach)
        # Claims of every version of the programme: checked to exist, then named by its id.
        pid = self.programme(programme).id if programme is not None else None
        manifest = write_export(
            self.store,
            self.workflow,
            Path(out_dir),
            actor=self._actor_id(actor),
            now=self.now(),
            tables=tables,
            fmt=fmt,
            since=since,
            until=until,
            case_id=case_id,
            coach=coach,
            stage=stage,
            status=status,
            include_personal_data=include_personal_data,
            force=force,
            progress=progress,
            programme=pid,
        )
        settings = self.store.read().settings()
        if settings.checkpoint_on_export and settings.checkpoint_file is not None:
            # The head now includes the export's own event: deleting it is then a rollback.
            self._append_quietly(settings.checkpoint_file)
        return manifest

    def export_claims(
        self,
        out_dir: str | Path,
        *,
        programme: str | None = None,
        since: dt.date | dt.datetime | str | None = None,
        until: dt.date | dt.datetime | str | None = None,
        fmt: str = "csv",
        actor: str | None = None,
        force: bool = False,
    ) -> Manifest:
        """Export the claims made in a period (`since` / `until` bound the claim's date) of
        one programme (or all) as the `claims` table: milestone, dates, band, evidence
        references and verification, with the same manifest, audit event and pseudonymisation
        as every export (`export`), and checked the same way by `verify_export`."""
        check_flags(force=force)
        return self.export(
            out_dir,
            tables=("claims",),
            fmt=fmt,
            since=since,
            until=until,
            programme=programme,
            actor=actor,
            force=force,
        )

    def verify_export(self, path: str | Path, *, actor: str | None = None) -> ExportVerification:
        """`se_flow.verify_export` plus the manifest against this log: same database, chain
        head still there, and the export's own audit event holding the same file hashes and the
        SHA-256 of this very manifest (any field rewritten is caught)."""
        from ._verify_export import verify_against_log

        self._reader(actor)
        return verify_against_log(self.store, _check_path(path, "path"))

    def checkpoint(self, *, actor: str | None = None) -> Checkpoint:
        """The chain head now (with its seal, on a sealing database), for an auditor to keep
        and later pass to `verify`."""
        self._reader(actor)
        return take_checkpoint(self.store, self.now())

    def append_checkpoint(
        self, path: str | Path | None = None, *, actor: str | None = None
    ) -> CheckpointAppended:
        """Append the chain head to the external checkpoint file `path` (default: the one the
        database's settings name), after checking the whole file (`_checkpoint_file`): later
        `verify(checkpoints=path)` catches the database rolled back to any older copy. Raises
        `CheckpointFileRefused` (not append-only, not ours), `InvalidInput` (no file named)."""
        from ._checkpoint_file import CheckpointFile

        self._reader(actor)
        if path is None:
            path = self.store.read().settings().checkpoint_file
            if path is None:
                raise InvalidInput(
                    "no checkpoint file given, and the database's settings name none"
                )
        target = CheckpointFile(_check_path(path, "path"))
        kept = take_checkpoint(self.store, self.now())
        line = target.append(kept)
        return CheckpointAppended(kept, str(target.path), line, target.protection())

    def _auto_checkpoint(
        self,
        before_seq: int,
        seq: int | None = None,
        settings: DatabaseSettings | None = None,
    ) -> None:
        """After a write: append a checkpoint if the log crossed a multiple of the setting's
        N since `before_seq` (to `seq`, the head now). `settings`: as the write read them, if
        it could not change them (else read now). The write is committed whatever happens
        here; a file that is refused is said in `checkpoint_warning` rather than raised."""
        if settings is None:
            settings = self.store.read().settings()
        every = settings.checkpoint_every
        if settings.checkpoint_file is None or not every:
            return
        if seq is None:
            seq, _ = self.store.head()
        if seq // every > before_seq // every:
            self._append_quietly(settings.checkpoint_file)

    def _append_quietly(self, path: str) -> None:
        from ._checkpoint_file import CheckpointFile

        try:
            CheckpointFile(path).append(take_checkpoint(self.store, self.now()))
            self.checkpoint_warning = None
        except InvalidInput as exc:
            self.checkpoint_warning = f"no automatic checkpoint was kept: {exc.message}"

    # --- reports (issue 14) --------------------------------------------------------------

    def report(
        self,
        name: str,
        period: str | None = None,
        *,
        quarter: str | None = None,
        month: str | None = None,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        coach: str | None = None,
        out: str | Path | None = None,
        fmt: str = "json",
        force: bool = False,
        sample: int = 12,
        seed: int | None = None,
        actor: str | None = None,
    ) -> Report:
        """A report (`ips-grow`, `coaches`, `fidelity`, `standards` or `seqf`) for a period:
        `period` (`2026-Q3`, `2026-11`, `2026-07-01..2026-09-30`), or `quarter`, `month`, or
        `since`/`until` (days inclusive; `until` defaults to today); none: the quarter of
        today. Every figure is a `KPI` with its method and the case ids behind it (see
        `se_flow._report`). `coach` keeps one coach (`coaches`). With `out`, the report is
        written there as `fmt` (json, csv or html), never over an existing file unless
        `force`; `seqf` needs `out`, a new folder, and draws `sample` clients with `seed`
        (random when None; the pack records it). Every report is an audit event (kind
        `report`), committed after its file is in place; if the commit fails the file is taken
        away again. Raises `InvalidInput` (a bad period or format, an existing output),
        `StaffNotFound` (no such coach), `PermissionDenied`."""
        check_flags(force=force)
        from . import _report as rp
        from ._report_out import PACK_MANIFEST, check_target, place_file, place_pack
        from ._report_render import FORMATS, clients_csv, render, to_csv, to_html, to_json

        by = self._reader(actor)
        self.engine.may_export(by, False)
        if name not in rp.REPORTS:
            raise InvalidInput(
                f"unknown report {quoted(name)}; reports: {', '.join(rp.REPORTS)}", field="name"
            )
        if fmt not in FORMATS:
            raise InvalidInput(
                f"unknown format {quoted(fmt)}; formats: {', '.join(FORMATS)}", field="format"
            )
        today = self.now().date()
        span = _period(period, quarter, month, since, until, today)
        on = min(span.end, today)
        if coach is not None:
            _target(coach)
            self.store.read().staff(coach)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= 10_000:
            raise InvalidInput(f"--sample {sample!r} must be from 1 to 10000", field="sample")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InvalidInput(f"--seed {seed!r} must be a whole number, 0 or more", field="seed")
        target = Path(out).expanduser().absolute() if out is not None else None
        if name == "seqf" and target is None:
            raise InvalidInput("an SEQF pack needs a folder to write to (OUT_DIR)", field="out")
        if target is not None and name != "seqf" and fmt == "table":
            raise InvalidInput(
                "--format table is for the terminal; a file takes json, csv or html",
                field="format",
            )
        if target is not None:
            check_target(target, force=force, folder=name == "seqf")
        programme = self.programme("ips_grow")
        with self.store.read_snapshot():
            staff_ids = sorted(
                s.id for s in self.store.list_staff() if s.active and s.role is Role.COACH
            )
            views = self._views(programme, on, with_history=name == "standards")
            texts: dict[int, dict[str, str | None]] = {}
            names: dict[str, str] = {}
            if name == "seqf":
                # A job's end reason is a free text: read from the text table (erasure
                # shown), withheld from whoever may not read texts, the participant's name
                # taken out; in the same snapshot as the cases.
                ends = [seq for v in views for seq in v.job_ends.values()]
                texts = self.store.texts_of(ends) if ends else {}
                ended = sorted({v.case.participant_id for v in views if v.job_ends})
                names = self.store.names_of(ended) if ended else {}
        if name == "ips-grow":
            made = rp.ips_grow(views, span, on, programme, self.workflow)
        elif name == "coaches":
            held = {c for v in views for _, c in v.coaches if c}
            who = [coach] if coach else sorted({*staff_ids, *held})
            made = rp.coaches(views, span, on, programme, self.workflow, who)
        elif name == "fidelity":
            made = rp.fidelity(views, span, on, programme, self.workflow)
        elif name == "standards":
            from ._standards import evaluate as standards_evaluate

            verdicts = standards_evaluate(
                [v.history for v in views if v.history is not None],
                self.workflow.standards,
                self.workflow.calendar,
                on,
            )
            made = rp.standards_met(views, verdicts.results, span, on, self.workflow)
        else:
            grow = rp.ips_grow(views, span, on, programme, self.workflow)
            fid = rp.fidelity(views, span, on, programme, self.workflow)
            clients = rp.client_rows(
                views, self.workflow, on, texts=texts, shown=self._shows_text(by), names=names
            )
            drawn = seed if seed is not None else secrets.randbelow(2**32)
            made = rp.Report(
                name="seqf",
                title=f"SEQF evidence pack, {span.label}",
                period=span,
                on=on,
                kpis=grow.kpis + fid.kpis,
                charts=grow.charts,
                notes=(
                    *grow.notes,
                    f"Sample of {sample} drawn with seed {drawn}: "
                    "se_flow._report.sample(client case ids, n, seed) draws it again.",
                ),
                clients=tuple(clients),
                sample=rp.sample([c["case_id"] for c in clients], sample, drawn),
                seed=drawn,
            )
        placed = None
        if target is not None and name == "seqf":
            picked = set(made.sample)
            pack = {
                "clients.csv": clients_csv(made),
                "sample.csv": clients_csv(made, picked),
                "kpis.csv": to_csv(made),
                "report.html": to_html(made),
                PACK_MANIFEST: to_json(made),
            }
            placed = place_pack(target, pack, force=force)
        elif target is not None:
            placed = place_file(target, render(made, fmt), force=force)
        payload: dict[str, Any] = {
            "report": name,
            "period": span.to_json(),
            "on": on.isoformat(),
            "format": fmt,
            "figures": {k.key: [k.numerator, k.denominator] for k in made.kpis},
        }
        if coach:
            payload["coach"] = coach
        if made.seed is not None:
            payload["seed"] = made.seed
            payload["sample"] = list(made.sample)
        if target is not None and placed is not None:
            payload["out"] = str(target)
            payload["files"] = dict(placed.sha256)
        now = self.now()
        try:
            self.store.write(
                lambda tx: self.engine.record_report(payload, by=acting(tx, by.id), now=now)
            )
        except BaseException:
            if placed is not None:
                placed.undo()
            raise
        if placed is not None:
            placed.keep()
        return made

    def kpi(
        self,
        key: str,
        period: str | None = None,
        *,
        quarter: str | None = None,
        month: str | None = None,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        actor: str | None = None,
    ) -> KPI:
        """One figure (`total_job_starts`, or `job_outcomes:sam` for a coach's) of the report
        that holds it, for a period as `report` takes it, with the cases behind it. Raises
        `NotFound` for a figure no report has (or a coach's figure of a coach with no cases)."""
        from ._report import FIGURES, report_for

        check_text(key, "figure")
        name = report_for(key, [s.id for s in self.workflow.standards])
        coach = key.partition(":")[2] or None
        if name is None:
            known = [k for ids in FIGURES.values() for k in ids]
            raise NotFound(
                f"no figure {quoted(key)}; figures: {', '.join(known)} and the standards' ids"
            )
        made = self.report(
            name,
            period,
            quarter=quarter,
            month=month,
            since=since,
            until=until,
            coach=coach if name == "coaches" else None,
            actor=actor,
        )
        found = made.kpi(key)
        if found is None:
            raise NotFound(f"no figure {quoted(key)} in the {name} report for {made.period.label}")
        return found

    def _views(self, programme: Programme, on: dt.date, *, with_history: bool) -> list[ReportCase]:
        """Every case as the reports read it, from the store's few ordered scans
        (`case_readings`), each case's rows decoded once."""
        from ._report import case_view, kinds_read

        kinds = kinds_read(self.workflow, programme)
        if with_history:
            from ._standards import needs

            # The standards read only the record kinds they name (as the due list does).
            kinds |= needs(self.workflow.standards)[0]
        return [
            case_view(reading, self.workflow, programme, on, with_history=with_history)
            for reading in self.store.case_readings(kinds)
        ]


def _case_order(case_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in case_id if ch.isdigit())
    return (int(digits) if digits else 0, case_id)


def _period(
    period: str | None,
    quarter: str | None,
    month: str | None,
    since: str | dt.date | None,
    until: str | dt.date | None,
    today: dt.date,
) -> Period:
    """One period from whichever way it was given (exactly one)."""
    from ._report import month as parse_month
    from ._report import parse_period, period_between
    from ._report import quarter as parse_quarter

    given = [
        n for n, v in (("period", period), ("quarter", quarter), ("month", month)) if v is not None
    ]
    if since is not None or until is not None:
        given.append("since/until")
    if len(given) > 1:
        raise InvalidInput(f"give one period, not {' and '.join(given)}", field="period")
    if period is not None:
        return parse_period(period)
    if quarter is not None:
        return parse_quarter(quarter)
    if month is not None:
        return parse_month(month)
    if since is not None or until is not None:
        if since is None:
            raise InvalidInput("--until needs --since (the period's first day)", field="since")
        return period_between(since, until if until is not None else today)
    return parse_quarter(f"{today.year}-Q{(today.month - 1) // 3 + 1}")
