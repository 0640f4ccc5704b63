"""The CLI's report commands: formats, --out, --explain, refusals; the HTML in a browser."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import Steps
from test_cli import CLI, event_count, ok, refused

from se_flow import SEFlow


@pytest.fixture
def cli(flow: SEFlow, steps: Steps, tmp_path: Path) -> CLI:
    steps.to("in_work_support", steps.refer(referral={"programme": "ips_grow"}))
    steps.refer()
    return CLI(tmp_path / "t.db")


def test_ips_grow_table_fits_80_columns_and_explains(cli: CLI) -> None:
    result = cli("report", "ips-grow", "--quarter", "2026-Q2", "--explain", env={"COLUMNS": "80"})
    out = ok(result)
    assert "Total job starts" in out and "[total_job_starts]" in out
    assert "Every job (2nd, 3rd and concurrent ones too)" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_json_and_csv_carry_methods_and_cases(cli: CLI) -> None:
    data = json.loads(ok(cli("report", "ips-grow", "--quarter", "2026-Q2", "--format", "json")))
    starts = {k["id"]: k for k in data["kpis"]}["total_job_starts"]
    assert starts["numerator"] == len(starts["numerator_cases"]) == 1
    rows = list(
        csv.DictReader(
            io.StringIO(ok(cli("report", "coaches", "--month", "2026-06", "--format", "csv")))
        )
    )
    keys = {r["key"] for r in rows}
    assert "caseload_score:sam" in keys and all(r["method"] for r in rows)


def test_kpi_lists_the_cases_behind_a_figure(cli: CLI) -> None:
    out = ok(cli("report", "kpi", "referrals_accepted", "--quarter", "2026-Q2", "--cases"))
    assert "numerator (2):" in out and "C-1 C-2" in out
    refused(cli("report", "kpi", "nope", "--quarter", "2026-Q2"), 4, "nope")


def test_bad_periods_and_outputs_are_refused(cli: CLI, tmp_path: Path) -> None:
    before = event_count(cli.db)
    refused(cli("report", "ips-grow", "--quarter", "2026-Q5"), 5, "--quarter", "Q1 to Q4")
    refused(cli("report", "coaches", "--month", "2026-13"), 5, "--month", "01 to 12")
    refused(
        cli("report", "fidelity", "--since", "2026-09-01", "--until", "2026-08-01"),
        5,
        "empty",
    )
    refused(cli("report", "coaches", "--month", "2026-06", "--coach", "zed"), 4, "zed")
    existing = tmp_path / "r.html"
    existing.write_text("mine")
    refused(
        cli(
            "report", "ips-grow", "--quarter", "2026-Q2", "--format", "html", "--out", str(existing)
        ),
        5,
        "exists",
        "--force",
    )
    assert existing.read_text() == "mine"
    assert event_count(cli.db) == before


def test_out_writes_the_file_and_logs_the_report(cli: CLI, tmp_path: Path) -> None:
    before = event_count(cli.db)
    out = tmp_path / "return.csv"
    ok(cli("report", "standards", "--quarter", "2026-Q2", "--format", "csv", "--out", str(out)))
    assert out.read_text().startswith("key,title,period")
    assert event_count(cli.db) == before + 1
    ok(
        cli(
            "report",
            "seqf",
            str(tmp_path / "pack"),
            "--sample",
            "1",
            "--seed",
            "3",
            "--quarter",
            "2026-Q2",
        )
    )
    assert json.loads((tmp_path / "pack" / "seqf.json").read_text())["seed"] == 3


# --- the HTML report in a browser ----------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("SE_FLOW_REQUIRE_CHROMIUM") == "1"
BUILD = Path(__file__).resolve().parent.parent / "build"


def test_the_html_report_renders_in_headless_chromium(cli: CLI, tmp_path: Path) -> None:
    """One file, no network: no request leaves the page, no error, the three charts drawn."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip("playwright is not installed")
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("SE_FLOW_REQUIRE_CHROMIUM=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (CI installs Debian's)")
    page_file = tmp_path / "report.html"
    ok(
        cli(
            "report",
            "ips-grow",
            "--quarter",
            "2026-Q2",
            "--format",
            "html",
            "--out",
            str(page_file),
        )
    )
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        charts = page.eval_on_selector_all(
            "svg.chart", "els => els.map(e => [e.dataset.chart, e.getBoundingClientRect().height])"
        )
        bars = page.locator("svg.chart rect.bar").count()
        kpis = page.locator("tr.kpi").count()
        BUILD.mkdir(exist_ok=True)
        page.screenshot(path=str(BUILD / "report-ips-grow.png"), full_page=True)
        browser.close()
    assert [r for r in requests if r != page_file.as_uri()] == []
    assert errors == []
    assert [name for name, _ in charts] == ["funnel", "starts", "caseload"]
    assert all(height > 50 for _, height in charts)
    assert bars > 0 and kpis == 10
    assert (BUILD / "report-ips-grow.png").stat().st_size > 1000
