"""Checking an export folder: against its manifest (`verify_export`), and against the audit log
it claims to come from (`verify_against_log`, behind `SEFlow.verify_export`).

Every file is hashed and every table's rows counted; every event row is checked against its own
hash and, in an unfiltered export, the chain from genesis to the manifest's chain head is walked
with the audit module's `ChainWalk`: the walk `verify` makes of the log, so both name the same
first event that does not fit. Files are streamed: memory stays flat in the size of an export.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
from attrs import field, frozen

from ._audit import ChainWalk, row_hash
from ._export import BUNDLE_HEAD, BUNDLE_TABLE, MANIFEST, Manifest, file_sha256
from ._model import EVENT_FIELDS
from ._texts import digest
from .errors import ExportMismatch
from .ports import Store

__all__ = ["ExportVerification", "verify_against_log", "verify_export"]

# Event columns that may be NULL; CSV writes NULL as an empty cell.
_NULLABLE = tuple(f.name for f in EVENT_FIELDS if f.nullable)
# The largest CSV cell the verifier reads. The csv module's default (131,072 characters) is
# less than an event row's payload holding one long note, so a genuine export failed its own
# check. 64 MiB is far above any text se-flow accepts, even JSON-escaped (at most 6 characters
# for one), yet bounds what a crafted file can make the verifier hold in memory.
_CSV_CELL_MAX = 64 * 1024 * 1024


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


class _TableCheck:
    """Counts one table's rows in a file; for events, re-checks each row's hash and, in an
    unfiltered export, walks the chain from genesis to the manifest's chain head."""

    def __init__(self, file: str, table: str, manifest: Manifest) -> None:
        self.file = file
        self.table = table
        self.manifest = manifest
        self.columns = tuple(manifest.tables[table]["columns"])
        self.events = table == "events"
        self.walk = ChainWalk() if self.events and manifest.unfiltered else None
        self.rows = 0
        self.problem: str | None = None
        self.last_seq = 0

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
                # An export from before an optional field was added has no cell for it.
                if row.get(name, "") == "":
                    row[name] = None
            try:
                row["seq"] = int(row["seq"])
            except ValueError:
                self.problem = f"{self.file}: event row {self.rows} has no sequence number"
                return
        seq = row["seq"]
        if self.walk is not None:
            if self.walk.feed(row) is None:
                return
            if self.walk.altered:
                self.problem = (
                    f"{self.file}: event {seq} does not match its own hash "
                    "(it was altered after the export)"
                )
            else:
                self.problem = (
                    f"{self.file}: event {seq} does not follow the one before it (expected "
                    f"event {self.walk.expected_seq}; events were removed, added or reordered)"
                )
        elif row_hash(row) != row["hash"]:
            self.problem = (
                f"{self.file}: event {seq} does not match its own hash "
                "(it was altered after the export)"
            )
        elif not isinstance(seq, int) or seq <= self.last_seq or seq > self.manifest.chain_head[0]:
            self.problem = f"{self.file}: event {seq} is out of order or past the chain head"
        else:
            self.last_seq = seq

    def finish(self) -> list[str]:
        problems = [self.problem] if self.problem else []
        expected = self.manifest.tables[self.table]["rows"]
        if self.rows != expected:
            problems.append(
                f"{self.file} holds {self.rows} {self.table} rows; the manifest says {expected}"
            )
        if (
            self.walk is not None
            and not problems
            and self.walk.head != tuple(self.manifest.chain_head)
        ):
            problems.append(
                f"{self.file}: the events end at event {self.walk.head[0]}, not at the "
                f"manifest's chain head (event {self.manifest.chain_head[0]})"
            )
        return problems


def _bundle_rows(f: TextIO) -> Iterator[tuple[str, Any]]:
    """(table, row) from a bundle laid out as `_write_bundle_table` writes it."""
    if f.readline().rstrip("\n") != BUNDLE_HEAD:
        raise ValueError("its first line is not an se-flow bundle's")
    table: str | None = None
    ended = False
    for number, raw in enumerate(f, start=2):
        line = raw.rstrip("\n")
        if ended:
            raise ValueError(f"line {number}: text after the end of the bundle")
        if table is None:
            match = BUNDLE_TABLE.match(line)
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


