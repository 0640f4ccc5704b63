"""Export throughput and peak memory: `SEFlow.export` of the audit events to CSV and to JSON
Lines, against a plain `csv.writer` loop over the same SELECT, measured in the same run.

    python -m benchmarks.bench_export                  # 1,000,000 events
    python -m benchmarks.bench_export --quick          # 100,000 events
    python -m benchmarks.bench_export --events 250000 --rounds 5

The log is filled once with raw SQL in one transaction, in a database `se_flow.open` created;
each row's hash is computed with `_audit.row_hash`, so the chain is valid and verifies. Rows
mimic a caseload (records with their fields, transitions with their guard results and an
override, pauses, notes; ~700 bytes each as CSV).

Every measurement runs in its own child process, so its peak RSS (VmHWM) is that of one
export alone; the three contenders run once per round, the order rotated each round; figures
are medians of the timed section only (not interpreter start-up or imports):

* **csv.writer loop** (baseline): `for row in conn.execute(SELECT ... ORDER BY seq):
  writer.writerow(row)` into one file.
* **se-flow CSV / JSON Lines**: `flow.export(out, tables=["events"], fmt=...)`: everything an
  export does beyond the loop is inside the time: the temp folder and rename, SHA-256 of the
  file, fsync, the manifest, and the export's own durable audit event.

Targets: throughput at least 0.7 of the loop's; peak memory under 100 MB.

The stage histories (one row per spell, worked out from each case's stage events) are measured
the same way on a caseload of real cases (`_population`: 100,000 cases, quick 10,000):

* **csv.writer loop, stage events** (baseline): one `SELECT` of the cases' stage events joined
  with their cases, in case then seq order, each row written as it comes.
* **se-flow stage_histories, CSV**: `flow.export(out, tables=["stage_histories"])`.

Target: at least 0.8 of that loop's throughput.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import se_flow

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
    run_child,
    size_label,
    tiny,
)

MODULE = "benchmarks.bench_export"
FULL_EVENTS, QUICK_EVENTS, TINY_EVENTS = 1_000_000, 100_000, 2_000
FULL_CASES, QUICK_CASES, TINY_CASES = 100_000, 10_000, 300
RATIO_TARGET, SPELL_TARGET, PEAK_TARGET_MB = 0.7, 0.8, 100.0
CONTENDERS = {
    "loop": "csv.writer loop",
    "csv": "se-flow export, CSV",
    "jsonl": "se-flow export, JSON Lines",
}
SPELL_CONTENDERS = {
    "spell_loop": "csv.writer loop, stage events",
    "spells": "se-flow stage_histories, CSV",
}
_STAGE_EVENTS = (
    "SELECT e.case_id, c.participant_id, c.episode, e.seq, e.kind, e.trigger, e.to_state, "
    "e.to_phase, e.effective_at, e.actor FROM events e JOIN cases c ON c.id = e.case_id "
    "WHERE e.kind IN ('referral', 'reopen', 'transition', 'phase', 'pause', 'resume') "
    "ORDER BY c.num, e.seq"
)
COLUMNS = (
    "seq, case_id, kind, trigger, from_state, to_state, from_phase, to_phase, actor, role, "
    "effective_at, recorded_at, reason, guards, override, workflow_hash, payload, prev_hash, hash"
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _guards(n: int) -> str:
    return _canonical(
        [
            {
                "guard": f"record:evidence_{i}",
                "passed": True,
                "reason": f"evidence {i} recorded on 2026-03-0{i + 1}",
                "soft": i == n - 1,
            }
            for i in range(n)
        ]
    )


TEMPLATES: list[dict[str, Any]] = [
    {
        "kind": "record",
        "trigger": None,
        "from_state": "job_matching",
        "to_state": "job_matching",
        "reason": None,
        "guards": "[]",
        "override": "null",
        "payload": _canonical(
            {
                "record": {
                    "kind": "job_offer",
                    "fields": {
                        "employer": "Green Garden Centre",
                        "role": "Plant care",
                        "start_date": "2026-04-13",
                        "hours_per_week": "20",
                        "hourly_pay": "12.90",
                    },
                }
            }
        ),
    },
    {
        "kind": "transition",
        "trigger": "start_job",
        "from_state": "job_matching",
        "to_state": "in_work_support",
        "reason": None,
        "guards": _guards(4),
        "override": _canonical({"by": "lee", "reason": "support plan agreed by phone"}),
        "payload": "{}",
    },
    {
        "kind": "record",
        "trigger": None,
        "from_state": "vocational_profiling",
        "to_state": "vocational_profiling",
        "reason": None,
        "guards": "[]",
        "override": "null",
        "payload": _canonical(
            {"record": {"kind": "note", "fields": {"text": 'Called, left a message; "2nd try"'}}}
        ),
    },
    {
        "kind": "pause",
        "trigger": "pause",
        "from_state": "customer_engagement",
        "to_state": "customer_engagement",
        "reason": "in hospital for a week",
        "guards": _guards(2),
        "override": "null",
        "payload": _canonical({"review_date": "2026-06-15"}),
    },
]


def fill(path: Path, events: int) -> int:
    """A database holding one staff event and `events` more; returns the total."""
    from se_flow._audit import row_hash

    with se_flow.open(path, actor="bench", clock=clock) as flow:
        flow.add_staff("bench", "Bench Admin", "admin")
        workflow_hash = flow.workflow.hash
        seq, prev = flow.store.head()
    names = [c.strip() for c in COLUMNS.split(",")]
    insert = f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' for _ in names)})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    for i in range(events):
        seq += 1
        day = f"2026-{1 + (i // 100_000) % 5:02d}-{1 + (i // 4_000) % 28:02d}"
        row = {
            "seq": seq,
            "case_id": f"C-{1 + i // 40}",
            "from_phase": None,
            "to_phase": None,
            "actor": "sam",
            "role": "coach",
            "effective_at": f"{day}T00:00:00+00:00",
            "recorded_at": f"{day}T09:{i % 60:02d}:00+00:00",
            "workflow_hash": workflow_hash,
            "prev_hash": prev,
            **TEMPLATES[i % len(TEMPLATES)],
        }
        row["hash"] = prev = row_hash(row)
        batch.append(tuple(row[n] for n in names))
        if len(batch) == 10_000:
            conn.executemany(insert, batch)
            batch.clear()
    conn.executemany(insert, batch)
    conn.execute("COMMIT")
    conn.close()
    return seq


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


# --- one measurement, in a child process ---------------------------------------------------


def spell_child(mode: str, db: Path, out: Path, cases: int) -> list[Row]:
    if mode == "spell_loop":
        conn = sqlite3.connect(db)
        start = time.perf_counter()
        with (out / "stage_events.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            cur = conn.execute(_STAGE_EVENTS)
            writer.writerow([d[0] for d in cur.description])
            for row in cur:
                writer.writerow(row)
        seconds = time.perf_counter() - start
        conn.close()
    else:
        with se_flow.open(db, actor=pop.LEAD, clock=clock) as flow:
            start = time.perf_counter()
            flow.export(out / "export", tables=["stage_histories"])
            seconds = time.perf_counter() - start
    return [
        Row("export stage_histories", size_label(cases), SPELL_CONTENDERS[mode], seconds, "s",
            peak_mb=peak_rss_mb())
    ]  # fmt: skip


def child(mode: str, db: Path, out: Path, expected: int) -> list[Row]:
    if mode in SPELL_CONTENDERS:
        return spell_child(mode, db, out, expected)
    if mode == "loop":
        conn = sqlite3.connect(db)
        start = time.perf_counter()
        with (out / "events.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([c.strip() for c in COLUMNS.split(",")])
            for row in conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq"):
                writer.writerow(row)
        seconds = time.perf_counter() - start
        conn.close()
        size = (out / "events.csv").stat().st_size
    else:
        with se_flow.open(db, actor="bench", clock=clock) as flow:
            start = time.perf_counter()
            manifest = flow.export(out / "export", tables=["events"], fmt=mode)
            seconds = time.perf_counter() - start
        # Earlier exports in this run each added their own audit event.
        if manifest.rows["events"] < expected:
            raise RuntimeError(f"exported {manifest.rows['events']} events, expected {expected}")
        size = sum(int(f["bytes"]) for f in manifest.files.values())
    return [
        Row(
            "export events",
            size_label(expected),
            CONTENDERS[mode],
            seconds,
            "s",
            peak_mb=peak_rss_mb(),
            extra={"file_mb": round(size / 1e6, 1)},
        )
    ]


def measure(mode: str, db: Path, folder: Path, expected: int) -> Row:
    out = Path(tempfile.mkdtemp(prefix="export-out-", dir=folder))
    try:
        args = ["--child", mode, "--db", str(db), "--out", str(out), "--expected", str(expected)]
        (row,) = run_child(MODULE, args)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return row


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Export throughput and peak memory vs a csv.writer loop.", argv)
    parser.add_argument("--events", type=int, help="events in the log (default 1M, quick 100k)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each contender")
    parser.add_argument("--cases", type=int, help="cases for stage_histories (default 100k)")
    parser.add_argument("--child", choices=[*CONTENDERS, *SPELL_CONTENDERS], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        emit_rows(child(args.child, Path(args.db), Path(args.out), args.expected))
        return []

    n = args.events or (TINY_EVENTS if tiny() else QUICK_EVENTS if args.quick else FULL_EVENTS)
    rounds = 1 if tiny() else args.rounds
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        db = folder / f"export-{n}.db"
        if db.exists() and _count(db) >= n + 1:
            log(f"export: reusing {db} ({_count(db):,} events)")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            log(f"export: filling {n:,} events (hashes chained, one transaction)")
            start = time.perf_counter()
            fill(db, n)
            log(f"export: filled in {time.perf_counter() - start:.1f} s")
        expected = n + 1
        measure("loop", db, folder, expected)  # warm the page cache for all alike
        samples: dict[str, list[Row]] = {mode: [] for mode in CONTENDERS}
        modes = list(CONTENDERS)
        for rnd in range(rounds):
            shift = rnd % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                log(f"export: round {rnd + 1}/{rounds}, {CONTENDERS[mode]}")
                samples[mode].append(measure(mode, db, folder, expected))
        if not args.data_dir:
            db.unlink(missing_ok=True)
        cases = args.cases or (TINY_CASES if tiny() else QUICK_CASES if args.quick else FULL_CASES)
        spells_db = pop.population(folder, cases, pristine=False)
        measure("spell_loop", spells_db, folder, cases)  # warm the page cache
        spell_samples: dict[str, list[Row]] = {mode: [] for mode in SPELL_CONTENDERS}
        for rnd in range(rounds):
            order = list(SPELL_CONTENDERS)[:: 1 if rnd % 2 == 0 else -1]
            for mode in order:
                log(f"export: round {rnd + 1}/{rounds}, {SPELL_CONTENDERS[mode]}")
                spell_samples[mode].append(measure(mode, spells_db, folder, cases))

    loop = median([r.median for r in samples["loop"]])
    for mode in modes:
        secs = median([r.median for r in samples[mode]])
        peak = max(r.peak_mb or 0.0 for r in samples[mode])
        ratio = loop / secs
        exporting = mode != "loop"
        rows.append(
            Row(
                "export events",
                f"{size_label(n)} events",
                CONTENDERS[mode],
                secs,
                "s",
                ratio=ratio if exporting else None,
                vs="se-flow/loop" if exporting else "",
                target=f"≥ {RATIO_TARGET}" if exporting else "",
                met=ratio >= RATIO_TARGET if exporting else None,
                peak_mb=peak,
                n=len(samples[mode]),
                note=f"{expected / secs:,.0f} rows/s; file {samples[mode][0].extra['file_mb']} MB"
                + (
                    f"; peak RSS {'under' if peak < PEAK_TARGET_MB else 'OVER'} the "
                    f"{PEAK_TARGET_MB:.0f} MB target"
                    if exporting
                    else ""
                ),
                extra={"rows_per_s": round(expected / secs), "events": expected},
            )
        )
    spell_loop = median([r.median for r in spell_samples["spell_loop"]])
    for mode, label in SPELL_CONTENDERS.items():
        secs = median([r.median for r in spell_samples[mode]])
        exporting = mode != "spell_loop"
        ratio = spell_loop / secs
        rows.append(
            Row(
                "export stage_histories",
                f"{size_label(cases)} cases",
                label,
                secs,
                "s",
                ratio=ratio if exporting else None,
                vs="se-flow/loop" if exporting else "",
                target=f"≥ {SPELL_TARGET}" if exporting else "",
                met=ratio >= SPELL_TARGET if exporting else None,
                peak_mb=max(r.peak_mb or 0.0 for r in spell_samples[mode]),
                n=len(spell_samples[mode]),
                note=f"{cases / secs:,.0f} cases/s",
            )
        )
    print_table(rows, f"Export of {n:,} audit events and {cases:,} cases' stage histories")
    return rows


if __name__ == "__main__":
    main()
