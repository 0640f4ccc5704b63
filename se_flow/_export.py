"""Exports for auditors: the request, the tables read from the store, the three writers (CSV,
JSON Lines, one JSON bundle), the manifest, and putting the folder in place.

An export is a folder: one file per table (`stage_histories`, `events`, `clients`; or one JSON
bundle, `export.json`, holding them all) and `manifest.json` beside them, naming what was asked,
the row counts, the workflow-definition hash, the chain head at export time, the store id and the
SHA-256 of every file. The folder and its files are readable by their owner only (700 / 600,
whatever the umask). Checking an export again is `_verify_export`'s.

Every export is itself an audit event (kind `export`) carrying the same file hashes and the
SHA-256 of the manifest: of its canonical JSON (`_audit.canonical`) without `audit_event`, the
one key that names that event and so cannot be inside its hash. A folder whose files *and*
manifest were rewritten, or any one manifest field changed or added, is still caught against the
log (`SEFlow.verify_export`).

In order: the files and the manifest (`audit_event` null) are written into a hidden work folder
beside the target (`.NAME.tmp-*`) and renamed into place, anything already there (an empty
folder, or an earlier export under `force`) first moved aside (`.NAME.old-*`); only then is the
audit event committed, so the log never names files that are not there. If the commit fails,
the export is taken away and what was there put back: no export stays without its event, and
nothing is logged. After the commit the manifest is rewritten, in one rename, to name the event
(`audit_event`: seq and hash). Should that last step fail, the export is whole and logged and
`verify_export` finds its event by `export_id` instead. A process killed between placing the
files and committing leaves an export that `verify_export` reports as having no audit event.

Work folders are locked (`flock`) while in use; a later export to the same target removes those
a killed one left behind: plain folders of this user, named `.NAME.tmp-XXXXXXXX` or `.old-`,
older than that export, holding only files an export writes, and no longer locked.

`.NAME.kept-XXXXXXXX` is different: an earlier export that `force` replaced but that changed
between being checked and being moved aside (a file added or edited by someone meanwhile). It
is no longer exactly an export, so it may hold work of someone else's: se-flow never deletes it
and no sweep touches it; whoever made the change looks at it and removes it by hand.

Tables (the rows are projections of the log: `_projections`, which states the rules):

- **stage_histories**: one row per *spell* (`_projections.spell_spans`), a stretch of time a
  case spent in one stage, phase and status, worked out from its stage events (referral,
  reopen, transition, phase, pause, resume), read for all the selected cases in one scan. `days`
  runs to the export date for a spell still open (`left` empty). In CSV its lines are built
  here (`_spell_lines`), not by `csv.writer`: the same bytes, for less than half the time.
- **events**: the audit events, every column exactly as stored, so the chain can be re-verified
  from the file. In CSV an empty cell is NULL (the log never stores empty text).
- **clients** (the SEQF client list, `_projections.client_row`): open cases now, with the
  current job (the last job offer before the last job start) for those in in-work support. With
  `include_personal_data` (admins only) it adds name, contact and date of birth; health notes
  are never exported.

CSV and spreadsheets: in `stage_histories.csv` and `clients.csv` a text cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return (names, contacts, actor ids, employers) gets a
leading `'`, so a spreadsheet shows it rather than running it as a formula (OWASP). Numbers are
written as numbers and se-flow makes no negative ones, so a leading `'` always marks escaping.
`events.csv` is left exactly as stored (or it could not be re-verified); the manifest of a CSV
export carries `csv_safety`, saying to import the files as text.

- **claims** (only when asked for: `se-flow claims export`): one row per milestone claimed
  from a funder in the period, with the evidence it rests on (record seqs, kinds of evidence,
  references, who verified them), the date the claim was due by, and whether the evidence has
  changed since (`flagged`); `programme` keeps one programme's claims.

Filters: `case_id`, `coach`, `stage` and `status` pick cases as they are now (as the caseload
view does) and every table keeps only those cases (events of no case, such as staff changes,
then drop out). `since` / `until` bound `effective_at`, both inclusive (a date covers its whole
day): events that happened in the range, spells that overlap it, clients referred in it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
from attrs import field, frozen

from ._audit import FIELDS, canonical
from ._csv_cells import MAYBE_FORMULA, CellTexts, csv_text, defused
from ._engine import Engine
from ._limits import date_fault
from ._milestones import HISTORY_TRIGGERS, logged
from ._model import Case, Status
from ._policy import acting
from ._projections import (
    CLIENT_COLUMNS,
    SPELL_COLUMNS,
    SPELL_KINDS,
    StageEvent,
    client_row,
    plain,
    spell_row,
    spell_spans,
    utc_day,
)
from ._workflow import Workflow
from .errors import (
    InvalidExportRequest,
    InvalidInput,
    SEFlowError,
    StaffNotFound,
    StoreError,
)
from .ports import CaseFilter, Change, Needs, Store, Tx

try:
    import fcntl
except ImportError:  # no fcntl on Windows: no locks, so a sweep may not tell a live export's work
    fcntl = None  # type: ignore[assignment]


__all__ = [
    "ALL_TABLES",
    "CLAIM_COLUMNS",
    "CLIENT_COLUMNS",
    "FORMATS",
    "PERSONAL_COLUMNS",
    "SPELL_COLUMNS",
    "TABLES",
    "TEXT_COLUMNS",
    "Manifest",
    "manifest_digest",
    "write_export",
]

TABLES = ("stage_histories", "events", "texts", "clients")
"""The tables an export holds when none are named."""
ALL_TABLES = (*TABLES, "claims")
"""Every table an export can hold: `claims` only when asked for (`se-flow claims export`)."""
TEXT_COLUMNS = ("seq", "slot", "state", "salt", "text")
CLAIM_COLUMNS = (
    "case_id",
    "participant_id",
    "programme",
    "milestone",
    "instance",
    "achieved_on",
    "band",
    "claimed_on",
    "claimed_by",
    "reference",
    "claim_by",
    "evidence_records",
    "evidence",
    "evidence_references",
    "verified_by",
    "flagged",
    "claim_seq",
)
FORMATS = ("csv", "jsonl", "json")
MANIFEST = "manifest.json"
BUNDLE = "export.json"
MARK = "se-flow export"
MANIFEST_VERSION = 2
# Version 1 had no csv_safety and its audit event no manifest hash; it reads the same.
_READS = (1, 2)

PERSONAL_COLUMNS = ("name", "contact", "date_of_birth")

_CHUNK = 5000
# Distinct cell texts a CSV writer remembers before starting again (`CellTexts`).
_CELLS_KEPT = 20_000
CSV_SAFETY = (
    "Open these files in a spreadsheet by importing them with every column as text. In "
    "stage_histories.csv and clients.csv a text cell that would start with =, +, -, @, a tab or "
    "a carriage return has a ' put before it, so a spreadsheet shows it instead of running it. "
    "events.csv and texts.csv are not escaped: they hold the audit events and free texts exactly "
    "as stored, so their hashes can be re-verified; a cell there may start with = and is never "
    "to be opened by double-clicking."
)
# Exports are readable by their owner only (folder and files), whatever the umask.
_DIR_MODE, _FILE_MODE = 0o700, 0o600

Progress = Callable[[str, int], object]
"""Called as `progress(table, rows_done)` when a table starts (0) and as rows are written."""


# --- values --------------------------------------------------------------------------------


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
    csv_safety: str | None = None
    """For CSV exports: how to open the files safely (`CSV_SAFETY`)."""
    sha256: str | None = field(default=None, eq=False, repr=False)
    """`manifest_digest` of the manifest as read from its file (None for one not read)."""

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
            **({"csv_safety": self.csv_safety} if self.csv_safety is not None else {}),
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
            raise ValueError(f"its format is not {MARK!r}")
        version = data.get("manifest_version")
        if version not in _READS:
            raise ValueError(
                f"manifest_version {version!r} is not one this se-flow reads "
                f"({', '.join(map(str, _READS))})"
            )
        request = data["request"]
        tables = data["tables"]
        files = data["files"]
        if not isinstance(tables, dict) or not isinstance(files, dict):
            raise ValueError("tables and files must be objects")
        for name, t in tables.items():
            if name not in ALL_TABLES:
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
            csv_safety=str(data["csv_safety"]) if data.get("csv_safety") is not None else None,
            sha256=manifest_digest(data),
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
    programme: str | None = None
    """Only claims under this programme (an id: every version of it)."""

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
    programme: str | None = None,
) -> _Selection:
    start = _moment("since", since, end=False)
    before = _moment("until", until, end=True)
    if start is not None and before is not None and start >= before:
        raise InvalidExportRequest(f"since ({_as_text(since)}) is after until ({_as_text(until)})")
    if stage is not None:
        # Its number, title or id, read as the caseload reads it; the manifest says the id.
        try:
            stage = workflow.stage_id(stage)
        except InvalidInput as exc:
            raise InvalidExportRequest(exc.message) from None
    try:
        wanted = Status(status) if status is not None else None
    except ValueError:
        raise InvalidExportRequest(
            f"unknown status {status!r}; statuses: {', '.join(s.value for s in Status)}"
        ) from None
    # Not found, as everywhere else (exit 4): a filter naming no one, or no case.
    if coach is not None:
        try:
            store.read().staff(coach)
        except StaffNotFound:
            raise StaffNotFound(coach, listed=True) from None
    if case_id is not None:
        store.case(case_id)
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
            # Only when asked: manifests of exports without claims keep the filters they had.
            **({"programme": programme} if programme is not None else {}),
        },
        programme=programme,
    )


def _tables(tables: Iterable[str] | str) -> tuple[str, ...]:
    names = (tables,) if isinstance(tables, str) else tuple(tables)
    for name in names:
        if name not in ALL_TABLES:
            raise InvalidExportRequest(
                f"unknown export table {name!r}; tables: {', '.join(ALL_TABLES)}"
            )
    if not names:
        raise InvalidExportRequest(f"no tables asked for; tables: {', '.join(ALL_TABLES)}")
    if "texts" in names and "events" not in names:
        # A text is proved only by the hash its event holds.
        raise InvalidExportRequest("the texts table is exported only with the events table")
    return tuple(dict.fromkeys(names))


def _target(out_dir: Path, force: bool, database: Path | None) -> None:
    """Check the output folder: new, empty, or (with force) exactly an earlier export."""
    parent = out_dir.parent
    if not parent.is_dir():
        raise InvalidExportRequest(f"cannot export to {out_dir}: folder {parent} does not exist")
    if out_dir.is_symlink():
        # The folder is renamed into place: a link would be replaced, not written through.
        raise InvalidExportRequest(
            f"cannot export to {out_dir}: it is a symbolic link (to {os.readlink(out_dir)}); "
            "name the folder itself"
        )
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InvalidExportRequest(f"cannot export to {out_dir}: it exists and is not a folder")
        if next(out_dir.iterdir(), None) is None:
            return
        if not force:
            raise InvalidExportRequest(
                f"{out_dir} exists and is not empty; choose a new folder, or replace an "
                "earlier export there with force (se-flow export --force)"
            )
        # force deletes a whole folder: only ever one that is exactly an earlier export.
        if database is not None:
            home = database.resolve().parent
            here = out_dir.resolve()
            if here == home or here in home.parents:
                raise InvalidExportRequest(
                    f"{out_dir} holds the database {database} (or a folder above it); "
                    "not replacing it, even with force"
                )
        why = _not_an_earlier_export(out_dir)
        if why is not None:
            raise InvalidExportRequest(
                f"{out_dir} is not an se-flow export ({why}); not replacing it, even with force"
            )


def _not_an_earlier_export(folder: Path) -> str | None:
    """Why `folder` is not exactly an earlier export (None when it is): its manifest must parse,
    and every other entry must be a plain file the manifest lists, with the listed SHA-256."""
    try:
        manifest = Manifest.from_json(json.loads((folder / MANIFEST).read_bytes()), folder)
    except FileNotFoundError:
        return f"no {MANIFEST}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{MANIFEST}: {exc}"
    present = set()
    for entry in folder.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.is_symlink() or not entry.is_file():
            return f"{entry.name} is not a plain file"
        if entry.name not in manifest.files:
            return f"{entry.name} is not listed in its {MANIFEST}"
        present.add(entry.name)
    for name, listed in manifest.files.items():
        if name not in present:
            return f"{name}, listed in its {MANIFEST}, is missing"
        if file_sha256(folder / name) != listed["sha256"]:
            return f"{name} does not match the SHA-256 its {MANIFEST} lists"
    return None


def _database(store: Store) -> Path | None:
    """The database file, when the store has one on disk."""
    path = getattr(store, "path", None)
    if not isinstance(path, str | Path) or str(path) in ("", ":memory:"):
        return None
    return Path(path).expanduser().absolute()


# --- tables --------------------------------------------------------------------------------


# The case, then what a spell reads of its stage events: 8 of the 19 columns.
_SPELL_COLUMNS = ("case_id", *StageEvent._fields)


def _cases(store: Store, sel: _Selection) -> Iterator[Case]:
    if sel.case_id is not None:
        case = store.case(sel.case_id)
        if sel.matches(case):
            yield case
        return
    yield from store.cases(sel.case_filter())


_Span = tuple[Sequence[Any], Sequence[Any] | None, int, str]


def _spell_spans(store: Store, workflow: Workflow, sel: _Selection) -> Iterator[_Span]:
    """`spell_spans` of the selected cases, those outside `since` / `until` left out."""
    if sel.case_id is not None:
        store.case(sel.case_id)  # raises CaseNotFound, as any read of one case
    # One scan, whatever the number of cases: the selected cases' stage events in case then
    # seq order, each with its case's participant and episode (what the rows write of it).
    events = store.event_table(
        case_id=sel.case_id,
        cases=sel.case_filter() if sel.picks_cases else None,
        kinds=SPELL_KINDS,
        by_case=True,
        columns=_SPELL_COLUMNS,
        case_columns=("participant_id", "episode"),
    )
    spans = spell_spans(events, workflow.final)
    if sel.since is None and sel.before is None:
        return spans
    return _overlapping(spans, sel.since, sel.before)


def _overlapping(
    spans: Iterator[_Span], since: dt.datetime | None, before: dt.datetime | None
) -> Iterator[_Span]:
    at = dt.datetime.fromisoformat
    for span in spans:
        if before is not None and at(span[0][-2]) >= before:
            continue
        ended = span[1]
        if since is not None and ended is not None and at(ended[-2]) < since:
            continue
        yield span


def _spell_rows(
    store: Store, workflow: Workflow, sel: _Selection, today: dt.date
) -> Iterator[tuple[Any, ...]]:
    for began, ended, number, status in _spell_spans(store, workflow, sel):
        yield spell_row(began, ended, number, status, today)


class _Stamps(dict[str, tuple[str, int]]):
    """Each stored time looked up as its CSV text and its UTC day number (`toordinal`), worked
    out once: a spell's end is the next one's start."""

    __slots__ = ()

    def __missing__(self, at: str) -> tuple[str, int]:
        found = self[at] = (csv_text(at), utc_day(at).toordinal())
        return found


def _spell_lines(
    store: Store, workflow: Workflow, sel: _Selection, today: dt.date
) -> Iterator[str]:
    """The stage_histories rows as the CSV writer would write them, defused (one line each):
    built here, not by `csv.writer`, from each value's CSV text (`CellTexts`), ids, stages
    and triggers repeating on every row. The same bytes as `_spell_rows` through the writer
    (tests/test_export_spells.py); it is most of what the export of this table costs."""
    cells = CellTexts()
    stamps = _Stamps()
    today_n = today.toordinal()
    case: Any = None
    head = ""
    for began, ended, number, status in _spell_spans(store, workflow, sel):
        if began[2] != case:
            case = began[2]
            # Constant memory: an export may hold every case. (Case and participant ids are
            # each written on one case's rows only: not worth remembering.)
            cells.trim(_CELLS_KEPT)
            if len(stamps) > _CELLS_KEPT:
                stamps.clear()
            head = f"{csv_text(case)},{csv_text(began[0])},{began[1]},"
        entered, start = stamps[began[8]]
        if ended is None:
            yield (
                f"{head}{number},{cells[began[6]]},{cells[began[7]]},{status},{entered},,"
                f"{today_n - start},{cells[began[5]]},,{cells[began[9]]},{began[3]},\r\n"
            )
            continue
        left, end = stamps[ended[8]]
        yield (
            f"{head}{number},{cells[began[6]]},{cells[began[7]]},{status},{entered},{left},"
            f"{end - start},{cells[began[5]]},{cells[ended[5]]},{cells[began[9]]},{began[3]},"
            f"{ended[3]}\r\n"
        )


def _client_rows(
    store: Store, workflow: Workflow, sel: _Selection, today: dt.date, personal: bool
) -> Iterator[tuple[Any, ...]]:
    for case in _cases(store, sel):
        if sel.status is None and not case.is_open:
            continue
        if not sel.in_range(case.opened_at):
            continue
        job: Mapping[str, Any] = {}
        # The job now, as `[workflow.names.job]` finds it; a workflow without one has no job
        # details.
        rule = workflow.names.job
        if rule is not None and case.state == rule.stage:
            needs = Needs(
                kinds=frozenset({rule.record}),
                triggers=frozenset({rule.started_by}),
                superseded=True,
            )
            snap = store.read().snapshot(case.id, needs)
            job = rule.current(snap.records, snap.marks)
        row = client_row(case, job, today)
        if personal:
            details = store.personal_details(case.participant_id)
            row += [
                details.name if details else None,
                details.contact if details else None,
                plain(details.date_of_birth) if details else None,
            ]
        yield tuple(row)


_SEQ = FIELDS.index("seq")
_TEXTS = FIELDS.index("texts")


def _text_rows(store: Store, sel: _Selection, shown: bool) -> Iterator[tuple[Any, ...]]:
    """One row per free text of the exported events, in (seq, slot) order: `present` (with
    its salt, so the hash its event holds can be checked), `withheld` (the exporter may not
    see texts) or `erased`. Two streams merged, in constant memory."""
    events = store.event_table(
        case_id=sel.case_id,
        cases=sel.case_filter() if sel.picks_cases else None,
        since=sel.since,
        before=sel.before,
    )
    kept = store.text_rows()
    upcoming = next(kept, None)
    for row in events:
        held = row[_TEXTS]
        if not held:
            continue
        seq = row[_SEQ]
        while upcoming is not None and upcoming.seq < seq:
            upcoming = next(kept, None)
        found = {}
        while upcoming is not None and upcoming.seq == seq:
            found[upcoming.slot] = upcoming
            upcoming = next(kept, None)
        for slot in sorted(json.loads(held)):
            text = found.get(slot)
            if text is None or text.text is None:
                yield (seq, slot, "erased", None, None)
            elif not shown:
                yield (seq, slot, "withheld", None, None)
            else:
                yield (seq, slot, "present", text.salt, text.text)


def _claim_rows(store: Store, sel: _Selection) -> Iterator[tuple[Any, ...]]:
    """One row per claim made in the period (`since` / `until` bound the claim's date), with
    the evidence it rests on: the records' seqs, their kinds of evidence, references and who
    verified them; `flagged` when the evidence has changed since (for a person to resolve).
    Pseudonymised like every export: the participant by their id, staff by theirs."""
    events = store.event_table(
        case_id=sel.case_id,
        cases=sel.case_filter() if sel.picks_cases else None,
        since=sel.since,
        before=sel.before,
        kinds=("claim",),
    )
    cols = {name: i for i, name in enumerate(FIELDS)}
    cases: dict[str, Case] = {}
    for row in events:
        payload = json.loads(row[cols["payload"]])
        ref = str(payload.get("programme") or "")
        if sel.programme is not None and ref.partition("@")[0] != sel.programme:
            continue
        case_id = str(row[cols["case_id"]])
        case = cases.get(case_id) or store.case(case_id)
        cases[case_id] = case
        if sel.picks_cases and not sel.matches(case):
            continue
        snap = store.read().snapshot(
            case_id, lambda _case: Needs(kinds=frozenset(), history=HISTORY_TRIGGERS)
        )
        held = logged(snap.history, ref).get(str(payload["key"]))
        seqs = [int(s) for s in payload.get("evidence") or ()]
        by_seq = {r.seq: r for r in store.records(case_id) if r.seq in seqs}
        work = [by_seq[s] for s in seqs if s in by_seq]
        yield (
            case_id,
            case.participant_id,
            ref,
            payload.get("milestone"),
            payload.get("key"),
            payload.get("achieved_on"),
            payload.get("band"),
            str(row[cols["effective_at"]])[:10],
            row[cols["actor"]],
            payload.get("reference"),
            payload.get("claim_by"),
            ";".join(map(str, seqs)),
            ";".join(str(r.get("evidence") or r.kind) for r in work),
            ";".join(str(r.get("reference")) for r in work if r.get("reference")),
            ";".join(str(r.get("verified_by")) for r in work if r.get("verified_by")),
            "yes" if held is not None and held.flag is not None else "no",
            row[cols["seq"]],
        )


@frozen
class _Table:
    name: str
    columns: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]
    as_json: bool = False
    """Rows are 1-tuples of finished JSON object text (events, exactly as stored)."""
    lines: Iterator[str] | None = None
    """For a CSV file: its rows as finished lines (`rows` is then empty)."""


def _open_table(
    name: str,
    store: Store,
    workflow: Workflow,
    sel: _Selection,
    today: dt.date,
    personal: bool,
    as_json: bool,
    texts_shown: bool = False,
) -> _Table:
    if name == "texts":
        return _Table(name, TEXT_COLUMNS, _text_rows(store, sel, texts_shown))
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
        if not as_json:
            lines = _spell_lines(store, workflow, sel, today)
            return _Table(name, SPELL_COLUMNS, iter(()), lines=lines)
        return _Table(name, SPELL_COLUMNS, _spell_rows(store, workflow, sel, today))
    if name == "claims":
        return _Table(name, CLAIM_COLUMNS, _claim_rows(store, sel))
    columns = CLIENT_COLUMNS + (PERSONAL_COLUMNS if personal else ())
    return _Table(name, columns, _client_rows(store, workflow, sel, today, personal))


# --- writers -------------------------------------------------------------------------------


def _pump(
    table: _Table,
    write: Callable[[list[Any]], object],
    progress: Progress | None,
    rows: Iterator[Any] | None = None,
) -> int:
    """Feed rows (the table's, or `rows`) to `write` a chunk at a time (constant memory);
    report progress per chunk."""
    done = 0
    if rows is None:
        rows = table.rows
    if progress is not None:
        progress(table.name, 0)
    while chunk := list(itertools.islice(rows, _CHUNK)):
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
    if table.name in ("events", "texts"):
        # Exactly as stored, or the chain could not be re-verified from the file: the manifest's
        # csv_safety note says how to open it safely instead.
        return _pump(table, writer.writerows, progress)
    if table.lines is not None:
        return _pump(table, lambda chunk: f.write("".join(chunk)), progress, table.lines)

    text = io.StringIO()
    plain = csv.writer(text)

    def write(chunk: list[tuple[Any, ...]]) -> None:
        # A chunk is written as CSV text first and searched once for a cell that could start
        # with a formula character (at a line start or after a comma, quoted or not; false
        # alarms are possible, misses are not). Only a chunk with one is defused row by row:
        # a cell at a time in Python cost more than the rest of the export together.
        text.seek(0)
        text.truncate()
        plain.writerows(chunk)
        out = text.getvalue()
        if MAYBE_FORMULA.search("\n" + out) is None:
            f.write(out)
        else:
            writer.writerows(map(defused, chunk))

    return _pump(table, write, progress)


def _write_jsonl(f: TextIO, table: _Table, progress: Progress | None) -> int:
    def write(chunk: list[tuple[Any, ...]]) -> None:
        f.write("\n".join(_json_lines(table, chunk)))
        f.write("\n")

    return _pump(table, write, progress)


BUNDLE_HEAD = '{"format": "se-flow export bundle", "tables": {'
BUNDLE_TABLE = re.compile(r'^"([a-z_]+)": \[$')


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def _create(path: Path) -> TextIO:
    # Owner-only whatever the umask: an export may hold personal data. chmod as well, because
    # a umask can only take bits away, and an odd one could take the owner's own.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        os.chmod(path, _FILE_MODE)
        return open(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


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
            f.write(BUNDLE_HEAD)
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


# --- placing an export ----------------------------------------------------------------------


def _lock(folder: Path) -> int | None:
    """Hold an advisory lock on `folder` while this export works in it, so another export's
    sweep leaves it alone. The kernel drops it when the process dies, however it dies: that
    is what tells a killed export's leftovers from a live one's work."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _work_name(out_dir: Path, kind: str) -> Path:
    """A new hidden work folder name beside the target, `.NAME.tmp-XXXXXXXX` or `.old-`: a
    rename, unlike a new folder, needs no free space, so a full disk can still undo."""
    return out_dir.parent / f".{out_dir.name}.{kind}-{secrets.token_hex(4)}"


_WORK_SUFFIX = re.compile(r"[a-z0-9_]{8}")
_OWN_FILES = frozenset({f"{t}.{f}" for t in TABLES for f in ("csv", "jsonl")} | {BUNDLE, MANIFEST})


def _ours_and_stale(entry: Path, started: int) -> bool:
    """A work folder se-flow left behind: a plain folder of this user's, not changed since
    this export began, holding nothing but files an export writes."""
    st = entry.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_mtime_ns > started:
        return False
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False
    return all(
        child.name in _OWN_FILES and not child.is_symlink() and child.is_file()
        for child in entry.iterdir()
    )


def _sweep(out_dir: Path, started: int) -> None:
    """Remove what a killed export to `out_dir` left beside it (`.NAME.tmp-*`, `.NAME.old-*`),
    skipping any a live export still holds locked. Best effort: never why an export fails."""
    prefixes = (f".{out_dir.name}.tmp-", f".{out_dir.name}.old-")
    try:
        entries = [e for e in out_dir.parent.iterdir() if e.name.startswith(prefixes)]
    except OSError:
        return
    for entry in entries:
        if not _WORK_SUFFIX.fullmatch(entry.name[len(prefixes[0]) :]):
            continue
        try:
            if not _ours_and_stale(entry, started):
                continue
            fd = _lock(entry)
        except OSError:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            _unlock(fd)


@attrs.define
class _Placed:
    """A finished export moved into place, and what was there before (an empty folder or an
    earlier export), kept aside until the export's audit event is committed."""

    out_dir: Path
    aside: Path | None
    aside_lock: int | None

    def keep(self) -> None:
        """The export is logged: drop what was there, unless it changed since it was checked
        (a file added or edited meanwhile), which is kept as `.NAME.kept-*`, never deleted."""
        try:
            if self.aside is None:
                return
            if next(self.aside.iterdir(), None) is None or not _not_an_earlier_export(self.aside):
                shutil.rmtree(self.aside, ignore_errors=True)
            else:
                os.rename(self.aside, _work_name(self.out_dir, "kept"))
        except OSError:
            pass  # the export is in place and logged; a sweep removes an .old-* left here
        finally:
            _unlock(self.aside_lock)

    def undo(self) -> None:
        """Take the export away again and put back what was there."""
        gone = _work_name(self.out_dir, "tmp")
        try:
            os.rename(self.out_dir, gone)
            if self.aside is not None:
                os.rename(self.aside, self.out_dir)
        finally:
            _unlock(self.aside_lock)
        shutil.rmtree(gone, ignore_errors=True)


def _place(tmp: Path, out_dir: Path) -> _Placed:
    """Move the finished export into place, moving aside what is there first."""
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return _Placed(out_dir, None, None)
    lock = _lock(out_dir)
    aside = _work_name(out_dir, "old")
    try:
        os.rename(out_dir, aside)
    except BaseException:
        _unlock(lock)
        raise
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(aside, out_dir)
        _unlock(lock)
        raise
    return _Placed(out_dir, aside, lock)


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    with _create(folder / MANIFEST) as f:
        json.dump(manifest.to_json(), f, indent=2, ensure_ascii=False)
        f.write("\n")
        _seal_file(f)


def _name_the_event(out_dir: Path, manifest: Manifest) -> None:
    """Rewrite the placed export's manifest to name its committed audit event, in one rename
    (the new manifest is written in a work folder beside it, which a sweep removes if this is
    cut short)."""
    work = _work_name(out_dir, "tmp")
    os.mkdir(work, _DIR_MODE)
    try:
        _write_manifest(work, manifest)
        os.replace(work / MANIFEST, out_dir / MANIFEST)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def manifest_digest(data: Mapping[str, Any]) -> str:
    """The SHA-256 an export's audit event records of its manifest: over the canonical JSON of
    every field but `audit_event` (which names that event, so cannot be inside its hash)."""
    body = {k: v for k, v in data.items() if k != "audit_event"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


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
    programme: str | None = None,
) -> Manifest:
    """The export behind `SEFlow.export` (see there and the module doc)."""
    if fmt not in FORMATS:
        raise InvalidExportRequest(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    names = _tables(tables)
    started = time.time_ns()
    engine = Engine(workflow)
    tx = store.read()
    by = acting(tx, actor)
    engine.may_export(by, include_personal_data)
    texts_shown = engine.shows_text(by, tx.text_granted(by.id))
    sel = _select(
        store,
        workflow,
        since=since,
        until=until,
        case_id=case_id,
        coach=coach,
        stage=stage,
        status=status,
        programme=programme,
    )
    out_dir = Path(out_dir).expanduser().absolute()
    _target(out_dir, force, _database(store))
    _sweep(out_dir, started)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as exc:
        raise InvalidExportRequest(
            f"cannot write to folder {out_dir.parent}: {exc.strerror or exc}"
        ) from None
    export_id = secrets.token_hex(8)
    today = now.astimezone(dt.UTC).date()
    lock: int | None = None
    placed: _Placed | None = None
    try:
        lock = _lock(tmp)
        tmp.chmod(_DIR_MODE)
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
                    texts_shown=texts_shown,
                ),
                progress,
            )
        manifest = Manifest(
            path=out_dir,
            export_id=export_id,
            created_at=now,
            actor=actor,
            role=by.role.value,
            fmt=fmt,
            filters=sel.asked,
            include_personal_data=include_personal_data,
            tables=table_info,
            files=files,
            workflow={"name": workflow.name, "version": workflow.version, "hash": workflow.hash},
            chain_head=head,
            store_id=store_id,
            se_flow_version=_version(),
            csv_safety=CSV_SAFETY if fmt == "csv" else None,
        )
        _write_manifest(tmp, manifest)

        def decide(tx: Tx) -> Change:
            payload = {
                "export_id": export_id,
                "folder": str(out_dir),
                "tables": list(names),
                "format": fmt,
                "filters": dict(sel.asked),
                "rows": manifest.rows,
                "files": {name: f["sha256"] for name, f in files.items()},
                "chain_head": {"seq": head[0], "hash": head[1]},
                "manifest_sha256": manifest_digest(manifest.to_json()),
            }
            if "texts" in names:
                payload["texts"] = "included" if texts_shown else "withheld"
            return engine.record_export(
                payload,
                by=acting(tx, actor),
                started_as=by.role,
                personal_data=include_personal_data,
                now=now,
            )

        # The files go into place first and the audit event is committed after, so the log
        # never names an export that is not there; if the commit fails, the export is taken
        # away again (an earlier one put back), so none is left without its event.
        placed = _place(tmp, out_dir)
        _unlock(lock)
        lock = None
        _, event = store.write(decide)
    except BaseException as exc:
        _unlock(lock)
        if placed is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                placed.undo()
            except OSError as undo:
                raise StoreError(
                    f"export to {out_dir} failed ({exc}) and could not be taken away again "
                    f"({undo}): it is not in the audit log, so delete it"
                ) from exc
        # (PermissionDenied and StoreError are OSErrors too: they pass through unchanged.)
        if isinstance(exc, OSError) and not isinstance(exc, SEFlowError):
            raise StoreError(f"export to {out_dir} failed, nothing was written: {exc}") from exc
        raise
    placed.keep()
    manifest = attrs.evolve(manifest, audit_event=(event.seq, event.hash))
    try:
        _name_the_event(out_dir, manifest)
    except OSError as exc:
        raise StoreError(
            f"export to {out_dir} was written and logged as audit event {event.seq}, but its "
            f"manifest could not be updated to name that event ({exc}); the export is whole "
            "and still verifies against the log"
        ) from exc
    return manifest
