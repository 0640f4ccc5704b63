"""The words and JSON of the `se-flow` command, without rich (so `--json` and plain-text
commands do not pay for importing it).

Every function takes values the API returned; nothing here reads or writes a database.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import Case, Check, Event, Status, Verification, Workflow

if TYPE_CHECKING:
    from ._audit import Checkpoint
    from ._export import Manifest
    from ._seal import VerificationKey
    from ._verify_export import ExportVerification
    from ._workflow import FieldSpec, RecordKind

__all__ = [
    "ASKED_WHEN_RUN",
    "FAIL",
    "PASS",
    "case_json",
    "check_json",
    "checkpoint_kept",
    "checkpoint_words",
    "days_in_stage",
    "describe",
    "dumps",
    "everywhere",
    "export_check_json",
    "export_check_words",
    "export_summary",
    "fmt_fields",
    "fmt_value",
    "is_overdue",
    "jsonable",
    "kind_example",
    "kind_json",
    "last_seen",
    "local_day",
    "mermaid",
    "money",
    "review_words",
    "safe",
    "shown",
    "stage_label",
    "state_title",
    "type_words",
    "words",
]

PASS, FAIL = "✓", "✗"

# --- what reaches a terminal ---------------------------------------------------------------
# Names, reasons, notes, ids and stage data are text anyone with write access chose. Sent to a
# terminal raw, an ESC or C1 byte starts an escape sequence (clear the screen, retitle the
# window, plant a hyperlink), a carriage return overwrites the line and a bidi override
# reorders what is read. `safe` is the one place that makes such text inert; every view calls
# it (through `shown`) on every string that came from data.

# C0 controls but newline and tab, DEL, C1 controls, the bidi embeddings, overrides, isolates
# and marks, and lone surrogates (invalid UTF-8 from a command line).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n\t]")
# How much of one value a view shows: rich re-copies the rest of a cell at every wrapped line
# (Segment.split_and_crop_lines), so a cell of a 3 MB note took 20 s to draw. --json has it all.
SHOWN_VALUE = 1_000
SHOWN_TEXT = 10_000


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in (0x0A, 0x09):
        return " "
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character, bidi control and lone surrogate shown as an
    escape (`\\x1b`, `\\u202e`), so it prints as written and changes nothing on the terminal.
    Newlines and tabs stay (tables wrap on them) unless `one_line`, which makes them spaces."""
    return (_UNSAFE_LINE if one_line else _UNSAFE).sub(_escaped, text)


def clip(text: str, limit: int = SHOWN_VALUE, *, view: bool = True) -> str:
    """At most `limit` characters of `text`, saying how many more there are; a `view` (what
    has a --json twin) also says where to see them all, which a message line has not."""
    if len(text) <= limit:
        return text
    where = ": --json shows them all" if view else ""
    return f"{text[:limit]}… (+{len(text) - limit:,} characters{where})"


def shown(
    value: object, *, one_line: bool = False, limit: int = SHOWN_TEXT, view: bool = True
) -> str:
    """A value from data as a terminal shows it: as text, clipped, made safe."""
    return safe(clip("" if value is None else str(value), limit, view=view), one_line=one_line)


# Guards about what the user types with the command, not about evidence on the case: `next`
# shows them as "asks for ..." rather than as something missing.
ASKED_WHEN_RUN = {"reason", "review_date", "close_reason"}


# --- JSON ----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A value the API returned, as plain JSON data: dates ISO, decimals as text."""
    if attrs.has(type(value)):
        return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal | Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


