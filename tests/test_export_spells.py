"""The stage_histories writer builds its CSV lines itself (issue: export throughput): these tests
hold it to the bytes the earlier writer made (the spells of `_projections` as it was, row by row
through the export's CSV writer), on crafted event rows of every shape and on real stores."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import operator
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import START
from hypothesis import given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url
from test_export import Caseload

import se_flow
from se_flow import _export
from se_flow._csv_cells import csv_text, defused
from se_flow._projections import SPELL_COLUMNS, SPELL_KINDS, StageEvent, spells
from se_flow.contract import WORKFLOW
from se_flow.ports import Store

__all__ = ["pg_server", "pg_url"]  # fixtures

FINAL = "closed"
TODAY = dt.date(2026, 6, 1)


# --- the earlier writer, kept here as it was: the reference ---------------------------------


def _old_day(text: str) -> dt.date:
    if text.endswith("+00:00"):
        return dt.date.fromisoformat(text[:10])
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).date()


def _old_spells(events: Iterable[tuple[Any, ...]], final: str) -> Iterator[tuple[Any, ...]]:
    held: tuple[Any, ...] | None = None
    for seq, kind, trigger, stage, phase, at, actor in events:
        if kind not in SPELL_KINDS:
            continue
        if held is None or kind == "resume":
            status = "active"
        elif kind == "pause":
            status = "paused"
        elif kind == "transition" and stage != held[1]:
            status = "active"
        else:
            status = held[3]
        number = 1
        if held is not None:
            if stage == held[1] and phase == held[2] and status == held[3]:
                continue
            yield (*held, at, trigger, seq)
            number = held[0] + 1
            held = None
        if stage is not None and stage != final:
            held = (number, stage, phase, status, at, trigger, actor, seq)
    if held is not None:
        yield (*held, None, None, None)


def _old_rows(
    rows: Iterable[tuple[Any, ...]],
    final: str,
    today: dt.date,
    since: dt.datetime | None = None,
    before: dt.datetime | None = None,
) -> Iterator[tuple[Any, ...]]:
    """What `_export._spell_rows` yielded: `rows` as `event_table` gives them to it."""
    cut = operator.itemgetter(slice(3, None))
    for case_id, group in itertools.groupby(rows, key=operator.itemgetter(2)):
        first = next(group)
        participant, episode = first[0], first[1]
        for s in _old_spells(map(cut, itertools.chain((first,), group)), final):
            number, stage, phase, status, entered, trigger_in, actor, seq_in = s[:8]
            left, trigger_out, seq_out = s[8:]
            if before is not None and dt.datetime.fromisoformat(entered) >= before:
                continue
            if since is not None and left is not None and dt.datetime.fromisoformat(left) < since:
                continue
            end = _old_day(left) if left else today
            yield (
                case_id,
                participant,
                episode,
                number,
                stage,
                phase,
                status,
                entered,
                left,
                (end - _old_day(entered)).days,
                trigger_in,
                trigger_out,
                actor,
                seq_in,
                seq_out,
            )


def _old_csv(rows: Iterable[tuple[Any, ...]]) -> str:
    """The earlier CSV writer: every row defused, through `csv.writer`."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(SPELL_COLUMNS)
    writer.writerows(map(defused, rows))
    return out.getvalue()


def _old_jsonl(rows: Iterable[tuple[Any, ...]]) -> str:
    return "".join(
        json.dumps(dict(zip(SPELL_COLUMNS, row, strict=True)), ensure_ascii=False) + "\n"
        for row in rows
    )


# --- crafted event rows ---------------------------------------------------------------------


