"""The cost of forward-secure sealing per durable write (issue 15: target under 10 %).

Two databases built the same way through the API, one sealed (`start_sealing`, the key file
beside it) and one not, each holding `n` cases at Referred. Each round records one `note` on a
random case of each (`flow.record`, one transaction, `synchronous=FULL`: an fsync per commit,
as a coach's write is), the order rotated; medians per write. The same is run at
`synchronous=NORMAL` (no fsync per commit in WAL) to show the CPU sealing adds, where the
difference is largest in proportion.

The ratio is unsealed ÷ sealed (throughputs): 0.92 means sealing costs 8 % more time per write
(1/0.92 - 1). Target: ≥ 0.91 (under 10 % more) at FULL.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import se_flow

from ._common import (
    Row,
    bench_args,
    clock,
    data_dir,
    interleave,
    log,
    median,
    print_table,
    quantile,
    size_label,
    tiny,
)

NOTE = "Phoned about the interview on Tuesday; will bring the bus pass form"


def build(path: Path, n: int, sealed: bool) -> None:
    with se_flow.open(path, clock=clock, actor="lead") as flow:
        if sealed:
            flow.start_sealing()
        flow.add_staff("lead", "Team Leader", "team_leader")
        flow.add_staff("coach", "Coach", "coach")
        with flow.batch():
            for i in range(n):
                flow.refer(f"Participant {i}", source="GP", coach="coach")


def writer(flow: se_flow.SEFlow, rng: random.Random, n: int) -> Callable[[int], list[float]]:
    """One durable write (a note on a random case), timed."""
    perf = time.perf_counter

    def one(_: int) -> list[float]:
        case = f"C-{rng.randrange(1, n + 1)}"
        start = perf()
        flow.record(case, "note", text=NOTE)
        return [perf() - start]

    return one


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Sealed against unsealed durable writes.", argv)
    parser.add_argument("--rounds", type=int, help="writes per contender (default by mode)")
    args: argparse.Namespace = parser.parse_args(argv)
    n = 30 if tiny() else 300 if args.quick else 1000
    rounds = args.rounds or (20 if tiny() else 300 if args.quick else 1000)
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        paths = {"unsealed": folder / f"seal-off-{n}.db", "sealed": folder / f"seal-on-{n}.db"}
        for name, path in paths.items():
            for suffix in ("", "-wal", "-shm", ".sealkey"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            log(f"seal: building {n} cases ({name}) in {path}")
            build(path, n, sealed=name == "sealed")
        for sync in ("FULL", "NORMAL"):
            flows = {
                name: se_flow.open(path, clock=clock, actor="coach", synchronous=sync)
                for name, path in paths.items()
            }
            rng = random.Random(7)

            for flow in flows.values():  # warm: the page cache, the key file read once
                for _ in range(5):
                    writer(flow, rng, n)(0)
            log(f"seal: {rounds} writes each at synchronous={sync}")
            got = interleave({name: writer(f, rng, n) for name, f in flows.items()}, rounds)
            for flow in flows.values():
                flow.disconnect()
            base = median(got["unsealed"])
            for name in ("unsealed", "sealed"):
                m = median(got[name])
                ratio = base / m if name == "sealed" else None
                rows.append(
                    Row(
                        bench=f"seal/record ({sync})",
                        size=size_label(n),
                        contender=name,
                        median=m * 1e3,
                        unit="ms",
                        ratio=ratio,
                        vs="unsealed/sealed" if ratio is not None else "",
                        target="≥ 0.91" if ratio is not None and sync == "FULL" else "",
                        met=(ratio >= 0.91) if ratio is not None and sync == "FULL" else None,
                        n=len(got[name]),
                        note=f"p90 {quantile(got[name], 0.9) * 1e3:.2f} ms",
                    )
                )
    print_table(rows, "Forward-secure sealing per durable write")
    return rows


if __name__ == "__main__":
    main()
