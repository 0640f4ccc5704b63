"""The `se-flow` command: a job coach's terminal onto the workflow.

Each command parses what was typed, calls the API (`se_flow.open(...)` and `SEFlow` methods)
and shows the result: rich views for people, `--json` for scripts. Every refusal arrives as an
`SEFlowError` and is turned, in one place (`_Group.invoke`), into one line on stderr and the
exit code its class documents (the table is in README.md).

Rich is imported only by commands that draw something for people, so `--json` and plain-text
commands start faster.
"""

import contextlib
import datetime as dt
import errno
import getpass
import itertools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

import se_flow
from se_flow._api import PAGE, is_database_url, seal_key_path
from se_flow._limits import check_date
from se_flow._urls import shown_database
from se_flow.errors import quoted

if TYPE_CHECKING:
    from rich.console import Console

    from se_flow import Caseload, DueView, Workflow

__all__ = ["app", "default_db_path", "main"]

APP_NAME = "se-flow"
DB_ENV = "SE_FLOW_DB"
ACTOR_ENV = "SE_FLOW_ACTOR"
SEAL_KEY_ENV = "SE_FLOW_SEAL_KEY"
DEBUG_ENV = "SE_FLOW_DEBUG"


def default_db_path() -> Path:
    """Where the database lives when neither --db nor SE_FLOW_DB says: the per-user data dir."""
    return Path(typer.get_app_dir(APP_NAME)) / "se-flow.db"


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): --as must say who
        return None


def _complete(kind: str) -> Callable[[Any, list[str], str], list[str]]:
    """An `autocompletion` callback offering the `kind` words of `SEFlow.completions` (ids only)
    from the database the command line names. Silent on any failure (no database, not staff,
    a bad option before the word): the shell then offers nothing, and no traceback is shown."""

    # Typer passes the context, the words so far and the word being typed, by these names.
    def offer(ctx: Any, args: list[str], incomplete: str) -> list[str]:
        try:
            given = ctx.find_root().params
            case_id = ctx.params.get("case_id") if kind == "trigger" else None
            with se_flow.open(
                given.get("db") or default_db_path(),
                stages=given.get("stages"),
                actor=given.get("actor") or _os_user(),
                create=False,
                read_only=True,
                login=_os_user(),
            ) as flow:
                return list(flow.completions(kind, incomplete, case_id=case_id))
        except Exception:
            return []

    return offer


# --- errors: one place ------------------------------------------------------------------------


def _say_folded(text: str, indent: int, *, hang: int = 0) -> None:
    """`_say` of a line that may be long (a reason, a title): clipped as `_say` clips, then
    folded at spaces to the terminal's width, the lines after the first `hang` further in."""
    from ._cli_text import SHOWN_TEXT, clip, folded, terminal_width

    for line in folded(clip(text, SHOWN_TEXT, view=False), indent, terminal_width(), hang=hang):
        _say(line)


def _say(text: str, *, err: bool = False, nl: bool = True, one_line: bool = True) -> None:
    """Print text for a person: whatever came from data in it is made safe for a terminal
    (`_cli_text.safe`), and kept to one line unless it is a block of lines by design. A line
    is a message, not a view: clipped, it does not promise that --json shows the rest."""
    from ._cli_text import SHOWN_TEXT, clip, safe

    if one_line:
        text = clip(text, SHOWN_TEXT, view=False)
    typer.echo(safe(text, one_line=one_line), err=err, nl=nl)


# The API names a parameter where the command has an option: `limit` is `--limit`. Used only
# where the command that failed has that option (assign's coach is an argument, not --coach).
_OPTION_FOR: dict[str, str | tuple[str, ...]] = {
    "limit": "--limit",
    "after": "--after",
    # `due --within`, `outcomes --due-within`: whichever the command has.
    "within_days": ("--within", "--due-within"),
    "coach": "--coach",
    "effective_at": "--on",
    "stuck_days": "--stuck",
    "quiet_days": "--no-contact",
    "review date": "--review",
    "close reason": "--close-reason",
    # `close --note`; `advance --reason` is the note when the close trigger is fired directly.
    "note": ("--note", "--reason"),
    "date of birth": "--dob",
    "contact": "--contact",
    "quarter": "--quarter",
    "month": "--month",
    "since": "--since",
    "until": "--until",
}
# Where `_open` leaves the failing command's option names for the error handler.
_OPTIONS_KEY = "se_flow.options"
_SAY_WHO = "say who you are with --as ID or SE_FLOW_ACTOR=ID"


def _words(exc: se_flow.SEFlowError, ctx: Any) -> str:
    """The message of `exc` in the command's terms: its option names for the API's
    parameters, and, when the actor was only the login name, that it was and what to do."""
    message = exc.message
    s = ctx.find_object(Settings)
    from_login = s is not None and s.actor_from_login
    if isinstance(exc, se_flow.InvalidInput) and exc.field is not None:
        field = exc.field
        if field == "actor" and from_login:
            name, hint = "your login name", f"; {_SAY_WHO}"
        else:
            has = ctx.meta.get(_OPTIONS_KEY, ())
            named = _OPTION_FOR.get(field, field)
            options = (named,) if isinstance(named, str) else named
            name, hint = next((o for o in options if o in has), field), ""
        if message.startswith(field):
            message = name + message[len(field) :]
        message += hint
    elif isinstance(exc, se_flow.PermissionDenied) and from_login and exc.actor == s.actor:
        who = f"{exc.actor} "
        if message.startswith(who):
            message = f"{exc.actor} (your login name) {message[len(who) :]}"
        message += f"; {_SAY_WHO}"
    return message


def _say_error(exc: se_flow.SEFlowError, message: str) -> None:
    if isinstance(exc, se_flow.GuardsFailed):
        hint = " (soft guards only: a team leader may --override with a reason)"
        _say(
            f"error: case {exc.case_id}: {exc.trigger} refused, "
            f"{len(exc.failed)} guard(s) failed{hint if exc.soft_only else ''}",
            err=True,
        )
        for result in exc.failed:
            soft = " (soft)" if result.soft else ""
            _say(f"  ✗ {result.label}{soft}: {result.reason}", err=True)
    elif isinstance(exc, _ExportProblems):
        _say(f"error: {exc.message}", err=True)
        for problem in exc.problems:
            _say(f"  ✗ {problem}", err=True)
    elif isinstance(exc, se_flow.WorkflowInvalid):
        _say(f"error: workflow {exc.source} has {len(exc.faults)} fault(s):", err=True)
        for fault in exc.faults:
            _say(f"  {fault}", err=True)
    else:
        _say(f"error: {message}", err=True)


class _ExportProblems(se_flow.ExportMismatch):
    """An export that does not match its manifest, carrying every problem so the error can
    list them one a line, as a refused move lists its guards."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__(
            f"export {path} does not match its manifest: {len(self.problems)} problem(s)"
        )


class _Group(TyperGroup):
    """The root command group: turns every error into a line on stderr and an exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Here, not in __init__: Typer appends the completion options after building the group.
        _plain_params(self, ctx)
        result: list[str] = super().parse_args(ctx, args)
        return result

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except se_flow.SEFlowError as exc:
            _say_error(exc, _words(exc, ctx))
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                _reader_gone()
            # The store translates its own errors; anything else from the disk still gets a
            # line and the store's exit code rather than a traceback.
            if os.environ.get(DEBUG_ENV):
                raise
            code = se_flow.StoreError.exit_code
            _say(f"error: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(code) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            _say(
                f"error: unexpected {type(exc).__name__}: {exc} "
                f"(a bug in se-flow; set {DEBUG_ENV}=1 to see where)",
                err=True,
            )
            raise typer.Exit(1) from None


# What a shell reports for a program the closed pipe stopped (128 + SIGPIPE), as `git log |
# head -1` shows it: not 1, which says se-flow failed, and never silent success.
READER_GONE = 141


def _reader_gone() -> NoReturn:
    """The output's reader stopped reading (`| head`): stop quietly, with the code other Unix
    tools end with there. Output still buffered goes nowhere, so flushing it at exit cannot
    raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(READER_GONE)


class _PlainValue:
    """Typer (0.2x) coerces every non-bool value through a pydantic TypeAdapter, and importing
    pydantic costs ~90 ms at every start. Our parameters are plain text, whole numbers, paths,
    flags and lists of text, which need no pydantic: this does what Typer's adapter would.
    Ranges are not checked here: the API refuses what is out of range, naming the option."""

    def __init__(self, kind: type, many: bool) -> None:
        self.kind, self.many = kind, many

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if self.many else None
        if self.many:
            return [self._one(v, param, ctx) for v in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.kind is int:
            try:
                number = value if isinstance(value, int) else int(str(value).strip())
            except ValueError:
                raise typer.BadParameter(
                    f"{quoted(value)} is not a whole number", ctx, param
                ) from None
            return number
        if self.kind is bool and not isinstance(value, bool):
            text = str(value).strip().lower()
            if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise typer.BadParameter(f"{quoted(value)} is not yes or no", ctx, param)
            return text in ("1", "true", "yes", "on")
        return self.kind(value)


def _plain_params(command: Any, ctx: Any) -> None:
    """Give each plain parameter of `command` and its subcommands, --help included, a
    `_PlainValue`. Duck-typed on Typer's parameters: where they are not what this expects,
    Typer's own coercion runs, only slower to start."""
    params = list(getattr(command, "params", ()))
    # Subcommands inherit the root's help option names, so the root's context can make
    # (and Typer caches) their --help option now.
    help_option = command.get_help_option(ctx) if hasattr(command, "get_help_option") else None
    if help_option is not None:
        params.append(help_option)
    for param in params:
        desc = getattr(param, "type_descriptor", None)
        info = getattr(desc, "parameter_info", None)
        if desc is None or info is None or getattr(param, "_runtime_param", True) is not None:
            continue
        if getattr(info, "parser", None) or getattr(info, "click_type", None):
            continue
        if getattr(info, "exists", False) or getattr(info, "resolve_path", False):
            continue
        if getattr(info, "min", None) is not None or getattr(info, "max", None) is not None:
            continue  # Typer's own range check (none of ours has one: the API checks)
        annotation = desc.annotation
        many = annotation == list[str]
        kind = str if many else annotation
        if kind in (str, int, bool, Path):
            param._runtime_param = _PlainValue(kind, many)
    for sub in getattr(command, "commands", {}).values():
        _plain_params(sub, ctx)


def _fail(message: str) -> NoReturn:
    raise se_flow.InvalidInput(message)