class _Rows:
    """A store that only scans: `event_table` gives the rows it was made with."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def case(self, case_id: str) -> None:
        return None

    def event_table(self, **_: Any) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


def _selection(
    since: dt.datetime | None = None, before: dt.datetime | None = None
) -> _export._Selection:
    return _export._Selection(
        since=since, before=before, case_id=None, coach=None, stage=None, status=None, asked={}
    )


def _new_csv(rows: list[tuple[Any, ...]], sel: _export._Selection) -> str:
    store: Any = _Rows(rows)
    table = _export._open_table(
        "stage_histories", store, WORKFLOW, sel, TODAY, False, as_json=False
    )
    out = io.StringIO(newline="")
    assert _export._write_csv(out, table, None) == len(
        list(_old_rows(rows, FINAL, TODAY, sel.since, sel.before))
    )
    return out.getvalue()


def _new_jsonl(rows: list[tuple[Any, ...]], sel: _export._Selection) -> str:
    store: Any = _Rows(rows)
    table = _export._open_table("stage_histories", store, WORKFLOW, sel, TODAY, False, as_json=True)
    out = io.StringIO(newline="")
    _export._write_jsonl(out, table, None)
    return out.getvalue()


def at(day: int, hour: int = 9, micro: int = 0, zone: int = 0) -> str:
    tz = dt.timezone(dt.timedelta(hours=zone)) if zone else dt.UTC
    return dt.datetime(2026, 3, day, hour, 0, 0, micro, tzinfo=tz).isoformat()


RISKY = ["=SUM(A1)", "+1", "-2", "@x", "\tx", "\rx", "a,b", 'say "hi"', "two\nlines", "'q", ""]


def _case(
    case_id: str, participant: str, episode: int, events: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    return [(participant, episode, case_id, *e) for e in events]


CRAFTED = [
    # pause, resume, a phase, a transition that changes nothing, a record passed over, close
    *_case(
        "C-1",
        "P-1",
        1,
        [
            (1, "referral", "referral", "referred", None, at(1), "sam"),
            (2, "transition", "engage", "customer_engagement", None, at(2), "sam"),
            (3, "record", None, "customer_engagement", None, at(3), "sam"),
            (4, "pause", "pause", "customer_engagement", None, at(4, micro=5), "=kim"),
            (5, "phase", "note", "customer_engagement", "x", at(5), "sam"),
            (6, "resume", "resume", "customer_engagement", "x", at(6, zone=-5), "sam"),
            (7, "transition", "stay", "customer_engagement", "x", at(7), "sam"),
            (8, "transition", "start_job", "in_work_support", "in_work_support", at(8), "+lee"),
            (9, "phase", "progress", "in_work_support", "career,development", at(12), "sam"),
            (10, "transition", "close", FINAL, None, at(20, zone=3), "sam"),
        ],
    ),
    # reopened: a new case, episode 2; still open (days to today)
    *_case(
        "C-2",
        "@P-2",
        2,
        [(11, "reopen", "reopen", "referred", None, at(22, 23, zone=-2), "-x")],
    ),
    # a paused case, paused again while paused, and events after the final state
    *_case(
        "=C-3",
        '"P,3"',
        1,
        [
            (12, "referral", "\tin", "-stage", "@phase", at(1), "\rsam"),
            (13, "pause", "pause", "-stage", "@phase", at(2), "a\nb"),
            (14, "pause", "pause", "-stage", "@phase", at(3), "sam"),
            (15, "transition", "close", FINAL, None, at(4), "sam"),
            (16, "transition", "again", "referred", None, at(5), "sam"),
            (17, "transition", "none", None, None, at(6), "sam"),
            (18, "resume", "resume", "referred", None, at(7), "sam"),
        ],
    ),
]


@pytest.mark.parametrize(
    "since, before",
    [
        (None, None),
        (dt.datetime(2026, 3, 5, tzinfo=dt.UTC), None),
        (None, dt.datetime(2026, 3, 6, 14, tzinfo=dt.UTC)),
        (dt.datetime(2026, 3, 4, tzinfo=dt.UTC), dt.datetime(2026, 3, 8, tzinfo=dt.UTC)),
    ],
)
def test_crafted_histories_come_out_as_the_earlier_writer_wrote_them(
    since: dt.datetime | None, before: dt.datetime | None
) -> None:
    sel = _selection(since, before)
    old = list(_old_rows(CRAFTED, FINAL, TODAY, since, before))
    assert old, "the filters leave something to compare"
    assert _new_csv(CRAFTED, sel) == _old_csv(old)
    assert _new_jsonl(CRAFTED, sel) == _old_jsonl(old)


def test_the_crafted_history_holds_every_kind_of_cell_that_needs_care() -> None:
    text = _old_csv(_old_rows(CRAFTED, FINAL, TODAY))
    for needs in ("'=kim", "'+lee", "'-x", "'@P-2", "'=C-3", '"""P,3"""', '"career,development"'):
        assert needs in text, needs
    assert '"\'\rsam"' in text and '"a\nb"' in text and "'\tin" in text


def test_each_cell_is_what_the_csv_writer_writes_of_it_defused() -> None:
    for cell in [*RISKY, None, "plain", "=a,b", '"', "\r\n", " lead", "é,ü"]:
        out = io.StringIO(newline="")
        csv.writer(out).writerow(defused([cell, "x"]))
        assert out.getvalue() == csv_text(cell) + ",x\r\n", repr(cell)


_TEXTS = st.sampled_from([*RISKY, "referred", "a", "b", "sam"])
_STAGES = st.sampled_from(["referred", "customer_engagement", "-risky", FINAL, None])


@st.composite
def _histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    seq = 0
    for n in range(draw(st.integers(0, 4))):
        case_id = draw(st.sampled_from([f"C-{n}", f"=C-{n}", f"C,{n}"]))
        participant = draw(_TEXTS)
        episode = draw(st.integers(1, 3))
        for _ in range(draw(st.integers(0, 8))):
            seq += draw(st.integers(1, 3))
            kind = draw(st.sampled_from([*SPELL_KINDS, "record"]))
            at_text = at(
                draw(st.integers(1, 28)),
                draw(st.integers(0, 23)),
                draw(st.sampled_from([0, 1, 999999])),
                draw(st.sampled_from([0, 0, -11, 14])),
            )
            rows.append(
                (
                    participant,
                    episode,
                    case_id,
                    seq,
                    kind,
                    draw(st.one_of(st.none(), _TEXTS)),
                    draw(_STAGES),
                    draw(st.one_of(st.none(), st.sampled_from(["p", "q", "=p"]))),
                    at_text,
                    draw(_TEXTS),
                )
            )
    return rows


@settings(max_examples=300, deadline=None)
@given(_histories())
def test_any_history_comes_out_as_the_earlier_writer_wrote_it(rows: list[tuple[Any, ...]]) -> None:
    sel = _selection()
    old = list(_old_rows(rows, FINAL, TODAY))
    assert _new_csv(rows, sel) == _old_csv(old)
    assert _new_jsonl(rows, sel) == _old_jsonl(old)
    # The projection's own spells are those spells too.
    for _, group in itertools.groupby(rows, key=operator.itemgetter(2)):
        events = [StageEvent(*r[3:]) for r in group]
        assert [tuple(s) for s in spells(events, FINAL)] == list(_old_spells(events, FINAL))


def test_the_cell_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_export, "_CELLS_KEPT", 3)
    rows = [
        (f"P-{i}", 1, f"C-{i}", i, "referral", f"t{i}", "referred", None, at(1 + i % 20), f"a{i}")
        for i in range(50)
    ]
    assert _new_csv(rows, _selection()) == _old_csv(_old_rows(rows, FINAL, TODAY))


# --- real stores ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def store_flow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[se_flow.SEFlow]:
    store: Store
    if request.param == "sqlite":
        store = se_flow.SQLiteStore(tmp_path / "t.db", WORKFLOW)
    elif request.param == "memory":
        store = se_flow.MemoryStore(WORKFLOW)
    else:
        url = request.getfixturevalue("pg_url")
        from se_flow._postgres import PostgresStore

        store = PostgresStore(url, WORKFLOW)
    with se_flow.SEFlow(store, WORKFLOW, actor="sam", clock=lambda: START) as flow:
        for who, role in [
            ("ada", "admin"),
            ("lee", "team_leader"),
            ("sam", "coach"),
            ("kim", "coach"),
            ("ava", "auditor"),
        ]:
            flow.add_staff(who, who.title(), role, actor="ada")
        yield flow


def _varied(flow: se_flow.SEFlow) -> None:
    """The export tests' caseload (pauses, jobs, a withdrawal and reopening), a closed case,
    an erased free text, and an auditor who may not see texts."""
    load = Caseload(flow)
    flow.erase_text(
        next(e.seq for e in flow.history(load.cal) if e.kind == "pause"),
        "reason",
        reason="asked",
        actor="ada",
    )
    gone = flow.refer("Di =Ellis", source="GP", coach="kim", actor="kim").case.id
    flow.withdraw(gone, reason="+moved away", actor="kim")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_every_store_exports_the_stage_histories_the_earlier_writer_did(
    store_flow: se_flow.SEFlow, tmp_path: Path, fmt: str
) -> None:
    flow = store_flow
    _varied(flow)
    events = list(
        flow.store.event_table(
            kinds=SPELL_KINDS,
            by_case=True,
            columns=_export._SPELL_COLUMNS,
            case_columns=("participant_id", "episode"),
        )
    )
    old = list(_old_rows(events, flow.workflow.final, START.date()))
    assert {r[6] for r in old} == {"active", "paused"} and len({r[0] for r in old}) == 5
    out = tmp_path / "out"
    manifest = flow.export(out, fmt=fmt, actor="ava")
    assert manifest.rows["stage_histories"] == len(old)
    if fmt == "json":
        bundle = (out / "export.json").read_text(encoding="utf-8")
        got = bundle.split('"stage_histories": [\n', 1)[1].split("\n]", 1)[0]
        assert got == ",\n".join(_old_jsonl(old).splitlines())
    else:
        data = (out / f"stage_histories.{fmt}").read_bytes()
        want = (_old_csv(old) if fmt == "csv" else _old_jsonl(old)).encode("utf-8")
        assert data == want
        assert (
            manifest.files[f"stage_histories.{fmt}"]["sha256"] == hashlib.sha256(want).hexdigest()
        )
    assert flow.verify_export(out).ok
