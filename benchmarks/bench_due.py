"""One due list against reviews alone: what service standards cost `due` on a big caseload.

On a population of n cases (see `_population.py`: each case referred, engaged, profiled and in
employer engagement, so every IPES and IPS standard of the default workflow has an anchor):

* **api (team)**: `flow.due_items()` (reviews, standards and follow-along in one list) against
  `flow.due()` (reviews alone, as before standards), every open case, in the same process.
* **api (coach)**: the same for one coach's caseload (~30 cases).
* **cli (team)**: `se-flow due --all --within 0 --json` with the default workflow against the
  same command with a stage folder that has no standards (reviews alone), each a new process.
* **api (first 50)**: the first page, `flow.due_items(within_days=7, limit=50)`, against
  `flow.due(within_days=7, limit=50)`; its own claim (issue 11): under 50 ms at any size
  (the due projection's index range, not an evaluation of every open case).

The claim (issue 12): the one list stays within 2x of reviews alone (ratio >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import se_flow

from . import _population as pop
from ._common import (
    Row,
    bench_args,
    clock,
    data_dir,
    emit_rows,
    interleave,
    log,
    median,
    peak_rss_mb,
    print_table,
    run_child,
    size_label,
    tiny,
)

MODULE = "benchmarks.bench_due"
FULL_SIZES = (100_000,)
QUICK_SIZES = (10_000,)
TINY_SIZES = (300,)
TARGET = 0.5
PAGE_MS = 50.0


def _timed(call: Callable[[], int], reps: int, counts: dict[str, int], key: str) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        counts[key] = call()
        out.append(time.perf_counter() - t)
    return out


def _row(name: str, n: int, base: list[float], new: list[float], rows: int) -> list[Row]:
    size = f"{size_label(n)} cases"
    base_ms, new_ms = median(base) * 1e3, median(new) * 1e3
    ratio = base_ms / new_ms if new_ms else None
    return [
        Row(f"due/{name}", size, "reviews only", base_ms, "ms", n=len(base)),
        Row(
            f"due/{name}",
            size,
            "one due list",
            new_ms,
            "ms",
            ratio=ratio,
            vs="reviews/list",
            target=f">= {TARGET}",
            met=ratio is not None and ratio >= TARGET,
            n=len(new),
            note=f"{rows} items",
        ),
    ]


def _no_standards(folder: Path) -> Path:
    """A copy of the default stage folder without its standards: reviews alone."""
    out = folder / "stages-reviews-only"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(se_flow.default_stages_dir(), out, ignore=shutil.ignore_patterns("*.py*"))
    for file in out.glob("*.toml"):
        text = file.read_text(encoding="utf-8")
        head, sep, _ = text.partition("[[standards]]")
        if sep:
            # Every file keeps its standards last (checked by the loader: no stray fault).
            file.write_text(head, encoding="utf-8")
    return out


def child(path: Path, n: int, quick: bool) -> list[Row]:
    flow = se_flow.open(path, clock=clock, create=False, actor=pop.LEAD)
    rounds, reps = (2, 1) if tiny() else (3, 1) if not quick else (3, 2)
    rows: list[Row] = []
    counts: dict[str, int] = {}
    flow.due_items()  # warm the page cache
    got = interleave(
        {
            "base": lambda _r: _timed(lambda: len(flow.due()), reps, counts, "base"),
            "new": lambda _r: _timed(lambda: len(flow.due_items()), reps, counts, "new"),
        },
        rounds,
    )
    rows += _row("api (team)", n, got["base"], got["new"], counts["new"])
    rng = random.Random(f"due-{n}")
    coaches = [pop.coach_id(rng.randrange(pop.coaches_for(n))) for _ in range(32)]
    got = interleave(
        {
            "base": lambda r: _timed(
                lambda: len(flow.due(coach=coaches[r % 32])), 10, counts, "base"
            ),
            "new": lambda r: _timed(
                lambda: len(flow.due_items(coach=coaches[r % 32])), 10, counts, "new"
            ),
        },
        rounds + 2,
    )
    rows += _row("api (coach)", n, got["base"], got["new"], counts["new"])
    got = interleave(
        {
            "base": lambda _r: _timed(
                lambda: len(flow.due(within_days=7, limit=50)), 10, counts, "base"
            ),
            "new": lambda _r: _timed(
                lambda: len(flow.due_items(within_days=7, limit=50)), 10, counts, "new"
            ),
        },
        rounds + 2,
    )
    page = _row("api (first 50)", n, got["base"], got["new"], counts["new"])
    page[1].target, page[1].met = f"< {PAGE_MS:.0f} ms", page[1].median < PAGE_MS
    rows += page
    flow.disconnect()
    peak = peak_rss_mb()
    for r in rows:
        r.peak_mb = peak
    return rows


def _cli(path: Path, n: int, quick: bool) -> list[Row]:
    exe = Path(sys.executable).with_name("se-flow")
    with tempfile.TemporaryDirectory() as tmp:
        plain = _no_standards(Path(tmp))
        base_cmd = [str(exe), "--db", str(path), "--as", pop.LEAD, "due", "--all"]
        cmds = {
            "base": [str(exe), "--stages", str(plain), *base_cmd[1:], "--within", "0", "--json"],
            "new": [*base_cmd, "--within", "0", "--json"],
        }
        counts: dict[str, int] = {}

        def run(key: str) -> list[float]:
            t = time.perf_counter()
            proc = subprocess.run(
                cmds[key], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}
            )
            took = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            counts[key] = len(re.findall(r'"case_id"', proc.stdout))
            return [took]

        rounds = 2 if tiny() else 3
        got = interleave({"base": lambda _r: run("base"), "new": lambda _r: run("new")}, rounds)
    return _row("cli (team)", n, got["base"], got["new"], counts["new"])


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("One due list (reviews + standards) against reviews alone.", argv)
    parser.add_argument("--sizes", help="comma-separated case counts (default by mode)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        emit_rows(child(Path(args.db), args.child, args.quick))
        return []
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = list(TINY_SIZES if tiny() else QUICK_SIZES if args.quick else FULL_SIZES)
    quick = ["--quick"] if args.quick else []
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        for n in sizes:
            path = pop.population(folder, n, pristine=False)
            log(f"due: {size_label(n)} cases, api")
            rows.extend(run_child(MODULE, ["--child", str(n), "--db", str(path), *quick]))
            log(f"due: {size_label(n)} cases, cli")
            rows.extend(_cli(path, n, args.quick))
    print_table(rows, "Due: one list of reviews and standards against reviews alone")
    return rows


if __name__ == "__main__":
    main()
