"""The hash chain: how an event is sealed and how a chain of them is verified. No I/O.

Each event's `hash` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of every
other field, `seq` and `prev_hash` included; `prev_hash` is the previous event's hash (64 zeros
for the first). An edit changes a hash; a deletion, insertion or swap breaks a seq or prev_hash
link; the first event that does not fit is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._model import Event, GuardResult, Override, Verification

__all__ = ["GENESIS", "canonical", "event_from_row", "event_to_row", "seal", "verify_chain"]

GENESIS = "0" * 64

# The columns of an event, in the order the store keeps them.
FIELDS = (
    "seq",
    "case_id",
    "kind",
    "trigger",
    "from_state",
    "to_state",
    "from_phase",
    "to_phase",
    "actor",
    "role",
    "effective_at",
    "recorded_at",
    "reason",
    "guards",
    "override",
    "workflow_hash",
    "payload",
    "prev_hash",
    "hash",
)
JSON_FIELDS = ("guards", "override", "payload")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ts(value: dt.datetime) -> str:
    return value.isoformat()


def event_to_row(draft: Any, seq: int, prev_hash: str) -> dict[str, Any]:
    """The stored row of an event (JSON fields as canonical text), `hash` filled in.

    `draft` is anything with the event's attributes (an `EventDraft` or an `Event`)."""
    row: dict[str, Any] = {
        "seq": seq,
        "case_id": draft.case_id,
        "kind": draft.kind,
        "trigger": draft.trigger,
        "from_state": draft.from_state,
        "to_state": draft.to_state,
        "from_phase": draft.from_phase,
        "to_phase": draft.to_phase,
        "actor": draft.actor,
        "role": draft.role,
        "effective_at": _ts(draft.effective_at),
        "recorded_at": _ts(draft.recorded_at),
        "reason": draft.reason,
        "guards": canonical([g.to_json() for g in draft.guards]),
        "override": canonical(
            {"by": draft.override.by, "reason": draft.override.reason} if draft.override else None
        ),
        "workflow_hash": draft.workflow_hash,
        "payload": canonical(dict(draft.payload)),
        "prev_hash": prev_hash,
    }
    row["hash"] = row_hash(row)
    return row


def row_hash(row: Mapping[str, Any]) -> str:
    body = {k: row[k] for k in FIELDS if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def seal(draft: Any, seq: int, prev_hash: str) -> Event:
    return event_from_row(event_to_row(draft, seq, prev_hash))


def event_from_row(row: Mapping[str, Any]) -> Event:
    override = json.loads(row["override"]) if row["override"] else None
    return Event(
        seq=row["seq"],
        case_id=row["case_id"],
        kind=row["kind"],
        trigger=row["trigger"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        from_phase=row["from_phase"],
        to_phase=row["to_phase"],
        actor=row["actor"],
        role=row["role"],
        effective_at=dt.datetime.fromisoformat(row["effective_at"]),
        recorded_at=dt.datetime.fromisoformat(row["recorded_at"]),
        reason=row["reason"],
        guards=tuple(GuardResult.from_json(g) for g in json.loads(row["guards"] or "[]")),
        override=Override(**override) if override else None,
        workflow_hash=row["workflow_hash"],
        payload=json.loads(row["payload"] or "{}"),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def verify_chain(
    rows: Iterable[Mapping[str, Any]], *, start_seq: int = 1, start_hash: str = GENESIS
) -> Verification:
    """Walk stored rows in seq order; report the first that does not fit, and why."""
    expected_seq, prev = start_seq, start_hash
    count = 0
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            why = (
                f"event {expected_seq} is missing (next found is {seq})"
                if seq > expected_seq
                else f"event {seq} is out of order (expected {expected_seq})"
            )
            return Verification(False, count, expected_seq - 1, prev, seq, why)
        if row["prev_hash"] != prev:
            return Verification(
                False,
                count,
                seq - 1,
                prev,
                seq,
                "its prev_hash does not match the event before it "
                "(an event was inserted, removed or moved)",
            )
        actual = row_hash(row)
        if actual != row["hash"]:
            return Verification(
                False,
                count,
                seq - 1,
                prev,
                seq,
                "its content does not match its hash (the event was altered)",
            )
        count += 1
        expected_seq, prev = seq + 1, row["hash"]
    return Verification(True, count, expected_seq - 1, prev)
