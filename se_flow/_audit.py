"""The hash chain: how an event is sealed, how a chain of them is verified, and checkpoints.

Each event's `hash` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of every
other field, `seq` and `prev_hash` included; `prev_hash` is the previous event's hash (64 zeros
for the first). An edit changes a hash; a deletion, insertion or swap breaks a seq or prev_hash
link; the first event that does not fit is named.

`verify_log` is what an auditor runs: the chain walk, then every table reads trust (cases,
records, staff) checked against its replay from the log (`_projections`), all inside one read
snapshot of the store, so a coach writing meanwhile cannot cause a false alarm. It reads the
store only through the store's methods: no I/O of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import field, frozen

from ._milestones import log_problem
from ._model import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    OPTIONAL_FIELDS,
    Case,
    Column,
    Event,
    EventDraft,
    EventField,
    EventKind,
    GuardResult,
    Override,
    Verification,
)
from ._projections import (
    RecordCheck,
    case_mismatch,
    record_from_row,
    replay_cases,
    replay_settings,
    replay_staff,
    staff_mismatch,
)
from ._rows import ts
from ._seal import SealCheck, SealRow, VerificationKey, seal_verifies
from ._standards import case_history, due_row_mismatch, project
from ._texts import ERASING_KINDS, TextCheck
from .errors import CaseNotFound, InvalidInput, WorkflowMismatch

if TYPE_CHECKING:
    from ._outcomes import Programme
    from ._workflow import Workflow
    from .ports import Store

__all__ = [
    "GENESIS",
    "ChainWalk",
    "Checkpoint",
    "canonical",
    "check_workflow",
    "event_from_row",
    "event_to_row",
    "json_encoding",
    "seal",
    "take_checkpoint",
    "verify_chain",
    "verify_log",
]

GENESIS = "0" * 64

FIELDS = EVENT_COLUMNS


def json_encoding(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode`, made to run once per command: `json.dumps` with options builds a new
    encoder per call, and `JSONEncoder.encode` its C encoder per call; here the C encoder is
    made once, with the options `encoder` would give it. Without circular-reference markers:
    what is encoded is plain data, never circular."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return encoder.encode
    encode = make(
        None,
        encoder.default,
        json.encoder.encode_basestring_ascii if encoder.ensure_ascii else _encode_str,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda value: "".join(encode(value, 0))


_encode_str: Callable[[str], str] = json.encoder.encode_basestring
canonical: Callable[[Any], str] = json_encoding(
    json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
)
"""The canonical JSON text of a value: sorted keys, no spaces, non-ASCII kept as is."""


# JSON fields: the value an event holds, to and from what the row keeps. Each encoder gives
# the field's canonical text (None: absent); an empty value, the commonest, costs no encoding.
def _guards_json(guards: Sequence[GuardResult]) -> str:
    if not guards:
        return "[]"
    # Every command seals its verdicts: written here as `canonical` writes them (keys sorted,
    # each text escaped by the same function), without a dict per verdict and a sort of its
    # keys; a verdict holding anything but plain text and booleans goes the reference way.
    parts = []
    for g in guards:
        guard, passed, reason, soft, title = g.guard, g.passed, g.reason, g.soft, g.title
        if not (
            type(guard) is str
            and type(reason) is str
            and type(title) is str
            and type(passed) is bool
            and type(soft) is bool
        ):
            return canonical([g.to_json() for g in guards])
        parts.append(
            f'{{"guard":{_encode_str(guard)},"passed":{"true" if passed else "false"},'
            f'"reason":{_encode_str(reason)},"soft":{"true" if soft else "false"},'
            f'"title":{_encode_str(title)}}}'
        )
    return f"[{','.join(parts)}]"


def _override_json(o: Override | None) -> str:
    if o is None:
        return "null"
    # An override whose reason is kept apart (`_texts`) is stored without it.
    return canonical({"by": o.by, "reason": o.reason} if o.reason else {"by": o.by})


def _payload_json(payload: Mapping[str, Any]) -> str:
    return canonical(dict(payload)) if payload else "{}"


def _texts_json(texts: Mapping[str, str]) -> str | None:
    # Absent (NULL, and out of the hash) rather than an empty object.
    return canonical(dict(texts)) if texts else None


_TO_JSON: dict[str, Callable[[Any], str | None]] = {
    "guards": _guards_json,
    "override": _override_json,
    "payload": _payload_json,
    "texts": _texts_json,
}
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "guards": lambda data: tuple(GuardResult.from_json(g) for g in data or ()),
    "override": lambda data: Override(**data) if data else None,
    "payload": lambda data: data or {},
    "texts": lambda data: data or {},
}
_SEALING = frozenset({"seq", "prev_hash", "hash"})
_DRAFTED = tuple(f for f in EVENT_FIELDS if f.name not in _SEALING)


# Sealing runs once per command: the drafted fields are read in one call, in the row's order,
# and only the fields a row does not keep as they are (times, JSON) are encoded one by one.
_ROW_NAMES = tuple(f.name for f in _DRAFTED)
_row_values = operator.attrgetter(*_ROW_NAMES)
_ROW_TIMES = tuple(f.name for f in _DRAFTED if f.column is Column.TIME)
_ROW_ENCODERS = tuple((f.name, _TO_JSON[f.name]) for f in _DRAFTED if f.column is Column.JSON)
# An event is made from a draft's fields in the order its class takes them.
_DRAFT_NAMES = tuple(a.name for a in attrs.fields(EventDraft))
_draft_values = operator.attrgetter(*_DRAFT_NAMES)
_TEXTS_AT = _DRAFT_NAMES.index("texts")


def _decode(f: EventField, value: Any) -> Any:
    if f.column is Column.TIME:
        return dt.datetime.fromisoformat(value)
    if f.column is Column.JSON:
        return _FROM_JSON[f.name](json.loads(value) if value else None)
    return value


def event_to_row(
    draft: EventDraft, seq: int, prev_hash: str, stored: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The stored row of an event (JSON fields as canonical text), `hash` filled in.
    `stored`: fields the row holds in place of the draft's (`_texts.Split.stored`: the draft
    with its free texts taken out)."""
    row = dict(zip(_ROW_NAMES, _row_values(draft), strict=True))
    if stored:
        row.update(stored)
    for name in _ROW_TIMES:
        row[name] = ts(row[name])
    for name, encode in _ROW_ENCODERS:
        row[name] = encode(row[name])
    row["seq"] = seq
    row["prev_hash"] = prev_hash
    row["hash"] = row_hash(row)
    return row


