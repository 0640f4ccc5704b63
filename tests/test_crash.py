"""A writer killed (SIGKILL: no clean-up, no exit handlers) at random moments while it
writes: after every kill the database opens, is intact, the chain verifies, and every write
the writer saw return is there."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import se_flow

KILLS = 30
SEED = 20260601

# The child refers cases and records notes on them as fast as it can; after each call returns
# it appends an ack to the side file and fsyncs it, so an ack on disk means "acknowledged".
WRITER = """
import os, sys
import se_flow

path, acks = sys.argv[1], sys.argv[2]
fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def ack(line):
    os.write(fd, (line + "\\n").encode())
    os.fsync(fd)

with se_flow.open(path, actor="sam", create=False) as flow:
    print("ready", flush=True)
    n = 0
    while True:
        case = flow.refer(f"Person {n}", source="GP").case
        ack(f"case {case.id}")
        record = flow.record(case.id, "note", text=f"note {n}").record
        ack(f"record {record.seq}")
        with flow.batch():
            ids = [flow.refer(f"Batch {n}.{i}", source="GP").case.id for i in range(3)]
        for case_id in ids:
            ack(f"case {case_id}")
        n += 1
"""


def test_a_writer_killed_at_random_moments_loses_nothing_it_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crash.db"
    acks = tmp_path / "acks.txt"
    with se_flow.open(path, actor="sam") as flow:
        flow.add_staff("sam", "Sam", "coach")
    rng = random.Random(SEED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(acks)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready == b"ready\n", child.communicate()[1].decode()
        # Random moments into the writing (seeded: a failure can be replayed).
        time.sleep(rng.uniform(0.0, 0.12))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err.decode()

    lines = acks.read_text().splitlines()
    cases = {line.split()[1] for line in lines if line.startswith("case ")}
    records = {int(line.split()[1]) for line in lines if line.startswith("record ")}
    assert len(cases) > KILLS, "the writer hardly wrote: the kills came too soon"

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with se_flow.open(path, actor="sam") as flow:
        verification = flow.verify()
        assert verification.ok, verification.problem
        stored = {c.id for c in flow.cases()}
        assert cases <= stored, f"acknowledged but lost: {sorted(cases - stored)}"
        seqs = {r.seq for case_id in stored for r in flow.records(case_id)}
        assert records <= seqs, f"acknowledged but lost: {sorted(records - seqs)}"
        # Nothing half-written: verify replayed every case's events against the case table;
        # and no event outlives its case.
        assert {e.case_id for e in flow.events()[1:]} == stored
