"""Two OS processes race to move the same case: exactly one wins, the other is told it lost,
and the log holds exactly one event for the move."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import se_flow


def _racer(path: str, case_id: str, trigger: str, barrier: Any, results: Any) -> None:
    with se_flow.open(path, actor="sam", busy_timeout=30) as flow:
        seen = flow.case(case_id).version
        barrier.wait(timeout=30)
        try:
            flow.advance(case_id, trigger, expected_version=seen)
            results.put("won")
        except se_flow.CaseConflict as lost:
            results.put(f"conflict:{lost.case_id}")
        except Exception as other:  # reported, so the test shows what went wrong
            results.put(f"error:{type(other).__name__}:{other}")


def _race(path: Path, case_id: str, trigger: str) -> list[str]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(str(path), case_id, trigger, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcome = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcome


def test_two_processes_race_one_wins_one_conflicts(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    with se_flow.open(path, actor="sam") as flow:
        flow.add_staff("sam", "Sam", "coach")
        cases = [flow.refer(f"Person {n}", source="GP").case.id for n in range(3)]
    for case_id in cases:
        outcome = _race(path, case_id, "engage")
        assert outcome == ["conflict:" + case_id, "won"]
    with se_flow.open(path, actor="sam") as flow:
        for case_id in cases:
            history = flow.history(case_id)
            assert [e.trigger for e in history] == ["referral", "engage"]
            assert flow.case(case_id).version == len(history) == 2
        verification = flow.verify()
        assert verification.ok
        assert verification.events == 1 + 3 + 3  # staff, three referrals, three moves