# --- the app and its global options -----------------------------------------------------------

app = typer.Typer(
    cls=_Group,
    name=APP_NAME,
    help="se-flow: the Supported Employment workflow for job coaches. Your caseload, what is "
    "due, what evidence is missing, and moving cases on; every change is kept in a "
    "tamper-evident audit trail.\n\n"
    "Examples: se-flow cases; se-flow next C-1; se-flow advance C-1 engage",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
staff_app = typer.Typer(
    help="Staff: who may work on cases, and in which role.\n\n"
    "Examples: se-flow staff list; se-flow staff edit sam --role team_leader",
    no_args_is_help=True,
)
workflow_app = typer.Typer(
    help="The workflow definition: stages, triggers, guards and record kinds.\n\n"
    "Examples: se-flow workflow show; se-flow workflow diagram",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="The audit trail: verify the hash chain, keep checkpoints of it, check exports.\n\n"
    "Examples: se-flow audit verify; se-flow audit checkpoint --out head.json",
    no_args_is_help=True,
)
app.add_typer(staff_app, name="staff")
app.add_typer(workflow_app, name="workflow")
programme_app = typer.Typer(
    help="Funder definitions (programmes): the milestones outcomes are counted by.\n\n"
    "Examples: se-flow programme list; se-flow programme show mhep",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
settings_app = typer.Typer(
    help="The database's own settings (each change an audit event): shared terminal.\n\n"
    "Examples: se-flow settings show; se-flow settings shared-terminal off",
    no_args_is_help=True,
)
app.add_typer(settings_app, name="settings")
app.add_typer(programme_app, name="programme")
store_app = typer.Typer(
    help="The database as a whole: copy it to another (SQLite file or PostgreSQL).\n\n"
    "Example: se-flow store copy caseload.db caseload-copy.db",
    no_args_is_help=True,
)
app.add_typer(store_app, name="store")
claims_app = typer.Typer(
    help="Claims: milestones marked claimed from the funder, and their export.\n\n"
    "Example: se-flow claims mark C-1 job_start --reference MHEP-2026-001",
    no_args_is_help=True,
)
app.add_typer(claims_app, name="claims")
report_app = typer.Typer(
    help="Returns and KPIs, each figure with its method and the cases behind it.\n\n"
    "Examples: se-flow report ips-grow; se-flow report kpi total_job_starts --cases",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


class Settings:
    """The global options, as given (None: not given)."""

    def __init__(
        self,
        db: str | None,
        actor: str | None,
        stages: Path | None,
        seal_key: Path | None = None,
        command_id: str | None = None,
        quiet: bool = False,
    ) -> None:
        self.quiet = quiet
        self.db = db or None
        self.command_id = command_id
        self.actor = actor or _os_user()
        # Nobody said who they are: the login name stands in, and a refusal says so.
        self.actor_from_login = not actor and self.actor is not None
        self.stages = stages
        self.seal_key = seal_key

    @property
    def db_path(self) -> str:
        return self.db or str(default_db_path())


def _settings(ctx: typer.Context) -> Settings:
    found = ctx.find_object(Settings)
    return found if found is not None else Settings(None, None, None)


def _command_id(ctx: typer.Context) -> str | None:
    return _settings(ctx).command_id


@contextmanager
def _open(
    ctx: typer.Context, *, write: bool = False, create: bool = False, mismatch: bool = True
) -> Iterator[se_flow.SEFlow]:
    """Commands that only read open the database read-only: reading never changes the file,
    and a read-only copy (an auditor's) can be read and verified. `mismatch`: warn of a
    workflow other than the log's (not where the command's own output says it)."""
    s = _settings(ctx)
    # For the error handler: the options this command has, to name them in its refusals.
    ctx.meta[_OPTIONS_KEY] = frozenset(o for p in ctx.command.params for o in p.opts)
    with se_flow.open(
        s.db_path,
        stages=s.stages,
        actor=s.actor,
        create=create,
        read_only=not write,
        seal_key=s.seal_key,
        # Who is logged in: a staff member bound to a login is acted as only from it.
        login=_os_user(),
    ) as flow:
        if flow.exposure:
            _say(f"warning: {flow.exposure}", err=True)
        if flow.workflow_mismatch and mismatch and not write:
            # A write under it is refused in its own words.
            _say(f"warning: {flow.workflow_mismatch}", err=True)
        yield flow
        if flow.checkpoint_warning:
            _say(f"warning: {flow.checkpoint_warning}", err=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"se-flow {se_flow.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar=DB_ENV,
            help="The database file, or a postgresql://user@host/db URL (the postgres extra). "
            "Default: se-flow.db in your per-user data folder "
            f"({default_db_path().parent}).",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar=ACTOR_ENV,
            autocompletion=_complete("staff"),
            help="Who is acting: your staff id. Default: your login name.",
            show_default=False,
        ),
    ] = None,
    stages: Annotated[
        Path | None,
        typer.Option(
            "--stages",
            help="A stage folder to use instead of the default workflow.",
            show_default=False,
        ),
    ] = None,
    seal_key: Annotated[
        Path | None,
        typer.Option(
            "--seal-key",
            "--key-file",
            envvar=SEAL_KEY_ENV,
            metavar="FILE",
            help="The sealing key file (mode 600). Default: the database's path + .sealkey.",
            show_default=False,
        ),
    ] = None,
    command_id: Annotated[
        str | None,
        typer.Option(
            "--command-id",
            metavar="ID",
            help="Your id for this write (a UUID): run again with the same id after a timeout "
            "or lost connection, and nothing is written twice.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="After a write print only the case id (and record number)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the se-flow version and stop.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    ctx.obj = Settings(db, actor, stages, seal_key, command_id, quiet=quiet)


# --- shared parsing -----------------------------------------------------------------------------


def _today() -> dt.date:
    """The user's own day: `today` at their terminal is their local date."""
    return dt.date.today()


def _date(
    value: str | None, option: str, forms: str = "YYYY-MM-DD, today or yesterday"
) -> dt.date | None:
    """A date as typed: YYYY-MM-DD, today or yesterday (`_calendar.named_day`, local days).
    `forms`: what the refusal says the option takes (a date of birth is never 'today')."""
    if value is None:
        return None
    from ._calendar import named_day

    day = named_day(value, _today())
    if day is None:
        _fail(f"{option} {quoted(value)} is not a date: use {forms}")
    return check_date(day, option)


def _day(value: str, option: str) -> dt.date:
    day = _date(value, option)
    assert day is not None
    return day


def _when(value: str | None) -> dt.datetime | dt.date | None:
    """--on: a date (the start of that local day), or a date and time (local time unless it
    names a zone); the API stores it in UTC."""
    at = _moment(value, "--on")
    if at is None or isinstance(at, dt.datetime):
        return at
    return dt.datetime.combine(at, dt.time()).astimezone()


def _moment(value: str | None, option: str) -> dt.datetime | dt.date | None:
    """A date (that day), or a date and time (local time unless it names a zone)."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in ("today", "yesterday") or len(text) <= len("YYYY-MM-DD"):
        return _date(text, option, "YYYY-MM-DD, YYYY-MM-DDTHH:MM, today or yesterday")
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(
            f"{option} {quoted(value)} is not a date or time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM, "
            "today or yesterday"
        )
    # Checked before the zone conversion, which overflows near year 1.
    check_date(at, option)
    return at if at.tzinfo is not None else at.astimezone()


def _pairs(pairs: list[str] | None) -> dict[str, str]:
    """field=value pairs; `field=-` reads the value from standard input, `field=@FILE` from a
    file (each at most `_limits.MAX_TEXT_BYTES`, UTF-8, one final newline dropped)."""
    fields: dict[str, str] = {}
    stdin_used = ""
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            _fail(f"{quoted(pair)} is not field=value (for example participation=yes)")
        if name in fields:
            first = quoted(f"{name}={fields[name]}")
            _fail(f"field {quoted(name)} is given twice ({first} and {quoted(pair)})")
        if value == "-":
            if stdin_used:
                _fail(f"fields {stdin_used!r} and {name!r} both read standard input (-)")
            stdin_used = name
            value = _read_value(name, None)
        elif value.startswith("@") and len(value) > 1:
            value = _read_value(name, Path(value[1:]))
        fields[name] = value
    return fields


def _read_value(name: str, path: Path | None) -> str:
    """A field's value from `path` (None: standard input), bounded before it is decoded."""
    from ._limits import MAX_TEXT, MAX_TEXT_BYTES

    where = "standard input" if path is None else f"file {path}"
    try:
        if path is None:
            data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
        else:
            with path.open("rb") as f:
                data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        _fail(f"field {name!r}: cannot read {where}: {exc.strerror or exc}")
    if len(data) > MAX_TEXT_BYTES:
        _fail(f"field {name!r}: {where} is longer than the {MAX_TEXT:,} characters se-flow keeps")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"field {name!r}: {where} is not UTF-8 text")
    return text[:-1] if text.endswith("\n") else text


def _named_days(wf: se_flow.Workflow, kind: str, fields: dict[str, str]) -> dict[str, str]:
    """Date fields typed as `today` or `yesterday`, as the dates they name (the user's day)."""
    from ._calendar import DAY_WORDS

    spec = wf.records.get(kind)
    if spec is None:
        return fields
    out = dict(fields)
    for name, value in fields.items():
        f = spec.field(name)
        if f is not None and f.type == "date" and value.strip().lower() in DAY_WORDS:
            out[name] = _day(value, name).isoformat()
    return out


def _echo_json(value: Any) -> None:
    from ._cli_text import dumps

    typer.echo(dumps(value))


def _console() -> "Console":
    from ._cli_render import console

    return console()


def _written(
    ctx: typer.Context,
    flow: se_flow.SEFlow,
    done: se_flow.Done[se_flow.Case, se_flow.Record | None],
    json: bool,
    *,
    record_number: bool = False,
) -> bool:
    """--json (the case, the event and the record a write made) or --quiet (just the case
    id, and with `record_number` the record's): True when either printed, so the words are
    left out."""
    case, record = done.case, done.record
    if json:
        from ._cli_text import case_json

        _echo_json(
            {
                "case": case_json(flow.workflow, case, flow.now().date()),
                "event": done.event,
                "record": record,
            }
        )
        return True
    if _settings(ctx).quiet:
        typer.echo(f"{case.id} {record.seq}" if record_number and record else case.id)
        return True
    return False


def _done(
    ctx: typer.Context,
    flow: se_flow.SEFlow,
    done: se_flow.Done[se_flow.Case, se_flow.Record | None],
    *,
    json: bool = False,
) -> None:
    """What a write did to a case, from the event it returned (nothing read back: a case's
    history grows without bound); --json and --quiet as `_written`."""
    from ._cli_text import describe, stage_label

    if _written(ctx, flow, done, json):
        return
    workflow = flow.workflow
    case, event = done.case, done.event
    _say_folded(f"{case.id}: {describe(workflow, event)}", 0, hang=2)
    if event.override is not None:
        passed_over = ", ".join(g.label for g in event.guards if not g.passed)
        said = f"override by {event.override.by} past {passed_over}: {event.override.reason}"
        _say_folded(said, 2, hang=2)
    where = stage_label(workflow, case)
    due = f"; next review due {case.review_due}" if case.review_due else ""
    _say(f"  now at {where}{due}")
    _say(f"  next: se-flow next {case.id}" if case.is_open else f"  next: se-flow show {case.id}")


def _can_ask() -> bool:
    """Whether someone is at a terminal to answer a question."""
    return sys.stdin.isatty()


def _confirm(yes: bool, question: str, what: str) -> None:
    """Go on only if `yes`, or the person at the terminal says so; with no terminal to ask
    in, refuse (nothing is written) rather than guess."""
    if yes:
        return
    if not _can_ask():
        _fail(f"{what}; give --yes to go ahead (no terminal to ask in; nothing written)")
    _say(f"warning: {what}", err=True)
    if not typer.confirm(question, default=False, err=True):
        _say("nothing written", err=True)
        raise typer.Exit(1)


_CLOSING = "closing case {case_id} cannot be undone"
"""The warning before a case is closed, by `close` or by a trigger that closes it."""

YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")
]
# `show` and `history` print the API's page (about a screen) unless told otherwise.
LimitOption = Annotated[
    int, typer.Option("--limit", help="Show this many of the latest events and records.")
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Show every event and record, however many.")
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (dates ISO) to stdout.")
]
CaseArg = Annotated[
    str,
    typer.Argument(
        metavar="CASE",
        help="The case id, e.g. C-12.",
        show_default=False,
        autocompletion=_complete("case"),
    ),
]
OnOption = Annotated[
    str | None,
    typer.Option(
        "--on",
        help="When it happened (YYYY-MM-DD, or YYYY-MM-DDTHH:MM local time); may be "
        "back-dated, never in the future. Default: now.",
        show_default=False,
    ),
]


# --- set-up and staff ---------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Your full name (default: your staff id).", show_default=False),
    ] = None,
    role: Annotated[
        str,
        typer.Option("--role", help="Your role: admin, team_leader, coach or auditor."),
    ] = "admin",
    no_seal: Annotated[
        bool,
        typer.Option(
            "--no-seal",
            help="Do not seal events with a forward-secure key (PostgreSQL: only with --key-file).",
        ),
    ] = False,
    seal_epoch: Annotated[
        int,
        typer.Option(
            "--seal-epoch-seconds",
            metavar="SECONDS",
            help="How often the sealing key evolves (the old one erased). Default: a UTC day.",
        ),
    ] = 86_400,
) -> None:
    """Create the database and add you (--as) as its first staff member.

    A database file also gets forward-secure sealing: a key file beside it, and a
    verification key printed once, for the auditor to keep (see `audit verify --key`).

    Example: se-flow --as ada init --name "Ada Okafor"
    """
    s = _settings(ctx)
    path = s.db_path
    if s.db is None:
        # The per-user folder holds personal data: private to its owner.
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existed = path == ":memory:" or is_database_url(path) or Path(path).exists()
    # On PostgreSQL there is no file to keep the key beside: it seals when given --key-file.
    url = is_database_url(path)
    seal = not no_seal and path != ":memory:" and (not url or s.seal_key is not None)
    key_path = seal_key_path(path, s.seal_key)
    # A key file there before is never ours to remove, even if this init is refused.
    key_was_there = key_path is not None and key_path.exists()
    try:
        with _open(ctx, write=True, create=True) as flow:
            # The first admin is bound to the login that set se-flow up.
            done = flow.set_up(name, role, seal=seal, epoch_seconds=seal_epoch, login=_os_user())
    except BaseException:
        if not existed:
            # A refused init leaves nothing behind, not even an empty database.
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(path + suffix).unlink(missing_ok=True)
            if key_path is not None and not key_was_there:
                key_path.unlink(missing_ok=True)
        raise
    member, key = done.staff, done.key
    _say(f"created {shown_database(path)}")
    _say(f"{member.id} ({member.name}) is its first staff member, as {member.role.value}")
    if member.login is not None:
        _say(f"{member.id} is bound to the login {member.login}: se-flow acts as them from it only")
    if key is not None and key_path is not None:
        from ._cli_text import sealing_started

        _say(sealing_started(key, key_path), one_line=False)
    elif url and not no_seal:
        _say("events are not sealed: give --key-file FILE to seal a PostgreSQL database")


