"""Free text outside the hashed log: notes, reasons, referral notes, summaries.

A free text is the event's `reason`, an override's reason, or a record field of type `text`
(the stage data types them). Each has a **slot** in its event: `reason`, `override.reason`,
`record.<field>`. From this change on, a store keeps each text in its own table, beside the
event (`texts`: seq, slot, salt, text), and the event's hashed row holds only its salted hash:
`texts` maps each slot to `HMAC-SHA256(salt, text)`, the salt 16 random bytes made by the store
for that one text and kept with it. So the chain and the seals still prove every present text
unaltered, while:

- an admin may **erase** a text: its salt and text are cleared in the table (the row stays, a
  tombstone) and an audit event (`text_erasure`, or the participant's `erasure`) names it by
  seq and slot, never quoting it. Without the salt nobody can test a guess against the hash.
  `verify` says how many were erased; a text gone without such an event, changed, or added
  where the event holds none, is tampering, and named.
- an auditor sees `WITHHELD` in place of each text unless an admin granted them the texts
  (`text_grant`, audited); coaches, team leaders and admins read them.

Events written before this kept their texts inline, inside the hashed row: they read as
before, and cannot be erased without breaking the chain (the README says so).

Pure: the salts come from the caller (`new_salt`), no I/O and no clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import attrs
from attrs import frozen

from ._model import Event, EventDraft, EventKind, Override, Record
from ._rows import record_from_row
from ._workflow import Workflow
from .ports import Change, TextRow

__all__ = [
    "ERASED",
    "ERASING_KINDS",
    "REASON",
    "SALT_BYTES",
    "WITHHELD",
    "Split",
    "TextCheck",
    "TextDraft",
    "TextRow",
    "digest",
    "erased_by",
    "fill_event",
    "fill_record",
    "filled_records",
    "record_slot",
    "split",
    "split_change",
    "text_fields",
    "withhold_event",
    "withhold_record",
]

SALT_BYTES = 16
REASON = "reason"
OVERRIDE = "override.reason"
_RECORD = "record."

WITHHELD = "(withheld)"
"""What a reader who may not see free text reads in its place (an auditor without a grant)."""
ERASED = "(erased)"
"""What everyone reads in place of a text an admin erased."""

ERASING_KINDS = frozenset({EventKind.TEXT_ERASURE.value, EventKind.ERASURE.value})


def record_slot(field_name: str) -> str:
    return _RECORD + field_name


def digest(salt: bytes, text: str) -> str:
    return hmac.digest(salt, text.encode("utf-8"), "sha256").hex()


@frozen
class TextDraft:
    """A text a change writes into the text table, with its event."""

    slot: str
    salt: bytes
    text: str
    digest: str


# Every write asks: looked up once per workflow and kind.
_TEXT_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {}


def text_fields(workflow: Workflow, kind: str) -> tuple[str, ...]:
    """The fields of record kind `kind` whose type is free text (none for an unknown kind)."""
    key = (workflow.hash, kind)
    found = _TEXT_FIELDS.get(key)
    if found is None:
        spec = workflow.records.get(kind)
        found = () if spec is None else tuple(f.name for f in spec.fields if f.type == "text")
        _TEXT_FIELDS[key] = found
    return found


class Split(NamedTuple):
    """A draft's free texts taken out (`split`)."""

    stored: Mapping[str, Any]
    """The event fields its stored row holds in place of the draft's (`_audit.seal`): the
    reason, override and payload without the texts, and `texts`, their salted hashes by slot.
    Empty when the draft holds no free text."""
    fields: Mapping[str, Any] | None
    """The record's typed fields without its texts (as given when it has none)."""
    texts: tuple[TextDraft, ...]
    """The texts to keep apart."""


