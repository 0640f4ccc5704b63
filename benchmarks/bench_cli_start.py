"""Cold start of the job coach's terminal: `se-flow cases` on a 1,000-case database, against a
minimal Typer + rich app that prints a 10-row table, both measured in this run.

    python -m benchmarks.bench_cli_start [--quick] [--rounds N] [--cases N]

Each round starts both commands as fresh processes, one after the other (the order rotated
every round), with stdout piped as a script would read it. The contenders:

* `se-flow cases`: the installed console script (`<venv>/bin/se-flow`, next to the running
  interpreter) listing every open case of the database (1,000 rows);
* `se-flow cases (no .pyc)`: the same with PYTHONDONTWRITEBYTECODE=1 and no cached bytecode
  for se_flow, as in a checkout whose `__pycache__` cannot be written (shown for honesty: a
  pip install compiles the bytecode once, so users see the first contender);
* `se-flow cases (Typer coercion)`: the same app with its plain-parameter shortcut switched
  off, so Typer coerces every option through pydantic as it does by default (Typer 0.2x
  imports pydantic, ~90 ms, as soon as any option, even --help, is processed; the baseline
  pays that too);
* `baseline`: `python baseline.py`, a Typer app with one command that prints a 10-row rich
  table, the least any Typer + rich command costs (with Typer 0.2x that includes pydantic,
  imported to coerce the --help option's value);
* `import typer, rich`: `python -c "import typer, rich.console, rich.table"`, the floor under
  both, for context (no command runs, no pydantic).

The ratio printed is time ÷ the baseline's time (target: `se-flow cases` ≤ 1.3×); in the table's
`vs baseline` column it reads the other way up, baseline ÷ contender, like every benchmark here.
The database is built through the public API (refer, record, advance), cases spread over every
stage and over coaches with caseloads of about 30.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import se_flow
from se_flow._evidence import LEAST_EVIDENCE, ORDER

from ._common import (
    T0,
    Row,
    bench_args,
    data_dir,
    interleave,
    log,
    machine,
    median,
    print_table,
    quantile,
    remove_db,
    tiny,
)

TARGET = 1.3
CASELOAD = 30

BASELINE_APP = '''
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer()


@app.command()
def cases() -> None:
    """List ten cases."""
    table = Table()
    for head in ("Case", "Participant", "Stage", "Days", "Coach", "Review due"):
        table.add_column(head)
    for i in range(10):
        table.add_row(f"C-{i}", f"P-{i:010x}", "3 Employer Engagement", str(i), "sam", "2026-06-01")
    Console().print(table)


if __name__ == "__main__":
    app()
'''

# The places a case is moved forward out of: referred to stage 5's first phase.
PLACES = ORDER[: ORDER.index("in_work_support")]


def build(path: Path, n: int) -> None:
    """n cases through the public API, case i moved i mod 6 steps along (referred to stage 5)."""
    remove_db(path)
    coaches = max(1, -(-n // CASELOAD))
    with se_flow.open(path, clock=lambda: T0, synchronous="OFF") as flow, flow.batch():
        flow.add_staff("lead", "Team Leader", "team_leader", actor="lead")
        for k in range(coaches):
            flow.add_staff(f"coach-{k:03d}", f"Coach {k}", "coach", actor="lead")
        for i in range(n):
            coach = f"coach-{i % coaches:03d}"
            start = T0 - dt.timedelta(days=60 + i % 28)
            case = flow.refer(f"Participant {i}", source="GP", coach=coach, actor=coach,
                              effective_at=start).case  # fmt: skip
            for step, place in enumerate(PLACES[: i % (len(PLACES) + 1)]):
                at = start + dt.timedelta(days=5 * (step + 1))
                forward = LEAST_EVIDENCE[place]
                for kind, fields in forward.records:
                    flow.record(case.id, kind, fields, actor=coach, effective_at=at)
                flow.advance(case.id, forward.trigger, actor=coach, effective_at=at)


def _env(bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("SE_FLOW_DB", None)
    env["COLUMNS"] = "120"
    return env


def _run(cmd: Sequence[str], env: dict[str, str], expect: str | None = None) -> float:

    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or (expect is not None and expect not in done.stdout):
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[:500]}"
        )
    return took


def _drop_bytecode() -> None:
    """Remove se_flow's cached bytecode, so the no-.pyc contender compiles from source."""
    for cache in Path(se_flow.__file__).parent.glob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Cold start of `se-flow cases` against a minimal Typer+rich app.", argv)
    parser.add_argument("--rounds", type=int, help="runs of each command (default by mode)")
    parser.add_argument("--cases", type=int, default=1000, help="cases in the database")
    args: argparse.Namespace = parser.parse_args(argv)
    n = 50 if tiny() else args.cases
    rounds = args.rounds or (3 if tiny() else 15 if args.quick else 41)
    script = Path(sys.executable).parent / "se-flow"
    if not script.exists():
        raise SystemExit(f"no se-flow script next to {sys.executable}: pip install -e . first")
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        db = folder / f"cli-start-{n}.db"
        log(f"cli start: building {n} cases through the API in {db}")
        build(db, n)
        baseline = folder / "baseline_app.py"
        baseline.write_text(BASELINE_APP, encoding="utf-8")

        with_pyc, without_pyc = _env(bytecode=True), _env(bytecode=False)
        se_cmd = [str(script), "--db", str(db), "--as", "lead", "cases"]
        base_cmd = [sys.executable, str(baseline)]
        floor_cmd = [sys.executable, "-c", "import typer, rich.console, rich.table"]
        typer_cmd = [
            sys.executable,
            "-c",
            "import sys, se_flow.cli as c; c._plain_params = lambda *a: None; sys.exit(c.main())",
            *se_cmd[1:],
        ]
        expect = f"{n} case(s)"
        # Warm up: the page cache, and se_flow's bytecode written once as an install would.
        for _ in range(2):
            _run(se_cmd, with_pyc, expect)
            _run(base_cmd, with_pyc)

        def se_flow_cases(_: int) -> list[float]:
            return [_run(se_cmd, with_pyc, expect)]

        def se_flow_no_pyc(_: int) -> list[float]:
            _drop_bytecode()
            return [_run(se_cmd, without_pyc, expect)]

        def se_flow_typer(_: int) -> list[float]:
            return [_run(typer_cmd, with_pyc, expect)]

        def floor(_: int) -> list[float]:
            return [_run(floor_cmd, with_pyc)]

        def base(_: int) -> list[float]:
            return [_run(base_cmd, with_pyc)]

        log(f"cli start: {rounds} rounds of each command")
        got = interleave(
            {
                "baseline": base,
                "se-flow cases": se_flow_cases,
                "se-flow cases (no .pyc)": se_flow_no_pyc,
                "se-flow cases (Typer coercion)": se_flow_typer,
                "import typer, rich": floor,
            },
            rounds,
        )
        _run(se_cmd, with_pyc, expect)  # leave the bytecode cached again

    base_ms = median(got["baseline"]) * 1e3
    for name, samples in got.items():
        ms = median(samples) * 1e3
        ratio = ms / base_ms
        row = Row(
            "cli-start",
            f"{n} cases",
            name,
            ms,
            "ms",
            ratio=base_ms / ms,
            vs="baseline",
            n=len(samples),
            extra={"p90_ms": round(quantile(samples, 0.9) * 1e3, 1), "time_ratio": ratio},
        )
        if name != "baseline":
            row.note = f"{ratio:.2f}× the baseline's time"
        if name == "se-flow cases":
            row.target = f"time ≤ {TARGET}× baseline"
            row.met = ratio <= TARGET
        rows.append(row)
    print_table(rows, f"Cold start (stdout piped; {machine()['cpu']}, {machine()['cores']} cores)")
    return rows


if __name__ == "__main__":
    main()