@staff_app.command("add")
def staff_add(
    ctx: typer.Context,
    staff_id: Annotated[
        str, typer.Argument(metavar="ID", help="Their staff id (what they give to --as).")
    ],
    name: Annotated[str, typer.Option("--name", help="Their full name.", show_default=False)],
    role: Annotated[
        str,
        typer.Option("--role", help="coach, team_leader, auditor or admin.", show_default=False),
    ],
    inactive: Annotated[
        bool, typer.Option("--inactive", help="Mark them as no longer working on cases.")
    ] = False,
) -> None:
    """Add a staff member (or change one): needs a team leader or admin.

    Example: se-flow --as ada staff add sam --name "Sam Patel" --role coach"""
    with _open(ctx, write=True) as flow:
        member = flow.add_staff(
            staff_id, name, role, active=not inactive, command_id=_command_id(ctx)
        )
    state = "" if member.active else ", inactive"
    _say(f"staff {member.id} ({member.name}): {member.role.value}{state}")


@staff_app.command("edit")
def staff_edit(
    ctx: typer.Context,
    staff_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="Their staff id.", autocompletion=_complete("staff")),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Their full name.", show_default=False)
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="coach, team_leader, auditor or admin.", show_default=False),
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option(
            "--active/--inactive", help="Working on cases, or no longer.", show_default=False
        ),
    ] = None,
    login: Annotated[
        str | None,
        typer.Option(
            "--login",
            help="Bind them to this OS login: se-flow then acts as them from it only.",
            show_default=False,
        ),
    ] = None,
    no_login: Annotated[
        bool, typer.Option("--no-login", help="Remove their login binding.")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Deactivate even if they still hold open cases."),
    ] = False,
) -> None:
    """Change a staff member: name, role, active or not, the OS login they are bound to.

    Example: se-flow staff edit sam --login sam --role team_leader"""
    with _open(ctx, write=True) as flow:
        try:
            member = flow.edit_staff(
                staff_id,
                name=name,
                role=role,
                active=active,
                login=login,
                unbind_login=no_login,
                confirm=yes,
            )
        except se_flow.StaffHoldsCases as held:
            if not sys.stdin.isatty() or not typer.confirm(
                f"{held.message.split(':')[0]}: deactivate anyway?", default=False, err=True
            ):
                raise
            member = flow.edit_staff(
                staff_id,
                name=name,
                role=role,
                active=active,
                login=login,
                unbind_login=no_login,
                confirm=True,
            )
    state = "" if member.active else ", inactive"
    bound = f", bound to login {member.login}" if member.login else ""
    _say(f"staff {member.id} ({member.name}): {member.role.value}{state}{bound}")


@staff_app.command("list")
def staff_list(ctx: typer.Context, json: JsonOption = False) -> None:
    """List staff and their roles.

    Examples: se-flow staff list; se-flow staff list --json"""
    with _open(ctx) as flow:
        staff = flow.staff()
    if json:
        _echo_json(staff)
        return
    from ._cli_render import print_staff

    print_staff(_console(), staff)


def _settings_words(found: se_flow.DatabaseSettings) -> str:
    every = f"every {found.checkpoint_every} events" if found.checkpoint_every else ""
    export = "after every export" if found.checkpoint_on_export else ""
    when = " and ".join(w for w in (every, export) if w) or "only when asked"
    lines = [
        "shared terminal: "
        + (
            "allowed (bound members may be acted as from any login)"
            if found.shared_terminal
            else "not allowed (bound members only from their own login)"
        ),
        f"checkpoint file: {found.checkpoint_file or 'none'}",
    ]
    if found.checkpoint_file:
        lines.append(f"checkpoints appended: {when}")
    return "\n".join(lines)


