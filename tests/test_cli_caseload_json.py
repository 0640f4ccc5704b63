"""`se-flow cases --json` streams the caseload as one JSON array, a case a line, compact: the
same data `case_json` gives for each case, however many cases there are."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import attrs
from helpers import Steps
from typer.testing import CliRunner

import se_flow
from se_flow._cli_text import case_json, caseload_lines, json_array
from se_flow.cli import app


def _cases(flow: se_flow.SEFlow, steps: Steps) -> list[se_flow.Case]:
    steps.to("vocational_profiling")
    paused = steps.to("customer_engagement")
    flow.pause(paused.id, reason="In hospital", review_date=dt.date(2026, 7, 1))
    closed = steps.refer("Cal Doe")
    flow.withdraw(closed.id, reason="Moved away")
    flow.refer("Dee\u202eevil", source="GP", coach="kim")  # bidi override in nothing printed
    return flow.cases(status="all")


def test_each_line_is_the_case_as_case_json_says(flow: se_flow.SEFlow, steps: Steps) -> None:
    cases = _cases(flow, steps)
    today = flow.now().date() + dt.timedelta(days=9)
    lines = list(caseload_lines(flow.workflow, cases, today))
    assert [json.loads(line) for line in lines] == [
        case_json(flow.workflow, c, today) for c in cases
    ]
    # Key order too: a script diffing yesterday's output against today's sees no churn.
    assert [list(json.loads(line)) for line in lines] == [
        list(case_json(flow.workflow, c, today)) for c in cases
    ]


def test_the_listing_is_one_json_array_a_case_a_line(
    flow: se_flow.SEFlow, steps: Steps, tmp_path: Path
) -> None:
    cases = _cases(flow, steps)
    db = Path(flow.store.path)  # type: ignore[attr-defined]
    result = CliRunner().invoke(
        app, ["--db", str(db), "--as", "sam", "cases", "--status", "all", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert [c["id"] for c in json.loads(out)] == [c.id for c in cases]
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(cases) + 2
    assert all(line.startswith('{"id":') for line in lines[1:-1])
    assert "\u202e" not in out and "\\u202e" not in out  # names are not in the caseload


def test_an_unsafe_character_is_escaped_and_an_empty_caseload_is_an_empty_array(
    flow: se_flow.SEFlow, steps: Steps
) -> None:
    # A terminal acts on a bidi override even inside a JSON string; \\u202e means the same.
    case = attrs.evolve(steps.refer(), outcome="with\u202edrawn")
    [line] = caseload_lines(flow.workflow, [case], flow.now().date())
    assert "\u202e" not in line and "with\\u202edrawn" in line
    assert json.loads(line)["outcome"] == "with\u202edrawn"
    assert "".join(json_array([])) == "[]\n"
    assert "".join(json_array(['{"a":1}', '{"a":2}'])) == '[\n{"a":1},\n{"a":2}\n]\n'
