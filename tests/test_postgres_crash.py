"""The server stopped with `pg_ctl stop -m immediate` (no shutdown checkpoint: recovery from the
WAL) while writers run, then restarted: every command a writer was told succeeded is there,
and the chain verifies."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg import Cluster, create_database, start_cluster

import se_flow

WRITERS = 4


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed")
    own = start_cluster()
    try:
        yield own
    finally:
        own.remove()


def _writer(url: str, case_id: str, acks: str, started: Any) -> None:
    with se_flow.open(url, actor="sam", busy_timeout=5) as flow, Path(acks).open("a") as out:
        started.release()
        n = 0
        while True:
            text = f"{Path(acks).stem}-{n}"
            try:
                flow.record(case_id, "note", text=text)
            except se_flow.SEFlowError:
                return  # the server went away: this one was not acknowledged
            out.write(text + "\n")
            out.flush()
            n += 1


def test_an_immediate_stop_loses_nothing_acknowledged(cluster: Cluster, tmp_path: Path) -> None:
    url = create_database(cluster.url)
    with se_flow.open(url, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        cases = [flow.refer(f"P {n}", source="GP", actor="sam").case.id for n in range(WRITERS)]
    ctx = mp.get_context("spawn")
    started = ctx.Semaphore(0)
    procs = [
        ctx.Process(target=_writer, args=(url, cases[n], str(tmp_path / f"w{n}.acks"), started))
        for n in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert started.acquire(timeout=60)
    time.sleep(1.5)
    cluster.stop("immediate")
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    cluster.start()

    acked = [line for n in range(WRITERS) for line in (tmp_path / f"w{n}.acks").read_text().split()]
    assert acked, "no writer got a command in before the stop"
    with se_flow.open(url, actor="ada") as flow:
        verification = flow.verify()
        assert verification.ok, verification.problem
        kept = [
            str(r.fields["text"])
            for case_id in cases
            for r in flow.store.records(case_id)
            if r.kind == "note"
        ]
        assert set(acked) <= set(kept)
        assert len(kept) == len(set(kept))
        # Writing goes on after recovery, on the same chain.
        flow.record(cases[0], "note", text="after", actor="sam")
        assert flow.verify().ok