@settings_app.command("show")
def settings_show(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show the database's settings.

    Examples: se-flow settings show; se-flow settings show --json"""
    with _open(ctx) as flow:
        found = flow.settings()
    if json:
        _echo_json(found.to_json())
        return
    _say(_settings_words(found), one_line=False)


@settings_app.command("shared-terminal")
def settings_shared_terminal(
    ctx: typer.Context,
    allow: Annotated[
        str, typer.Argument(metavar="on|off", help="on: allow a shared terminal; off: not.")
    ],
) -> None:
    """Admin: allow (on) or forbid (off) acting as login-bound staff from another login.

    Example: se-flow --as ada settings shared-terminal on"""
    if allow not in ("on", "off"):
        _fail(f"shared-terminal: expected on or off, got {quoted(allow)}")
    with _open(ctx, write=True) as flow:
        found = flow.change_settings(shared_terminal=allow == "on")
    _say(_settings_words(found).splitlines()[0])


# --- cases ------------------------------------------------------------------------------------


@app.command()
def refer(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The participant's full name.")],
    source: Annotated[
        str,
        typer.Option(
            "--source", help="Who referred them: GP, Jobcentre, self, ...", show_default=False
        ),
    ],
    contact: Annotated[
        str | None,
        typer.Option("--contact", help="Their phone or email (personal data).", show_default=False),
    ] = None,
    dob: Annotated[
        str | None,
        typer.Option(
            "--dob", help="Date of birth, YYYY-MM-DD (personal data).", show_default=False
        ),
    ] = None,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="The coach's staff id. Default: you, if you are a coach.",
            autocompletion=_complete("coach"),
            show_default=False,
        ),
    ] = None,
    note: Annotated[
        str | None,
        typer.Option("--note", help="A note on the referral.", show_default=False),
    ] = None,
    on: OnOption = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Refer even if someone with the same name and date of birth, or contact, "
            "has an open case (asked in a terminal; refused without it elsewhere).",
        ),
    ] = False,
    json: JsonOption = False,
    programme: Annotated[
        str | None,
        typer.Option(
            "--programme",
            help="Enrol the case on this funder definition (id or id@version), e.g. mhep.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Refer a new participant: opens their case at Referred.

    Example: se-flow refer "Alex Doe" --source GP --dob 1990-04-01"""
    born = _date(dob, "--dob", "YYYY-MM-DD")
    details = se_flow.PersonalDetails(name=name, contact=contact, date_of_birth=born)
    referral = {"notes": note} if note else None
    with _open(ctx, write=True) as flow:
        known = flow.duplicates(details)
        if known:
            about = "; ".join(
                f"{p.details.name} ({p.participant_id}) has open case "
                + ", ".join(f"{c.id} (coach {c.coach or '-'})" for c in p.open_cases)
                for p in known
            )
            _confirm(yes, "Refer them again anyway?", f"may be the same person: {about}")
        done = flow.refer(
            details,
            source=source,
            referral=referral,
            coach=coach,
            effective_at=_when(on),
            command_id=_command_id(ctx),
            programme=programme,
        )
        if _written(ctx, flow, done, json):
            return
        case = done.case
    on_programme = f", on {programme}" if programme else ""
    _say(
        f"referred {name}: case {case.id}, participant {case.participant_id}, "
        f"coach {case.coach or 'none yet'}{on_programme}"
    )
    _say(f"  next: se-flow next {case.id}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.jsonl",
            help="Cases from another system, one JSON object a line (see the README).",
            show_default=False,
        ),
    ],
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Import the cases that pass and list the refused ones, one commit per "
            "chunk. Default: all or nothing (the first refused case writes nothing).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Import history from another case system: every case's commands are checked as if
    entered one by one now (the same guards and rules), then written in bulk.

    Example: se-flow import examples/import.jsonl"""
    try:
        lines = file.open(encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    with lines, _open(ctx, write=True) as flow:
        try:
            report = flow.import_lines(lines, skip_bad=skip_bad)
        except UnicodeDecodeError as exc:
            _fail(f"{file} is not UTF-8 text (byte {exc.start}): nothing was imported")
    if json:
        _echo_json(report.to_json())
        return
    for failure in report.skipped:
        _say(f"skipped: {failure.words()}", err=True)
    first = f" ({report.imported[0][1]} to {report.imported[-1][1]})" if report.imported else ""
    _say(
        f"imported {len(report.imported)} case(s){first}: {report.events} events, "
        f"{report.records} records"
        + (f"; {len(report.skipped)} case(s) skipped" if report.skipped else "")
    )


@app.command()
def cases(
    ctx: typer.Context,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="Only this coach's cases.",
            show_default=False,
            autocompletion=_complete("coach"),
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage",
            help='Only cases in this stage: its number (3), title ("job matching") or id.',
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        str,
        typer.Option("--status", help="open (active or paused), active, paused, closed or all."),
    ] = "open",
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open cases whose review date has passed.")
    ] = False,
    stuck: Annotated[
        int | None,
        typer.Option(
            "--stuck",
            metavar="DAYS",
            help="Only open cases in their stage more than DAYS days, longest first.",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="KEY",
            help="days (longest in stage first), due (review), seen (longest since contact "
            "first), coach or stage. Default: case number (with --stuck: days).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Show at most this many cases.", show_default=False),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="Start after this case (the last of the page before).",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The caseload: stage, days in stage, last contact, coach, next review, what is overdue.

    Names show beside the pseudonyms for those who may see them.
    Examples: se-flow cases --stage 3; se-flow cases --stuck 28 --sort days"""
    if limit is not None or after is not None:
        with _open(ctx) as flow:
            view = flow.caseload(
                coach=coach,
                stage=stage,
                status=status,
                overdue=overdue,
                limit=limit,
                stuck_days=stuck,
                sort=sort,
                after=after,
                names=not json,
            )
            _print_caseload(flow.workflow, iter([view]), json)
        return
    # The whole caseload (it can be a million cases): a page at a time, written as it comes.
    with _open(ctx) as flow:
        pages = flow.caseload_pages(
            coach=coach,
            stage=stage,
            status=status,
            overdue=overdue,
            stuck_days=stuck,
            sort=sort,
            names=not json,
        )
        _print_caseload(flow.workflow, pages, json)


def _print_caseload(wf: "Workflow", pages: "Iterator[Caseload]", json: bool) -> None:
    first = next(pages)  # raises what the read refuses before anything is written
    today = first.today
    if json:
        from ._cli_text import caseload_lines, json_array

        # Compact, a case a line, written as it is made: a caseload can be 100,000 cases.
        out = sys.stdout
        found = itertools.chain(first.cases, (c for page in pages for c in page.cases))
        for piece in json_array(caseload_lines(wf, found, today)):
            out.write(piece)
        out.flush()
        return
    from ._cli_render import print_caseload_pages

    every = itertools.chain([first], pages)
    print_caseload_pages(_console(), wf, ((p.cases, p.names) for p in every), today)


@app.command()
def find(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="Part of a name, phone number or email.")
    ],
    json: JsonOption = False,
) -> None:
    """Find participants by name or contact, with their cases (coaches and team leaders).

    Each search is an audit event (who, when, how many matched; never the text).
    Example: se-flow find alex"""
    with _open(ctx, write=True) as flow:
        found = flow.find(text)
        wf = flow.workflow
    if json:
        _echo_json(found)
        return
    if not found:
        _say(f"nobody matches {text.strip()!r}")
        return
    from ._cli_text import stage_label

    for person in found:
        d = person.details
        born = f", born {d.date_of_birth.isoformat()}" if d.date_of_birth else ""
        contact = f", {d.contact}" if d.contact else ""
        _say(f"{d.name} ({person.participant_id}{born}{contact})")
        for c in person.cases:
            _say(f"  {c.id}  {stage_label(wf, c)}  coach {c.coach or '-'}")
    first = next((c.id for p in found for c in p.cases), None)
    _say(f"{len(found)} participant(s)" + (f"; next: se-flow show {first}" if first else ""))


def _year_note(years: tuple[int, ...]) -> tuple[str, ...]:
    listed = ", ".join(map(str, years))
    return (f"the calendar lists no bank holidays for {listed}: weekdays counted as working",)


@app.command()
def show(
    ctx: typer.Context,
    case_id: CaseArg,
    corrected: Annotated[
        bool,
        typer.Option("--corrected", help="Also list records that a later record corrected."),
    ] = False,
    limit: LimitOption = PAGE,
    everything: AllOption = False,
    json: JsonOption = False,
) -> None:
    """One case: details, its latest records and events, and its service standards.

    Examples: se-flow show C-1; se-flow show C-1 --all"""
    with _open(ctx) as flow:
        view = flow.case_view(
            case_id, limit=None if everything else limit, include_superseded=corrected
        )
        wf = flow.workflow
    case, today, standards, page = view.case, view.today, view.standards, view.history
    if json:
        from ._cli_text import case_json

        _echo_json(
            {
                "case": case_json(wf, case, today),
                "participant": view.participant,
                "records": view.records,
                "more_records": view.more_records,
                "standards": [r.to_json() for r in standards.results],
                "history": page.events,
                "earlier_events": page.earlier,
            }
        )
        return
    from ._cli_render import print_case, print_standards

    out = _console()
    print_case(out, wf, case, view.participant, view.records, page.events, today)
    _earlier(page.earlier, f"se-flow show {case.id} --all", view.more_records)
    warnings = () if not standards.uncovered_years else _year_note(standards.uncovered_years)
    print_standards(out, standards.results, today, warnings)


def _earlier(events: int, command: str, records: bool = False) -> None:
    """The hint under a page: what was left out, and the command that shows it all."""
    left = [f"{events} earlier event(s)"] if events else []
    if records:
        left.append("older records")
    if left:
        _say(f"{' and '.join(left)} not shown: {command}")


@app.command()
def record(
    ctx: typer.Context,
    case_id: CaseArg,
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="The record kind, e.g. consent (se-flow workflow show lists them).",
            autocompletion=_complete("record"),
        ),
    ],
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FIELD=VALUE",
            help="The fields as field=value, e.g. participation=yes data_processing=yes.",
            show_default=False,
        ),
    ] = None,
    supersedes: Annotated[
        int | None,
        typer.Option(
            "--supersedes",
            help="The number of the record this one corrects (both are kept).",
            show_default=False,
        ),
    ] = None,
    on: OnOption = None,
    json: JsonOption = False,
) -> None:
    """Record evidence on a case (a correction is a new record that supersedes the old).

    Fields as field=value; field=@FILE reads a file, field=- standard input.
    se-flow workflow show KIND lists a kind's fields.
    Example: se-flow record C-1 consent participation=yes data_processing=yes"""
    fields = _pairs(pairs)
    with _open(ctx, write=True) as flow:
        fields = _named_days(flow.workflow, kind, fields)
        done = flow.record(
            case_id,
            kind,
            fields,
            supersedes=supersedes,
            effective_at=_when(on),
            command_id=_command_id(ctx),
        )
        if _written(ctx, flow, done, json, record_number=True):
            return
    made, case = done.record, done.case
    from ._cli_text import local_day

    corrects = f", correcting record {made.supersedes}" if made.supersedes is not None else ""
    _say(
        f"{case_id}: recorded {kind} as record {made.seq} "
        f"(effective {local_day(made.effective_at).isoformat()}{corrects})"
    )
    if case.review_due:
        _say(f"  next review due {case.review_due}")


@app.command()
def check(
    ctx: typer.Context,
    case_id: CaseArg,
    trigger: Annotated[
        str,
        typer.Argument(
            metavar="TRIGGER",
            help="The trigger to try, e.g. start_profiling.",
            autocompletion=_complete("trigger"),
        ),
    ],
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="The reason you would give.", show_default=False),
    ] = None,
    review: Annotated[
        str | None,
        typer.Option(
            "--review", help="The review date you would give (pause).", show_default=False
        ),
    ] = None,
    close_reason: Annotated[
        str | None,
        typer.Option(
            "--close-reason", help="The closure reason you would give (close).", show_default=False
        ),
    ] = None,
    on: OnOption = None,
    json: JsonOption = False,
) -> None:
    """A dry run: every guard of a trigger, passed or failed and why. Nothing is changed.

    Exit 0 if the move would go through, 6 if a guard blocks it.
    Example: se-flow check C-1 start_profiling"""
    with _open(ctx) as flow:
        result = flow.check(
            case_id,
            trigger,
            reason=reason,
            review_date=_date(review, "--review"),
            outcome=close_reason,
            effective_at=_when(on),
        )
        wf = flow.workflow
    if json:
        from ._cli_text import check_json

        _echo_json(check_json(result))
    else:
        from ._cli_render import print_check

        ready = _command_for(wf, case_id, trigger, reason, review, close_reason)
        print_check(_console(), wf, result, ready=ready)
    if not result.allowed:
        # Blocked: the exit code of a refused move, so a script can test it.
        raise typer.Exit(se_flow.TransitionRefused.exit_code)


