"""Bulk load: historical cases through the API's bulk path against raw `executemany`.

Both load the same history per case (the population template of `_population.py`: a referral,
3 stage moves and 7 more records, 11 audit events and 8 records per case, dates spread over
four weeks), into their own new database (WAL, `synchronous=FULL`), `CHUNK` cases per
transaction, interleaved chunk by chunk (order alternating), so each chunk is one sample:

* **se-flow**: `with flow.batch(): flow.refer(...); flow.advance(...); flow.record(...) ...`
  Every command is validated, guarded and chained; one commit per batch.
* **se-flow import**: `flow.import_history(cases)`, the same history as `ImportedCase`
  values (a referral and 10 dated commands each), one call per chunk: every case run in
  memory through the same facade, engine and guards, its rows then written with `executemany`
  by the store's bulk port (`Writer.append`), chained as usual; one commit per chunk.
* **raw**: the equivalent rows (cases, participants, personal data, events with their hash
  chain computed, records) built in Python from the template and written with `executemany`
  in one `BEGIN IMMEDIATE` … `COMMIT` per chunk. Nothing is validated.

Afterwards both databases must hold the same number of rows in every table and both chains
must verify (`flow.verify()`), or the benchmark fails. Peak memory: the interleaved run's
process holds both; each contender is also run alone, in its own process, on a smaller load.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import se_flow
from se_flow._evidence import LEAST_EVIDENCE
from se_flow._sqlite import THROUGH_THE_LOG

from . import _population as pop
from ._common import (
    Row,
    bench_args,
    clock,
    data_dir,
    emit_rows,
    log,
    median,
    peak_rss_mb,
    print_table,
    remove_db,
    run_child,
    size_label,
    tiny,
)

MODULE = "benchmarks.bench_bulk"
TABLES = ("staff", "participants", "personal_data", "cases", "events", "records", "texts")


def _sizes(quick: bool) -> tuple[int, int, int]:
    """(cases in the interleaved run, cases per chunk, cases in each memory run)"""
    if tiny():
        return 60, 20, 40
    if quick:
        return 4000, 500, 1000
    return 100_000, 1000, 10_000


class Loader(Protocol):
    def load(self, first: int, count: int) -> None: ...
    def close(self) -> None: ...


class SEFlowLoader:
    name = "se-flow"

    def __init__(self, path: Path, n: int) -> None:
        pop.create_schema(path)
        self.n = n
        self.flow = se_flow.open(path, clock=clock)
        self.staffed = False

    def load(self, first: int, count: int) -> None:
        flow = self.flow
        with flow.batch():
            if not self.staffed:
                flow.add_staff(pop.LEAD, "Team Leader", "team_leader", actor="setup")
                for k in range(pop.coaches_for(self.n)):
                    flow.add_staff(pop.coach_id(k), f"Coach {k}", "coach", actor=pop.LEAD)
                self.staffed = True
            for num in range(first, first + count):
                coach = pop.coach_of(num, self.n)
                start = 30 + pop.offset_days(num)
                case = pop.refer_template(flow, coach, f"Participant {num}", start)
                if case.id != f"C-{num}":
                    raise RuntimeError(f"se-flow gave case {case.id}, expected C-{num}")
                pop.walk_template(flow, case.id, coach, start)

    def close(self) -> None:
        self.flow.disconnect()


def _imported(num: int, n: int) -> se_flow.ImportedCase:
    """Case `num` of the template as another system would hand it over (`pop.walk_template`'s
    commands, with their dates)."""
    coach = pop.coach_of(num, n)
    s = 30 + pop.offset_days(num)
    commands: list[se_flow.ImportedRecord | se_flow.ImportedTrigger] = [
        se_flow.ImportedTrigger("engage", pop.day(s - 1))
    ]
    for place, recorded, moved in (("customer_engagement", 4, 5), ("vocational_profiling", 20, 29)):
        forward = LEAST_EVIDENCE[place]
        for kind, fields in forward.records:
            fields = {**fields, **pop.EXTRA.get(kind, {})}
            commands.append(se_flow.ImportedRecord(kind, fields, pop.day(s - recorded)))
        commands.append(se_flow.ImportedTrigger(forward.trigger, pop.day(s - moved)))
    return se_flow.ImportedCase(
        ref=f"OLD-{num}",
        person=se_flow.PersonalDetails(name=f"Participant {num}", contact="07700 900000"),
        referred_at=pop.day(s),
        referral={"source": "Jobcentre Plus"},
        commands=tuple(commands),
        coach=coach,
        actor=coach,
    )


class ImportLoader(SEFlowLoader):
    name = "se-flow import"

    def load(self, first: int, count: int) -> None:
        flow = self.flow
        if not self.staffed:
            with flow.batch():
                flow.add_staff(pop.LEAD, "Team Leader", "team_leader", actor="setup")
                for k in range(pop.coaches_for(self.n)):
                    flow.add_staff(pop.coach_id(k), f"Coach {k}", "coach", actor=pop.LEAD)
            self.staffed = True
        cases = [_imported(num, self.n) for num in range(first, first + count)]
        report = flow.import_history(cases, by=pop.LEAD, chunk=count)
        if report.imported[0][1] != f"C-{first}" or len(report.imported) != count:
            raise RuntimeError(f"import gave {report.imported[:1]}, expected C-{first}")


class RawLoader:
    name = "raw"

    def __init__(self, path: Path, n: int, chunk: int) -> None:
        pop.create_schema(path)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        for pragma in (
            "busy_timeout = 10000",
            "journal_mode = WAL",
            "synchronous = FULL",
            "foreign_keys = ON",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        # Raw executemany writes events and the tables they project side by side, which the
        # triggers that want each staff or case change to follow its own event refuse: lifted,
        # so this baseline does a little less work than se-flow does.
        for name in THROUGH_THE_LOG:
            self.conn.execute(f"DROP TRIGGER {name}")
        self.batches: Iterator[pop.Batch] = pop.generate(pop.build_template(), n, chunk=chunk)

    def load(self, first: int, count: int) -> None:
        batch = next(self.batches)  # the rows of the next `count` cases, built now
        if batch.cases[0][0] != f"C-{first}" or len(batch.cases) != count:
            raise RuntimeError("raw loader out of step")
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            batch.write(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()
        # Raw rows carry no due table (se-flow's batch writes it as it goes): built from the
        # log after the timing, so the file verifies like se-flow's.
        pop.build_due_index(self.path)


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def _verify(path: Path) -> se_flow.Verification:
    with se_flow.open(path, clock=clock, create=False, actor=pop.LEAD) as flow:
        return flow.verify()


def child(folder: Path, quick: bool) -> list[Row]:
    n, chunk, _ = _sizes(quick)
    paths = {
        "se-flow": folder / "bulk-se-flow.db",
        "import": folder / "bulk-import.db",
        "raw": folder / "bulk-raw.db",
    }
    loaders: dict[str, Loader] = {
        "se-flow": SEFlowLoader(paths["se-flow"], n),
        "import": ImportLoader(paths["import"], n),
        "raw": RawLoader(paths["raw"], n, chunk),
    }
    samples: dict[str, list[float]] = {name: [] for name in loaders}
    names = list(loaders)
    for k, first in enumerate(range(1, n + 1, chunk)):
        # Each contender first, middle and last in turn.
        order = names[k % 3 :] + names[: k % 3]
        for name in order:
            t = time.perf_counter()
            loaders[name].load(first, min(chunk, n - first + 1))
            samples[name].append((time.perf_counter() - t) / chunk)
        if n >= 20_000 and (k + 1) % 20 == 0:
            log(f"bulk: {first + chunk - 1} of {n} cases loaded by each")
    for loader in loaders.values():
        loader.close()
    peak = peak_rss_mb()

    counts = {name: _counts(path) for name, path in paths.items()}
    se_counts = counts["se-flow"]
    for name, found in counts.items():
        if found != se_counts:
            raise RuntimeError(f"bulk loads differ: se-flow {se_counts}, {name} {found}")
    for path in paths.values():
        check = _verify(path)
        if not check.ok:
            raise RuntimeError(f"{path.name}: chain does not verify: {check.problem}")
    events = se_counts["events"]
    for path in paths.values():
        remove_db(path)

    size = f"{size_label(n)} cases"
    raw_us, se_us = median(samples["raw"]) * 1e6, median(samples["se-flow"]) * 1e6
    import_us = median(samples["import"]) * 1e6
    note = (
        f"{events} events, {se_counts['records']} records each; chunks of {chunk} cases; "
        f"same row counts in every table, every chain verifies; peak RSS is all loaders together"
    )
    return [
        Row(
            "bulk load",
            size,
            "raw executemany",
            raw_us,
            "µs/case",
            n=len(samples["raw"]),
            peak_mb=peak,
            extra={"cases_per_s": round(1e6 / raw_us)},
        ),
        Row(
            "bulk load",
            size,
            "se-flow batch()",
            se_us,
            "µs/case",
            ratio=raw_us / se_us,
            vs="se-flow/raw",
            n=len(samples["se-flow"]),
            peak_mb=peak,
            note=note,
            extra={"cases_per_s": round(1e6 / se_us), "events": events},
        ),
        Row(
            "bulk load",
            size,
            "se-flow import_history()",
            import_us,
            "µs/case",
            ratio=raw_us / import_us,
            vs="import/raw",
            target="≥ 0.5",
            met=raw_us / import_us >= 0.5,
            n=len(samples["import"]),
            peak_mb=peak,
            extra={"cases_per_s": round(1e6 / import_us), "events": events},
        ),
    ]


def memory_child(folder: Path, name: str, quick: bool) -> list[Row]:
    _, chunk, m = _sizes(quick)
    path = folder / f"bulk-mem-{name}.db"
    loader: Loader
    if name == "se-flow":
        loader = SEFlowLoader(path, m)
    elif name == "import":
        loader = ImportLoader(path, m)
    else:
        loader = RawLoader(path, m, chunk)
    t = time.perf_counter()
    for first in range(1, m + 1, chunk):
        loader.load(first, min(chunk, m - first + 1))
    elapsed = time.perf_counter() - t
    loader.close()
    remove_db(path)
    peak = peak_rss_mb()
    return [
        Row(
            "bulk load/peak memory",
            f"{size_label(m)} cases",
            {"se-flow": "se-flow batch()", "import": "se-flow import_history()"}.get(
                name, "raw executemany"
            ),
            peak,
            "MB",
            peak_mb=peak,
            extra={"seconds": round(elapsed, 2)},
        )
    ]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Bulk load: se-flow's batch() vs raw executemany.", argv)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder = Path(args.folder)
        if args.memory:
            emit_rows(memory_child(folder, args.memory, args.quick))
        else:
            emit_rows(child(folder, args.quick))
        return []
    quick = ["--quick"] if args.quick else []
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        n, chunk, m = _sizes(args.quick)
        log(f"bulk: loading {size_label(n)} cases each, interleaved in chunks of {chunk}")
        rows.extend(run_child(MODULE, ["--child", "--folder", str(folder), *quick]))
        for name in ("raw", "se-flow", "import"):
            log(f"bulk: {name} alone, {size_label(m)} cases, for its peak memory")
            memory_args = ["--child", "--memory", name, "--folder", str(folder), *quick]
            rows.extend(run_child(MODULE, memory_args))
    print_table(rows, "Bulk load (WAL, synchronous=FULL, one commit per chunk)")
    return rows


if __name__ == "__main__":
    main()
