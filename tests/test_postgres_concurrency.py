"""Many OS processes writing to one PostgreSQL database at once: one gapless chain that
verifies, every acknowledged command in it exactly once, case numbers dense, and commands on
the same case waiting for each other rather than conflicting."""

from __future__ import annotations

import collections
import multiprocessing as mp
from typing import Any

from pg import pg_server, pg_url

import se_flow

__all__ = ["pg_server", "pg_url"]

WRITERS = 8
COMMANDS = 200
REFERRALS = 5
"""Of each writer's commands, this many are referrals (new case numbers under contention)."""
SHARED = "C-1"


def _writer(url: str, me: int, barrier: Any, results: Any) -> None:
    acked: list[str] = []
    try:
        with se_flow.open(url, actor="sam", busy_timeout=60) as flow:
            barrier.wait(timeout=60)
            mine = [flow.refer(f"Person {me}-{n}", source="GP").case.id for n in range(REFERRALS)]
            for n in range(COMMANDS - REFERRALS):
                # Every other command on the one case all writers share: they must queue on it.
                case_id = SHARED if n % 2 else mine[n % REFERRALS]
                text = f"w{me}-{n}"
                flow.record(case_id, "note", text=text)
                acked.append(text)
        results.put(("ok", me, mine, acked))
    except Exception as exc:  # reported, so the test shows what went wrong
        results.put(("error", me, f"{type(exc).__name__}: {exc}", acked))


def test_eight_processes_make_one_gapless_chain(pg_url: str) -> None:
    with se_flow.open(pg_url, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        assert flow.refer("Shared", source="GP", actor="sam").case.id == SHARED
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(pg_url, me, barrier, results)) for me in range(WRITERS)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o for o in outcomes if o[0] != "ok"]
    assert not errors, errors

    with se_flow.open(pg_url, actor="ada") as flow:
        verification = flow.verify()
        assert verification.ok, verification.problem
        rows = list(flow.store.event_rows())
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) == 3 + WRITERS * COMMANDS
        # Dense case numbers: C-1 .. C-n, none skipped or given twice.
        nums = sorted(int(c.id[2:]) for c in flow.cases(limit=10_000))
        assert nums == list(range(1, 2 + WRITERS * REFERRALS))
        referred = [case_id for o in outcomes for case_id in o[2]]
        assert len(set(referred)) == len(referred) == WRITERS * REFERRALS
        # Every acknowledged note is in the log once; nothing else is.
        notes = collections.Counter(
            str(r.fields["text"])
            for c in flow.cases(limit=10_000)
            for r in flow.store.records(c.id)
            if r.kind == "note"
        )
        acked = collections.Counter(text for o in outcomes for text in o[3])
        assert notes == acked
        assert max(notes.values()) == 1
        # The shared case took every writer's notes in turn: its version counts them all.
        shared = flow.case(SHARED)
        assert shared.version == 1 + WRITERS * sum(n % 2 for n in range(COMMANDS - REFERRALS))
