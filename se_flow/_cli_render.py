"""How the `se-flow` command shows things to people, with rich.

Nothing here reads or writes a database; every function takes values the API returned.
Every string that came from data (names, reasons, notes, ids, stage data) reaches the console
through `shown` (`_cli_text`), which escapes control characters and clips huge values, and as
a `Text`, never parsed as markup.
Long lists (a caseload of a thousand cases) go through `Grid`, which lays out aligned columns
itself: rich's `Table` measures every cell (~0.5 s for 1,000 rows, measured), too slow for a
command people run many times a day.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from attrs import frozen
from rich import box
from rich.cells import cell_len
from rich.console import COLOR_SYSTEMS, Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from . import Case, Check, Event, GuardResult, Participant, Record, Staff, Workflow
from ._cli_text import (
    ASKED_WHEN_RUN,
    FAIL,
    PASS,
    days_in_stage,
    describe,
    everywhere,
    fmt_fields,
    kind_example,
    last_seen,
    local_day,
    review_words,
    shown,
    stage_label,
    state_title,
    type_words,
    words,
)
from ._cli_text import KEEP as _KEEP
from ._cli_text import folded as _folded
from ._model import TeamLine, soft_only
from ._standards import DueItem, StandardResult
from ._workflow import RecordKind

if TYPE_CHECKING:
    # Only the commands that show them load outcomes and reports.
    from ._milestones import OutcomeDue
    from ._outcomes import Outcomes, Programme
    from ._report import KPI, Report

__all__ = [
    "Grid",
    "console",
    "export_progress",
    "print_case",
    "print_caseload",
    "print_check",
    "print_due_items",
    "print_kpi",
    "print_next",
    "print_record_kind",
    "print_report",
    "print_staff",
    "print_standards",
    "print_team",
    "print_timeline",
    "print_workflow",
]


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich would exit 1 here, which says se-flow failed: raised instead, so the CLI ends
        # as a closed pipe ends other tools (`cli.READER_GONE`).
        raise BrokenPipeError(errno.EPIPE, "the output's reader stopped reading")


def console() -> Console:
    """A console on the current stdout (made per command, so test runners can swap it)."""
    # markup and emoji off: case notes and stage data may hold [brackets] and :words: that
    # are not rich markup.
    return _Console(highlight=False, markup=False, emoji=False)


def _t(value: object, style: str = "") -> Text:
    return Text(shown(value), style=style)


# --- a fast grid for long lists -------------------------------------------------------------


Cell = str | tuple[str, str | None]


class Grid:
    """Aligned columns written straight to the console's file, styled with ANSI codes only
    when the console shows colour. Rows are lists of text or (text, style) cells."""

    def __init__(
        self,
        headers: Sequence[str],
        *,
        shrink: int | Sequence[int] | None = None,
        drop: Sequence[int] = (),
        heirs: Mapping[int, int] | None = None,
    ) -> None:
        """`shrink`: the columns (labels and names, never ids) cut short with "…" when the
        lines would be wider than the terminal, the widest first; `drop`: columns left out,
        in this order, before anything is cut (a detail another column says in short);
        `heirs`: for a dropped column, the column (headed "" beside it) that takes its
        header, so what is left of it is still headed."""
        self.headers = list(headers)
        self.heirs = dict(heirs or {})
        self.shrink = (
            () if shrink is None else (shrink,) if isinstance(shrink, int) else tuple(shrink)
        )
        self.drop = tuple(drop)
        self.rows: list[list[tuple[str, str | None]]] = []

    def add(self, *cells: Cell) -> None:
        # Raw ANSI goes straight to the file here: each cell is made safe, and one line.
        row = [c if isinstance(c, tuple) else (c, None) for c in cells]
        self.rows.append([(shown(text, one_line=True, limit=200), style) for text, style in row])

    def print(self, out: Console, *, after: GridLayout | None = None) -> GridLayout:
        """Write the header and rows; given the `after` layout of the grid printed just
        before (a page of the same list), these rows only, in its columns, each as wide as
        the widest of either: a list printed a page at a time keeps its columns."""
        colour = COLOR_SYSTEMS.get(out.color_system or "") if out.is_terminal else None
        styles: dict[str, Style] = {}

        def paint(text: str, style: str | None) -> str:
            if colour is None or not style or not text:
                return text
            parsed = styles.get(style)
            if parsed is None:
                parsed = styles[style] = Style.parse(style)
            return parsed.render(text, color_system=colour)

        widths = [cell_len(h) for h in self.headers] if after is None else list(after.widths)
        for row in self.rows:
            for i, (text, _) in enumerate(row):
                widths[i] = max(widths[i], cell_len(text))
        keep = list(range(len(self.headers))) if after is None else list(after.keep)

        def total() -> int:
            return sum(widths[i] for i in keep) + 2 * (len(keep) - 1)

        headers = list(self.headers) if after is None else list(after.headers)
        for i in self.drop if after is None else ():
            if total() <= out.width:
                break
            keep.remove(i)
            heir = self.heirs.get(i)
            if heir is not None and heir in keep and not headers[heir]:
                headers[heir] = headers[i]
                widths[heir] = max(widths[heir], cell_len(headers[i]))
        natural = tuple(widths)
        for _ in range(sum(widths)):
            over = total() - out.width
            cuttable = [i for i in self.shrink if widths[i] > cell_len(self.headers[i])]
            if over <= 0 or not cuttable:
                break
            widest = max(cuttable, key=lambda i: widths[i])
            widths[widest] -= 1
        last = keep[-1]

        def fit(text: str, i: int) -> str:
            if i not in self.shrink or cell_len(text) <= widths[i]:
                return text
            return text[: max(widths[i] - 1, 0)] + "…"

        def pad(text: str, i: int) -> str:
            text = fit(text, i)
            return text if i == last else text + " " * (widths[i] - cell_len(text))

        head = "  ".join(pad(headers[i], i) for i in keep).rstrip()
        lines = [paint(head, "bold")] if after is None else []
        for row in self.rows:
            cells = [paint(pad(row[i][0], i), row[i][1]) for i in keep]
            lines.append("  ".join(cells).rstrip())
        if lines:
            out.file.write("\n".join(lines) + "\n")
            out.file.flush()
        return GridLayout(widths=natural, keep=tuple(keep), headers=tuple(headers))


@frozen
class GridLayout:
    """The columns a `Grid` was printed in: each one's width before any was cut, and those
    kept (not dropped)."""

    widths: tuple[int, ...]
    keep: tuple[int, ...]
    headers: tuple[str, ...] = ()
    """The headers as printed (a dropped column's heir under its header)."""


# --- views ---------------------------------------------------------------------------------


def print_caseload(
    out: Console,
    wf: Workflow,
    cases: Sequence[Case],
    today: dt.date,
    *,
    title: str = "",
    names: Mapping[str, str] | None = None,
) -> None:
    """The caseload, a case a line. `names` (participant id to name, for those who may see
    them) adds a Name column; "Last seen" is the days since the last contact. At 80
    columns the review date goes first (its flag says it in short), then names and stage
    labels are cut short; ids never are."""
    print_caseload_pages(out, wf, [(cases, names or {})], today, title=title)


def print_caseload_pages(
    out: Console,
    wf: Workflow,
    pages: Iterable[tuple[Sequence[Case], Mapping[str, str]]],
    today: dt.date,
    *,
    title: str = "",
) -> None:
    """`print_caseload` of a caseload a page at a time (its cases, their names), each page
    written as it comes, in the columns of the first (widened when a later one needs it)."""
    if title:
        out.print(_t(title, "bold"))
    layout: GridLayout | None = None
    count = overdue = 0
    heads: list[str] = []
    for cases, names in pages:
        if not cases:
            continue
        if layout is None:
            heads = ["Case", "Participant", "Name", "Stage", "Days", "Last seen", "Coach"]
            heads += ["Review due", ""]
            if not names:
                heads.remove("Name")
        col = {h: i for i, h in enumerate(heads)}
        grid = Grid(
            heads,
            shrink=[col[h] for h in ("Name", "Stage") if h in col],
            drop=[col["Review due"], col["Days"]],
            heirs={col["Review due"]: col[""]},
        )
        for c in cases:
            flag, style = review_words(c, today)
            overdue += style == "bold red"
            cells: list[Cell] = [c.id, c.participant_id]
            if "Name" in col:
                cells.append(names.get(c.participant_id, "-"))
            cells += [
                stage_label(wf, c),
                str(days_in_stage(c, today)),
                last_seen(c, today),
                c.coach or "-",
                c.review_due.isoformat() if c.review_due else "",
                (flag, style),
            ]
            grid.add(*cells)
        layout = grid.print(out, after=layout)
        count += len(cases)
    if not count:
        out.print("no cases match")
        return
    out.print(f"{count} case(s), {overdue} overdue for review")


def print_team(
    out: Console, wf: Workflow, lines: Sequence[TeamLine], *, quiet_days: int, stuck_days: int
) -> None:
    """A line per coach; their open cases by stage number folded beneath."""
    if not lines:
        out.print("no coaches and no open cases")
        return
    grid = Grid(
        ["Coach", "Name", "Open", "Due 7d", "Overdue", "Reviews late", "No contact", "Stuck"],
        shrink=1,
    )
    for line in lines:
        grid.add(
            line.coach,
            line.name or "-",
            str(line.open),
            str(line.due),
            (str(line.overdue), "bold red" if line.overdue else None),
            str(line.reviews_overdue),
            str(line.no_contact),
            str(line.stuck),
        )
    grid.print(out)
    out.print(
        _t(
            f"no contact: none for over {quiet_days} days; stuck: over {stuck_days} days "
            "in one stage; by stage:",
            "dim",
        ),
        soft_wrap=False,
    )
    for line in lines:
        if line.by_stage:
            # Each "stage count" kept on one line (a no-break space inside it): a count
            # folded away from its stage reads as the next stage's.
            parts = ", ".join(
                f"{state_title(wf, state)} {n}".replace(" ", _KEEP)
                for state, n in sorted(
                    line.by_stage.items(),
                    key=lambda kv: wf.states[kv[0]].order if kv[0] in wf.states else 0,
                )
            )
            for folded in _folded(f"{line.coach}: {parts}", 2, out.width, hang=2):
                out.print(_t(folded.replace(_KEEP, " ")), soft_wrap=True)


def _flag(due_on: dt.date, today: dt.date) -> tuple[str, str | None]:
    days = (due_on - today).days
    if days < 0:
        return f"overdue {-days}d", "bold red"
    if days == 0:
        return "due today", "yellow"
    return f"in {days}d", None


def print_due_items(
    out: Console,
    items: Sequence[DueItem],
    today: dt.date,
    heading: str,
    *,
    width: int = 80,
    names: Mapping[str, str] | None = None,
) -> None:
    """One due list: a line per item (date, status, case, coach; the participant's name,
    by case id, for those who may see it) with what it is and the command that does it
    folded beneath, every line within `width` columns."""
    print_due_pages(out, [(items, names or {})], today, heading, width=width)


def print_due_pages(
    out: Console,
    pages: Iterable[tuple[Sequence[DueItem], Mapping[str, str]]],
    today: dt.date,
    heading: str,
    *,
    width: int = 80,
) -> None:
    """`print_due_items` of a list a page at a time (its items, their names), each page
    written as it comes, in the columns of the first (widened when a later one needs it)."""
    if heading:
        out.print(_t(heading, "bold"), soft_wrap=True)
    layout: GridLayout | None = None
    named = False
    count = overdue = 0
    for items, names in pages:
        if not items:
            continue
        if layout is None:
            named = bool(names)
        grid = Grid(
            ["Due", "", "Case", "Coach", *(["Name"] if named else [])],
            shrink=4 if named else None,
        )
        # The grid keeps ids whole; the title and command go on lines of their own beneath.
        lines: list[list[str]] = []
        for item in items:
            flag, style = _flag(item.due_on, today)
            what = item.title if item.occurrence == 1 else f"{item.title} #{item.occurrence}"
            cells: list[Cell] = [
                item.due_on.isoformat(),
                (flag, style),
                item.case_id,
                item.coach or "-",
            ]
            if named:
                cells.append(names.get(item.case_id, "-"))
            grid.add(*cells)
            more = _folded(shown(what, one_line=True), 4, width)
            for command in item.commands:
                more.extend(_folded("do: " + shown(command, one_line=True), 4, width))
            lines.append(more)
            overdue += item.overdue or item.due_on < today
        first = layout is None
        rendered, layout = _grid_lines(out, grid, layout)
        body = [rendered[0]] if first else []
        for row, more in zip(rendered[1:] if first else rendered, lines, strict=True):
            body.append(row)
            body.extend(more)
        out.file.write("\n".join(body) + "\n")
        out.file.flush()
        count += len(items)
    if not count:
        out.print("nothing due")
        return
    out.print(f"{count} due, {overdue} overdue")


def _grid_lines(
    out: Console, grid: Grid, after: GridLayout | None = None
) -> tuple[list[str], GridLayout]:
    import io

    buffer = io.StringIO()
    saved = out.file
    out.file = buffer
    try:
        layout = grid.print(out, after=after)
    finally:
        out.file = saved
    return buffer.getvalue().rstrip("\n").split("\n"), layout


def print_standards(
    out: Console, results: Sequence[StandardResult], today: dt.date, warnings: Sequence[str]
) -> None:
    """A case's service standards: met (on which date, in how many days), due, missed."""
    if not results:
        return
    table = Table(box=box.SIMPLE_HEAD, title="Service standards", title_justify="left")
    table.add_column("Standard", overflow="fold")
    table.add_column("From")
    table.add_column("Due")
    table.add_column("Status", overflow="fold")
    styles = {"met": "green", "missed": "bold red", "overdue": "bold red", "due": "yellow"}
    for r in results:
        title = r.title if r.occurrence == 1 else f"{r.title} #{r.occurrence}"
        if r.status in ("met", "missed") and r.met_on is not None:
            status = f"{r.status}: {r.met_on.isoformat()}, {r.took} {r.unit}"
        elif r.status in ("due", "overdue") and r.due_on is not None:
            status = _flag(r.due_on, today)[0]
        else:
            status = r.status
        table.add_row(
            _t(title),
            r.anchor_on.isoformat(),
            r.due_on.isoformat() if r.due_on else "-",
            Text(status, style=styles.get(r.status, "")),
        )
    out.print(table)
    for warning in warnings:
        out.print(_t(f"note: {warning}", "dim"))


def print_staff(out: Console, staff: Sequence[Staff]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for head in ("Id", "Name", "Role", "Active", "Login"):
        table.add_column(head)
    for s in staff:
        login = _t(s.login) if s.login is not None else "-"
        table.add_row(_t(s.id), _t(s.name), words(s.role.value), "yes" if s.active else "no", login)
    out.print(table)


def _guard_line(result: GuardResult) -> Text:
    line = Text("  ")
    line.append(PASS if result.passed else FAIL, style="green" if result.passed else "red")
    line.append(f" {shown(result.label)}")
    if result.soft:
        line.append(" (soft)", style="yellow")
    line.append(f": {shown(result.reason)}", style="dim" if result.passed else "")
    return line


def _folded_text(line: Text, width: int, hang: int) -> list[Text]:
    """`line` (styled) folded at its spaces into lines of at most `width` cells, the lines
    after the first indented `hang` cells: under what the first says, not back at the left
    edge as the terminal would wrap it. A word longer than a line is kept whole; words joined
    by `_KEEP` stay together."""
    plain = line.plain
    lines: list[Text] = []
    start = end = 0
    room = width
    for word in re.finditer(r"[^ ]+", plain):
        if end > start and cell_len(plain[start : word.end()]) > room:
            lines.append(line[start:end])
            start, room = word.start(), max(20, width - hang)
        end = word.end()
    lines.append(line[start:])
    for each in lines:
        # Same length, so the styles stay where they were.
        each.plain = each.plain.replace(_KEEP, " ")
    return [lines[0], *(Text(" " * hang) + more for more in lines[1:])]


def print_check(out: Console, wf: Workflow, check: Check, *, ready: str = "") -> None:
    """A checklist; `ready` is the command that makes the move, as it must be typed."""
    head = Text()
    head.append(shown(f"{check.case_id} {check.trigger}"), style="bold")
    if check.label and check.label != check.trigger:
        head.append(f" ({shown(check.label)})")
    if check.dest != check.source:
        # The arrow goes with where the case goes, should the line fold.
        moves = f": {state_title(wf, check.source)} →{_KEEP}{state_title(wf, check.dest)}"
        head.append(shown(moves))
    for folded in _folded_text(head, out.width, 2):
        out.print(folded, soft_wrap=True)
    for result in check.results:
        # Folded under the guard's title: "  ✗ " is four cells.
        for folded in _folded_text(_guard_line(result), out.width, 4):
            out.print(folded, soft_wrap=True)
    if not check.results:
        out.print("  (no guards)")
    failed = check.failed
    if not failed:
        command = ready or f"se-flow advance {check.case_id} {check.trigger}"
        out.print(_t(f"ready: {command}", "green"), soft_wrap=True)
    elif check.overridable:
        out.print(
            Text(
                f"blocked by {len(failed)} soft guard(s): a team leader may override with "
                f"--override REASON",
                style="yellow",
            )
        )
    else:
        out.print(
            Text(f"blocked: {len(failed)} of {len(check.results)} guard(s) fail", style="red")
        )


def print_next(out: Console, wf: Workflow, case: Case, checks: Sequence[Check]) -> None:
    head = _t(f"{case.id} is at {stage_label(wf, case)}. What can happen next:", "bold")
    for folded in _folded_text(head, out.width, 2):
        out.print(folded, soft_wrap=True)
    if not checks:
        out.print("  nothing: the case is closed (se-flow reopen starts a new episode)")
        return
    for check in checks:
        missing = [r for r in check.failed if r.guard not in ASKED_WHEN_RUN]
        asked = [r for r in check.failed if r.guard in ASKED_WHEN_RUN]
        line = Text("  ")
        line.append(shown(check.trigger), style="bold")
        if check.dest != check.source:
            line.append(f" → {shown(state_title(wf, check.dest))}")
        elif check.label:
            line.append(f" ({shown(check.label.lower())})")
        if not missing:
            line.append("  ready", style="green")
        elif soft_only(missing):
            line.append("  soft guards only (team leader may override)", style="yellow")
        else:
            line.append(f"  missing{_KEEP}{len(missing)}", style="red")
        if asked:
            line.append(
                shown(f"; asks for {', '.join(words(r.guard).lower() for r in asked)}"),
                style="dim",
            )
        for folded in _folded_text(line, out.width, 4):
            out.print(folded, soft_wrap=True)
        # Two guards can miss the same thing (a final review, and what it should say): said
        # once, with how many guards it fails.
        said: dict[tuple[str, bool], int] = {}
        for result in missing:
            key = (result.reason, result.soft)
            said[key] = said.get(key, 0) + 1
        for (why, soft), count in said.items():
            item = Text("      ")
            item.append(FAIL, style="red")
            if soft:
                item.append(" (soft)", style="yellow")
            # The reason folded under itself, not back to the left edge.
            lead = item.cell_len + 1
            text = shown(why) + (f" ({count} guards)" if count > 1 else "")
            reason = _folded(text, lead, out.width)
            item.append(f" {reason[0].lstrip()}")
            out.print(item, soft_wrap=True)
            for more in reason[1:]:
                out.print(Text(more), soft_wrap=True)


def print_timeline(out: Console, wf: Workflow, events: Sequence[Event], *, title: str = "") -> None:
    """Every event of a case; an Entered column appears when something was back-dated."""
    late = any(local_day(e.recorded_at) != local_day(e.effective_at) for e in events)
    table = Table(box=box.SIMPLE_HEAD, title=_t(title) if title else None, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Date", no_wrap=True)
    if late:
        table.add_column("Entered", no_wrap=True)
    table.add_column("Who", no_wrap=True)
    table.add_column("What", overflow="fold", ratio=1)
    for e in events:
        what = _t(describe(wf, e))
        if e.reason:
            what.append(f"\nreason: {shown(e.reason)}", style="dim")
        if e.override is not None:
            passed_over = ", ".join(g.label for g in e.guards if not g.passed)
            what.append(
                "\n"
                + shown(f"override by {e.override.by} past {passed_over}: {e.override.reason}"),
                style="yellow",
            )
        day = local_day(e.effective_at)
        cells = [str(e.seq), day.isoformat()]
        if late:
            entered = local_day(e.recorded_at)
            cells.append(entered.isoformat() if entered != day else "")
        table.add_row(*cells, _t(f"{e.actor} ({words(e.role).lower()})"), what)
    out.print(table)


def print_case(
    out: Console,
    wf: Workflow,
    case: Case,
    participant: Participant | None,
    records: Sequence[Record],
    events: Sequence[Event],
    today: dt.date,
) -> None:
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column()
    name = participant.details.name if participant and participant.details else None
    who = f"{case.participant_id} ({name})" if name else case.participant_id
    details.add_row("Case", _t(f"{case.id} (episode {case.episode})"))
    details.add_row("Participant", _t(who))
    if participant and participant.details:
        d = participant.details
        if d.contact:
            details.add_row("Contact", _t(d.contact))
        if d.date_of_birth:
            details.add_row("Date of birth", d.date_of_birth.isoformat())
    details.add_row("Stage", _t(f"{stage_label(wf, case)}, {days_in_stage(case, today)} day(s)"))
    details.add_row("Coach", _t(case.coach or "-"))
    details.add_row("Opened", local_day(case.opened_at).isoformat())
    if case.review_due:
        flag, style = review_words(case, today)
        details.add_row(
            "Next review", Text(f"{case.review_due.isoformat()} ({flag})", style=style or "")
        )
    if case.previous_case_id:
        details.add_row("Reopened from", _t(case.previous_case_id))
    if case.closed_at:
        details.add_row("Closed", _t(f"{local_day(case.closed_at).isoformat()} ({case.outcome})"))
    details.add_row("Version", str(case.version))
    out.print(details)

    superseded = {r.supersedes: r.seq for r in records if r.supersedes is not None}
    table = Table(box=box.SIMPLE_HEAD, title="Records", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Kind")
    table.add_column("Date")
    table.add_column("Fields", overflow="fold")
    table.add_column("By")
    for r in records:
        spec = wf.records.get(r.kind)
        text = _t(fmt_fields(r.fields, spec))
        if r.supersedes is not None:
            text.append(f" (corrects {r.supersedes})", style="dim")
        if r.seq in superseded:
            text.append(f" (corrected by {superseded[r.seq]})", style="dim")
            text.stylize("strike")
        table.add_row(
            str(r.seq),
            _t(spec.title if spec else r.kind),
            local_day(r.effective_at).isoformat(),
            text,
            _t(r.actor),
        )
    if records:
        out.print(table)
    else:
        out.print("no records")
    print_timeline(out, wf, events, title="Timeline")


# --- the workflow --------------------------------------------------------------------------


def print_workflow(out: Console, wf: Workflow) -> None:
    """States, triggers and record kinds. Ids a coach types (states, triggers, kinds) are
    never wrapped or cut; titles and guards fold; `workflow show KIND` has a kind's fields."""
    out.print(_t(f"{wf.title} (version {wf.version}, hash {wf.hash[:12]})", "bold"))
    if wf.source:
        out.print(_t(f"from {wf.source}", "dim"))
    stages = Table(box=box.SIMPLE_HEAD, title="States", title_justify="left")
    stages.add_column("#", justify="right")
    stages.add_column("State", no_wrap=True)
    stages.add_column("Title", overflow="fold", ratio=1)
    stages.add_column("Review every", overflow="fold", ratio=1)
    for s in sorted(wf.states.values(), key=lambda s: (s.id == wf.final, s.order)):
        review = f"{s.review_days} days" if s.review_days else "-"
        for phase, days in s.phase_review_days.items():
            review += f" ({words(phase).lower()}: {days})"
        title = s.title
        if s.phases:
            title += f" (phases: {', '.join(words(p).lower() for p in s.phases)})"
        stages.add_row(str(s.order or ""), _t(s.id), _t(title), _t(review))
    out.print(stages)

    moves = Table(box=box.SIMPLE_HEAD, title="Triggers", title_justify="left")
    moves.add_column("Trigger", no_wrap=True)
    moves.add_column("From → to", ratio=2, overflow="fold")
    moves.add_column("Guards (soft: a team leader may override)", ratio=3, overflow="fold")
    for t in wf.transitions:
        if everywhere(wf, t.sources):
            source = "any active stage"
        else:
            source = ", ".join(state_title(wf, s) for s in t.sources)
        if t.from_phase:
            source += f" ({words(t.from_phase).lower()})"
        if t.effect in ("pause", "resume"):
            dest = f"({t.effect}d)"
        else:
            dest = state_title(wf, t.dest) if t.dest else ""
            if t.to_phase:
                dest += f" ({words(t.to_phase).lower()})"
            if t.outcome:
                dest += f": {t.outcome}"
        guards = Text()
        for i, g in enumerate(t.guards):
            if i:
                guards.append("\n")
            guards.append(
                shown(g.label) + (" (soft)" if g.soft else ""), style="yellow" if g.soft else ""
            )
        moves.add_row(_t(t.trigger), _t(f"{source} → {dest}"), guards)
    out.print(moves)

    kinds = Table(box=box.SIMPLE_HEAD, title="Record kinds (* required)", title_justify="left")
    kinds.add_column("Kind", no_wrap=True)
    kinds.add_column("Title", ratio=1, overflow="fold")
    kinds.add_column("Fields", ratio=2, overflow="fold")
    for k in wf.records.values():
        fields = ", ".join(f"{f.name}{'*' if f.required else ''}" for f in k.fields)
        kinds.add_row(_t(k.name), _t(k.title), _t(fields))
    out.print(kinds)
    out.print(_t(f"close reasons: {', '.join(wf.close_reasons)}"))
    out.print(_t("a kind's fields, types and an example: se-flow workflow show KIND", "dim"))


def command_lines(command: str, width: int) -> list[str]:
    """A shell command on lines of at most `width` (as far as its words allow), each but the
    last ending in ` \\`, so it still runs pasted as shown; quoted values are never split."""
    import re

    lines: list[str] = []
    line = " "
    for word in re.findall(r'(?:"[^"]*"|\S)+', command):
        if len(line) > 2 and len(line) + 1 + len(word) + 2 > width:
            lines.append(line + " \\")
            line = "     "
        line += " " + word
    lines.append(line)
    return lines


def print_record_kind(out: Console, kind: RecordKind) -> None:
    """One record kind: each field's title, type, whether required, allowed values; an
    example command with every required field."""
    out.print(_t(f"{kind.name}: {kind.title}", "bold"))
    if kind.contact:
        out.print("counts as contact with the participant (for reviews)")
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("Field", no_wrap=True)
    table.add_column("Title", ratio=1, overflow="fold")
    table.add_column("Type", ratio=1, overflow="fold")
    table.add_column("Required")
    table.add_column("Allowed values", ratio=1, overflow="fold")
    for f in kind.fields:
        table.add_row(
            _t(f.name),
            _t(f.title or words(f.name)),
            _t(type_words(f)),
            "yes" if f.required else "no",
            _t(", ".join(f.options) if f.options else "-"),
        )
    out.print(table)
    out.print(_t("example:", "bold"))
    for line in command_lines(kind_example(kind), out.width):
        out.print(_t(line), soft_wrap=True)
    out.print(_t("a value may be read from a file (field=@FILE) or standard input (field=-)"))


# --- exports -------------------------------------------------------------------------------


@contextmanager
def export_progress(out: Console) -> Iterator[Callable[[str, int], None]]:
    """A live bar per table while an export runs, fed by its `progress(table, rows_done)`
    callback. The export streams, so no total is known: each bar pulses and counts rows, and
    fills when the next table starts. It vanishes at the end; the summary keeps the counts."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(table: str, done: int) -> None:
        task = tasks.get(table)
        if task is None:
            for other in tasks.values():
                bars.update(other, total=1, completed=1)  # done: a full bar
                bars.stop_task(other)
            task = tasks[table] = bars.add_task(table, total=None, rows=0)
        bars.update(task, rows=done)

    with bars:
        yield update


# --- outcomes ------------------------------------------------------------------------------

_STATE_STYLE = {
    "achieved": "green",
    "provisional": "yellow",
    "not_yet": "",
    "excluded": "dim",
}


def print_outcomes(out: Console, outcomes: Outcomes) -> None:
    """A case's spells and milestones: each achieved (date, band), provisional (estimated
    from contracted hours), not yet (what is still needed, and when at the current hours),
    or excluded (why)."""
    p = outcomes.programme
    if p is None:
        out.print(_t(f"{outcomes.case_id}: {outcomes.note}"))
    else:
        out.print(_t(f"{outcomes.case_id} on {p.title} ({p.ref}, {p.status}), as of {outcomes.on}"))
    if outcomes.spells:
        jobs = Table(box=None, pad_edge=False, title="Jobs", title_justify="left")
        for name in ("job", "employer", "from", "to", "hours", "kind"):
            jobs.add_column(name)
        for s in outcomes.spells:
            last = s.terms[-1]
            jobs.add_row(
                _t(s.job),
                _t(s.employer),
                _t(s.start.isoformat()),
                _t(s.end.isoformat() if s.end else "open"),
                _t(f"{last.hours_per_week}/wk"),
                _t(s.kind.replace("_", " ")),
            )
        out.print(jobs)
    if p is None:
        return
    table = Table(box=None, pad_edge=False, title="Milestones", title_justify="left")
    for name in ("milestone", "state", "on", "band", "detail"):
        table.add_column(name, overflow="fold")
    for m in outcomes.milestones:
        style = _STATE_STYLE.get(m.state.value, "")
        when = m.achieved_on or m.projected_on
        table.add_row(
            _t(m.id + (f" ({', '.join(m.jobs)})" if m.jobs else "")),
            _t(m.state.value.replace("_", " "), style),
            _t(when.isoformat() if when else "-"),
            _t(m.band or "-"),
            _t(m.reason),
        )
    out.print(table)
    if outcomes.logged:
        log = Table(box=None, pad_edge=False, title="In the audit trail", title_justify="left")
        for name in ("milestone", "state", "on", "claim", "to resolve"):
            log.add_column(name, overflow="fold")
        for h in outcomes.logged:
            log.add_row(
                _t(h.key),
                _t(h.state),
                _t(h.achieved_on.isoformat() if h.achieved_on else "-"),
                _t(f"{h.claim.reference} ({h.claim.on})" if h.claim else "-"),
                _t(f"flagged: {h.flag_reason}" if h.flag is not None else "-", "bold red"),
            )
        out.print(log)


def print_outcomes_due(out: Console, due: Sequence[OutcomeDue]) -> None:
    """Milestones coming up and claims due, soonest first, one a row."""
    if not due:
        out.print(_t("nothing coming up: no milestone or claim falls due in that time"))
        return
    table = Table(box=None, pad_edge=False)
    for name in ("due", "case", "what", "milestone", "detail"):
        table.add_column(name, overflow="fold")
    for d in due:
        table.add_row(
            _t(d.due_on.isoformat(), "bold red" if d.overdue else ""),
            _t(d.case_id),
            _t(d.what),
            _t(d.milestone),
            _t(d.detail),
        )
    out.print(table)


def print_programmes(out: Console, programmes: Sequence[Programme]) -> None:
    table = Table(box=None, pad_edge=False)
    for name in ("programme", "status", "milestones", "title"):
        table.add_column(name, overflow="fold")
    for p in programmes:
        table.add_row(
            _t(p.ref), _t(p.status), _t(", ".join(m.id for m in p.milestones)), _t(p.title)
        )
    out.print(table)


def print_programme(out: Console, p: Programme) -> None:
    out.print(_t(f"{p.ref}: {p.title} ({p.status})"))
    out.print(_t(f"source: {p.source}"))
    if p.notes:
        out.print(_t(p.notes))
    for m in p.milestones:
        params = ", ".join(f"{k} = {v}" for k, v in m.params.items())
        out.print(_t(f"- {m.id}: {m.title} [{m.test}: {params}; once per {m.once_per}]"))
        for b in m.bands:
            out.print(_t(f"    band {b.id}: {b.words()}"))
        if m.exclusive_with:
            out.print(_t(f"    exclusive with {', '.join(m.exclusive_with)}"))
        if m.notes:
            out.print(_t(f"    {m.notes}"))


# --- reports (issue 14) ------------------------------------------------------------------------


def print_report(out: Console, report: Report, *, explain: bool = False) -> None:
    """Each figure and its value in at most 80 columns; with `explain`, its method under it
    (and what it counts: during the period or as at a day)."""
    width = min(out.width, 80)
    out.print(_t(report.title), style="bold")
    for note in report.notes:
        for line in _folded(note, 0, width):
            out.print(_t(line))
    table = Table(box=None, pad_edge=False, width=width, show_header=True)
    table.add_column("figure", overflow="fold", ratio=3)
    table.add_column("value", overflow="fold", justify="right", ratio=2)
    for k in report.kpis:
        value = k.shown() + (f" (target {k.target})" if k.target is not None else "")
        table.add_row(_t(f"{k.title}  [{k.key}]"), _t(value))
        if explain:
            when = f"as at {k.as_at}" if k.basis == "as_at" else f"during {k.period.label}"
            table.add_row(Text(shown(f"{k.method} ({when}; {k.definition})"), style="dim"), "")
    out.print(table)
    if report.sample:
        out.print(_t(f"sample (seed {report.seed}): {' '.join(report.sample)}"))


def print_kpi(out: Console, k: KPI, *, cases: bool = False) -> None:
    """One figure, its method and, with `cases`, the case ids behind it."""
    width = min(out.width, 80)
    out.print(_t(f"{k.title} [{k.key}]"), style="bold")
    out.print(_t(f"{k.shown()}" + (f" (target {k.target})" if k.target is not None else "")))
    when = f"as at {k.as_at}" if k.basis == "as_at" else f"during {k.period.label}"
    for line in _folded(f"{k.method} ({when}; {k.definition})", 0, width):
        out.print(_t(line), style="dim")
    if k.warning:
        out.print(_t(f"warning: {k.warning}"))
    if not cases:
        return
    lists = [("numerator", k.numerator_cases)]
    if k.denominator is not None:
        lists.append(("denominator", k.denominator_cases))
    for name, ids in lists:
        out.print(_t(f"{name} ({len(ids)}):"))
        for line in _folded(" ".join(ids) or "-", 2, width):
            out.print(_t(line))
