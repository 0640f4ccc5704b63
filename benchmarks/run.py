"""Run every benchmark and print one table of medians and ratios.

    python -m benchmarks.run            # full sizes (1k / 100k / 1M cases: long; see README)
    python -m benchmarks.run --quick    # small sizes, under two minutes on 2 cores
    python -m benchmarks.run --only transitions,reads --data-dir /var/tmp/se-flow-bench
    python -m benchmarks.run --callgrind   # adds CPU per command in instructions (valgrind)

Each `benchmarks/bench_*.py` runs in its own process (so one benchmark's memory never shows
in another's peak), through its `main(argv)`; the rows it returns are gathered here into one
table. A module whose `main` returns no rows still runs: its own output is shown after the
table. The exit status is 0 when every benchmark ran, whether or not it met its targets
(performance is reported, never asserted), and 1 when one failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._common import (
    DATA_ENV,
    ROW_MARK,
    TINY_ENV,
    Row,
    emit_rows,
    format_table,
    log,
    machine,
    repo_root,
)

# The order of the table; any other bench_*.py found runs after these.
ORDER = ("transitions", "bulk", "reads", "export", "cli_start")
# Not a bench_*.py: valgrind makes it slow, so it runs only when asked for (--callgrind).
CALLGRIND = "callgrind"


def available() -> list[str]:
    found = {p.stem[len("bench_") :] for p in Path(__file__).parent.glob("bench_*.py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def _as_row(item: Any) -> Row | None:
    if isinstance(item, Row):
        return item
    if isinstance(item, dict):
        try:
            return Row(**item)
        except TypeError:
            return None
    return None


def run_module_here(name: str, quick: bool) -> int:
    """Inside the child: call the module's main, hand its rows to the parent."""
    module = importlib.import_module(
        f"benchmarks.{name}" if name == CALLGRIND else f"benchmarks.bench_{name}"
    )
    argv = ["--quick"] if quick else []
    captured = io.StringIO()
    try:
        takes_argv = bool(inspect.signature(module.main).parameters)
    except (TypeError, ValueError):
        takes_argv = False
    saved_argv = sys.argv
    try:
        with contextlib.redirect_stdout(captured):
            if takes_argv:
                result = module.main(argv)
            else:
                sys.argv = [f"benchmarks.bench_{name}", *argv]
                result = module.main()
    except SystemExit as stop:
        if stop.code not in (0, None):
            print(captured.getvalue(), file=sys.stderr)
            if quick and stop.code == 2:
                print(f"{name}: does not take --quick; left out of the quick run", flush=True)
                return 0
            raise
        result = None
    finally:
        sys.argv = saved_argv
    rows = [r for r in (_as_row(x) for x in result) if r] if isinstance(result, list) else []
    if rows:
        emit_rows(rows)
    else:
        print(captured.getvalue(), end="", flush=True)
    return 0


def run_module(name: str, quick: bool, env: dict[str, str]) -> tuple[list[Row], str, bool]:
    """Run one benchmark module in a child process: (its rows, its other output, ran ok)."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--module", name]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=repo_root(), env=env)
    rows, other = [], []
    for line in proc.stdout.splitlines():
        if line.startswith(ROW_MARK):
            rows.append(Row.from_json(line[len(ROW_MARK) :]))
        else:
            other.append(line)
    return rows, "\n".join(other).strip(), proc.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every se-flow benchmark.")
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"smallest sizes, only to check every path runs (sets {TINY_ENV}=1; implies --quick)",
    )
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(available())}")
    parser.add_argument("--data-dir", help="keep populations here and reuse them across runs")
    parser.add_argument("--save", help="also write the rows and the machine to this JSON file")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per command under valgrind (slow; skipped without valgrind); "
        "with --only, after those benchmarks",
    )
    parser.add_argument("--module", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick or args.tiny
    if args.module:
        return run_module_here(args.module, quick)

    names = available()
    if args.only:
        wanted = [n.strip().removeprefix("bench_") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"no benchmark {', '.join(unknown)}; there are: {', '.join(names)}")
        names = wanted
    if args.callgrind:
        # A mode of its own; with --only, after the benchmarks named.
        names = [*(names if args.only else []), CALLGRIND]
    env = dict(os.environ)
    if args.tiny:
        env[TINY_ENV] = "1"
    if args.data_dir:
        env[DATA_ENV] = str(Path(args.data_dir).resolve())
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p
    )

    rows: list[Row] = []
    others: list[tuple[str, str]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        log(f"=== {name} ===")
        t = time.perf_counter()
        got, other, ok = run_module(name, quick, env)
        rows.extend(got)
        if other:
            others.append((name, other))
        if not ok:
            failed.append(name)
        log(f"{name}: {'done' if ok else 'FAILED'} in {time.perf_counter() - t:.0f} s")
    elapsed = time.perf_counter() - started

    box = machine()
    mode = "tiny" if args.tiny else "quick" if quick else "full"
    print(
        f"se-flow benchmarks ({mode}, {elapsed:.0f} s) on {box['cpu']}, {box['cores']} cores, "
        f"{box['memory']}; Python {box['python']}, SQLite {box['sqlite']}"
    )
    print(
        "Medians; 'vs baseline' is a throughput ratio measured in the same run "
        "(se-flow/raw 0.5× = half raw's operations per second)."
    )
    print()
    print(format_table(rows))
    for name, text in others:
        print(f"\n--- {name} (its own output) ---\n{text}")
    missed = [r for r in rows if r.met is False]
    print()
    print(
        f"{len(rows)} rows; targets met: {sum(r.met is True for r in rows)}, "
        f"missed: {len(missed)}" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if args.save:
        Path(args.save).write_text(
            json.dumps({"machine": box, "mode": mode, "rows": [asdict(r) for r in rows]}, indent=1)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