# What json.dumps leaves raw with ensure_ascii=False, though a terminal acts on it; only ever
# inside a JSON string, where \\uXXXX means the same character.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def dumps(value: Any) -> str:
    text = json.dumps(jsonable(value), indent=2, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dumps_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """`dumps(rows)`, the same text, for rows of JSON values: `rows_json` joined."""
    return "".join(rows_json(rows))


def rows_json(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """`dumps(list(rows))`'s text, a row a piece, made as the rows come (a team's due list
    is hundreds of thousands of rows: held whole, it and its text were most of the memory).
    Rows of plain JSON values (text, numbers, true, false, null, lists of text) are written
    out directly: the general path (`jsonable`, then json's own indenting, which runs in
    Python) took most of `se-flow due --json` (measured at 100k cases); a row with any other
    value takes the general path, indented as in the list."""
    enc = _encode_text
    unsafe = _UNSAFE_IN_JSON.sub
    first = True
    for row in rows:
        fields = []
        for key, value in row.items():
            kind = type(value)
            if kind is str:
                text = enc(value)
            elif value is None:
                text = "null"
            elif kind is bool:
                text = "true" if value else "false"
            elif kind is int:
                text = int.__repr__(value)
            elif (kind is list or kind is tuple) and all(type(v) is str for v in value):
                text = (
                    "[\n      " + ",\n      ".join(map(enc, value)) + "\n    ]" if value else "[]"
                )
            else:
                # JSON text holds no raw newline but its own: each is a line to indent.
                body = dumps(row).replace("\n", "\n  ")
                break
            fields.append(f"{enc(str(key))}: {text}")
        else:
            body = "{\n    " + ",\n    ".join(fields) + "\n  }" if fields else "{}"
        piece = ("[\n  " if first else ",\n  ") + body
        first = False
        yield unsafe(lambda m: f"\\u{ord(m.group()):04x}", piece)
    yield "[]" if first else "\n]"


_encode_text = json.encoder.encode_basestring
"""A string as JSON text, as `json.dumps` writes it with ensure_ascii=False."""


def is_overdue(case: Case, today: dt.date) -> bool:
    return case.is_open and case.review_due is not None and case.review_due < today


def local_day(at: dt.datetime) -> dt.date:
    """The day a stored (UTC) moment fell on in the user's own time zone."""
    return at.astimezone().date()


def last_seen(case: Case, today: dt.date) -> str:
    """Days since the last contact with the participant, in short: `today`, `3d ago`, `-`."""
    if case.last_contact_at is None:
        return "-"
    days = (today - case.last_contact_at.date()).days
    return "today" if days <= 0 else f"{days}d ago"


def days_in_stage(case: Case, today: dt.date) -> int:
    since = case.closed_at or case.stage_entered_at
    return (today - since.date()).days


def case_json(wf: Workflow, case: Case, today: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(case)
    out["stage"] = stage_label(wf, case)
    out["days_in_stage"] = days_in_stage(case, today)
    out["overdue"] = is_overdue(case, today)
    return out


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


# One encoder for every line of a listing: `json.dumps` with options builds one per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def caseload_lines(wf: Workflow, cases: Iterable[Case], today: dt.date) -> Iterator[str]:
    """`case_json` of each case as compact JSON, one case a line, written out field by field
    (a caseload of 100,000 is printed: the generic walk of `jsonable` is what it cost)."""
    labels: dict[tuple[str, str | None, Status, str | None], str] = {}
    for case in cases:
        key = (case.state, case.phase, case.status, case.outcome)
        label = labels.get(key)
        if label is None:
            label = labels[key] = stage_label(wf, case)
        text = _COMPACT.encode(
            {
                "id": case.id,
                "participant_id": case.participant_id,
                "state": case.state,
                "status": case.status.value,
                "version": case.version,
                "opened_at": case.opened_at.isoformat(),
                "stage_entered_at": case.stage_entered_at.isoformat(),
                "coach": case.coach,
                "phase": case.phase,
                "episode": case.episode,
                "previous_case_id": case.previous_case_id,
                "last_contact_at": _iso(case.last_contact_at),
                "review_due": _iso(case.review_due),
                "outcome": case.outcome,
                "closed_at": _iso(case.closed_at),
                "stage": label,
                "days_in_stage": days_in_stage(case, today),
                "overdue": is_overdue(case, today),
            }
        )
        yield _UNSAFE_IN_JSON.sub(_escape_unsafe, text)


def _escape_unsafe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_array(lines: Iterable[str]) -> Iterator[str]:
    """The items (each one JSON text) as one JSON array, an item a line: pieces to write."""
    first = True
    for line in lines:
        yield ("[\n" if first else ",\n") + line
        first = False
    yield "[]\n" if first else "\n]\n"


def check_json(check: Check) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(check)
    out["allowed"] = check.allowed
    out["overridable"] = check.overridable
    out["failed"] = [r.guard for r in check.failed]
    return out


# --- words ---------------------------------------------------------------------------------


def words(name: str | None) -> str:
    """An id as words: `in_work_support` → `In work support`."""
    text = (name or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


KEEP = "\u00a0"
"""Joins words `folded` must keep on one line (textwrap breaks at ASCII spaces only)."""


def folded(text: str, indent: int, width: int, *, hang: int = 0) -> list[str]:
    """`text` folded at spaces into lines of at most `width` after `indent` spaces (lines
    after the first `hang` more); a word longer than a line (an id, a command) is kept
    whole, never cut. Here, not with the views: a write's few lines fold without loading
    rich."""
    import textwrap

    room = max(20, width - indent - hang)
    lines = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]
    return [" " * (indent + (hang if i else 0)) + line for i, line in enumerate(lines)]


def terminal_width() -> int:
    """The width rich's console would use (COLUMNS, else the terminal's, else 80), found
    without loading rich."""
    import os
    import shutil
    import sys

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return 80


def state_title(wf: Workflow, state: str | None) -> str:
    spec = wf.states.get(state or "")
    return spec.title if spec else words(state)


def trigger_title(wf: Workflow, trigger: str) -> str:
    """The title the stage data gives `trigger` (its first transition's), else its words."""
    return next(
        (t.title for t in wf.transitions if t.trigger == trigger and t.title), words(trigger)
    )


def stage_label(wf: Workflow, case: Case) -> str:
    """Where a case is, as a coach says it: `3 Employer Engagement`, `5 Career development
    (paused)`, `Closed: withdrawn`."""
    if case.status is Status.CLOSED:
        return f"Closed: {case.outcome}" if case.outcome else "Closed"
    spec = wf.states.get(case.state)
    if spec is None:
        label = words(case.state)
    else:
        # Stage 5's title names both phases; the phase is what tells cases apart.
        label = words(case.phase) if case.phase and len(spec.phases) > 1 else spec.title
        if spec.order:
            label = f"{spec.order} {label}"
    return f"{label} (paused)" if case.status is Status.PAUSED else label


def money(value: Decimal) -> str:
    """An amount in pounds as a coach reads it: £12.80, £1,200.00."""
    return f"£{value.quantize(Decimal('0.01')):,}" if value.is_finite() else str(value)


def fmt_value(value: Any, spec: FieldSpec | None = None) -> str:
    """A stored value as a coach wrote it: yes/no, dates ISO, amounts as £12.80."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "; ".join(fmt_value(v) for v in value)
    if isinstance(value, dt.datetime):
        return local_day(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal) and spec is not None and spec.money:
        return money(value)
    return clip(str(value))


def fmt_fields(fields: Mapping[str, Any], kind: RecordKind | None = None) -> str:
    return ", ".join(
        f"{k}={fmt_value(v, kind.field(k) if kind else None)}" for k, v in fields.items()
    )


# How each field type is typed, in a coach's words (`workflow show KIND`).
_TYPE_WORDS = {
    "str": "text (one line)",
    "text": "text",
    "int": "whole number",
    "decimal": "number, e.g. 16 or 7.5",
    "bool": "yes or no",
    "date": "date: YYYY-MM-DD, today or yesterday",
    "choice": "one of the allowed values",
    "list": "a list, items separated by ;",
    "dated_steps": "dated steps separated by ; (each YYYY-MM-DD what happens)",
}
_EXAMPLES = {
    "str": '"TEXT"',
    "text": '"TEXT"',
    "int": "1",
    "decimal": "16",
    "bool": "yes",
    "date": "today",
    "list": '"first; second"',
    "dated_steps": '"2026-12-01 fewer visits; 2027-01-05 monthly"',
}


def type_words(spec: FieldSpec) -> str:
    if spec.money:
        return "amount in pounds, e.g. 12.50 or £12.50"
    return _TYPE_WORDS.get(spec.type, spec.type)


def example_value(spec: FieldSpec) -> str:
    if spec.options:
        return spec.options[0]
    if spec.money:
        return "12.50"
    return _EXAMPLES.get(spec.type, spec.type.upper())


def kind_example(kind: RecordKind, case_id: str = "C-1") -> str:
    """A `se-flow record` command for `kind` with every required field, as an example."""
    parts = [f"{f.name}={example_value(f)}" for f in kind.fields if f.required]
    return " ".join([f"se-flow record {case_id} {kind.name}", *parts])


def kind_json(kind: RecordKind) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "title": kind.title,
        "contact": kind.contact,
        "fields": [
            {
                "name": f.name,
                "title": f.title,
                "type": f.type,
                "money": f.money,
                "required": f.required,
                "options": list(f.options),
                "example": example_value(f),
            }
            for f in kind.fields
        ],
        "example": kind_example(kind),
    }


def review_words(case: Case, today: dt.date) -> tuple[str, str | None]:
    """The review status of an open case in words, with the style to show it in."""
    if not case.is_open or case.review_due is None:
        return "", None
    days = (case.review_due - today).days
    if days < 0:
        return f"overdue {-days}d", "bold red"
    if days == 0:
        return "due today", "yellow"
    return f"in {days}d", None


def describe(wf: Workflow, event: Event) -> str:
    """One event of a timeline in words."""
    payload = event.payload
    record = payload.get("record") or {}
    fields = fmt_fields(record.get("fields") or {})
    if event.kind in ("referral", "reopen"):
        what = "referred" if event.kind == "referral" else "reopened as a new episode"
        if payload.get("previous_case_id"):
            what += f" after {payload['previous_case_id']}"
        return f"{what} ({fields})" if fields else what
    if event.kind == "record":
        kind = str(record.get("kind", ""))
        spec = wf.records.get(kind)
        if spec is not None:
            fields = fmt_fields(spec.from_json(record.get("fields") or {}), spec)
        text = f"{spec.title if spec else kind}: {fields}"
        if record.get("supersedes") is not None:
            text += f" (corrects record {record['supersedes']})"
        return text
    if event.kind == "phase":
        return f"{event.trigger}: {words(event.from_phase)} → {words(event.to_phase)}"
    if event.kind == "pause":
        return f"paused; review on {payload.get('review_date', '?')}"
    if event.kind == "resume":
        return "resumed"
    if event.kind == "assign":
        return (
            f"assigned to {payload.get('to_coach')} (was {payload.get('from_coach') or 'nobody'})"
        )
    if event.kind == "transition":
        text = f"{event.trigger}: {state_title(wf, event.from_state)} → "
        text += state_title(wf, event.to_state)
        if payload.get("outcome"):
            text += f" ({payload['outcome']})"
        return text
    if event.kind == "enrol":
        text = f"enrolled on {payload.get('programme')}@{payload.get('version')}"
        return text + (f" (was {payload['from']})" if payload.get("from") else "")
    if event.kind == "milestone":
        return _milestone_words(payload)
    if event.kind == "claim":
        if payload.get("resolution"):
            return (
                f"claimed {payload.get('milestone')} ({payload.get('programme')}): its change "
                f"{payload.get('resolution')}"
            )
        return (
            f"claimed {payload.get('milestone')} ({payload.get('programme')}), funder "
            f"reference {payload.get('reference')}"
        )
    return f"{event.kind} {event.trigger or ''}".strip()


def _milestone_words(payload: Mapping[str, Any]) -> str:
    """A `milestone` event: which one, what happened to it and on which day it was reached.
    Logged when the write that reached it was made, so the day it names may be earlier."""
    change = str(payload.get("change") or "changed")
    text = f"milestone {payload.get('milestone')} {change}"
    if change in ("reached", "changed") and payload.get("achieved_on"):
        text += f" on {payload['achieved_on']}"
        if payload.get("state") == "provisional":
            text += " (provisional)"
    return f"{text} ({payload.get('programme')})"


def everywhere(wf: Workflow, sources: Sequence[str]) -> bool:
    active = {s for s in wf.states if s != wf.final}
    return len(active) > 1 and set(sources) == active


def _mermaid_id(state: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in state)


def _mermaid_title(text: str) -> str:
    return text.replace('"', "'")


def mermaid(wf: Workflow, *, exits: bool = False) -> str:
    """The workflow as a Mermaid `stateDiagram-v2`. Triggers open from every active state
    (withdraw, close, pause, ...) are drawn once as a note unless `exits` asks for every edge;
    a stage with phases is a composite state with its phases inside."""
    lines = ["stateDiagram-v2"]
    for s in sorted(wf.states.values(), key=lambda s: (s.id == wf.final, s.order)):
        if s.phases:
            lines.append(f'    state "{_mermaid_title(s.title)}" as {_mermaid_id(s.id)} {{')
            for phase in s.phases:
                lines.append(
                    f'        state "{words(phase)}" as {_mermaid_id(s.id + "__" + phase)}'
                )
            lines.append(f"        [*] --> {_mermaid_id(s.id + '__' + s.phases[0])}")
            for t in wf.transitions:
                if t.from_phase and t.to_phase and t.dest == s.id:
                    src = _mermaid_id(s.id + "__" + t.from_phase)
                    dst = _mermaid_id(s.id + "__" + t.to_phase)
                    lines.append(f"        {src} --> {dst}: {t.trigger}")
            lines.append("    }")
        else:
            lines.append(f'    state "{_mermaid_title(s.title)}" as {_mermaid_id(s.id)}')
    lines.append(f"    [*] --> {_mermaid_id(wf.initial)}")
    anywhere: list[str] = []
    drawn: set[tuple[str, str, str]] = set()
    for t in wf.transitions:
        if t.from_phase and t.to_phase:
            continue  # drawn inside its composite state
        if t.effect in ("pause", "resume") and not exits:
            anywhere.append(t.trigger)
            continue
        if everywhere(wf, t.sources) and not exits:
            anywhere.append(t.trigger)
            continue
        for src in t.sources:
            dst = t.dest or src
            label = t.trigger + (f" ({t.outcome})" if t.outcome else "")
            key = (src, dst, label)
            if key in drawn:
                continue
            drawn.add(key)
            lines.append(f"    {_mermaid_id(src)} --> {_mermaid_id(dst)}: {label}")
    lines.append(f"    {_mermaid_id(wf.final)} --> [*]")
    if anywhere:
        lines.append(
            f"    note right of {_mermaid_id(wf.final)}: from any active state: "
            + ", ".join(dict.fromkeys(anywhere))
        )
    if wf.reopen.dest:
        lines.append(
            f"    note left of {_mermaid_id(wf.reopen.dest)}: reopen starts a new case here"
        )
    return "\n".join(lines) + "\n"


# --- exports and checkpoints ---------------------------------------------------------------


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


def export_summary(manifest: Manifest) -> str:
    """What an export wrote, for the person who ran it: files, row counts, chain head."""
    personal = "with personal data" if manifest.include_personal_data else "pseudonymised"
    lines = [f"exported to {manifest.path} ({manifest.fmt}, {personal})"]
    if manifest.include_personal_data:
        lines.append(
            "  it holds names, contacts and dates of birth: keep it secure and share it only "
            "with those entitled to them"
        )
    asked = {k: v for k, v in manifest.filters.items() if v is not None}
    if asked:
        lines.append("  filters: " + ", ".join(f"{k}={v}" for k, v in asked.items()))
    rows = {name: _rows(int(table["rows"])) for name, table in manifest.tables.items()}
    width = max(len(name) for name in rows)
    count_width = max(len(text) for text in rows.values())
    for name, table in manifest.tables.items():
        lines.append(f"  {name:<{width}}  {rows[name]:<{count_width}}  in {table['file']}")
    lines.append("files (SHA-256):")
    width = max(len(name) for name in manifest.files)
    for name, entry in manifest.files.items():
        lines.append(f"  {name:<{width}}  {entry['sha256']}")
    seq, digest = manifest.chain_head
    lines.append(f"chain head at export: event {seq} {digest}")
    manifest_path = Path(manifest.path) / "manifest.json"
    lines.append(f"manifest: {manifest_path}")
    if manifest.audit_event is not None:
        lines.append(f"logged as audit event {manifest.audit_event[0]} (by {manifest.actor})")
    lines.append(f"check it later: se-flow audit verify-export {manifest.path}")
    return "\n".join(lines)


def checkpoint_kept(kept: Checkpoint, path: Path) -> str:
    """What `audit checkpoint --out` tells the auditor who keeps the file."""
    return "\n".join(
        [
            f"checkpoint written to {path}: event {kept.seq} {kept.hash}",
            f"  database {kept.store_id}, taken {kept.taken_at.isoformat()}",
            "keep it where the database's users cannot change it; later, "
            f"`se-flow audit verify --checkpoint {path}` proves the log has only been "
            "appended to since",
        ]
    )


def sealing_started(key: VerificationKey, key_file: Path) -> str:
    """What `init` says once sealing is on: the verification key, shown this once only."""
    return "\n".join(
        [
            f"events are sealed with a key that evolves every {key.epoch_seconds} s "
            f"(the old one erased); the current key is in {key_file} (mode 600)",
            "VERIFICATION KEY: give it to your auditor or commissioner now; it is shown only",
            "this once and se-flow keeps no copy (`se-flow audit verify --key KEY` checks the "
            "seals):",
            f"  {key.text}",
            f"  to read out: {key.spoken}",
        ]
    )


def checkpoint_words(kept: Checkpoint, result: Verification) -> str:
    """What a passed `audit verify --checkpoint` proved."""
    since = result.head_seq - kept.seq
    return (
        f"  checkpoint event {kept.seq} (taken {kept.taken_at.isoformat()}) is still there, "
        f"unchanged: only appended to since ({since} event{'' if since == 1 else 's'} after it)"
    )


def export_check_json(result: ExportVerification, against: str | None) -> dict[str, Any]:
    return {
        "path": str(result.path),
        "ok": result.ok,
        "problems": list(result.problems),
        "rows": dict(result.rows),
        "checked_against_log": against,
        "manifest": result.manifest.to_json() if result.manifest is not None else None,
    }


def export_check_words(result: ExportVerification, against: str | None) -> str:
    """A passed `audit verify-export`, saying how far the check reached."""
    manifest = result.manifest
    files = len(manifest.files) if manifest is not None else 0
    rows = ", ".join(f"{name} {n:,}" for name, n in result.rows.items())
    lines = [f"export ok: {result.path}: {files} file(s) match the manifest (rows: {rows})"]
    if against is not None and manifest is not None:
        event = f", logged as event {manifest.audit_event[0]}" if manifest.audit_event else ""
        lines.append(
            f"  and the audit log of {against}: same database, chain head event "
            f"{manifest.chain_head[0]} still there{event}"
        )
    else:
        lines.append(
            "  checked against its manifest only (no database here): a manifest rewritten "
            "together with its files is caught only against the log (give --db)"
        )
    return "\n".join(lines)