def split(
    draft: EventDraft,
    record_fields: Mapping[str, Any] | None,
    workflow: Workflow,
    new_salt: Callable[[], bytes],
) -> Split:
    """What the draft's stored row and its record hold with the free texts taken out, and
    the texts to keep apart. The draft itself is left as it is: the sealed event shows it."""
    taken: list[TextDraft] = []

    def take(slot: str, text: str) -> None:
        salt = new_salt()
        taken.append(TextDraft(slot, salt, text, digest(salt, text)))

    stored: dict[str, Any] = {}
    if draft.reason:
        take(REASON, draft.reason)
        stored["reason"] = None
    if draft.override is not None and draft.override.reason:
        take(OVERRIDE, draft.override.reason)
        stored["override"] = Override(by=draft.override.by)
    fields = record_fields
    record = draft.payload.get("record")
    if isinstance(record, Mapping):
        names = [n for n in text_fields(workflow, str(record.get("kind"))) if n in record["fields"]]
        if names:
            kept = {k: v for k, v in record["fields"].items() if k not in names}
            for name in names:
                take(record_slot(name), record["fields"][name])
            if fields is not None:
                fields = {k: v for k, v in fields.items() if k not in names}
            payload = dict(draft.payload)
            payload["record"] = {**record, "fields": kept}
            stored["payload"] = payload
    if not taken:
        return Split({}, record_fields, ())
    stored["texts"] = {t.slot: t.digest for t in taken}
    return Split(stored, fields, tuple(taken))


def split_change(
    change: Change, workflow: Workflow, new_salt: Callable[[], bytes]
) -> tuple[Change, tuple[TextDraft, ...]]:
    """`split` for a whole change: the change as its store keeps it (the event and record
    without their texts), and the texts to keep apart."""
    record = change.record
    found = split(change.event, record.fields if record is not None else None, workflow, new_salt)
    if not found.texts:
        return change, ()
    if record is not None and found.fields is not None:
        record = attrs.evolve(record, fields=found.fields)
    event = attrs.evolve(change.event, **found.stored)
    return attrs.evolve(change, event=event, record=record), found.texts


def fill_event(event: Event, found: Mapping[str, str | None]) -> Event:
    """`event` with each text it holds put back in its slot, from `found` (slot to text; a
    slot missing or None reads `ERASED`)."""
    if not event.texts:
        return event
    return _put(event, {slot: found.get(slot) or ERASED for slot in event.texts})


def withhold_event(event: Event) -> Event:
    """`event` as a reader who may not see free text reads it."""
    if not event.texts:
        return event
    return _put(event, {slot: WITHHELD for slot in event.texts})


def _put(event: Event, texts: Mapping[str, str]) -> Event:
    changes: dict[str, Any] = {}
    if REASON in texts:
        changes["reason"] = texts[REASON]
    if OVERRIDE in texts and event.override is not None:
        changes["override"] = Override(by=event.override.by, reason=texts[OVERRIDE])
    fields = {s[len(_RECORD) :]: t for s, t in texts.items() if s.startswith(_RECORD)}
    record = event.payload.get("record")
    if fields and isinstance(record, Mapping):
        payload = dict(event.payload)
        payload["record"] = {**record, "fields": {**record["fields"], **fields}}
        changes["payload"] = payload
    return attrs.evolve(event, **changes)


def fill_record(record: Record, found: Mapping[str, str | None]) -> Record:
    """`record` with its texts put back (`found`: every slot of its event, None if erased)."""
    fields = _record_texts(found)
    if not fields:
        return record
    return attrs.evolve(record, fields={**record.fields, **fields})


def _record_texts(found: Mapping[str, str | None]) -> dict[str, str]:
    return {s[len(_RECORD) :]: text or ERASED for s, text in found.items() if s.startswith(_RECORD)}


def filled_records(rows: Iterable[Sequence[Any]], workflow: Workflow) -> list[Record]:
    """The records of rows in `RECORD_COLS` order each followed by a slot and text of its
    event (`_rows.with_texts`: a row per text, None, None for a record of none), in the order
    each record first comes, with their texts put back (as `fill_record` does, without
    making each record twice)."""
    heads: dict[int, Sequence[Any]] = {}
    found: dict[int, dict[str, str | None]] = {}
    for row in rows:
        seq = row[0]
        if seq not in heads:
            heads[seq] = row
        if row[8] is not None:
            found.setdefault(seq, {})[row[8]] = row[9]
    return [
        record_from_row(row, workflow, _record_texts(found[seq]) if seq in found else None)
        for seq, row in heads.items()
    ]


