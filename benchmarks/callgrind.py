"""CPU per durable command in instructions (valgrind's callgrind): se-flow against raw sqlite3.

    python -m benchmarks.callgrind                  # or: python -m benchmarks.run --callgrind
    python -m benchmarks.callgrind --commands 400 --keep /tmp/cg   # keep the callgrind files

Wall time on a shared machine moves with its load and with the fsync behind every durable
commit; instruction counts do neither, so CPU claims are made in instructions. Each contender
(`bench_transitions`' se-flow and raw, on the suite's 1k-case population, `synchronous=FULL`)
runs under `valgrind --tool=callgrind` twice, doing the same start-up and warm-up and then
`n` and `2n` commands; the difference of the two totals divided by `n` is the cost of one
command, with start-up, imports and warm-up cancelled out. `advance` is the suite's pair
(`revise_goals` then `start_job_search`, counted as two commands), `record` one `review`.

A third contender, **se-flow's SQL**, is the floor under se-flow's design (`_replay`): the
statements se-flow's own commands sent to SQLite (recorded beforehand, outside valgrind, from
the same commands on another copy of the population), replayed bare with sqlite3 on a fresh
copy, every row fetched. se-flow minus it is what se-flow spends in Python; it minus raw is
what the statements se-flow adds to raw's (its reads, the texts row, the due check) cost.

It is slow (valgrind runs Python ~50x slower: about a minute per contender and operation),
so it is not part of the default or quick run. Without valgrind it prints one line saying so
and returns no rows.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import _population as pop
from . import _replay
from ._common import Row, log, print_table, repo_root, tiny

MODULE = "benchmarks.callgrind"
SQL = "se-flow's SQL"
CONTENDERS = ("raw", "se-flow", SQL)
OPS = ("advance", "record")
POPULATION = 1000
TARGET = 1.6


def _child(contender: str, op: str, count: int, db: Path) -> None:
    """What runs under valgrind: open, warm up, then `count` commands of `op`."""
    from . import bench_transitions as bt

    if contender == SQL:
        # All 2n commands are loaded in both runs, so loading them cancels out too.
        commands = _replay.load(_statements(db.parent, op))
        replayer = _replay.Replayer(db, "FULL")
        for command in commands[: WARM_UP + count]:
            replayer.run(command)
        replayer.close()
        return
    samples = bt._sample_rows() if contender == "raw" else {}
    c = bt._make(contender, db, POPULATION, "FULL", samples)
    pick = _picker(contender, op)
    for _ in range(WARM_UP + count):  # warm up: prepared statements, imports, page cache
        _one(op, c, pick())
    c.close()


WARM_UP = 3


def _picker(contender: str, op: str, n: int = POPULATION) -> Callable[[], int]:
    """The case numbers `contender`'s child picks for `op`, in order, among n cases."""
    from . import bench_transitions as bt

    k = bt.CONTENDERS.index(contender)
    rng = random.Random(f"callgrind-{contender}-{op}")
    return lambda: bt._pick(rng, n, k)


def _one(op: str, c: Any, num: int) -> None:
    if op == "advance":
        c.advance(num, "revise_goals")
        c.advance(num, "start_job_search")
    else:
        c.record(num)


def _statements(folder: Path, op: str) -> Path:
    return folder / f"statements-{op}.pickle"


def _capture(base: Path, out: Path, count: int) -> None:
    """se-flow's statements for each operation's warm-up and 2n commands (`_replay`), from
    the commands its own child runs, on a copy of the population its child starts from."""
    for op in OPS:
        db = out / f"capture-{op}.db"
        shutil.copyfile(base, db)
        pick = _picker("se-flow", op)
        commands = _replay.capture(
            db, POPULATION, functools.partial(_one, op), pick, WARM_UP + 2 * count
        )
        _replay.save(commands, _statements(out, op))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _instructions(out_file: Path) -> int:
    text = out_file.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(found.group(1))


def _run(valgrind: str, contender: str, op: str, count: int, base: Path, out: Path) -> int:
    """Instructions of one whole child run under callgrind, on a fresh copy of the population."""
    tag = f"{contender}-{op}-{count}"
    db = out / f"{tag}.db"
    shutil.copyfile(base, db)
    cg_file = out / f"callgrind.{tag}.out"
    cmd = [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={cg_file}",
        sys.executable,
        "-m",
        MODULE,
        "--child",
        contender,
        op,
        str(count),
        str(db),
    ]
    # A fixed hash seed: dict and set order, and so the instructions, the same run to run.
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo_root(), env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind run {tag} failed:\n{proc.stderr[-2000:]}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return _instructions(cg_file)


def measure(count: int, keep: Path | None) -> list[Row]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("callgrind: valgrind not found (apt-get install valgrind); skipped, no rows")
        return []
    out = keep or Path(tempfile.mkdtemp(prefix="se-flow-callgrind-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        base = pop.population(out, POPULATION)
        _capture(base, out, count)
        jobs = [(c, op, n) for c in CONTENDERS for op in OPS for n in (count, 2 * count)]
        log(f"callgrind: {len(jobs)} runs under valgrind, two at a time ...")
        with ThreadPoolExecutor(max_workers=2) as pool:
            totals = dict(
                zip(
                    jobs,
                    pool.map(lambda j: _run(valgrind, j[0], j[1], j[2], base, out), jobs),
                    strict=True,
                )
            )
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    rows: list[Row] = []
    for op in OPS:
        per_command = 2 if op == "advance" else 1
        cost = {
            c: (totals[(c, op, 2 * count)] - totals[(c, op, count)]) / (count * per_command)
            for c in CONTENDERS
        }
        for c, each in cost.items():
            if each <= 0:
                # Seen once: a one-off in the n run (a WAL checkpoint?) outweighed n commands.
                # A ratio over it would be a number that means nothing, reported as met.
                raise RuntimeError(
                    f"callgrind/{op}: {c}'s 2n run cost no more than its n run "
                    f"({each:.0f} instructions a command); rerun with more --commands"
                )
        for c in CONTENDERS:
            row = Row(
                f"callgrind/{op}",
                f"{POPULATION // 1000}k cases",
                c,
                cost[c] / 1000,
                "k instr/op",
                n=count * per_command,
                extra={"instructions_per_op": round(cost[c])},
            )
            if c == "se-flow":
                ratio = cost[c] / cost["raw"]
                row.ratio, row.vs = ratio, "se-flow÷raw instr"
                row.target, row.met = f"≤ {TARGET}", ratio <= TARGET
                row.extra["python_share"] = round(1 - cost[SQL] / cost[c], 3)
                row.note = (
                    f"{1 - cost[SQL] / cost[c]:.0%} of se-flow's instructions are outside "
                    f"its SQL statements ({(cost[c] - cost[SQL]) / 1000:,.0f}k a command)"
                )
            elif c == SQL:
                row.ratio, row.vs = cost[c] / cost["raw"], "its SQL÷raw instr"
            rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--commands", type=int, default=None, help="n: commands per run (runs do n and 2n)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer commands per run (40)")
    parser.add_argument("--keep", help="keep the population and callgrind files in this folder")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        contender, op, count, db = args.child
        _child(contender, op, int(count), Path(db))
        return []
    count = args.commands or (5 if tiny() else 40 if args.quick else 100)
    rows = measure(count, Path(args.keep) if args.keep else None)
    if rows:
        print_table(rows, "CPU per durable command, in instructions (callgrind, sync=FULL)")
    return rows


if __name__ == "__main__":
    main()