@contextlib.contextmanager
def _csv_cells_up_to(limit: int) -> Iterator[None]:
    """Let the csv module read cells up to `limit` characters, for this check only (the limit
    is process-wide: it is put back after)."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, limit))
    try:
        yield
    finally:
        csv.field_size_limit(before)


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
                with _csv_cells_up_to(_CSV_CELL_MAX):
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


def _table_rows(
    root: Path, manifest: Manifest, table: str
) -> Generator[dict[str, Any], None, None]:
    """One table's rows streamed from its file, as dicts (CSV cells as text)."""
    name = manifest.tables[table]["file"]
    columns = list(manifest.tables[table]["columns"])
    with (root / name).open(encoding="utf-8", newline="") as f:
        if manifest.fmt == "json":
            for found, row in _bundle_rows(f):
                if found == table:
                    yield dict(row)
        elif manifest.fmt == "csv":
            reader = csv.reader(f)
            next(reader, None)
            for cells in reader:
                yield dict(zip(columns, cells, strict=False))
        else:
            for line in f:
                yield json.loads(line)


def _check_texts(root: Path, manifest: Manifest) -> list[str]:
    """Every free text exported in full against the salted hash its event holds, and every
    text of an exported event accounted for (present, withheld or erased): the events and
    texts tables merged in seq order, in constant memory."""
    texts = _table_rows(root, manifest, "texts")
    upcoming = next(texts, None)
    for event in _table_rows(root, manifest, "events"):
        held_text = event.get("texts")
        seq = int(event["seq"])
        if upcoming is not None and int(upcoming["seq"]) < seq:
            return [f"the texts table holds a text for event {upcoming['seq']}, which holds none"]
        found: dict[str, dict[str, Any]] = {}
        while upcoming is not None and int(upcoming["seq"]) == seq:
            found[str(upcoming["slot"])] = upcoming
            upcoming = next(texts, None)
        held: dict[str, str] = json.loads(held_text) if held_text else {}
        if set(found) != set(held):
            return [f"the texts table does not hold exactly the texts of event {seq}"]
        for slot, row in sorted(found.items()):
            if row["state"] not in ("present", "withheld", "erased"):
                return [f"event {seq}'s text {slot}: unknown state {row['state']!r}"]
            if row["state"] != "present":
                continue
            try:
                fits = digest(bytes.fromhex(str(row["salt"])), str(row["text"])) == held[slot]
            except ValueError:
                fits = False
            if not fits:
                return [
                    f"event {seq}'s text {slot} does not match the hash its event holds "
                    "(the text was altered after the export)"
                ]
    if upcoming is not None:
        return [f"the texts table holds a text for event {upcoming['seq']}, not in the export"]
    return []


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
        actual = file_sha256(root / name)
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
    if not problems and "texts" in manifest.tables and "events" in manifest.tables:
        try:
            problems += _check_texts(root, manifest)
        except (OSError, ValueError, KeyError, TypeError, csv.Error) as exc:
            problems.append(f"the texts table cannot be checked: {exc}")
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


def _export_event(store: Store, after_seq: int, export_id: str) -> Mapping[str, Any] | None:
    """The export's audit event found by its id, for a manifest that does not name it (its
    export was cut short between committing the event and naming it)."""
    rows = iter(store.event_rows(after_seq=after_seq))
    try:
        for row in rows:
            if (
                row["kind"] == "export"
                and export_id in (row["payload"] or "")
                and json.loads(row["payload"]).get("export_id") == export_id
            ):
                return row
        return None
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def verify_against_log(store: Store, path: str | Path) -> ExportVerification:
    """`verify_export`, then the manifest against the log it claims to come from: the same
    store, its chain head still in the log, and its own audit event recording these very file
    hashes and the SHA-256 of this very manifest (so files and manifest rewritten together,
    or any one field of the manifest, are still caught)."""
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
    if manifest.audit_event is not None:
        event = _event_row(store, manifest.audit_event[0])
        named = event is not None and event["hash"] == manifest.audit_event[1]
    else:
        event = _export_event(store, seq, manifest.export_id)
        named = event is not None
    logged = json.loads(event["payload"]) if event is not None else {}
    if event is None:
        problems.append("the log holds no audit event for this export")
    elif (
        not named
        or event["kind"] != "export"
        or row_hash(event) != event["hash"]
        or logged.get("export_id") != manifest.export_id
    ):
        problems.append(f"event {event['seq']} in the log is not this export's audit event")
    else:
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
        # Exports before manifest version 2 logged no manifest hash: their other fields are
        # then unchecked. Whether to check is the log's to say, never the manifest's.
        recorded = logged.get("manifest_sha256")
        if recorded is not None and recorded != manifest.sha256:
            problems.append(
                f"{MANIFEST} is not the manifest the log recorded for this export (event "
                f"{event['seq']} holds another SHA-256 of it): a field of it was rewritten "
                "after the export"
            )
    return attrs.evolve(result, ok=not problems, problems=tuple(problems))