def withhold_record(record: Record, workflow: Workflow) -> Record:
    """`record` as a reader who may not see free text reads it: each text field it holds
    reads `WITHHELD`."""
    names = [n for n in text_fields(workflow, record.kind) if n in record.fields]
    if not names:
        return record
    return attrs.evolve(record, fields={**record.fields, **dict.fromkeys(names, WITHHELD)})


def erased_by(event: Event | Mapping[str, Any]) -> list[tuple[int, str]]:
    """The texts (seq, slot) an event erased: none unless it is an erasure."""
    kind = event.kind if isinstance(event, Event) else event["kind"]
    if kind not in ERASING_KINDS:
        return []
    payload = event.payload if isinstance(event, Event) else event["payload"]
    return [(int(seq), str(slot)) for seq, slot in payload.get("texts") or ()]


class TextCheck:
    """The text table checked against the log, streamed in (seq, slot) order beside the
    chain walk: `feed` each event row the walk accepted (its `texts` parsed), then `finish`.
    Memory grows with the number of erasures only."""

    def __init__(self, rows: Iterable[TextRow]) -> None:
        self._rows: Iterator[TextRow] = iter(rows)
        self._next: TextRow | None = next(self._rows, None)
        self.present = 0
        self.tombstones: set[tuple[int, str]] = set()
        self.named: set[tuple[int, str]] = set()
        self.bad_seq: int | None = None
        self.problem: str | None = None

    def _fail(self, seq: int, why: str) -> str:
        self.bad_seq, self.problem = seq, why
        return why

    def feed(self, seq: int, texts: Mapping[str, str], erases: list[tuple[int, str]]) -> str | None:
        if self.problem is not None:
            return self.problem
        self.named.update(erases)
        for slot in sorted(texts):
            stray = self._stray(seq, slot)
            if stray is not None:
                return stray
            row = self._next
            if row is None or (row.seq, row.slot) != (seq, slot):
                return self._fail(
                    seq,
                    f"event {seq}'s text {slot} is missing from the text table (deleted behind "
                    "se-flow's back: an erasure keeps its place and is itself an event)",
                )
            self._next = next(self._rows, None)
            if row.text is None and row.salt is None:
                self.tombstones.add((seq, slot))
                continue
            try:
                salt = bytes.fromhex(row.salt or "")
                fits = row.text is not None and hmac.compare_digest(
                    digest(salt, row.text), texts[slot]
                )
            except ValueError:
                fits = False
            if not fits:
                return self._fail(
                    seq, f"event {seq}'s text {slot} does not match its hash (the text was altered)"
                )
            self.present += 1
        return self._stray(seq + 1, "")

    def _stray(self, seq: int, slot: str) -> str | None:
        row = self._next
        if row is not None and (row.seq, row.slot) < (seq, slot):
            return self._fail(
                row.seq,
                f"the text table holds a text {row.slot} for event {row.seq}, which holds no "
                "such text (written behind se-flow's back)",
            )
        return None

    def finish(self) -> str | None:
        if self.problem is not None:
            return self.problem
        if self._next is not None:
            row = self._next
            return self._fail(
                row.seq,
                f"the text table holds a text {row.slot} for event {row.seq}, which the log "
                "does not hold (written behind se-flow's back)",
            )
        unlogged = sorted(self.tombstones - self.named)
        if unlogged:
            seq, slot = unlogged[0]
            return self._fail(
                seq,
                f"event {seq}'s text {slot} was cleared without an erasure event (erased behind "
                "se-flow's back)",
            )
        kept = sorted(self.named - self.tombstones)
        if kept:
            seq, slot = kept[0]
            return self._fail(
                seq, f"event {seq}'s text {slot} was erased by an audit event but is still there"
            )
        return None

    @property
    def erased(self) -> int:
        return len(self.tombstones)

    def summary(self) -> str:
        words = f"free texts: {self.present} present and unaltered"
        if self.tombstones:
            words += f", {len(self.tombstones)} erased by an admin (audited)"
        return words
