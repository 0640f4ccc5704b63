"""Per-case commands on a case with a long history against the same on a short one.

    python -m benchmarks.bench_case_length [--quick] [--records N]

One database holds a long case (5,000 review records: two years of weekly contacts and more)
and forty short ones (10 records each), all at vocational profiling, written through the API.
Each command is timed on the long case and on a short one, interleaved in rounds:

* **record**: `flow.record(case, "review", summary=...)`, the write alone (API);
* **se-flow record**: the CLI command, in-process (Typer's runner): it opens the database,
  writes, and prints its result from what the write returned;
* **se-flow pause+resume**: two CLI writes that print "now at ..." (before issue 9 each read
  the case's whole history back to print one line);
* **advance**: `flow.advance(case, "start_job_search")` (three guards reading the vocational
  profile, disclosure preference and benefits advice: a contact kind among them) and back
  with `revise_goals`, two writes;
* **check close_disengaged**: `flow.check(case, "close_disengaged")`, the dry run whose
  outreach guard reads the last contact and the outreach attempts since (5,000 reviews are
  contacts);
* **next**: `flow.next_steps(case)`, every trigger open from the stage with its guards'
  results (`se-flow next`);
* **show**: `flow.case_view(case, limit=10)`, what `se-flow show` prints (first page), and
  **se-flow show --limit 10** itself;
* **history**: `flow.history_page(case, limit=10)`, the timeline's first page, and **se-flow
  history --limit 10** (pages of 10 on both cases, so both print as many rows);
* **whole history**: `flow.history(case)`, every event: what the CLI read before, for scale.

The growth row is the long case's median ÷ the short case's (target: ≤ 1.25, issue 11: a
per-case command costs about the same whatever the case's length). Writes run at
synchronous=NORMAL so that an fsync's jitter does not hide a read that grows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import se_flow
from se_flow._evidence import LEAST_EVIDENCE

from ._common import (
    T0,
    Row,
    bench_args,
    data_dir,
    interleave,
    log,
    median,
    peak_rss_mb,
    print_table,
    remove_db,
    size_label,
    time_each,
    tiny,
)

TARGET = 1.25
SHORT = 10
SHORT_CASES = 40
# Pages of 10 on both: a short case has about 12 events, so a page of 20 (the default) would
# show more rows on the long case and time the rendering of eight more lines, not the read.
PAGE = 10
SUMMARY = "Weekly review: two applications sent, one interview booked"


NOTES = {
    "whole history": "every event read: grows with the case, by nature",
    "show": "the page is read from the newest back (see history); the service standards are "
    "the case's few rows of the due table, however many reviews it holds",
}


def build(path: Path, long_records: int) -> tuple[str, list[str]]:
    """The long case's id and the short cases' ids, in a new database at `path`."""
    remove_db(path)
    start = T0 - dt.timedelta(days=800)
    with (
        se_flow.open(path, clock=lambda: T0, synchronous="OFF", actor="sam") as flow,
        flow.batch(),
    ):
        flow.add_staff("lee", "Lee Leader", "team_leader", actor="lee")
        flow.add_staff("sam", "Sam Coach", "coach", actor="lee")

        def opened(records: int) -> str:
            case = flow.refer("Pat Long", source="GP", coach="sam", effective_at=start).case
            for place in ("referred", "customer_engagement", "vocational_profiling"):
                forward = LEAST_EVIDENCE[place]
                for kind, fields in forward.records:
                    flow.record(case.id, kind, fields, effective_at=start)
                if place != "vocational_profiling":  # its evidence, kept there for `advance`
                    flow.advance(case.id, forward.trigger, effective_at=start)
            have = len(flow.records(case.id))
            for n in range(records - have):
                at = start + dt.timedelta(hours=n * 3)
                flow.record(case.id, "review", summary=SUMMARY, effective_at=min(at, T0))
            return case.id

        long_id = opened(long_records)
        short_ids = [opened(SHORT) for _ in range(SHORT_CASES)]
    return long_id, short_ids


def _cli(path: Path) -> Callable[..., None]:
    from typer.testing import CliRunner

    from se_flow.cli import app

    runner = CliRunner()
    env = {"COLUMNS": "100", "SE_FLOW_DB": None, "SE_FLOW_ACTOR": None}

    def run(*args: str) -> None:
        done = runner.invoke(app, ["--db", str(path), "--as", "sam", *args], env=env)
        if done.exit_code != 0:
            raise RuntimeError(f"se-flow {' '.join(args)}: {done.output[-500:]}")

    return run


def _pair(
    op: Callable[[str], object], long_id: str, shorts: Iterator[str], per: int
) -> dict[str, Callable[[int], list[float]]]:
    """The long case and a short one (the next of them each time), as two contenders."""
    return {
        "long": lambda _round: time_each(lambda _i: op(long_id), per),
        "short": lambda _round: time_each(lambda _i: op(next(shorts)), per),
    }


def measure(path: Path, long_id: str, short_ids: list[str], rounds: int, per: int) -> list[Row]:
    cli = _cli(path)
    # The CLI runs on the real clock (it has no other): a review date ahead of today.
    review = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    shorts = itertools.cycle(short_ids)
    rows: list[Row] = []
    with se_flow.open(path, clock=lambda: T0, synchronous="NORMAL", actor="sam") as flow:
        ops: dict[str, Callable[[str], object]] = {
            "record": lambda c: flow.record(c, "review", summary=SUMMARY),
            "se-flow record": lambda c: cli("record", c, "review", f"summary={SUMMARY}"),
            "se-flow pause+resume": lambda c: (
                cli("pause", c, "--reason", "away", "--review", review),
                cli("resume", c),
            ),
            "advance": lambda c: (
                flow.advance(c, "start_job_search"),
                flow.advance(c, "revise_goals", reason="back to profiling"),
            ),
            "check close_disengaged": lambda c: flow.check(c, "close_disengaged"),
            "next": lambda c: flow.next_steps(c),
            "show": lambda c: flow.case_view(c, limit=PAGE),
            "se-flow show": lambda c: cli("show", c, "--limit", str(PAGE)),
            "history": lambda c: flow.history_page(c, limit=PAGE),
            "se-flow history": lambda c: cli("history", c, "--limit", str(PAGE)),
            "whole history": lambda c: flow.history(c),
        }
        long_label = f"{size_label(len(flow.records(long_id)))} records"
        short_label = f"{SHORT} records"
        for name, op in ops.items():
            op(long_id)  # warm: the first call pays for imports and the page cache
            op(short_ids[0])
            samples = interleave(_pair(op, long_id, shorts, per), rounds)
            long_ms, short_ms = median(samples["long"]) * 1e3, median(samples["short"]) * 1e3
            growth = long_ms / short_ms
            bench = f"case length/{name}"
            n = len(samples["long"])
            rows.append(Row(bench, short_label, "se-flow", short_ms, "ms", n=n))
            rows.append(Row(bench, long_label, "se-flow", long_ms, "ms", n=n))
            flat = name != "whole history"
            note = NOTES.get(name, "")
            rows.append(
                Row(
                    bench,
                    f"{long_label} ÷ {short_label}",
                    "growth",
                    growth,
                    "×",
                    target=f"≤ {TARGET}" if flat else "",
                    met=growth <= TARGET if flat else None,
                    peak_mb=peak_rss_mb(),
                    note=note,
                )
            )
            log(f"case length: {name}: {short_ms:.2f} ms vs {long_ms:.2f} ms ({growth:.2f}×)")
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Per-case commands: a 5,000-record case against a 10-record one.", argv)
    parser.add_argument("--records", type=int, help="records on the long case (default 5,000)")
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    long_records = args.records or (200 if tiny() else 5_000)
    rounds = args.rounds or (2 if tiny() else 5 if args.quick else 9)
    per = 2 if tiny() else 4 if args.quick else 6
    with data_dir(args.data_dir) as folder:
        path = folder / f"case-length-{long_records}.db"
        log(f"case length: building a {long_records}-record case and {SHORT_CASES} short ones")
        long_id, short_ids = build(path, long_records)
        rows = measure(path, long_id, short_ids, rounds, per)
        remove_db(path)
    print_table(rows, "A long case against a short one (medians; growth = long ÷ short)")
    return rows


if __name__ == "__main__":
    main()
