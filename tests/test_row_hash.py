"""An event's hash is SHA-256 over the canonical JSON of its row: the bytes never change.

`row_hash` writes that text itself (the keys are fixed) rather than encoding a dict per event;
these pin it to the canonical encoding (`_audit.canonical_body`) for any row values, and to a
hash computed before it was written that way, so every existing log still verifies."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

from se_flow._audit import (
    FIELDS,
    canonical,
    canonical_body,
    event_to_row,
    json_encoding,
    row_hash,
    seal,
)
from se_flow._loader import load_workflow
from se_flow._model import EventDraft, GuardResult, Override
from se_flow._rows import _fields_of
from se_flow._texts import split

# Text that JSON must escape or keep as is: quotes, backslashes, controls, non-ASCII, U+2028.
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
values = st.none() | texts | st.integers(min_value=-(2**70), max_value=2**70)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_is_json_dumps_with_sorted_keys_and_no_spaces(value: Any) -> None:
    # `canonical` drives the C encoder itself: the text must stay `json.dumps`'s.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(value) == expected


@given(json_values)
def test_a_reused_encoder_writes_what_json_dumps_writes(value: Any) -> None:
    # The records table's fields: `json.dumps(..., sort_keys=True)`'s text, ASCII only.
    assert json_encoding(json.JSONEncoder(sort_keys=True))(value) == json.dumps(
        value, sort_keys=True
    )


@given(st.fixed_dictionaries({k: values for k in FIELDS}))
def test_the_hash_is_sha256_of_the_canonical_row(row: dict[str, Any]) -> None:
    expected = hashlib.sha256(canonical_body(row).encode("utf-8")).hexdigest()
    assert row_hash(row) == expected


verdict_values = texts | st.booleans() | st.integers(min_value=0, max_value=1)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"guard": texts, "passed": verdict_values, "reason": texts, "soft": verdict_values}
        ),
        max_size=4,
    )
)
def test_the_guards_field_is_the_canonical_json_of_the_verdicts(verdicts: list[Any]) -> None:
    # The guards' text is written by hand for plain verdicts; it must stay `canonical`'s, and
    # a verdict holding anything else (here a number for a boolean) is written the same way.
    guards = tuple(GuardResult(title=v["guard"][::-1], **v) for v in verdicts)
    row = event_to_row(attrs.evolve(_draft(), guards=guards), 1, "0" * 64)
    assert row["guards"] == canonical([g.to_json() for g in guards])


def _draft() -> EventDraft:
    return EventDraft(
        case_id="C-7",
        kind="transition",
        actor="sam",
        role="coach",
        effective_at=dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC),
        recorded_at=dt.datetime(2026, 6, 1, 9, 0, 30, tzinfo=dt.UTC),
        workflow_hash="ab" * 32,
        trigger="start_job_search",
        from_state="vocational_profiling",
        to_state="employer_engagement",
        reason='Said "yes" — café\n\ttab \u2028 \x01',
        guards=(
            GuardResult(guard="g", passed=False, reason='a "quoted" ünïcode', soft=True, title="T"),
        ),
        override=Override(by="lee", reason="ok"),
        payload={"z": 1, "a": [None, True, 1.5, "é"]},
    )


def test_an_event_hashes_as_it_did_before_the_hash_was_written_by_hand() -> None:
    row = event_to_row(_draft(), 12345678901234, "f" * 64)
    # Computed by se-flow 0.1 (c850958), which hashed json.dumps of the row as a dict.
    assert row["hash"] == "d52401cd0d215d09ba998d0de53b16778682ddd281b50a1c03d290307b41b9e5"


def test_a_sealed_event_shows_its_texts_and_its_row_holds_their_hashes() -> None:
    draft = _draft()
    kept = split(draft, None, load_workflow(), lambda: b"\x01" * 16)
    event, row = seal(draft, 9, "e" * 64, kept.stored)
    assert (event.reason, event.override) == (draft.reason, draft.override)
    assert event.texts == kept.stored["texts"] and set(event.texts) == {"reason", "override.reason"}
    assert (row["reason"], row["override"]) == (None, '{"by":"lee"}')
    assert json.loads(row["texts"]) == dict(event.texts)
    assert (event.seq, event.prev_hash, event.hash) == (9, "e" * 64, row["hash"])
    assert row == event_to_row(attrs.evolve(draft, **kept.stored), 9, "e" * 64)


def test_a_row_made_before_its_place_was_known_seals_as_one_made_after() -> None:
    # The PostgreSQL store encodes the row once, before the server hands out its place.
    draft = _draft()
    early = event_to_row(draft, 0, "0" * 64)
    assert seal(draft, 42, "d" * 64, row=early) == seal(draft, 42, "d" * 64)


def test_equal_instants_in_other_zones_keep_their_own_text() -> None:
    # Times written are remembered by identity, never by equality: 09:00 UTC equals 10:00 at
    # +01:00, but each is stored as it was given, in either order, however often.
    utc = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
    plus_one = utc.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert utc == plus_one
    for first, second in ((utc, plus_one), (plus_one, utc), (utc, utc)):
        row = event_to_row(attrs.evolve(_draft(), effective_at=first, recorded_at=second), 1, "0")
        assert (row["effective_at"], row["recorded_at"]) == (first.isoformat(), second.isoformat())


@given(json_values, st.sampled_from(["", " ", "\n\t"]))
def test_stored_record_fields_read_as_json_loads_reads_them(value: Any, space: str) -> None:
    # `_rows` reads a record's fields with the C scanner alone; text it does not fit whole
    # (whitespace around it, bad JSON) is read, or refused, by `json.loads` itself.
    text = json.dumps(value, sort_keys=True)
    for stored in (text, space + text + space):
        # Compared as text: NaN is never equal to itself.
        assert json.dumps(_fields_of(stored)) == json.dumps(json.loads(stored))
    with pytest.raises(json.JSONDecodeError):
        _fields_of(text + ",")
