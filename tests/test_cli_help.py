"""Every command's `--help` ends with examples a coach or auditor would type, and every example
is parsed against the command it is shown under: a wrong option, a missing argument or a word
where a number goes fails here, not in front of a user. The help screens fit 80 columns with
each example whole on one line."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from se_flow.cli import app

ROOT: Any = typer.main.get_command(app)
LEAD = ("Example: ", "Examples: ")


def _tree(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _tree(sub, (*path, name))


COMMANDS = dict(_tree(ROOT))


def examples(command: Any) -> list[str]:
    """The invocations in a command's help: the `Example:` / `Examples:` lines, `; ` between."""
    found = []
    for line in (command.help or "").splitlines():
        line = line.strip()
        for lead in LEAD:
            if line.startswith(lead):
                found += [e.strip() for e in line.removeprefix(lead).split("; ")]
    return found


def resolve(words: list[str]) -> tuple[str, ...]:
    """Parse `se-flow ...` as the command line would, strictly (click's `make_context`,
    `resilient_parsing=False`: an unknown option, a missing argument, a bad number raise), down
    to the command it runs; that command's path. Nothing is invoked."""
    assert words[0] == "se-flow", words
    command: Any = ROOT
    path: tuple[str, ...] = ()
    ctx = command.make_context("se-flow", words[1:], resilient_parsing=False)
    while hasattr(command, "commands"):
        # Typer's group keeps the subcommand's name apart from its arguments, as click did.
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"{shlex.join(words)}: names no command"
        name, command, args = command.resolve_command(ctx, rest)
        path = (*path, name)
        ctx = command.make_context(name, args, parent=ctx, resilient_parsing=False)
    return path


def test_the_tree_is_walked() -> None:
    # Groups and their subcommands: a walk that stopped at the root would pass vacuously.
    assert {(), ("advance",), ("staff",), ("staff", "edit"), ("report", "kpi")} <= set(COMMANDS)
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "se-flow")
def test_every_help_has_an_example_that_parses(path: tuple[str, ...]) -> None:
    shown = examples(COMMANDS[path])
    assert shown, f"se-flow {' '.join(path)} --help has no example"
    for example in shown:
        ran = resolve(shlex.split(example))
        # An example runs the command it is shown under (a group's: one of its own).
        assert ran[: len(path)] == path, f"{example!r} is not an example of {path}"
        if not hasattr(COMMANDS[path], "commands"):
            assert ran == path, example


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "se-flow")
def test_help_fits_80_columns_with_examples_whole(path: tuple[str, ...]) -> None:
    done = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [x for x in lines if len(x) > 80]
    for example in examples(COMMANDS[path]):
        assert any(example in line for line in lines), f"{example!r} is wrapped or mangled"


@pytest.mark.parametrize(
    "example",
    [
        "se-flow advance C-1",  # a missing argument
        "se-flow advance C-1 engage --when today",  # an unknown option
        "se-flow show C-1 --limit many",  # a word where a number goes
        "se-flow staff remove sam",  # an unknown subcommand
        "se-flow --as",  # an option without its value
        "se-flow staff",  # a group, no command
    ],
)
def test_a_wrong_example_fails(example: str) -> None:
    # Click's usage errors (no such option, missing argument, bad value) are Typer's.
    with pytest.raises(typer.TyperException):
        resolve(shlex.split(example))
