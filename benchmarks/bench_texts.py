"""What keeping free text apart from the hashed rows costs a write (`se_flow._texts`).

    python -m benchmarks.bench_texts [--quick] [--rounds N]

Two contenders, each on its own database file (WAL, 50 cases through the public API), in
interleaved rounds, the order rotated:

* **texts apart** (se-flow now): each text (a note's text, an advance's reason) gets a random
  salt and its HMAC-SHA256 in the event; the text goes into the `texts` table in the same
  transaction; reads fill it back in.
* **texts inline** (se-flow before): the same code with the split switched off, so the text
  stays inside the hashed row as it did before, and no text row is written.

Each round times `record(note, text=...)` then `advance(pause, reason=...)` and
`advance(resume)` per case: the writes a coach makes that hold free text, and one that holds
none. Measured with `synchronous=FULL` (the durable default: the fsync dominates) and `NORMAL`
(no fsync per commit: the CPU shows). The ratio is inline ÷ apart time per command (throughput
of apart against inline); target: the durable write costs under 10% more (ratio ≥ 0.91).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import se_flow
import se_flow._memory as memory_store
import se_flow._sqlite as sqlite_store
from se_flow._texts import Split

from ._common import (
    T0,
    Row,
    bench_args,
    data_dir,
    interleave,
    log,
    median,
    print_table,
    remove_db,
    tiny,
)

TARGET = 0.91
NOTE = (
    "Met at the library: lives with her sister, wants warehouse work near the bus route; "
    "worried about losing benefits if hours go over 16 a week. Next: benefits advice."
)
REASON = "On holiday with family for two weeks, back on the 14th"
CONTENDERS = ("texts inline", "texts apart")


def _unsplit(change: object, workflow: object, new_salt: object) -> tuple[object, tuple[()]]:
    return change, ()


def _kept_inline(draft: object, fields: Any, workflow: object, new_salt: object) -> Split:
    return Split({}, fields, ())


def _no_texts(conn: object, seqs: object) -> dict[int, dict[str, str | None]]:
    return {}


@contextlib.contextmanager
def _inline() -> Iterator[None]:
    """se-flow as before: every store's split switched off for the duration."""
    # Nor does it look for texts to put back when it reads records.
    swaps = [
        (sqlite_store, "split", _kept_inline),
        (memory_store, "split_change", _unsplit),
        (sqlite_store, "_texts_of", _no_texts),
    ]
    before = [(module, name, vars(module)[name]) for module, name, _ in swaps]
    for module, name, value in swaps:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in before:
            setattr(module, name, value)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


def _flow(path: Path, sync: str, cases: int, inline: bool) -> tuple[se_flow.SEFlow, list[str]]:
    remove_db(path)
    flow = se_flow.open(path, clock=_Clock(), actor="sam", synchronous=sync)
    flow.add_staff("sam", "Sam Coach", "coach")
    with _inline() if inline else contextlib.nullcontext(), flow.batch():
        ids = []
        for _ in range(cases):
            case = flow.refer("Alex", source="GP").case
            ids.append(flow.advance(case.id, "engage").case.id)
    return flow, ids


def _commands(flow: se_flow.SEFlow, ids: list[str], inline: bool) -> Callable[[int], list[float]]:
    import time

    def one_round(_: int) -> list[float]:
        out = []
        perf = time.perf_counter
        with _inline() if inline else contextlib.nullcontext():
            for case_id in ids:
                start = perf()
                flow.record(case_id, "note", {"text": NOTE})
                flow.pause(case_id, reason=REASON, review_date=dt.date(2027, 1, 1))
                flow.resume(case_id)
                out.append((perf() - start) / 3)
        return out

    return one_round


def measure(folder: Path, sync: str, cases: int, rounds: int) -> list[Row]:
    flows = {
        name: _flow(folder / f"texts-{i}-{sync}.db", sync, cases, name == "texts inline")
        for i, name in enumerate(CONTENDERS)
    }
    try:
        samples = interleave(
            {
                name: _commands(flow, ids, name == "texts inline")
                for name, (flow, ids) in flows.items()
            },
            rounds,
        )
        for name, (flow, _) in flows.items():
            result = flow.verify()
            if not result.ok:
                raise AssertionError(f"{name}: the log does not verify: {result.problem}")
    finally:
        for flow, _ in flows.values():
            flow.disconnect()
    med = {name: median(v) * 1e6 for name, v in samples.items()}
    rows = []
    for name in CONTENDERS:
        row = Row(
            "texts/write cost", f"sync={sync}", name, med[name], "µs/op", n=len(samples[name])
        )
        if name == "texts apart":
            row.ratio, row.vs = med["texts inline"] / med[name], "apart/inline"
            if sync == "FULL":
                row.target, row.met = f"≥ {TARGET}", row.ratio >= TARGET
            row.note = "record(note), pause(reason), resume: mean per command"
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("The write cost of keeping free texts apart from the hashed log.", argv)
    parser.add_argument("--rounds", type=int, help="rounds per contender (default by mode)")
    args = parser.parse_args(argv)
    cases = 5 if tiny() else 20 if args.quick else 50
    rounds = args.rounds or (2 if tiny() else 6 if args.quick else 12)
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        for sync in ("FULL", "NORMAL"):
            log(f"texts: sync={sync}, {cases} cases, {rounds} rounds")
            rows += measure(folder, sync, cases, rounds)
    print_table(rows, "Free texts kept apart: the cost per write")
    return rows


if __name__ == "__main__":
    main()