@app.command("next")
def next_(ctx: typer.Context, case_id: CaseArg, json: JsonOption = False) -> None:
    """What can happen next to a case, and what is missing for each.

    Examples: se-flow next C-1; se-flow next C-1 --json"""
    with _open(ctx) as flow:
        steps = flow.next_steps(case_id)
        wf = flow.workflow
    case, checks = steps.case, steps.checks
    if json:
        from ._cli_text import check_json

        _echo_json([check_json(c) for c in checks])
        return
    from ._cli_render import print_next

    print_next(_console(), wf, case, checks)


def _command_for(
    wf: se_flow.Workflow,
    case_id: str,
    trigger: str,
    reason: str | None,
    review: str | None,
    close_reason: str | None,
) -> str:
    """The command that fires `trigger` with what `check` was given, as it must be typed:
    pause, resume, withdraw and close have commands of their own."""
    import shlex

    q = shlex.quote
    names = wf.names
    if trigger == (names.pause or "pause"):
        return f"se-flow pause {case_id} --reason {q(reason or '')} --review {review or 'DATE'}"
    if trigger == (names.resume or "resume"):
        return f"se-flow resume {case_id}" + (f" --reason {q(reason)}" if reason else "")
    if trigger == (names.withdraw or "withdraw"):
        return f"se-flow withdraw {case_id} --reason {q(reason or '')}"
    if trigger == (names.close or "close"):
        return f"se-flow close {case_id} {q(close_reason or 'REASON')}"
    return f"se-flow advance {case_id} {trigger}" + (f" --reason {q(reason)}" if reason else "")


ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (kept in the audit trail).", show_default=False)
]


@app.command()
def advance(
    ctx: typer.Context,
    case_id: CaseArg,
    trigger: Annotated[
        str,
        typer.Argument(
            metavar="TRIGGER",
            help="The trigger, e.g. start_profiling (see: se-flow next).",
            autocompletion=_complete("trigger"),
        ),
    ],
    reason: ReasonOption = None,
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            help="Team leaders: go past soft guards, giving this reason (kept in the audit trail).",
            show_default=False,
        ),
    ] = None,
    on: OnOption = None,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Move a case on by firing a trigger; refused with every missing piece if guards fail.

    A trigger that closes the case asks first in a terminal (--yes for scripts).

    Examples: se-flow advance C-1 engage; se-flow advance C-1 engage --on today"""
    with _open(ctx, write=True) as flow:
        if flow.workflow.closes(trigger):
            from ._cli_text import trigger_title

            title = trigger_title(flow.workflow, trigger)
            _confirm(yes, f"Close {case_id} ({title})?", _CLOSING.format(case_id=case_id))
        done = flow.advance(
            case_id,
            trigger,
            reason=reason,
            override=override,
            effective_at=_when(on),
            command_id=_command_id(ctx),
        )
        _done(ctx, flow, done, json=json)


@app.command()
def pause(
    ctx: typer.Context,
    case_id: CaseArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why support pauses.", show_default=False)
    ],
    review: Annotated[
        str,
        typer.Option("--review", help="When to review the pause (YYYY-MM-DD).", show_default=False),
    ],
    on: OnOption = None,
    json: JsonOption = False,
) -> None:
    """Pause support (no stage moves while paused) until a review date.

    Example: se-flow pause C-1 --reason "in hospital" --review 2026-12-21"""
    with _open(ctx, write=True) as flow:
        done = flow.pause(
            case_id,
            reason=reason,
            review_date=_day(review, "--review"),
            effective_at=_when(on),
            command_id=_command_id(ctx),
        )
        _done(ctx, flow, done, json=json)


@app.command()
def resume(
    ctx: typer.Context,
    case_id: CaseArg,
    reason: ReasonOption = None,
    on: OnOption = None,
    json: JsonOption = False,
) -> None:
    """Resume a paused case.

    Example: se-flow resume C-1 --reason "out of hospital"
    """
    with _open(ctx, write=True) as flow:
        done = flow.resume(
            case_id, reason=reason, effective_at=_when(on), command_id=_command_id(ctx)
        )
        _done(ctx, flow, done, json=json)


@app.command()
def withdraw(
    ctx: typer.Context,
    case_id: CaseArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="The participant's reason, in their words.", show_default=False
        ),
    ],
    on: OnOption = None,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """The participant withdraws: needs only a reason, never an approval. Closes the case.

    Asks first in a terminal (--yes for scripts).
    Example: se-flow withdraw C-12 --reason "moving to Leeds" --yes"""
    _confirm(yes, f"Close {case_id} as withdrawn?", f"withdrawing closes case {case_id}")
    with _open(ctx, write=True) as flow:
        done = flow.withdraw(
            case_id, reason=reason, effective_at=_when(on), command_id=_command_id(ctx)
        )
        _done(ctx, flow, done, json=json)


@app.command()
def close(
    ctx: typer.Context,
    case_id: CaseArg,
    reason: Annotated[
        str,
        typer.Argument(
            metavar="REASON",
            help="ineligible, moved_away, time_limit, transferred, deceased or other "
            "(ineligible needs a team leader, other a --note).",
        ),
    ],
    note: Annotated[
        str | None,
        typer.Option(
            "--note", help="More about why (kept in the audit trail).", show_default=False
        ),
    ] = None,
    on: OnOption = None,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Close a case for another reason (withdrawals and completions have their own commands).

    Asks first in a terminal (--yes for scripts); reopen starts a new episode. The reason
    other needs a --note.
    Example: se-flow close C-12 moved_away --note "to Leeds" --yes"""
    with _open(ctx, write=True) as flow:
        # A closure refused anyway is refused before anyone is asked to confirm it.
        flow.workflow.check_closure_note(reason, note)
        _confirm(yes, f"Close {case_id} ({reason})?", _CLOSING.format(case_id=case_id))
        done = flow.close(
            case_id, reason, note=note, effective_at=_when(on), command_id=_command_id(ctx)
        )
        _done(ctx, flow, done, json=json)


@app.command()
def reopen(
    ctx: typer.Context,
    case_id: CaseArg,
    source: Annotated[
        str, typer.Option("--source", help="Who referred them again.", show_default=False)
    ],
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="The coach (default: the closed case's coach).",
            show_default=False,
            autocompletion=_complete("coach"),
        ),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="A note on the new referral.", show_default=False)
    ] = None,
    on: OnOption = None,
    json: JsonOption = False,
) -> None:
    """Start a new episode (a new case) for the participant of a closed case.

    Example: se-flow reopen C-12 --source self --coach sam"""
    referral = {"notes": note} if note else None
    with _open(ctx, write=True) as flow:
        done = flow.reopen(
            case_id,
            source=source,
            referral=referral,
            coach=coach,
            effective_at=_when(on),
            command_id=_command_id(ctx),
        )
        _done(ctx, flow, done, json=json)


@app.command()
def assign(
    ctx: typer.Context,
    case_id: CaseArg,
    coach: Annotated[
        str,
        typer.Argument(
            metavar="COACH", help="The new coach's staff id.", autocompletion=_complete("coach")
        ),
    ],
    reason: ReasonOption = None,
    json: JsonOption = False,
) -> None:
    """Give a case to another coach.

    Example: se-flow assign C-1 sam --reason "caseload balance"
    """
    with _open(ctx, write=True) as flow:
        done = flow.assign(case_id, coach, reason=reason, command_id=_command_id(ctx))
        _done(ctx, flow, done, json=json)


@app.command()
def erase(
    ctx: typer.Context,
    participant_id: Annotated[
        str,
        typer.Argument(metavar="PARTICIPANT", help="The participant's pseudonym, e.g. P-1a2b3c."),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="The request and its legal basis (kept in the audit trail).",
            show_default=False,
        ),
    ],
    yes: YesOption = False,
) -> None:
    """Admins: erase a participant's name, contact and date of birth for good (UK GDPR).

    The audit trail never held them and stays whole; the erasure is itself an audit event.
    Asks first in a terminal (--yes for scripts).
    Example: se-flow erase P-1a2b3c4d5e --reason "request of 2026-12-01" --yes"""
    _confirm(
        yes,
        f"Erase the personal data of {participant_id}? This cannot be undone.",
        f"erasing {participant_id}'s personal data cannot be undone",
    )
    with _open(ctx, write=True) as flow:
        flow.erase_personal_data(participant_id, reason=reason, command_id=_command_id(ctx))
    _say(f"erased the personal data of {participant_id}; its cases stay, by pseudonym")


@app.command()
def history(
    ctx: typer.Context,
    case_id: CaseArg,
    limit: LimitOption = PAGE,
    everything: AllOption = False,
    json: JsonOption = False,
) -> None:
    """A case's timeline, newest last: each event, who, when, and why.

    Then its service standards: met (on which date, in how many days), missed,
    due or overdue.

    Examples: se-flow history C-1; se-flow history C-1 --all --json"""
    with _open(ctx) as flow:
        # Met late or missed stays part of the case's story (issue 12): the standards are
        # shown with the timeline, both from the one view.
        view = flow.case_view(case_id, limit=None if everything else limit)
        wf = flow.workflow
    page, today = view.history, view.today
    standards = None if json else view.standards
    if json:
        _echo_json(page.events)
        return
    from ._cli_render import print_standards, print_timeline

    out = _console()
    print_timeline(out, wf, page.events, title=f"Timeline of {case_id}")
    _earlier(page.earlier, f"se-flow history {case_id} --all")
    if standards is not None:
        warnings = () if not standards.uncovered_years else _year_note(standards.uncovered_years)
        print_standards(out, standards.results, today, warnings)


