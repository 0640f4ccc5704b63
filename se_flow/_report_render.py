"""A report as JSON, CSV or one self-contained HTML file. Pure: text out, no I/O.

The HTML is one file with no network: the style inline, no script at all (a Content Security
Policy forbids any fetch), and the charts drawn as inline SVG here. Charting libraries were
weighed and not taken: pygal renders SVG but its interactive charts load JavaScript from the
network unless configured away; leather (SVG, no JavaScript) would draw plain bars, but the
report needs only a funnel, grouped monthly columns and bars against a limit line, about a
hundred lines of SVG, and its own SVG carries a <title> per bar and a `data-chart` name the
browser test looks for. A runtime dependency for that is more to install, audit and keep in
step than it saves.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Collection, Sequence

from ._csv_cells import defused
from ._report import CASELOAD_LIMIT, KPI, Report

__all__ = ["CSV_COLUMNS", "FORMATS", "clients_csv", "render", "to_csv", "to_html", "to_json"]

FORMATS = ("table", "json", "csv", "html")
CSV_COLUMNS = (
    "key",
    "title",
    "period",
    "basis",
    "as_at",
    "numerator",
    "denominator",
    "value",
    "unit",
    "target",
    "method",
    "definition",
    "definition_status",
    "numerator_cases",
    "denominator_cases",
)


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"


def to_csv(report: Report) -> str:
    """One row per KPI; the case lists space-separated."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for k in report.kpis:
        j = k.to_json()
        row = [
            k.key,
            k.title,
            k.period.label,
            k.basis,
            j["as_at"],
            k.numerator,
            k.denominator,
            j["value"],
            k.unit,
            j["target"],
            k.method,
            k.definition,
            k.definition_status,
            " ".join(k.numerator_cases),
            " ".join(k.denominator_cases),
        ]
        w.writerow(defused(row))
    return out.getvalue()


def clients_csv(report: Report, only: Collection[str] | None = None) -> str:
    """An SEQF pack's client list (`clients`), or the clients whose case ids are in `only`
    (its sample), one row per client, each text cell escaped as the exports escape it."""
    columns = tuple(report.clients[0]) if report.clients else ("case_id",)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for client in report.clients:
        if only is None or client["case_id"] in only:
            w.writerow(defused(client.get(c) for c in columns))
    return out.getvalue()


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report)
    raise ValueError(f"no text renderer for {fmt!r}")


# --- SVG charts -----------------------------------------------------------------------------

_W = 640
_BAR = "#2b6cb0"
_ALT = "#38a169"
_OVER = "#c53030"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def hbars(
    title: str, pairs: Sequence[tuple[str, int]], *, limit: int | None = None, name: str
) -> str:
    """Horizontal bars, one per label; a dashed line at `limit` and bars past it in red."""
    row, left, top = 26, 290, 30
    height = top + row * max(len(pairs), 1) + 30
    most = max([v for _, v in pairs] + [limit or 0, 1])
    scale = (_W - left - 60) / most
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{name}" '
        f'role="img" aria-label="{_e(title)}" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}">',
        f'<text x="0" y="18" font-weight="bold">{_e(title)}</text>',
    ]
    for i, (label, value) in enumerate(pairs):
        y = top + i * row
        colour = _OVER if limit is not None and value > limit else _BAR
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{_e(label)}</text>'
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{value * scale:.1f}" height="18" '
            f'fill="{colour}"><title>{_e(label)}: {value}</title></rect>'
            f'<text x="{left + value * scale + 6:.1f}" y="{y + 16}">{value}</text>'
        )
    if not pairs:
        parts.append(f'<text x="{left}" y="{top + 16}">nothing to show</text>')
    if limit is not None:
        x = left + limit * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 24}" '
            f'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{limit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def vbars(
    title: str, series: Sequence[tuple[str, Sequence[tuple[str, int]], str]], name: str
) -> str:
    """Grouped vertical bars by month: each series (name, pairs, colour) side by side."""
    labels = [label for label, _ in series[0][1]] if series else []
    height, top, bottom, left = 260, 44, 40, 30
    plot = height - top - bottom
    most = max([v for _, pairs, _ in series for _, v in pairs] + [1])
    slot = (_W - left) / max(len(labels), 1)
    width = max((slot - 6) / max(len(series), 1), 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{name}" '
        f'role="img" aria-label="{_e(title)}" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}">',
        f'<text x="0" y="18" font-weight="bold">{_e(title)}</text>',
    ]
    for s, (sname, _, colour) in enumerate(series):
        parts.append(
            f'<rect x="{left + 140 * s}" y="26" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + 140 * s + 14}" y="35">{_e(sname)}</text>'
        )
    for i, label in enumerate(labels):
        x0 = left + i * slot
        for s, (sname, pairs, colour) in enumerate(series):
            value = pairs[i][1]
            h = plot * value / most
            x = x0 + 3 + s * width
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot - h:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(label)} {_e(sname)}: {value}'
                "</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="10">{_e(label[2:])}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot}" x2="{_W}" y2="{top + plot}" stroke="#555"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10">{most}</text>'
        "</svg>"
    )
    return "".join(parts)


