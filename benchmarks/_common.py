"""What every benchmark shares: timing, medians, peak memory, child processes, the table.

Conventions (every `benchmarks/bench_*.py` follows them, so `benchmarks.run` can call it):

* `main(argv: Sequence[str] | None = None) -> list[Row]`: parses its arguments with
  `bench_args` (at least `--quick`), prints its own table with `print_table`, and returns its
  rows so the runner can print one table of everything. `python -m benchmarks.bench_x` works.
* `--quick` finishes in well under two minutes on a 2-core machine; `SE_FLOW_BENCH_TINY=1`
  (set by `run --tiny`, used by the test) shrinks sizes further so every path still runs.
* Contenders are measured side by side in the same run, interleaved (round-robin, order
  rotated each round), and reported as medians; ratios are against a baseline from that same
  run, never against a number from another machine or day.
* Progress goes to stderr (`log`), the table to stdout.
* Memory: a benchmark that compares sizes measures each in a child process (`run_child`),
  which reports its peak RSS (`peak_rss_mb`), so one size's peak does not hide another's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Every benchmark runs against this fixed clock: the populations are dated relative to it,
# so results do not depend on the day they are run.
T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)

ROW_MARK = "@@se-flow-bench-row "
TINY_ENV = "SE_FLOW_BENCH_TINY"
DATA_ENV = "SE_FLOW_BENCH_DATA"


def clock() -> dt.datetime:
    return T0


def tiny() -> bool:
    """True when the run only checks that every path works (the test), not how fast."""
    return os.environ.get(TINY_ENV, "") not in ("", "0")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- rows and the table -------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table.

    `median` is in `unit`. `ratio` compares throughputs as `vs` names them: "se-flow/raw"
    0.8 means se-flow does 80 % of raw's operations per second (raw's median time ÷ se-flow's),
    measured in the same run. `target`
    is the claim in words ("≥ 0.5") and `met` whether this run met it (None: no target)."""

    bench: str
    size: str
    contender: str
    median: float
    unit: str
    ratio: float | None = None
    vs: str = ""
    target: str = ""
    met: bool | None = None
    peak_mb: float | None = None
    n: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Row:
        return cls(**json.loads(text))


def emit_rows(rows: Sequence[Row]) -> None:
    """A child process hands its rows to the parent on stdout, one marked line each."""
    for row in rows:
        print(ROW_MARK + row.to_json(), flush=True)


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row], title: str = "") -> str:
    head = ("benchmark", "size", "contender", "median", "vs baseline", "target", "peak RSS", "n")
    body = []
    for r in rows:
        ratio = f"{r.vs} {r.ratio:.2f}×" if r.ratio is not None else ""
        target = r.target
        if r.met is not None and target:
            target += " ok" if r.met else " MISSED"
        peak = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None else ""
        body.append(
            (
                r.bench,
                r.size,
                r.contender,
                f"{_num(r.median)} {r.unit}",
                ratio,
                target,
                peak,
                str(r.n) if r.n else "",
            )
        )
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)
    ]
    right = {3, 4, 6, 7}

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    lines = []
    if title:
        lines.append(title)
    lines.append(line(head))
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for r, cells in zip(rows, body, strict=True):
        if prev is not None and r.bench != prev:
            lines.append("")
        prev = r.bench
        lines.append(line(cells))
    notes = [f"- {r.bench} / {r.size} / {r.contender}: {r.note}" for r in rows if r.note]
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def print_table(rows: Sequence[Row], title: str = "") -> None:
    print(format_table(rows, title), flush=True)


# --- timing -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank: enough to show spread next to a median."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def interleave(
    contenders: Mapping[str, Callable[[int], list[float]]], rounds: int
) -> dict[str, list[float]]:
    """Run each contender once per round, rotating who goes first, and pool their samples.

    Each callable takes the round number and returns the samples it measured (seconds).
    Rotating the order spreads drift (a checkpoint, a neighbour's burst of I/O, the page
    cache warming) across all contenders instead of loading it onto one."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rnd in range(rounds):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].extend(contenders[name](rnd))
    return samples


def time_each(fn: Callable[[int], object], count: int) -> list[float]:
    """Call fn(i) for i in range(count), timing each call on its own (seconds)."""
    out = []
    perf = time.perf_counter
    for i in range(count):
        start = perf()
        fn(i)
        out.append(perf() - start)
    return out


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- memory -------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size so far.

    On Linux this is VmHWM, the high-water mark of this program's own memory: getrusage's
    ru_maxrss survives exec, so a child started by a big parent would report the parent's
    peak (measured here: a 30 MB child reported 180 MB)."""
    try:
        with open("/proc/self/status") as f:
            for text in f:
                if text.startswith("VmHWM:"):
                    return int(text.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / (1024 * 1024)


def rss_mb() -> float:
    """This process's resident set size now."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:  # pragma: no cover - not Linux
        return peak_rss_mb()


# --- child processes ----------------------------------------------------------------------


def run_child(module: str, args: Sequence[str], *, timeout: float | None = None) -> list[Row]:
    """Run `python -m module args...` and collect the rows it emits. Its stderr (progress)
    passes through; anything else it prints is relayed to our stderr."""
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, cwd=str(repo_root())
    )
    rows = []
    for text in proc.stdout.splitlines():
        if text.startswith(ROW_MARK):
            rows.append(Row.from_json(text[len(ROW_MARK) :]))
        elif text.strip():
            print(text, file=sys.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}): {' '.join(cmd)}")
    return rows


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# --- arguments and data -------------------------------------------------------------------


def bench_args(description: str, argv: Sequence[str] | None) -> argparse.ArgumentParser:
    """The options every benchmark takes. Call `.parse_args(argv)` after adding your own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_ENV),
        help=f"where populations are built and kept for reuse (default: a temporary folder "
        f"removed at the end; or ${DATA_ENV})",
    )
    return parser


@contextmanager
def data_dir(path: str | None) -> Iterator[Path]:
    """The folder for benchmark databases: the one given (kept), or a temporary one."""
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="se-flow-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def size_key(size: str) -> int:
    """Sort key for a size label such as "10k cases" or "1M cases"."""
    num = size.split()[0]
    mult = {"k": 1000, "M": 1_000_000}.get(num[-1:], 1)
    try:
        return int(num.rstrip("kM")) * mult
    except ValueError:
        return 0


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.startswith("model name"):
                    cpu = text.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        mem = f"{mem_kib / (1024 * 1024):.0f} GiB"
    except OSError:  # pragma: no cover
        mem = "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