@app.command()
def due(
    ctx: typer.Context,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="Whose caseload. Default: yours if you are a coach, else everyone's.",
            autocompletion=_complete("coach"),
            show_default=False,
        ),
    ] = None,
    everyone: Annotated[
        bool, typer.Option("--all", help="Every coach's cases, even if you are a coach.")
    ] = False,
    within: Annotated[
        int,
        typer.Option("--within", help="Also list what falls due within this many days."),
    ] = 7,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only what is past its date.")] = False,
    json: JsonOption = False,
    outcomes: Annotated[
        bool,
        typer.Option(
            "--outcomes", help="Also milestones coming up and claims due (enrolled cases)."
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Show what is due on at most this many cases (most urgent first).",
            show_default=False,
        ),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="Start after this case (the last case of the page before).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Everything due and overdue on a caseload (yours by default).

    Reviews, service standards and follow-along visits, by date, each with the command that
    does it; with --outcomes, milestones coming up and claims due too.

    Examples: se-flow due; se-flow due --coach sam --within 14"""
    if limit is not None or after is not None:
        with _open(ctx) as flow:
            view = flow.due_for(
                coach=coach,
                everyone=everyone,
                within_days=within,
                overdue=overdue,
                outcomes=outcomes,
                names=not json,
                limit=limit,
                after=after,
            )
        _print_due(iter([view]), within, overdue, json)
        return
    # The whole list (a team's can be hundreds of thousands of items): a page at a time,
    # written as it comes.
    with _open(ctx) as flow:
        pages = flow.due_pages(
            coach=coach,
            everyone=everyone,
            within_days=within,
            overdue=overdue,
            outcomes=outcomes,
            names=not json,
        )
        _print_due(pages, within, overdue, json)


def _print_due(pages: Iterator["DueView"], within: int, overdue: bool, json: bool) -> None:
    first = next(pages)
    today, coach = first.today, first.coach
    warned: set[str] = set()

    def saying_warnings(views: Iterable["DueView"]) -> Iterator["DueView"]:
        for view in views:
            for warning in view.items.warnings:
                if warning not in warned:
                    warned.add(warning)
                    _say(f"warning: {warning}", err=True)
            yield view

    # Each warning once, as the page that gives it comes (stderr: the list is on stdout).
    every = saying_warnings(itertools.chain([first], pages))
    if json:
        from ._cli_text import rows_json

        out = sys.stdout
        for piece in rows_json(item.to_json() for view in every for item in view.items.items):
            out.write(piece)
        out.write("\n")
        out.flush()
        return
    from ._cli_render import print_due_pages

    who = f"for {coach}" if coach else "for everyone"
    by = today + dt.timedelta(days=within)
    heading = f"Overdue {who}" if overdue else f"Due {who} by {by}"
    step = se_flow._api.PAGE_SIZE
    slices = (
        (view.items.items[i : i + step], view.names)
        for view in every
        for i in range(0, len(view.items.items), step)
    )
    print_due_pages(_console(), slices, today, heading)


@app.command()
def team(
    ctx: typer.Context,
    quiet_days: Annotated[
        int,
        typer.Option(
            "--no-contact", metavar="DAYS", help="Count cases with no contact for longer."
        ),
    ] = 28,
    stuck: Annotated[
        int,
        typer.Option("--stuck", metavar="DAYS", help="Count cases in one stage for longer."),
    ] = 90,
    json: JsonOption = False,
) -> None:
    """Per coach: open cases by stage, due this week, overdue, no recent contact, stuck.

    Examples: se-flow team; se-flow team --stuck 60 --no-contact 14"""
    with _open(ctx) as flow:
        lines = flow.team(quiet_days=quiet_days, stuck_days=stuck)
        wf = flow.workflow
    if json:
        _echo_json(lines)
        return
    from ._cli_render import print_team

    print_team(_console(), wf, lines, quiet_days=quiet_days, stuck_days=stuck)


# --- exports for auditors ---------------------------------------------------------------------


def _on_terminal() -> bool:
    """Whether stdout is a person's terminal: progress bars are for people, not for pipes."""
    return sys.stdout.isatty()


@app.command()
def export(
    ctx: typer.Context,
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR",
            help="A new (or empty) folder to write the export into.",
            show_default=False,
        ),
    ],
    tables: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            metavar="TABLE",
            help="A table to export: stage_histories, events, texts or clients (repeat for "
            "more). Default: all four.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv, jsonl (JSON Lines) or json (one bundle file of every table).",
        ),
    ] = "csv",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Only what happened on or after this date (YYYY-MM-DD, today, yesterday, or "
            "YYYY-MM-DDTHH:MM local time).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="Only what happened on or before this date (the whole day included).",
            show_default=False,
        ),
    ] = None,
    case_id: Annotated[
        str | None,
        typer.Option(
            "--case",
            metavar="CASE",
            help="Only this case, e.g. C-12.",
            show_default=False,
            autocompletion=_complete("case"),
        ),
    ] = None,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            metavar="ID",
            help="Only this coach's cases (staff id).",
            show_default=False,
            autocompletion=_complete("coach"),
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage",
            metavar="STAGE",
            help='Only cases now in this stage: its number (3), title ("job matching") or id.',
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only cases now active, paused or closed.",
            show_default=False,
        ),
    ] = None,
    personal: Annotated[
        bool,
        typer.Option(
            "--include-personal-data",
            help="Admins only: add name, contact and date of birth to the client list. "
            "Without it every file is pseudonymised.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an earlier se-flow export in OUT_DIR: only a folder holding exactly "
            "one, unchanged (never other files, nor the database's folder).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Export stage histories, audit events and the SEQF client list, for auditors.

    Writes a manifest beside the files (row counts, the audit chain's head, the SHA-256 of
    every file). Pseudonymised by default; the export is itself an audit event. A refused or
    failed export leaves nothing behind.

    Examples: se-flow export review-2026-06; se-flow export c1 --case C-1"""
    from ._export import TABLES

    start, end = _moment(since, "--since"), _moment(until, "--until")
    with _open(ctx, write=True) as flow:

        def run(progress: Callable[[str, int], object] | None) -> "se_flow.Manifest":
            return flow.export(
                out_dir,
                tables=tables or TABLES,
                fmt=fmt,
                since=start,
                until=end,
                case_id=case_id,
                coach=coach,
                stage=stage,
                status=status,
                include_personal_data=personal,
                force=force,
                progress=progress,
            )

        if json or not _on_terminal():
            manifest = run(None)
        else:
            from ._cli_render import export_progress

            with export_progress(_console()) as progress:
                manifest = run(progress)
    if json:
        _echo_json(manifest.to_json())
        return
    from ._cli_text import export_summary

    _say(export_summary(manifest), one_line=False)


# --- the workflow -----------------------------------------------------------------------------


def _workflow(ctx: typer.Context, folder: Path | None = None) -> se_flow.Workflow:
    return se_flow.load_workflow(folder if folder is not None else _settings(ctx).stages)


@workflow_app.command("show")
def workflow_show(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Argument(
            metavar="[KIND]",
            help="A record kind: its fields, their types, which are required, allowed values "
            "and an example command.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The stages, triggers with their guards, and record kinds; or one record kind's fields.

    Examples: se-flow workflow show; se-flow workflow show job_offer"""
    wf = _workflow(ctx)
    if kind is not None:
        spec = wf.records.get(kind)
        if spec is None:
            raise se_flow.UnknownRecordKind(kind, list(wf.records))
        if json:
            from ._cli_text import kind_json

            _echo_json(kind_json(spec))
            return
        from ._cli_render import print_record_kind

        print_record_kind(_console(), spec)
        return
    if json:
        _echo_json({"hash": wf.hash, **wf.describe()})
        return
    from ._cli_render import print_workflow

    print_workflow(_console(), wf)


@workflow_app.command("validate")
def workflow_validate(
    ctx: typer.Context,
    folder: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="The stage folder to check. Default: --stages, or the shipped one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a stage folder with every named check; list every fault (exit 3 if any).

    Examples: se-flow workflow validate; se-flow workflow validate my-stages"""
    wf = _workflow(ctx, folder)
    _say(
        f"ok: {wf.source}: {len(wf.states)} states, {len(wf.triggers)} triggers, "
        f"{len(wf.records)} record kinds (hash {wf.hash[:12]})"
    )


@workflow_app.command("adopt")
def workflow_adopt(
    ctx: typer.Context,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the database moves on.", show_default=False)
    ],
) -> None:
    """Move the database on to this workflow (--stages), admin only; it is an audit event.

    Example: se-flow --stages my-stages workflow adopt --reason "new consent form"
    """
    with _open(ctx, write=True) as flow:
        flow.adopt_workflow(reason=reason, command_id=_command_id(ctx))
        digest = flow.workflow.hash
    typer.echo(f"the database is now under workflow {digest[:12]}")


@workflow_app.command("diagram")
def workflow_diagram(
    ctx: typer.Context,
    exits: Annotated[
        bool,
        typer.Option(
            "--exits", help="Draw every exit (withdraw, close, pause, ...) from every state."
        ),
    ] = False,
) -> None:
    """The workflow as a Mermaid stateDiagram-v2, built from the loaded definition.

    Examples: se-flow workflow diagram; se-flow workflow diagram --exits"""
    from ._cli_text import mermaid

    _say(mermaid(_workflow(ctx), exits=exits), nl=False, one_line=False)


# --- the audit trail --------------------------------------------------------------------------


def _read_checkpoint(path: Path) -> "se_flow.Checkpoint":
    """A checkpoint file as `audit checkpoint` wrote it; anything else is refused naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        _fail(f"checkpoint file {path} cannot be read: {reason}")
    try:
        return se_flow.Checkpoint.from_json(text)
    except se_flow.InvalidInput as exc:
        _fail(f"checkpoint file {path} is not a checkpoint: {exc.message}")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="A checkpoint kept from `se-flow audit checkpoint`: also prove the log has "
            "only been appended to since (a truncated or rewritten history fails).",
            show_default=False,
        ),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            metavar="FILE",
            help="An external checkpoint file (`audit checkpoint --append`): every checkpoint "
            "in it must hold, so a rollback to an older copy fails.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="VERIFICATION_KEY",
            help="The verification key `se-flow init` printed: also check every event's "
            "forward-secure seal (an event altered and re-chained, inserted, removed or "
            "moved fails, naming its epoch).",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Walk the whole hash chain: ok (exit 0), or the first event that does not fit (exit 9).

    Examples: se-flow audit verify; se-flow audit verify --checkpoint head.json"""
    kept = _read_checkpoint(checkpoint) if checkpoint is not None else None
    # The result says a workflow mismatch itself ("but ..."): once is enough.
    with _open(ctx, mismatch=False) as flow:
        result = flow.verify(kept, key=key, checkpoints=checkpoints)
    if json:
        _echo_json(result)
    if not result.ok:
        raise se_flow.ChainBroken(result.bad_seq, result.problem or "unknown problem")
    if not json:
        _say(f"audit chain ok: {result.events} events, head {result.head_seq} {result.head_hash}")
        if result.workflow_mismatch:
            _say(f"but {result.workflow_mismatch}")
        if result.seals:
            _say(result.seals)
        if result.texts:
            _say(result.texts)
        if result.checkpoints:
            _say(result.checkpoints)
        if kept is not None:
            from ._cli_text import checkpoint_words

            _say(checkpoint_words(kept, result), one_line=False)


@audit_app.command("erase-text")
def audit_erase_text(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="The event holding the text.", show_default=False)],
    slot: Annotated[
        str,
        typer.Argument(
            help="Which text: reason, override.reason or record.FIELD (as history shows).",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (the request and its basis).", show_default=False)
    ],
) -> None:
    """Erase one free text (admin only); an audit event names it, the chain stays whole.

    Example: se-flow audit erase-text 42 reason --reason "erasure request"
    """
    with _open(ctx, write=True) as flow:
        done = flow.erase_text(seq, slot, reason=reason, command_id=_command_id(ctx))
    _say(f"erased the text {slot} of event {seq} (audit event {done.event.seq})")


@audit_app.command("grant-texts")
def audit_grant_texts(
    ctx: typer.Context,
    staff_id: Annotated[
        str,
        typer.Argument(
            metavar="AUDITOR",
            help="The auditor's staff id.",
            show_default=False,
            autocompletion=_complete("staff"),
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why.", show_default=False)],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the grant back instead.")] = False,
) -> None:
    """Let an auditor read and export free texts, or take that back (admin only; audited).

    Example: se-flow audit grant-texts ava --reason "case file review"
    """
    with _open(ctx, write=True) as flow:
        done = flow.grant_texts(
            staff_id, reason=reason, granted=not revoke, command_id=_command_id(ctx)
        )
    sees = "no longer sees" if revoke else "now sees"
    _say(f"{staff_id} {sees} free texts (audit event {done.event.seq})")


@audit_app.command("checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the checkpoint to this new file (never overwrites). Default: print it.",
            show_default=False,
        ),
    ] = None,
    append: Annotated[
        Path | None,
        typer.Option(
            "--append",
            metavar="FILE",
            help="Append it to this external checkpoint file (append-only, checked first).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the audit log's head (as JSON) for an auditor to keep.

    Later, `se-flow audit verify --checkpoint FILE` proves the log has only been appended to
    since.

    Example: se-flow audit checkpoint --out head-2026-06.json"""
    if append is not None:
        if out is not None:
            _fail("give --out or --append, not both")
        with _open(ctx) as flow:
            done = flow.append_checkpoint(append)
        _say(
            f"checkpoint of event {done.checkpoint.seq} appended to {done.path} (line {done.line})"
        )
        _say(
            done.protection
            or "warning: nothing but se-flow keeps this file append-only: make it so (`chattr +a` "
            "as root, or a write-once share)",
            err=done.protection is None,
        )
        return
    with _open(ctx) as flow:
        kept = flow.checkpoint()
    text = json.dumps(kept.to_json()) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        _say(
            f"keep this checkpoint (event {kept.seq}) where the database's users cannot change "
            "it; later: se-flow audit verify --checkpoint FILE",
            err=True,
        )
        return
    try:
        f = out.open("x", encoding="utf-8")
    except FileExistsError:
        _fail(f"{out} already exists: not overwriting it (a kept checkpoint is evidence)")
    except OSError as exc:
        _fail(f"cannot write checkpoint file {out}: {exc.strerror or exc}")
    try:
        with f:
            f.write(text)
    except OSError as exc:
        out.unlink(missing_ok=True)
        _fail(f"cannot write checkpoint file {out}: {exc.strerror or exc}")
    from ._cli_text import checkpoint_kept

    _say(checkpoint_kept(kept, out), one_line=False)


@store_app.command("copy")
def store_copy(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="The database to copy: a file or a URL.")
    ],
    destination: Annotated[
        str,
        typer.Argument(metavar="DST", help="A new file, or an empty database (postgresql://...)."),
    ],
) -> None:
    """Copy a whole database (log, cases, records, staff, personal data, seals) into a new
    or empty one, SQLite file to postgresql://... or back, verified there before it commits.

    Exit 5: DST is not empty, or a URL does not parse; 9: the copy does not verify; 10: a
    database cannot be opened (missing, a server refusing). On failure nothing is kept.

    Example: se-flow store copy caseload.db caseload-copy.db"""
    copied = se_flow.copy_store(source, destination, stages=_settings(ctx).stages)
    result = copied.verification
    _say(
        f"copied {copied.events} events from {copied.source} to {copied.destination}; "
        f"audit chain ok there: head {result.head_seq} {result.head_hash[:12]}"
    )


