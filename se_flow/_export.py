"""Exports for auditors, and checkpoints that prove the audit log was only appended to.

An export is a folder: one file per table (`stage_histories`, `events`, `clients`; or one JSON
bundle, `export.json`, holding them all) and `manifest.json` beside them, naming what was asked,
the row counts, the workflow-definition hash, the chain head at export time, the store id and the
SHA-256 of every file. Every export is itself an audit event (kind `export`) carrying the same
file hashes, so a folder whose files *and* manifest were rewritten is still caught against the
log (`SEFlow.verify_export`). Files are written into a hidden folder beside the target and
renamed into place: a failed export leaves nothing behind and logs nothing.

Tables:

- **stage_histories**: one row per *spell*, a stretch of time a case spent in one stage, phase
  and status, computed from the audit events (referral, reopen, transition, phase, pause,
  resume). A phase change ends a spell and starts one in the same stage with the new phase; a
  pause ends the active spell and starts a `paused` spell in the same stage, and resume ends that
  and starts a new `active` one; a closing trigger ends the last spell (the final state has no
  spell); reopening is a new case (episode) whose first spell starts with trigger `reopen`.
  `days` counts calendar days (UTC) from `entered` to `left`, or to the export date for a spell
  still open (`left` empty). `seq_in` / `seq_out` name the events that began and ended it.
- **events**: the audit events, every column exactly as stored, so the chain can be re-verified
  from the file. In CSV an empty cell is NULL (the log never stores empty text).
- **clients** (the SEQF client list): open cases now, with the current job (the last job offer
  before the last job start) for those in in-work support. With `include_personal_data` (admins
  only) it adds name, contact and date of birth; health notes are never exported.

Filters: `case_id`, `coach`, `stage` and `status` pick cases as they are now (as the caseload
view does) and every table keeps only those cases (events of no case, such as staff changes,
then drop out). `since` / `until` bound `effective_at`, both inclusive (a date covers its whole
day): events that happened in the range, spells that overlap it, clients referred in it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
from attrs import field, frozen

from ._audit import FIELDS, GENESIS, row_hash, verify_chain
from ._engine import Change, EventDraft
from ._limits import date_fault
from ._model import Case, Role, Staff, Status, Verification
from ._store import CaseFilter, Store, Tx
from ._workflow import Workflow
from .errors import (
    CaseNotFound,
    ExportMismatch,
    InvalidExportRequest,
    InvalidInput,
    PermissionDenied,
    SEFlowError,
    StaffNotFound,
    StoreError,
)

__all__ = [
    "FORMATS",
    "TABLES",
    "Checkpoint",
    "ExportVerification",
    "Manifest",
    "take_checkpoint",
    "verify_against_log",
    "verify_export",
    "verify_with_checkpoint",
    "write_export",
]

TABLES = ("stage_histories", "events", "clients")
FORMATS = ("csv", "jsonl", "json")
MANIFEST = "manifest.json"
BUNDLE = "export.json"
MARK = "se-flow export"
MANIFEST_VERSION = 1

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
PERSONAL_COLUMNS = ("name", "contact", "date_of_birth")

# Events that move a case between stages, phases or statuses: all a stage history needs.
_SPELL_KINDS = ("referral", "reopen", "transition", "phase", "pause", "resume")
# Event columns that may be NULL; CSV writes NULL as an empty cell.
_NULLABLE = ("case_id", "trigger", "from_state", "to_state", "from_phase", "to_phase", "reason")
_CHUNK = 5000

Progress = Callable[[str, int], object]
"""Called as `progress(table, rows_done)` when a table starts (0) and as rows are written."""


# --- values --------------------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone")
    return value


@frozen
class Checkpoint:
    """The audit log's head as an auditor keeps it: later, `SEFlow.verify(checkpoint)` proves
    the log up to `seq` is unchanged and was only appended to."""

    store_id: str
    seq: int
    hash: str
    taken_at: dt.datetime = field(converter=_aware)

    def to_json(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "seq": self.seq,
            "hash": self.hash,
            "taken_at": self.taken_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> Checkpoint:
        """A checkpoint from its JSON (text or parsed). Raises `InvalidInput` naming the field
        at fault."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidInput(f"checkpoint is not JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise InvalidInput("checkpoint must be a JSON object with store_id, seq, hash")
        store_id, seq, digest, taken = (
            data.get("store_id"),
            data.get("seq"),
            data.get("hash"),
            data.get("taken_at"),
        )
        if not isinstance(store_id, str) or not store_id:
            raise InvalidInput("checkpoint store_id: missing or not text")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise InvalidInput(f"checkpoint seq: expected a whole number ≥ 0, got {seq!r}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInput(f"checkpoint hash: expected 64 hex digits, got {digest!r}")
        if seq == 0 and digest != GENESIS:
            raise InvalidInput("checkpoint hash: an empty log (seq 0) has the genesis hash")
        try:
            at = dt.datetime.fromisoformat(taken) if isinstance(taken, str) else None
            if at is None:
                raise ValueError("missing")
            return cls(store_id=store_id, seq=seq, hash=digest, taken_at=at)
        except ValueError as exc:
            raise InvalidInput(f"checkpoint taken_at: {taken!r} is not a time ({exc})") from None


@frozen
class Manifest:
    """What an export holds and where it came from, as kept in its `manifest.json`.

    `tables` maps each table to its file, row count and columns; `files` maps each file to its
    SHA-256 and size; `chain_head` is the audit log's (seq, hash) the export was read at;
    `audit_event` the (seq, hash) of the export's own audit event."""

    path: Path
    export_id: str
    created_at: dt.datetime
    actor: str
    role: str
    fmt: str
    filters: Mapping[str, str | None]
    include_personal_data: bool
    tables: Mapping[str, Mapping[str, Any]]
    files: Mapping[str, Mapping[str, Any]]
    workflow: Mapping[str, str]
    chain_head: tuple[int, str]
    store_id: str
    se_flow_version: str
    audit_event: tuple[int, str] | None = None

    @property
    def rows(self) -> dict[str, int]:
        return {name: int(t["rows"]) for name, t in self.tables.items()}

    @property
    def unfiltered(self) -> bool:
        return all(v is None for v in self.filters.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MARK,
            "manifest_version": MANIFEST_VERSION,
            "export_id": self.export_id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "role": self.role,
            "request": {
                "tables": list(self.tables),
                "format": self.fmt,
                "filters": dict(self.filters),
                "include_personal_data": self.include_personal_data,
            },
            "tables": {name: dict(t) for name, t in self.tables.items()},
            "files": {name: dict(f) for name, f in self.files.items()},
            "workflow": dict(self.workflow),
            "chain_head": {"seq": self.chain_head[0], "hash": self.chain_head[1]},
            "store_id": self.store_id,
            "se_flow_version": self.se_flow_version,
            "audit_event": (
                {"seq": self.audit_event[0], "hash": self.audit_event[1]}
                if self.audit_event
                else None
            ),
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        """Raises `ValueError` (or `KeyError`, `TypeError`) saying what does not fit."""
        if not isinstance(data, dict) or data.get("format") != MARK:
            raise ValueError(f"not an se-flow export manifest (no format: {MARK!r})")
        request = data["request"]
        tables = data["tables"]
        files = data["files"]
        if not isinstance(tables, dict) or not isinstance(files, dict):
            raise ValueError("tables and files must be objects")
        for name, t in tables.items():
            if name not in TABLES:
                raise ValueError(f"unknown table {name!r}")
            if t["file"] not in files or not isinstance(t["rows"], int):
                raise ValueError(f"table {name}: its file is not listed or rows is not a number")
            if not isinstance(t["columns"], list):
                raise ValueError(f"table {name}: columns must be a list")
        for name, f in files.items():
            if Path(name).name != name or name == MANIFEST:
                raise ValueError(f"file name {name!r} is not a plain file name")
            if not re.fullmatch(r"[0-9a-f]{64}", str(f["sha256"])):
                raise ValueError(f"file {name}: sha256 is not 64 hex digits")
        event = data.get("audit_event")
        return cls(
            path=path,
            export_id=str(data["export_id"]),
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            actor=str(data["actor"]),
            role=str(data["role"]),
            fmt=str(request["format"]),
            filters=dict(request["filters"]),
            include_personal_data=bool(request["include_personal_data"]),
            tables=tables,
            files=files,
            workflow=dict(data["workflow"]),
            chain_head=(int(data["chain_head"]["seq"]), str(data["chain_head"]["hash"])),
            store_id=str(data["store_id"]),
            se_flow_version=str(data["se_flow_version"]),
            audit_event=(int(event["seq"]), str(event["hash"])) if event else None,
        )


@frozen
class ExportVerification:
    """An export checked against its manifest (and, from `SEFlow.verify_export`, against the
    audit log): `ok`, or every problem found, in words."""

    path: Path
    ok: bool
    problems: tuple[str, ...]
    rows: Mapping[str, int] = field(factory=dict)
    """Rows counted in each table's file."""
    manifest: Manifest | None = None

    def __bool__(self) -> bool:
        return self.ok

    def raise_if_failed(self) -> None:
        """Raise `ExportMismatch` (exit 9) naming the problems, if there are any."""
        if not self.ok:
            raise ExportMismatch(
                f"export {self.path} does not match its manifest: " + "; ".join(self.problems)
            )


# --- the request ---------------------------------------------------------------------------


@frozen
class _Selection:
    """The validated filters. `before` is `until` as an exclusive bound."""

    since: dt.datetime | None
    before: dt.datetime | None
    case_id: str | None
    coach: str | None
    stage: str | None
    status: Status | None
    asked: Mapping[str, str | None]

    @property
    def picks_cases(self) -> bool:
        return any(v is not None for v in (self.case_id, self.coach, self.stage, self.status))

    def case_filter(self) -> CaseFilter:
        return CaseFilter(coach=self.coach, state=self.stage, status=self.status)

    def matches(self, case: Case) -> bool:
        return (
            (self.coach is None or case.coach == self.coach)
            and (self.stage is None or case.state == self.stage)
            and (self.status is None or case.status is self.status)
        )

    def in_range(self, at: dt.datetime) -> bool:
        return (self.since is None or at >= self.since) and (
            self.before is None or at < self.before
        )


def _moment(name: str, value: dt.date | dt.datetime | str | None, end: bool) -> dt.datetime | None:
    """`since` / `until` as an instant: a date starts at 00:00 UTC, and as `until` (end=True)
    becomes the start of the next day; a time `until` includes that microsecond."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
            )
        except ValueError:
            raise InvalidExportRequest(
                f"{name} {value!r} is not a date (YYYY-MM-DD) or a time with a zone"
            ) from None
    problem = date_fault(value)
    if problem is not None:
        raise InvalidExportRequest(f"{name} {problem}")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidExportRequest(f"{name} {value.isoformat()} has no time zone")
        at = value.astimezone(dt.UTC)
        return at + dt.timedelta(microseconds=1) if end else at
    day = value + dt.timedelta(days=1) if end else value
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)


def _as_text(value: dt.date | dt.datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _select(
    store: Store,
    workflow: Workflow,
    *,
    since: dt.date | dt.datetime | str | None,
    until: dt.date | dt.datetime | str | None,
    case_id: str | None,
    coach: str | None,
    stage: str | None,
    status: Status | str | None,
) -> _Selection:
    start = _moment("since", since, end=False)
    before = _moment("until", until, end=True)
    if start is not None and before is not None and start >= before:
        raise InvalidExportRequest(f"since ({_as_text(since)}) is after until ({_as_text(until)})")
    if stage is not None and stage not in workflow.states:
        raise InvalidExportRequest(f"unknown stage {stage!r}; stages: {', '.join(workflow.states)}")
    try:
        wanted = Status(status) if status is not None else None
    except ValueError:
        raise InvalidExportRequest(
            f"unknown status {status!r}; statuses: {', '.join(s.value for s in Status)}"
        ) from None
    if coach is not None:
        try:
            store.read().staff(coach)
        except StaffNotFound:
            raise InvalidExportRequest(f"unknown coach {coach!r}: no such staff member") from None
    if case_id is not None:
        try:
            store.case(case_id)
        except CaseNotFound:
            raise InvalidExportRequest(f"unknown case {case_id!r}") from None
    return _Selection(
        since=start,
        before=before,
        case_id=case_id,
        coach=coach,
        stage=stage,
        status=wanted,
        asked={
            "since": _as_text(since),
            "until": _as_text(until),
            "case_id": case_id,
            "coach": coach,
            "stage": stage,
            "status": wanted.value if wanted else None,
        },
    )


def _tables(tables: Iterable[str] | str) -> tuple[str, ...]:
    names = (tables,) if isinstance(tables, str) else tuple(tables)
    for name in names:
        if name not in TABLES:
            raise InvalidExportRequest(
                f"unknown export table {name!r}; tables: {', '.join(TABLES)}"
            )
    if not names:
        raise InvalidExportRequest(f"no tables asked for; tables: {', '.join(TABLES)}")
    return tuple(dict.fromkeys(names))


def _may_export(by: Staff, personal: bool) -> None:
    if not by.active:
        raise PermissionDenied(f"{by.id} is no longer active staff", by.id)
    if personal and by.role is not Role.ADMIN:
        raise PermissionDenied(
            f"only an admin may export personal data; {by.id} is a "
            f"{by.role.value.replace('_', ' ')} (exports are pseudonymised without it)",
            by.id,
        )


def _target(out_dir: Path, force: bool) -> bool:
    """Check the output folder; True when an earlier export there is to be replaced."""
    parent = out_dir.parent
    if not parent.is_dir():
        raise InvalidExportRequest(f"cannot export to {out_dir}: folder {parent} does not exist")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise InvalidExportRequest(f"cannot export to {out_dir}: it exists and is not a folder")
        if next(out_dir.iterdir(), None) is None:
            return False
        if not force:
            raise InvalidExportRequest(
                f"{out_dir} exists and is not empty; choose a new folder or use force to "
                "replace an earlier export"
            )
        if not (out_dir / MANIFEST).is_file():
            # force replaces a whole folder: only ever one we wrote, never a home folder.
            raise InvalidExportRequest(
                f"{out_dir} holds files that are not an se-flow export (no {MANIFEST}); "
                "not replacing it, even with force"
            )
        return True
    return False


# --- tables --------------------------------------------------------------------------------


_I = {name: i for i, name in enumerate(FIELDS)}


def _cases(store: Store, sel: _Selection) -> Iterator[Case]:
    if sel.case_id is not None:
        case = store.case(sel.case_id)
        if sel.matches(case):
            yield case
        return
    yield from store.cases(sel.case_filter())


def _day(text: str) -> dt.date:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).date()


@attrs.define
class _Spell:
    """A spell being built; `left` is None while it is still open."""

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

    def row(self, case: Case, today: dt.date) -> tuple[Any, ...]:
        end = _day(self.left) if self.left else today
        return (
            case.id,
            case.participant_id,
            case.episode,
            self.number,
            self.stage,
            self.phase,
            self.status,
            self.entered,
            self.left,
            (end - _day(self.entered)).days,
            self.trigger_in,
            self.trigger_out,
            self.actor,
            self.seq_in,
            self.seq_out,
        )


def _spells(store: Store, case: Case, final: str) -> Iterator[_Spell]:
    """The case's spells, from its audit events (see the module doc for the rules)."""
    spell: _Spell | None = None
    for row in store.event_table(case_id=case.id, kinds=_SPELL_KINDS):
        kind, trigger, at = row[_I["kind"]], row[_I["trigger"]], row[_I["effective_at"]]
        seq, stage, phase = row[_I["seq"]], row[_I["to_state"]], row[_I["to_phase"]]
        if spell is None or kind == "resume":
            status = "active"
        elif kind == "pause":
            status = "paused"
        elif kind == "transition" and stage != spell.stage:
            status = "active"
        else:
            status = spell.status
        number = 1
        if spell is not None:
            if (stage, phase, status) == (spell.stage, spell.phase, spell.status):
                continue
            spell.left, spell.trigger_out, spell.seq_out = at, trigger, seq
            yield spell
            number = spell.number + 1
            spell = None
        if stage is not None and stage != final:
            spell = _Spell(number, stage, phase, status, at, trigger, row[_I["actor"]], seq)
    if spell is not None:
        yield spell


def _spell_rows(
    store: Store, workflow: Workflow, sel: _Selection, today: dt.date
) -> Iterator[tuple[Any, ...]]:
    for case in _cases(store, sel):
        for spell in _spells(store, case, workflow.final):
            entered = dt.datetime.fromisoformat(spell.entered)
            left = dt.datetime.fromisoformat(spell.left) if spell.left else None
            if sel.before is not None and entered >= sel.before:
                continue
            if sel.since is not None and left is not None and left < sel.since:
                continue
            yield spell.row(case, today)


def _client_rows(
    store: Store, workflow: Workflow, sel: _Selection, today: dt.date, personal: bool
) -> Iterator[tuple[Any, ...]]:
    for case in _cases(store, sel):
        if sel.status is None and not case.is_open:
            continue
        if not sel.in_range(case.opened_at):
            continue
        job: Mapping[str, Any] = {}
        # The job now: the last offer before the last job start (the default workflow's names;
        # a workflow without them simply has no job details).
        if case.state == "in_work_support":
            snap = store.read().snapshot(case.id)
            started = snap.marks.get("start_job")
            offers = [
                r
                for r in snap.records
                if r.kind == "job_offer" and started is not None and r.seq < started
            ]
            if offers:
                job = offers[-1].fields
        row: list[Any] = [
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
            _plain(job.get("start_date")),
            _plain(job.get("hours_per_week")),
            _plain(job.get("hourly_pay")),
        ]
        if personal:
            details = store.personal_details(case.participant_id)
            row += [
                details.name if details else None,
                details.contact if details else None,
                _plain(details.date_of_birth) if details else None,
            ]
        yield tuple(row)


def _plain(value: Any) -> Any:
    """Dates as ISO text, decimals as exact text: the same in CSV and JSON."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@frozen
class _Table:
    name: str
    columns: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]
    as_json: bool = False
    """Rows are 1-tuples of finished JSON object text (events, exactly as stored)."""


def _open_table(
    name: str,
    store: Store,
    workflow: Workflow,
    sel: _Selection,
    today: dt.date,
    personal: bool,
    as_json: bool,
) -> _Table:
    if name == "events":
        rows = store.event_table(
            case_id=sel.case_id,
            cases=sel.case_filter() if sel.picks_cases else None,
            since=sel.since,
            before=sel.before,
            as_json=as_json,
        )
        return _Table(name, FIELDS, rows, as_json=as_json)
    if name == "stage_histories":
        return _Table(name, SPELL_COLUMNS, _spell_rows(store, workflow, sel, today))
    columns = CLIENT_COLUMNS + (PERSONAL_COLUMNS if personal else ())
    return _Table(name, columns, _client_rows(store, workflow, sel, today, personal))


# --- writers -------------------------------------------------------------------------------


def _pump(
    table: _Table, write: Callable[[list[tuple[Any, ...]]], object], progress: Progress | None
) -> int:
    """Feed rows to `write` a chunk at a time (constant memory); report progress per chunk."""
    done = 0
    if progress is not None:
        progress(table.name, 0)
    while chunk := list(itertools.islice(table.rows, _CHUNK)):
        write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(table.name, done)
    return done


def _json_lines(table: _Table, chunk: list[tuple[Any, ...]]) -> list[str]:
    if table.as_json:
        return [text for (text,) in chunk]
    cols = table.columns
    return [json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False) for row in chunk]


def _write_csv(f: TextIO, table: _Table, progress: Progress | None) -> int:
    writer = csv.writer(f)
    writer.writerow(table.columns)
    return _pump(table, writer.writerows, progress)


def _write_jsonl(f: TextIO, table: _Table, progress: Progress | None) -> int:
    def write(chunk: list[tuple[Any, ...]]) -> None:
        f.write("\n".join(_json_lines(table, chunk)))
        f.write("\n")

    return _pump(table, write, progress)


_BUNDLE_HEAD = '{"format": "se-flow export bundle", "tables": {'
_BUNDLE_TABLE = re.compile(r'^"([a-z_]+)": \[$')


def _write_bundle_table(f: TextIO, table: _Table, first: bool, progress: Progress | None) -> int:
    # One row per line, so a verifier can stream it back without loading it whole.
    f.write(("\n" if first else ",\n") + json.dumps(table.name) + ": [")
    sep = "\n"

    def write(chunk: list[tuple[Any, ...]]) -> None:
        nonlocal sep
        f.write(sep + ",\n".join(_json_lines(table, chunk)))
        sep = ",\n"

    done = _pump(table, write, progress)
    f.write("\n]")
    return done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _create(path: Path) -> TextIO:
    return path.open("x", encoding="utf-8", newline="")


def _seal_file(f: TextIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _write_tables(
    folder: Path,
    fmt: str,
    names: Sequence[str],
    opener: Callable[[str], _Table],
    progress: Progress | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    tables: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    if fmt == "json":
        with _create(folder / BUNDLE) as f:
            f.write(_BUNDLE_HEAD)
            for i, name in enumerate(names):
                table = opener(name)
                rows = _write_bundle_table(f, table, i == 0, progress)
                tables[name] = {"file": BUNDLE, "rows": rows, "columns": list(table.columns)}
            f.write("\n}}\n")
            _seal_file(f)
        files[BUNDLE] = _file_entry(folder / BUNDLE)
        return tables, files
    for name in names:
        file_name = f"{name}.{fmt}"
        table = opener(name)
        with _create(folder / file_name) as f:
            write = _write_csv if fmt == "csv" else _write_jsonl
            rows = write(f, table, progress)
            _seal_file(f)
        tables[name] = {"file": file_name, "rows": rows, "columns": list(table.columns)}
        files[file_name] = _file_entry(folder / file_name)
    return tables, files


def _place(tmp: Path, out_dir: Path, replace: bool) -> None:
    """Move the finished export into place in one rename (replacing an earlier one)."""
    if not replace:
        # Also replaces an empty folder of that name, atomically.
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _version() -> str:
    from . import __version__

    return __version__


def write_export(
    store: Store,
    workflow: Workflow,
    out_dir: Path,
    *,
    actor: str,
    now: dt.datetime,
    tables: Iterable[str] | str = TABLES,
    fmt: str = "csv",
    since: dt.date | dt.datetime | str | None = None,
    until: dt.date | dt.datetime | str | None = None,
    case_id: str | None = None,
    coach: str | None = None,
    stage: str | None = None,
    status: Status | str | None = None,
    include_personal_data: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> Manifest:
    """The export behind `SEFlow.export` (see there and the module doc)."""
    if fmt not in FORMATS:
        raise InvalidExportRequest(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    names = _tables(tables)
    _may_export(store.read().staff(actor), include_personal_data)
    sel = _select(
        store,
        workflow,
        since=since,
        until=until,
        case_id=case_id,
        coach=coach,
        stage=stage,
        status=status,
    )
    out_dir = Path(out_dir).expanduser().absolute()
    replace = _target(out_dir, force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as exc:
        raise InvalidExportRequest(
            f"cannot write to folder {out_dir.parent}: {exc.strerror or exc}"
        ) from None
    export_id = secrets.token_hex(8)
    today = now.astimezone(dt.UTC).date()
    try:
        with store.read_snapshot():
            head = store.head()
            store_id = store.store_id()
            table_info, files = _write_tables(
                tmp,
                fmt,
                names,
                lambda name: _open_table(
                    name,
                    store,
                    workflow,
                    sel,
                    today,
                    include_personal_data,
                    as_json=fmt != "csv",
                ),
                progress,
            )
        manifest = Manifest(
            path=out_dir,
            export_id=export_id,
            created_at=now,
            actor=actor,
            role="",
            fmt=fmt,
            filters=sel.asked,
            include_personal_data=include_personal_data,
            tables=table_info,
            files=files,
            workflow={"name": workflow.name, "version": workflow.version, "hash": workflow.hash},
            chain_head=head,
            store_id=store_id,
            se_flow_version=_version(),
        )
        roles: list[str] = []

        def decide(tx: Tx) -> Change:
            by = tx.staff(actor)
            _may_export(by, include_personal_data)
            roles.append(by.role.value)
            payload = {
                "export_id": export_id,
                "folder": str(out_dir),
                "tables": list(names),
                "format": fmt,
                "filters": dict(sel.asked),
                "personal_data": include_personal_data,
                "rows": manifest.rows,
                "files": {name: f["sha256"] for name, f in files.items()},
                "chain_head": {"seq": head[0], "hash": head[1]},
            }
            event = EventDraft(
                case_id=None,
                kind="export",
                actor=actor,
                role=by.role.value,
                effective_at=now,
                recorded_at=now,
                workflow_hash=workflow.hash,
                payload=payload,
            )
            return Change(case=None, expected_version=None, event=event)

        _, event = store.write(decide)
        # The export's audit event is written before the files are placed, so no export
        # ever exists without one; the manifest then names it.
        manifest = attrs.evolve(manifest, role=roles[-1], audit_event=(event.seq, event.hash))
        with _create(tmp / MANIFEST) as f:
            json.dump(manifest.to_json(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            _seal_file(f)
        _place(tmp, out_dir, replace)
    except SEFlowError:
        # (PermissionDenied and StoreError are OSErrors too: they pass through unchanged.)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"export to {out_dir} failed, nothing was written: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# --- verifying an export -------------------------------------------------------------------


class _TableCheck:
    """Counts one table's rows in a file; for events, re-checks each row's hash and, in an
    unfiltered export, the chain from genesis to the manifest's chain head."""

    def __init__(self, file: str, table: str, manifest: Manifest) -> None:
        self.file = file
        self.table = table
        self.manifest = manifest
        self.columns = tuple(manifest.tables[table]["columns"])
        self.events = table == "events"
        self.chain = self.events and manifest.unfiltered
        self.rows = 0
        self.problem: str | None = None
        self.expected_seq, self.prev, self.last_seq = 1, GENESIS, 0

    def header(self, names: Sequence[str]) -> None:
        if tuple(names) != self.columns:
            self.problem = f"{self.file}: its columns are not those the manifest lists"

    def feed(self, row: Sequence[str] | Mapping[str, Any]) -> None:
        self.rows += 1
        if self.problem is not None:
            return
        if isinstance(row, Mapping):
            if tuple(row) != self.columns:
                self.problem = f"{self.file}: {self.table} row {self.rows} has other fields"
                return
            values: Mapping[str, Any] = row
        else:
            if len(row) != len(self.columns):
                self.problem = f"{self.file}: row {self.rows} has {len(row)} cells, not "
                self.problem += f"{len(self.columns)}"
                return
            values = dict(zip(self.columns, row, strict=True))
        if self.events:
            self._event(values, csv_text=not isinstance(row, Mapping))

    def _event(self, values: Mapping[str, Any], csv_text: bool) -> None:
        row = dict(values)
        if csv_text:
            for name in _NULLABLE:
                if row[name] == "":
                    row[name] = None
            try:
                row["seq"] = int(row["seq"])
            except ValueError:
                self.problem = f"{self.file}: event row {self.rows} has no sequence number"
                return
        seq = row["seq"]
        if row_hash(row) != row["hash"]:
            self.problem = (
                f"{self.file}: event {seq} does not match its own hash "
                "(it was altered after the export)"
            )
        elif self.chain and (seq != self.expected_seq or row["prev_hash"] != self.prev):
            self.problem = (
                f"{self.file}: event {seq} does not follow the one before it "
                f"(expected event {self.expected_seq}; events were removed, added or reordered)"
            )
        elif not self.chain and (
            not isinstance(seq, int) or seq <= self.last_seq or seq > self.manifest.chain_head[0]
        ):
            self.problem = f"{self.file}: event {seq} is out of order or past the chain head"
        self.expected_seq, self.prev, self.last_seq = seq + 1, row["hash"], seq

    def finish(self) -> list[str]:
        problems = [self.problem] if self.problem else []
        expected = self.manifest.tables[self.table]["rows"]
        if self.rows != expected:
            problems.append(
                f"{self.file} holds {self.rows} {self.table} rows; the manifest says {expected}"
            )
        if (
            self.chain
            and not problems
            and (self.expected_seq - 1, self.prev) != tuple(self.manifest.chain_head)
        ):
            problems.append(
                f"{self.file}: the events end at event {self.expected_seq - 1}, not at the "
                f"manifest's chain head (event {self.manifest.chain_head[0]})"
            )
        return problems


def _bundle_rows(f: TextIO) -> Iterator[tuple[str, Any]]:
    """(table, row) from a bundle laid out as `_write_bundle_table` writes it."""
    if f.readline().rstrip("\n") != _BUNDLE_HEAD:
        raise ValueError("its first line is not an se-flow bundle's")
    table: str | None = None
    ended = False
    for number, raw in enumerate(f, start=2):
        line = raw.rstrip("\n")
        if ended:
            raise ValueError(f"line {number}: text after the end of the bundle")
        if table is None:
            match = _BUNDLE_TABLE.match(line)
            if match:
                table = match.group(1)
            elif line == "}}":
                ended = True
            else:
                raise ValueError(f"line {number}: expected a table name")
        elif line in ("]", "],"):
            table = None
        else:
            yield table, json.loads(line[:-1] if line.endswith(",") else line)
    if not ended:
        raise ValueError("the bundle is cut short")


def _check_file(root: Path, name: str, manifest: Manifest) -> tuple[dict[str, int], list[str]]:
    checks = {
        table: _TableCheck(name, table, manifest)
        for table, info in manifest.tables.items()
        if info["file"] == name
    }
    if not checks:
        return {}, []
    with (root / name).open(encoding="utf-8", newline="") as f:
        if manifest.fmt == "json":
            for table, row in _bundle_rows(f):
                if table not in checks:
                    raise ValueError(f"it holds a table the manifest does not list: {table}")
                checks[table].feed(row)
        else:
            ((table, check),) = checks.items()
            if manifest.fmt == "csv":
                reader = csv.reader(f)
                check.header(next(reader, []))
                for cells in reader:
                    check.feed(cells)
            else:
                for line in f:
                    check.feed(json.loads(line))
    problems: list[str] = []
    for check in checks.values():
        problems += check.finish()
    return {t: c.rows for t, c in checks.items()}, problems


def verify_export(path: str | Path) -> ExportVerification:
    """Check an export folder against its manifest: every file present and unchanged (SHA-256),
    no file added, each table's row count, and every event row against its own hash (in an
    unfiltered export, the whole chain up to the manifest's chain head). Never raises for a
    mismatch: the result lists every problem (`raise_if_failed` turns it into `ExportMismatch`).
    A rewritten manifest is caught only against the log: `SEFlow.verify_export`."""
    root = Path(path)

    def failed(problem: str) -> ExportVerification:
        return ExportVerification(path=root, ok=False, problems=(problem,))

    if not root.is_dir():
        return failed(f"no export folder at {root}")
    try:
        text = (root / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return failed(f"{MANIFEST} is missing (not an export, or its manifest was removed)")
    except (OSError, UnicodeDecodeError) as exc:
        return failed(f"{MANIFEST} cannot be read: {exc}")
    try:
        manifest = Manifest.from_json(json.loads(text), root)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return failed(f"{MANIFEST} is unreadable: {exc}")
    problems: list[str] = []
    present = {p.name for p in root.iterdir()} - {MANIFEST}
    for name in sorted(present - set(manifest.files)):
        problems.append(f"{name} is not in the manifest (a file was added)")
    rows: dict[str, int] = {}
    for name, entry in manifest.files.items():
        if not (root / name).is_file():
            problems.append(f"{name} is missing (the manifest lists it)")
            continue
        actual = _sha256(root / name)
        if actual != entry["sha256"]:
            problems.append(
                f"{name} has changed since the export (SHA-256 {actual}, "
                f"the manifest says {entry['sha256']})"
            )
        try:
            counted, trouble = _check_file(root, name, manifest)
        except (OSError, ValueError, csv.Error) as exc:
            problems.append(f"{name} cannot be read as {manifest.fmt}: {exc}")
            continue
        rows.update(counted)
        problems += trouble
    return ExportVerification(
        path=root, ok=not problems, problems=tuple(problems), rows=rows, manifest=manifest
    )


def _event_row(store: Store, seq: int) -> Mapping[str, Any] | None:
    rows = iter(store.event_rows(after_seq=seq - 1))
    try:
        row = next(rows, None)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return row if row is not None and row["seq"] == seq else None


def verify_against_log(store: Store, path: str | Path) -> ExportVerification:
    """`verify_export`, then the manifest against the log it claims to come from: the same
    store, its chain head still in the log, and its own audit event recording these very file
    hashes (so files and manifest rewritten together are still caught)."""
    result = verify_export(path)
    manifest = result.manifest
    if manifest is None:
        return result
    problems = list(result.problems)
    own = store.store_id()
    if manifest.store_id != own:
        problems.append(
            f"the export was taken from database {manifest.store_id}, not this one ({own})"
        )
        return attrs.evolve(result, ok=False, problems=tuple(problems))
    seq, digest = manifest.chain_head
    head = _event_row(store, seq) if seq else None
    if seq and head is None:
        problems.append(f"the log no longer holds event {seq}, the export's chain head")
    elif head is not None and head["hash"] != digest:
        problems.append(
            f"event {seq} in the log is not the export's chain head (hashes differ): "
            "the log or the manifest was rewritten"
        )
    event = _event_row(store, manifest.audit_event[0]) if manifest.audit_event else None
    if manifest.audit_event is None or event is None:
        problems.append("the log holds no audit event for this export")
    elif (
        event["kind"] != "export"
        or event["hash"] != manifest.audit_event[1]
        or row_hash(event) != event["hash"]
    ):
        problems.append(f"event {event['seq']} in the log is not this export's audit event")
    else:
        logged = json.loads(event["payload"])
        mine = {
            "export_id": manifest.export_id,
            "files": {name: f["sha256"] for name, f in manifest.files.items()},
            "rows": manifest.rows,
            "tables": list(manifest.tables),
            "format": manifest.fmt,
            "filters": dict(manifest.filters),
            "personal_data": manifest.include_personal_data,
            "chain_head": {"seq": seq, "hash": digest},
        }
        differ = [k for k, v in mine.items() if logged.get(k) != v]
        if differ:
            problems.append(
                f"the manifest's {', '.join(differ)} differ from what the log recorded for this "
                f"export (event {event['seq']}): the export was altered after it was made"
            )
    return attrs.evolve(result, ok=not problems, problems=tuple(problems))


# --- checkpoints ---------------------------------------------------------------------------


def take_checkpoint(store: Store, now: dt.datetime) -> Checkpoint:
    seq, digest = store.head()
    return Checkpoint(store_id=store.store_id(), seq=seq, hash=digest, taken_at=now)


def verify_with_checkpoint(store: Store, checkpoint: Checkpoint) -> Verification:
    """Walk the chain from genesis, then prove the event the checkpoint saw is still there,
    unchanged: a truncated log, or one rewritten and re-chained consistently, fails here. A
    checkpoint from another database fails too: nothing can be proved against it."""
    own = store.store_id()
    if checkpoint.store_id != own:
        seq, digest = store.head()
        return Verification(
            ok=False,
            events=0,
            head_seq=seq,
            head_hash=digest,
            problem=(
                f"the checkpoint is from database {checkpoint.store_id}, this is {own}: "
                "a different (or replaced) database"
            ),
        )
    seen: list[str] = []

    def rows() -> Iterator[Mapping[str, Any]]:
        for row in store.event_rows():
            if row["seq"] == checkpoint.seq:
                seen.append(row["hash"])
            yield row

    result = verify_chain(rows())
    if not result.ok or checkpoint.seq == 0:
        return result
    if result.head_seq < checkpoint.seq:
        return attrs.evolve(
            result,
            ok=False,
            bad_seq=result.head_seq + 1,
            problem=(
                f"the log ends at event {result.head_seq} but the checkpoint saw event "
                f"{checkpoint.seq}: events {result.head_seq + 1} to {checkpoint.seq} were "
                "removed (the log was truncated)"
            ),
        )
    if seen != [checkpoint.hash]:
        return attrs.evolve(
            result,
            ok=False,
            bad_seq=checkpoint.seq,
            problem=(
                f"event {checkpoint.seq} is not the event the checkpoint saw (its hash "
                "differs): the history up to the checkpoint was rewritten"
            ),
        )
    return result
