"""Processes racing one command id on PostgreSQL: one event, and every racer gets the answer
the one that won made (a retry after an ambiguous commit, sent while the first is in flight)."""

from __future__ import annotations

import collections
import multiprocessing as mp
from typing import Any

from pg import pg_server, pg_url

import se_flow

__all__ = ["pg_server", "pg_url"]

RACERS = 6
ROUNDS = 10


def _racer(url: str, barrier: Any, results: Any) -> None:
    answers: list[tuple[str, Any]] = []
    try:
        with se_flow.open(url, actor="sam", busy_timeout=60) as flow:
            for n in range(ROUNDS):
                barrier.wait(timeout=60)
                case = flow.refer(f"Person {n}", source="GP", command_id=f"refer-{n}").case
                answers.append((f"refer-{n}", case))
                barrier.wait(timeout=60)
                note = flow.record("C-1", "note", text=f"round {n}", command_id=f"note-{n}")
                answers.append((f"note-{n}", note.record.seq))
        results.put(("ok", answers))
    except Exception as exc:  # reported, so the test shows what went wrong
        results.put(("error", f"{type(exc).__name__}: {exc}"[-300:]))


def test_racing_one_command_id_appends_one_event(pg_url: str) -> None:
    with se_flow.open(pg_url, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        flow.refer("Shared", source="GP", actor="sam")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(pg_url, barrier, results)) for _ in range(RACERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o for o in outcomes if o[0] != "ok"]
    assert not errors, "\n".join(str(e) for e in errors)

    with se_flow.open(pg_url, actor="ada") as flow:
        verification = flow.verify()
        assert verification.ok, verification.problem
        rows = list(flow.store.event_rows())
        ids = collections.Counter(r["command_id"] for r in rows if r["command_id"] is not None)
        assert ids == {f"{what}-{n}": 1 for n in range(ROUNDS) for what in ("refer", "note")}
        assert len(rows) == 3 + 2 * ROUNDS
        assert flow.store.count_cases() == 1 + ROUNDS
    # Every racer was told the same: the case or record the one event made.
    answers: dict[str, set[Any]] = collections.defaultdict(set)
    for _, mine in outcomes:
        for command_id, answer in mine:
            answers[command_id].add(answer)
    assert all(len(told) == 1 for told in answers.values()), answers