# --- the page --------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #1a202c; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
.warning { background: #fffbea; border: 1px solid #d69e2e; padding: .5em 1em; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { text-align: left; border-bottom: 1px solid #e2e8f0; padding: .3em .5em;
  vertical-align: top; }
td.n { text-align: right; white-space: nowrap; }
.method { color: #4a5568; font-size: .9em; }
details { font-size: .85em; } code { font-size: .9em; }
svg.chart { display: block; margin: 1em 0; font-size: 12px; }
"""


def _kpi_row(k: KPI) -> str:
    warn = f'<div class="warning">{_e(k.warning)}</div>' if k.warning else ""
    target = f" (target {k.target})" if k.target is not None else ""
    cases = ""
    if k.numerator_cases or k.denominator_cases:
        cases = (
            f"<details><summary>cases behind the figure</summary>"
            f"<p>numerator ({k.numerator}): <code>{_e(' '.join(k.numerator_cases)) or '—'}"
            "</code></p>"
            + (
                f"<p>denominator ({k.denominator}): <code>"
                f"{_e(' '.join(k.denominator_cases)) or '—'}</code></p>"
                if k.denominator is not None
                else ""
            )
            + "</details>"
        )
    when = f"as at {k.as_at}" if k.basis == "as_at" else f"during {k.period.label}"
    return (
        f'<tr id="kpi-{_e(k.key)}" class="kpi"><td><b>{_e(k.title)}</b>'
        f'<div class="method">{_e(k.method)} ({_e(when)}; {_e(k.definition)})</div>'
        f"{warn}{cases}</td>"
        f'<td class="n">{_e(k.shown())}{_e(target)}</td></tr>'
    )


def to_html(report: Report) -> str:
    """One self-contained page: the charts as inline SVG, every KPI with its method and the
    pseudonymous case ids behind it, and any warning about the definitions used."""
    c = report.charts
    charts = [
        hbars("Stage funnel: cases that reached each stage", c.get("funnel", ()), name="funnel"),
        vbars(
            "Job starts and sustained jobs by month",
            [
                ("job starts", c.get("job_starts", ()), _BAR),
                ("sustained 13 weeks", c.get("sustained", ()), _ALT),
            ],
            name="starts",
        ),
        hbars(
            f"Active caseload per coach on {min(report.period.end, report.on)} "
            f"(limit {CASELOAD_LIMIT})",
            c.get("caseload", ()),
            limit=CASELOAD_LIMIT,
            name="caseload",
        ),
    ]
    warnings = sorted({k.warning for k in report.kpis if k.warning})
    notes = "".join(f"<p>{_e(n)}</p>" for n in report.notes)
    banner = "".join(f'<p class="warning">{_e(w)}</p>' for w in warnings)
    rows = "".join(_kpi_row(k) for k in report.kpis)
    extra = ""
    if report.name == "seqf":
        extra = (
            f"<h2>Sample</h2><p>{len(report.sample)} clients drawn with seed "
            f"<code>{report.seed}</code>: <code>{_e(' '.join(report.sample))}</code></p>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(report.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(report.title)}</h1>{banner}{notes}"
        f"<p>Period {_e(report.period.start)} to {_e(report.period.end)}. Case ids are "
        "pseudonymous: no names, contacts or dates of birth are in this file.</p>"
        f"<h2>Charts</h2>{''.join(charts)}"
        f"<h2>Figures and how each was counted</h2><table><tr><th>Figure</th>"
        f"<th>Value</th></tr>{rows}</table>{extra}</body></html>\n"
    )