@audit_app.command("auto-checkpoint")
def audit_auto_checkpoint(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            metavar="FILE",
            help="The external, append-only checkpoint file (e.g. on another share).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option(
            "--every",
            metavar="N",
            help="Append after every N events (0: not by count).",
            show_default=False,
        ),
    ] = None,
    on_export: Annotated[
        bool | None,
        typer.Option(
            "--on-export/--not-on-export", help="Append after every export.", show_default=False
        ),
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop automatic checkpoints.")] = False,
) -> None:
    """Admin: append checkpoints to an external file automatically (an audit event).

    Example: se-flow audit auto-checkpoint --file /mnt/audit/cp.jsonl --on-export"""
    with _open(ctx, write=True) as flow:
        found = flow.change_settings(
            checkpoint_file=file,
            checkpoint_every=every,
            checkpoint_on_export=on_export,
            no_checkpoint_file=off,
        )
    _say(_settings_words(found), one_line=False)


@audit_app.command("verify-export")
def audit_verify_export(
    ctx: typer.Context,
    folder: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="The export folder (with its manifest.json)."),
    ],
    json: JsonOption = False,
) -> None:
    """Check an export against its manifest (and its audit log, if here): exit 9 if not.

    Every file's SHA-256, the row counts and each event's own hash; when the database is here
    (--db, SE_FLOW_DB or the default path exists), also that the export came from it and its
    own audit event holds the same file hashes.

    Example: se-flow audit verify-export review-2026-06"""
    s = _settings(ctx)
    db = s.db_path
    against: str | None = None
    # A database named (--db, SE_FLOW_DB) is opened, so a typo in its name is an error, not a
    # quiet check of the manifest alone; only the default database may be absent.
    if db != ":memory:" and (s.db is not None or is_database_url(db) or Path(db).exists()):
        against = shown_database(db)
        with _open(ctx) as flow:
            result = flow.verify_export(folder)
    else:
        result = se_flow.verify_export(folder)
    if json:
        from ._cli_text import export_check_json

        _echo_json(export_check_json(result, against))
    if not result.ok:
        raise _ExportProblems(result.path, result.problems)
    if not json:
        from ._cli_text import export_check_words

        _say(export_check_words(result, against), one_line=False)


# --- the demo ---------------------------------------------------------------------------------