# `row_hash` writes canonical(body) itself: the keys are fixed and sorted, so each is encoded
# once here, and a row's values (text, integers, None) are encoded one by one, without
# building the body dict and sorting it again per event. `canonical_body` is the reference.
_HASHED = tuple(sorted(k for k in FIELDS if k != "hash"))
_HASH_KEYS = tuple((k, _encode_str(k) + ":", k in OPTIONAL_FIELDS) for k in _HASHED)


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is int:
        return int.__repr__(value)
    if isinstance(value, str):
        return _encode_str(value)
    return canonical(value)


def hashed_fields(row: Mapping[str, Any]) -> list[str]:
    """The fields of `row` its hash covers, sorted: all but `hash`, and an optional field
    (`_model.OPTIONAL_FIELDS`) only when it holds a value (an older row has none)."""
    return [k for k in _HASHED if k not in OPTIONAL_FIELDS or row.get(k) is not None]


def canonical_body(row: Mapping[str, Any]) -> str:
    """The text `row_hash` hashes: canonical JSON of every field of the row but `hash` (and
    optional fields while None)."""
    return canonical({k: row.get(k) for k in hashed_fields(row)})


def row_hash(row: Mapping[str, Any]) -> str:
    get = row.get
    # Text and None, most of a row, are encoded inline; anything else by `_value_text`.
    text = (
        "{"
        + ",".join(
            [
                key
                + (
                    _encode_str(value)
                    if type(value) is str
                    else "null"
                    if value is None
                    else _value_text(value)
                )
                for k, key, optional in _HASH_KEYS
                if (value := get(k)) is not None or not optional
            ]
        )
        + "}"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_workflow(logged: str | None, draft: EventDraft) -> None:
    """Refuse to append an event drafted under a workflow other than the one the log was last
    written under (`logged`, None for an empty log): one log, one field typing, until an
    admin's `workflow` event moves it on. Stores call this inside their write transaction."""
    if logged is not None and logged != draft.workflow_hash and draft.kind != EventKind.WORKFLOW:
        raise WorkflowMismatch(logged=logged, loaded=draft.workflow_hash)


def seal(
    draft: EventDraft,
    seq: int,
    prev_hash: str,
    stored: Mapping[str, Any] | None = None,
    row: Mapping[str, Any] | None = None,
) -> tuple[Event, dict[str, Any]]:
    """The event `draft` becomes at `seq` after `prev_hash`, and the row a store keeps.
    `stored` (`_texts.Split.stored`): the fields the row holds in place of the draft's, its
    free texts taken out; the event keeps the draft's texts, with their hashes (`texts`).
    `row`: the same draft's row made before its place was known (`event_to_row` with the same
    `stored`): only its place is put in and hashed, nothing encoded again."""
    if row is None:
        row = event_to_row(draft, seq, prev_hash, stored)
    else:
        row = {**row, "seq": seq, "prev_hash": prev_hash}
        row["hash"] = row_hash(row)
    values = list(_draft_values(draft))
    if stored:
        values[_TEXTS_AT] = stored["texts"]
    return Event(*values, seq=seq, prev_hash=prev_hash, hash=row["hash"]), row


def event_from_row(row: Mapping[str, Any]) -> Event:
    # A row from before an optional field came (an old export) has no such key.
    return Event(**{f.name: _decode(f, row.get(f.name)) for f in EVENT_FIELDS})


class ChainWalk:
    """The chain walk, one stored row at a time: `feed` each row in seq order until it names a
    problem; `result()` is then the verdict. `verify_chain`, `verify_log` and the export
    verifier all walk with it, so each names the same first event that does not fit."""

    def __init__(self, *, start_seq: int = 1, start_hash: str = GENESIS) -> None:
        self.expected_seq, self.prev = start_seq, start_hash
        self.count = 0
        self.bad_seq: int | None = None
        self.problem: str | None = None
        self.altered = False
        """The bad row's links fit but its content does not match its hash."""

    @property
    def head(self) -> tuple[int, str]:
        """The (seq, hash) of the last row that fitted."""
        return self.expected_seq - 1, self.prev

    def feed(self, row: Mapping[str, Any]) -> str | None:
        """Check the next row; the problem in words if it does not fit (the walk then stops:
        later rows are not looked at)."""
        if self.problem is not None:
            return self.problem
        seq = row["seq"]
        if seq != self.expected_seq:
            why = (
                f"event {self.expected_seq} is missing (next found is {seq})"
                if seq > self.expected_seq
                else f"event {seq} is out of order (expected {self.expected_seq})"
            )
        elif row["prev_hash"] != self.prev:
            why = (
                "its prev_hash does not match the event before it "
                "(an event was inserted, removed or moved)"
            )
        elif row_hash(row) != row["hash"]:
            why = "its content does not match its hash (the event was altered)"
            self.altered = True
        else:
            self.count += 1
            self.expected_seq, self.prev = seq + 1, row["hash"]
            return None
        self.bad_seq, self.problem = seq, why
        return why

    def result(self) -> Verification:
        seq, digest = self.head
        if self.problem is None:
            return Verification(True, self.count, seq, digest)
        return Verification(False, self.count, seq, digest, self.bad_seq, self.problem)


def verify_chain(
    rows: Iterable[Mapping[str, Any]], *, start_seq: int = 1, start_hash: str = GENESIS
) -> Verification:
    """Walk stored rows in seq order; report the first that does not fit, and why."""
    walk = ChainWalk(start_seq=start_seq, start_hash=start_hash)
    for row in rows:
        if walk.feed(row) is not None:
            break
    return walk.result()


# --- checkpoints ---------------------------------------------------------------------------


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
    seal: SealRow | None = None
    """The head event's forward-secure seal, on a sealing database: with the verification
    key a checkpoint proves itself (one made up for a rewritten log has no seal that holds)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "store_id": self.store_id,
            "seq": self.seq,
            "hash": self.hash,
            "taken_at": self.taken_at.isoformat(),
        }
        if self.seal is not None:
            data["seal"] = {"epoch": self.seal.epoch, "mac": self.seal.mac}
        return data

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
            kept = cls(store_id=store_id, seq=seq, hash=digest, taken_at=at)
        except ValueError as exc:
            raise InvalidInput(f"checkpoint taken_at: {taken!r} is not a time ({exc})") from None
        sealed = data.get("seal")
        if sealed is None:
            return kept
        epoch = sealed.get("epoch") if isinstance(sealed, Mapping) else None
        mac = sealed.get("mac") if isinstance(sealed, Mapping) else None
        if (
            isinstance(epoch, bool)
            or not isinstance(epoch, int)
            or not isinstance(mac, str)
            or not re.fullmatch(r"[0-9a-f]{64}", mac)
        ):
            raise InvalidInput("checkpoint seal: expected {epoch: whole number, mac: 64 hex}")
        return attrs.evolve(kept, seal=SealRow(seq, epoch, mac))


def take_checkpoint(store: Store, now: dt.datetime) -> Checkpoint:
    with store.read_snapshot():
        seq, digest = store.head()
        sealed = store.seal_of(seq) if seq else None
        return Checkpoint(
            store_id=store.store_id(), seq=seq, hash=digest, taken_at=now, seal=sealed
        )


# --- verifying the whole log ---------------------------------------------------------------


def verify_log(
    store: Store,
    workflow: Workflow,
    checkpoint: Checkpoint | Sequence[Checkpoint] | None = None,
    key: VerificationKey | None = None,
    programmes: Sequence[Programme] | None = None,
) -> Verification:
    """Walk the whole chain, then check the case, records and staff tables against the log.

    Given the funder definitions (`programmes`), also recompute every enrolled case's
    milestones after each write to it and check the log's `milestone` events agree
    (`_milestones.log_problem`): one made up, altered or missing is named.

    Given the verification `key` (`_seal`), also check every event's forward-secure seal as
    the walk goes: the first event whose seal fails is named with its epoch (`bad_epoch`),
    before any later problem. Without it, `seals` says what could not be proved.

    Given a `checkpoint`, also prove the log was only appended to since: its event is still
    there, unchanged, and it came from this very database (a truncated log, one rewritten and
    re-chained consistently, or another database fails). Everything is read inside one read
    snapshot; memory stays flat in the size of the log (records are compared as a merge of two
    seq-ordered streams, cases one case at a time)."""
    kept: Sequence[Checkpoint] = (
        [checkpoint] if isinstance(checkpoint, Checkpoint) else checkpoint or ()
    )
    with store.read_snapshot():
        own = store.store_id()
        for one in kept:
            problem = None
            if one.store_id != own:
                problem = (
                    f"the checkpoint is from database {one.store_id}, this is "
                    f"{own}: a different (or replaced) database"
                )
            elif key and one.seal and not seal_verifies(key, one.seal, one.hash):
                problem = (
                    f"the checkpoint of event {one.seq} (taken {one.taken_at.isoformat()}) "
                    "carries a seal this key does not verify: it was not taken from this "
                    "sealed database (made up, or edited)"
                )
            if problem is not None:
                seq, digest = store.head()
                return Verification(
                    ok=False, events=0, head_seq=seq, head_hash=digest, problem=problem
                )
        wanted = {one.seq for one in kept}
        seen: dict[int, str] = {}
        staff_events: list[Event] = []
        records = RecordCheck(store.record_rows())

        unreadable: list[tuple[int, str]] = []
        commands: dict[str, int] = {}
        walk = ChainWalk()
        sealing = store.sealing()
        seals = (
            SealCheck(key, store.seal_rows(), store_id=store.store_id(), stored=sealing)
            if key is not None
            else None
        )
        texts = TextCheck(store.text_rows())
        unsealed = (
            None
            if sealing is None
            else f"{sealing.describe()}; " + ("seals not checked: no verification key given")
        )
        for row in store.event_rows():
            if walk.feed(row) is not None:
                return attrs.evolve(walk.result(), seals=unsealed if seals is None else None)
            if seals is not None and seals.feed(row["seq"], row["hash"], row["recorded_at"]):
                return _seal_problem(walk.result(), seals)
            # Read only once the walk has accepted the row: what is read of it is proved by
            # its hash.
            if row["seq"] in wanted:
                seen[row["seq"]] = row["hash"]
            command_id = row.get("command_id")
            if command_id is not None:
                # The stores' unique index on command ids is a projection of the log too.
                first = commands.setdefault(command_id, row["seq"])
                if first != row["seq"]:
                    unreadable.append(
                        (
                            row["seq"],
                            f"event {row['seq']} repeats command id {command_id!r} of event "
                            f"{first}: one command was appended twice",
                        )
                    )
            try:
                held = json.loads(row["texts"]) if row.get("texts") else {}
                erases = (
                    [
                        (int(seq), str(slot))
                        for seq, slot in json.loads(row["payload"]).get("texts") or ()
                    ]
                    if row["kind"] in ERASING_KINDS
                    else []
                )
            except (TypeError, ValueError, AttributeError) as exc:
                unreadable.append((row["seq"], f"event {row['seq']} cannot be read: {exc}"))
                held, erases = {}, []
            # A text problem is told after the chain's, the seals' and the checkpoint's.
            texts.feed(row["seq"], held, erases)
            try:
                if row["kind"] in (EventKind.STAFF, EventKind.SETTING):
                    staff_events.append(event_from_row(row))
                else:
                    want = record_from_row(row)
                    if want is not None:
                        records.feed(want)
            except (KeyError, TypeError, ValueError) as exc:
                # Only a forger who re-chained the log can write an event se-flow did not.
                unreadable.append((row["seq"], f"event {row['seq']} cannot be read: {exc}"))
        result = walk.result()
        if seals is not None:
            if seals.finish(result.head_seq) is not None:
                return _seal_problem(result, seals)
            result = attrs.evolve(result, seals=seals.summary())
        else:
            result = attrs.evolve(result, seals=unsealed)
            stray = next(iter(store.seal_rows()), None) if sealing is None else None
            if stray is not None:
                # se-flow never removes its sealing settings (a trigger refuses it): seals
                # without them mean they were removed, which would silence this very line.
                return attrs.evolve(
                    result,
                    ok=False,
                    problem=(
                        f"events are sealed (from event {stray.seq}) but the database's "
                        "sealing settings are gone: removed behind se-flow's back; give the "
                        "verification key (--key) to check the seals"
                    ),
                )
        if unreadable:
            seq, why = unreadable[0]
            return attrs.evolve(result, ok=False, bad_seq=seq, problem=why)
        for one in kept:
            if one.seq:
                rolled_back = _checkpoint_problem(result, one, seen.get(one.seq))
                if rolled_back is not None:
                    return rolled_back
        if len(kept) > 1:
            last = max(kept, key=lambda one: (one.seq, one.taken_at))
            result = attrs.evolve(
                result,
                checkpoints=(
                    f"{len(kept)} checkpoints hold (the latest of event {last.seq}, taken "
                    f"{last.taken_at.isoformat()}): the log was only appended to since each, "
                    "never rolled back"
                ),
            )
        if texts.finish() is not None:
            return _text_problem(result, texts)
        if texts.present or texts.erased:
            result = attrs.evolve(result, texts=texts.summary(), erased_texts=texts.erased)
        problem_seq, problem = records.finish()
        try:
            if problem is None:
                problem = staff_mismatch(store.list_staff(), replay_staff(staff_events))
            if problem is None:
                problem = _settings_problem(store, staff_events)
            if problem is None:
                problem_seq, problem = _case_table_problem(store, workflow, programmes)
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"the log cannot be replayed: {exc!r}"
        if problem is not None:
            return attrs.evolve(result, ok=False, bad_seq=problem_seq, problem=problem)
        return result


def _text_problem(result: Verification, texts: TextCheck) -> Verification:
    return attrs.evolve(result, ok=False, bad_seq=texts.bad_seq, problem=texts.problem)


def _settings_problem(store: Store, events: Iterable[Event]) -> str | None:
    """The settings kept beside the log (shared terminal, checkpoint file) against the log's
    last `setting` event: a setting changed behind the log's back is named."""
    stored, logged = store.read().settings(), replay_settings(events)
    if stored == logged:
        return None
    return (
        f"the database's settings say {stored.to_json()}, but the log's setting events say "
        f"{logged.to_json()}: they were changed behind the log's back"
    )


def _seal_problem(result: Verification, seals: SealCheck) -> Verification:
    return attrs.evolve(
        result,
        ok=False,
        bad_seq=seals.bad_seq,
        bad_epoch=seals.bad_epoch,
        problem=seals.problem,
        seals=f"seals checked with the verification key: {seals.checked} verified before it failed",
    )


def _checkpoint_problem(
    result: Verification, checkpoint: Checkpoint, seen: str | None
) -> Verification | None:
    if result.head_seq < checkpoint.seq:
        return attrs.evolve(
            result,
            ok=False,
            bad_seq=result.head_seq + 1,
            problem=(
                f"the log ends at event {result.head_seq} but the checkpoint taken "
                f"{checkpoint.taken_at.isoformat()} saw event {checkpoint.seq}: events "
                f"{result.head_seq + 1} to {checkpoint.seq} were removed (the log was "
                "truncated, or the database rolled back to an older copy)"
            ),
        )
    if seen != checkpoint.hash:
        return attrs.evolve(
            result,
            ok=False,
            bad_seq=checkpoint.seq,
            problem=(
                f"event {checkpoint.seq} is not the event the checkpoint saw (its hash "
                "differs): the history up to the checkpoint was rewritten"
            ),
        )
    return None


def _case_table_problem(
    store: Store, workflow: Workflow, programmes: Sequence[Programme] | None
) -> tuple[int | None, str | None]:
    """Replay each case's events (streamed case by case, so memory stays flat) and compare
    with the case table, which reads trust, and with the case's due projection rows
    (`_standards.project`): a case or row changed behind the log's back is named; with
    `programmes`, its milestone events too."""
    replayed = due_rows = 0
    # For milestones counted once per participant: every case's milestone events, by the
    # participant, read in a first pass (only those events are kept).
    participants: dict[str, str] = {}
    milestones: dict[str, list[Event]] = {}
    if programmes is not None:
        for e in store.events_by_case():
            assert e.case_id is not None
            if e.kind in (EventKind.REFERRAL, EventKind.REOPEN):
                participants[e.case_id] = str(e.payload.get("participant_id"))
            elif e.kind == EventKind.MILESTONE:
                milestones.setdefault(e.case_id, []).append(e)
    for case_id, group in itertools.groupby(store.events_by_case(), key=lambda e: e.case_id):
        assert case_id is not None
        events = list(group)
        if programmes is not None and any(e.kind == EventKind.ENROL for e in events):
            who = participants.get(case_id)
            others = {
                other: found
                for other, found in milestones.items()
                if other != case_id and participants.get(other) == who
            }
            wrong = log_problem(workflow, programmes, events, others)
            if wrong is not None:
                return wrong
        found = replay_cases(workflow, events)[case_id]
        # Reopen events written before they carried the episode cannot say it.
        episode_known = all(e.kind != EventKind.REOPEN or "episode" in e.payload for e in events)
        replayed += 1
        try:
            stored: Case | None = store.case(case_id)
        except CaseNotFound:
            stored = None
        problem = case_mismatch(stored, found, episode_known=episode_known)
        if problem:
            return None, problem
        if workflow.standards:
            history = case_history(
                case_id,
                found.coach,
                found.closed_at.date() if found.closed_at else None,
                events,
                workflow,
            )
            due = project(history, workflow.standards, workflow.calendar)
            due_rows += len(due)
            problem = due_row_mismatch(case_id, store.due_rows(case_id), due)
            if problem:
                return None, problem
    total = store.count_cases()
    if total != replayed:
        return None, f"the case table holds {total} cases but the log has events for {replayed}"
    held = store.count_due_rows()
    if held != due_rows:
        return None, (
            f"the due table holds {held} rows but the log says {due_rows}: rows were added "
            "behind the log's back"
        )
    return None, None