@app.command()
def outcomes(
    ctx: typer.Context,
    case_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[CASE]",
            help="The case id, e.g. C-12.",
            show_default=False,
            autocompletion=_complete("case"),
        ),
    ] = None,
    on: Annotated[
        str | None,
        typer.Option(
            "--on",
            help="Evaluate as of this date (YYYY-MM-DD, today or yesterday). Default: today.",
        ),
    ] = None,
    due_within: Annotated[
        int | None,
        typer.Option(
            "--due-within",
            metavar="DAYS",
            help="Instead of one case: the caseload's milestones coming up and claims due "
            "within DAYS.",
            show_default=False,
        ),
    ] = None,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="With --due-within: one coach's cases.",
            show_default=False,
            autocompletion=_complete("coach"),
        ),
    ] = None,
    programme: Annotated[
        str | None,
        typer.Option(
            "--programme", help="With --due-within: one programme's cases.", show_default=False
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The case's milestones under its programme, and its jobs; or what is coming up.

    Each milestone achieved (date, band), provisional, or not yet with what is still needed
    and when at the current hours. With --due-within: milestones the caseload reaches within
    that many days at the current hours, and claims whose window closes by then.

    Examples: se-flow outcomes C-1; se-flow outcomes --due-within 30"""
    day = _day(on, "--on") if on is not None else None
    if due_within is not None or case_id is None:
        if case_id is not None:
            _fail("give a CASE or --due-within, not both")
        with _open(ctx) as flow:
            coming = flow.outcomes_due(
                within_days=14 if due_within is None else due_within,
                coach=coach,
                programme=programme,
                as_of=day,
            )
        if json:
            _echo_json(list(coming))
            return
        from ._cli_render import print_outcomes_due

        print_outcomes_due(_console(), coming)
        return
    with _open(ctx) as flow:
        found = flow.outcomes(case_id, on=day)
    if json:
        p = found.programme
        _echo_json(
            {
                "case_id": found.case_id,
                "on": found.on,
                "programme": None
                if p is None
                else {"id": p.id, "version": p.version, "status": p.status, "title": p.title},
                "note": found.note,
                "enrolment": found.enrolment,
                "spells": found.spells,
                "milestones": found.milestones,
                "logged": found.logged,
            }
        )
        return
    from ._cli_render import print_outcomes

    print_outcomes(_console(), found)


def _programmes(folder: Path | None) -> tuple[Any, ...]:
    from ._loader import load_programmes

    return load_programmes(folder)


@app.command()
def enrol(
    ctx: typer.Context,
    case_id: CaseArg,
    programme: Annotated[
        str,
        typer.Argument(metavar="PROGRAMME", help="A funder definition: id, or id@version."),
    ],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Why (moving a case needs a team leader).", show_default=False
        ),
    ] = None,
    on: OnOption = None,
) -> None:
    """Put a case on a programme (funder definition and version), audited.

    The case keeps that version until a person moves it (a team leader).

    Example: se-flow enrol C-1 mhep"""
    with _open(ctx, write=True) as flow:
        case = flow.enrol(
            case_id, programme, reason=reason, effective_at=_when(on), command_id=_command_id(ctx)
        ).case
        found = flow.outcomes(case.id)
    ref = found.enrolment.ref if found.enrolment else programme
    _say(f"{case.id} is on {ref}; its milestones: se-flow outcomes {case.id}")


@claims_app.command("mark")
def claims_mark(
    ctx: typer.Context,
    case_id: CaseArg,
    milestone: Annotated[
        str,
        typer.Argument(
            metavar="MILESTONE", help="A milestone id, or an instance such as job_start:J7."
        ),
    ],
    reference: Annotated[
        str, typer.Option("--reference", help="The funder's claim reference.", show_default=False)
    ],
) -> None:
    """Mark a milestone claimed from the funder (team leader or admin), audited.

    Only a milestone achieved on work evidence (not provisional), under a definition that is
    not unverified; else the refusal names what is missing (exit 5).

    Example: se-flow claims mark C-1 job_start --reference MHEP-2026-001"""
    with _open(ctx, write=True) as flow:
        case = flow.claim(case_id, milestone, reference, command_id=_command_id(ctx)).case
    _say(f"{case.id}: {milestone} claimed, reference {reference}")


@claims_app.command("resolve")
def claims_resolve(
    ctx: typer.Context,
    case_id: CaseArg,
    milestone: Annotated[
        str, typer.Argument(metavar="MILESTONE", help="The flagged milestone (id or instance).")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why the new evidence stands.", show_default=False)
    ],
) -> None:
    """Accept what the evidence now says of a claimed, flagged milestone (team leader or
    admin), audited; its claim is kept beside it.

    Example: se-flow claims resolve C-1 job_start --reason "payslip reread"
    """
    with _open(ctx, write=True) as flow:
        case = flow.resolve_claim(
            case_id, milestone, reason=reason, command_id=_command_id(ctx)
        ).case
    _say(f"{case.id}: {milestone} resolved; see se-flow outcomes {case.id}")


@claims_app.command("export")
def claims_export(
    ctx: typer.Context,
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR", help="A new (or empty) folder to write into.", show_default=False
        ),
    ],
    programme: Annotated[
        str | None,
        typer.Option(
            "--programme", help="Only this programme's claims (an id).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="DATE", help="Claims made on or after this date.", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="Claims made on or before this date.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="csv, jsonl or json.")
    ] = "csv",
) -> None:
    """Export the claims of a period: milestone, dates, band, evidence and verification.

    The same manifest, audit event and pseudonymisation as `export`; check it with
    `se-flow audit verify-export OUT_DIR`.

    Example: se-flow claims export claims-06 --programme mhep --since 2026-06-01"""
    with _open(ctx, write=True) as flow:
        manifest = flow.export_claims(
            out_dir,
            programme=programme,
            since=_moment(since, "--since"),
            until=_moment(until, "--until"),
            fmt=fmt,
        )
    _say(f"exported {manifest.rows.get('claims', 0)} claim(s) to {out_dir}")


@programme_app.command("list")
def programme_list(json: JsonOption = False) -> None:
    """The shipped funder definitions: id@version, status and milestones.

    Examples: se-flow programme list; se-flow programme list --json"""
    found = _programmes(None)
    if json:
        _echo_json(
            [
                {
                    "id": p.id,
                    "version": p.version,
                    "status": p.status,
                    "title": p.title,
                    "milestones": [m.id for m in p.milestones],
                }
                for p in found
            ]
        )
        return
    from ._cli_render import print_programmes

    print_programmes(_console(), found)


@programme_app.command("show")
def programme_show(
    ref: Annotated[str, typer.Argument(metavar="PROGRAMME", help="An id, or id@version.")],
    json: JsonOption = False,
) -> None:
    """One funder definition: its source, status and each milestone's test and parameters.

    Examples: se-flow programme show mhep; se-flow programme show mhep@1"""
    pid, _, version = ref.partition("@")
    matches = [p for p in _programmes(None) if p.id == pid and version in ("", p.version)]
    if not matches:
        raise se_flow.UnknownProgramme(ref, [p.ref for p in _programmes(None)])
    found = matches[-1]
    if json:
        _echo_json(found)
        return
    from ._cli_render import print_programme

    print_programme(_console(), found)


@programme_app.command("validate")
def programme_validate(
    folder: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="A folder of funder definition files (*.toml)."),
    ],
) -> None:
    """Check a folder of funder definitions with every named check (exit 3 if any fault).

    Example: se-flow programme validate my-programmes"""
    found = _programmes(folder)
    _say(f"ok: {folder}: {len(found)} programme(s): {', '.join(p.ref for p in found)}")


# --- reports (issue 14) ---------------------------------------------------------------------

QuarterOption = Annotated[
    str | None,
    typer.Option(
        "--quarter", metavar="YYYY-QN", help="A calendar quarter, e.g. 2026-Q3.", show_default=False
    ),
]
MonthOption = Annotated[
    str | None,
    typer.Option("--month", metavar="YYYY-MM", help="A month, e.g. 2026-11.", show_default=False),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", metavar="DATE", help="First day of the period (YYYY-MM-DD).", show_default=False
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Last day of the period (default: today).",
        show_default=False,
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", metavar="FORMAT", help="table, json, csv or html.")
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="Write the report to FILE (never over one without --force) instead of the terminal.",
        show_default=False,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")]
ExplainOption = Annotated[
    bool, typer.Option("--explain", help="Show how each figure was counted, under it.")
]


def _report(
    ctx: typer.Context,
    name: str,
    *,
    fmt: str,
    out: Path | None,
    force: bool,
    explain: bool,
    **kw: Any,
) -> None:
    with _open(ctx, write=True) as flow:
        made = flow.report(name, fmt=fmt, out=out, force=force, **kw)
    if out is not None:
        _say(f"{made.title}: {len(made.kpis)} figures written to {out}")
        return
    if fmt == "table":
        from ._cli_render import print_report

        print_report(_console(), made, explain=explain)
        return
    from ._report_render import render

    typer.echo(render(made, fmt), nl=False)


@report_app.command("ips-grow")
def report_ips_grow(
    ctx: typer.Context,
    quarter: QuarterOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    force: ForceOption = False,
    explain: ExplainOption = False,
) -> None:
    """The IPS Grow quarterly return (default: this quarter).

    Example: se-flow report ips-grow --quarter 2026-Q4 --explain"""
    _report(
        ctx,
        "ips-grow",
        quarter=quarter,
        since=since,
        until=until,
        fmt=fmt,
        out=out,
        force=force,
        explain=explain,
    )


@report_app.command("coaches")
def report_coaches(
    ctx: typer.Context,
    month: MonthOption = None,
    coach: Annotated[
        str | None,
        typer.Option(
            "--coach",
            help="One coach only.",
            show_default=False,
            autocompletion=_complete("coach"),
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    force: ForceOption = False,
    explain: ExplainOption = False,
) -> None:
    """Per coach: peak active caseload against 20, IPS-25 caseload score, access, outcomes.

    Example: se-flow report coaches --month 2026-12 --format html --out team.html"""
    _report(
        ctx,
        "coaches",
        month=month,
        coach=coach,
        since=since,
        until=until,
        fmt=fmt,
        out=out,
        force=force,
        explain=explain,
    )


@report_app.command("fidelity")
def report_fidelity(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    quarter: QuarterOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    force: ForceOption = False,
    explain: ExplainOption = False,
) -> None:
    """IPS fidelity evidence from the data (not a score: the scale also needs interviews).

    Example: se-flow report fidelity --quarter 2026-Q4 --format csv"""
    _report(
        ctx,
        "fidelity",
        since=since,
        until=until,
        quarter=quarter,
        fmt=fmt,
        out=out,
        force=force,
        explain=explain,
    )


@report_app.command("standards")
def report_standards(
    ctx: typer.Context,
    quarter: QuarterOption = None,
    month: MonthOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = "table",
    out: OutOption = None,
    force: ForceOption = False,
    explain: ExplainOption = False,
) -> None:
    """Service standards met, % per standard (deadlines in the period; default this quarter).

    Examples: se-flow report standards; se-flow report standards --month 2026-12"""
    _report(
        ctx,
        "standards",
        quarter=quarter,
        month=month,
        since=since,
        until=until,
        fmt=fmt,
        out=out,
        force=force,
        explain=explain,
    )


@report_app.command("seqf")
def report_seqf(
    ctx: typer.Context,
    out_dir: Annotated[
        Path,
        typer.Argument(metavar="OUT_DIR", help="A new folder for the pack.", show_default=False),
    ],
    sample: Annotated[int, typer.Option("--sample", help="How many clients to sample.")] = 12,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="The sampler's seed (default: random; the pack records it).",
            show_default=False,
        ),
    ] = None,
    quarter: QuarterOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier SEQF pack in OUT_DIR.")
    ] = False,
) -> None:
    """The SEQF pack: client list, KPI sheet with methods, HTML report and a seeded sample.

    Example: se-flow report seqf pack-q4 --quarter 2026-Q4 --sample 1 --seed 7"""
    with _open(ctx, write=True) as flow:
        made = flow.report(
            "seqf",
            out=out_dir,
            force=force,
            sample=sample,
            seed=seed,
            quarter=quarter,
            since=since,
            until=until,
            fmt="html",
        )
    _say(
        f"{made.title}: {len(made.clients)} clients, {len(made.kpis)} figures, sample of "
        f"{len(made.sample)} (seed {made.seed}) written to {out_dir}"
    )


@report_app.command("kpi")
def report_kpi(
    ctx: typer.Context,
    kpi_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A figure's id, e.g. total_job_starts or job_outcomes:sam.",
            show_default=False,
        ),
    ],
    cases: Annotated[bool, typer.Option("--cases", help="List the cases behind it.")] = False,
    quarter: QuarterOption = None,
    month: MonthOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    json: JsonOption = False,
) -> None:
    """One figure, how it was counted and (with --cases) the cases behind it.

    Example: se-flow report kpi total_job_starts --quarter 2026-Q4 --cases"""
    with _open(ctx, write=True) as flow:
        found = flow.kpi(kpi_id, quarter=quarter, month=month, since=since, until=until)
    if json:
        _echo_json(found.to_json())
        return
    from ._cli_render import print_kpi

    print_kpi(_console(), found, cases=cases)


@app.command()
def demo(ctx: typer.Context) -> None:
    """Build a realistic caseload and show it: caseload, a timeline, what is due, the audit.

    Without --db it runs in memory and leaves nothing behind; with --db it needs a new or
    empty database file.

    Examples: se-flow demo; se-flow --db demo.db demo"""
    from . import _cli_demo

    s = _settings(ctx)
    _cli_demo.run(s.db or ":memory:", stages=s.stages, out=_console())


@app.command()
def version() -> None:
    """Print the se-flow version.

    Example: se-flow version"""
    typer.echo(se_flow.__version__)


def main() -> None:
    """The console script's entry point."""
    app()


if __name__ == "__main__":
    main()
