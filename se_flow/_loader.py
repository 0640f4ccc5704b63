"""Reads a stage folder (TOML files) into a validated `Workflow`."""

from __future__ import annotations

import os
import stat
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ._guards import GUARDS
from ._outcomes import Programme, parse_programme
from ._workflow import Workflow, build
from .errors import Fault, ProgrammeInvalid, WorkflowInvalid

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "calendars_dir",
    "default_programmes_dir",
    "default_stages_dir",
    "load_programmes",
    "load_workflow",
]

# A stage file is a page or two of TOML; the default's largest is under 8 KiB.
MAX_FILE_BYTES = 1024 * 1024
# Arrays and tables nested deeper than this are no workflow, and deep enough ones overflow
# the stack of tomllib or of the checks that walk them.
MAX_DEPTH = 16
# One message for both ways of finding it: our depth count, or tomllib's own recursion limit.
TOO_DEEP = f"arrays or tables nested more than {MAX_DEPTH} deep"


def default_stages_dir() -> Path:
    """The default workflow shipped with se-flow (the `stages/` folder of the source tree)."""
    return Path(str(resources.files("se_flow.stages")))


def calendars_dir() -> Path:
    """The working-day calendars shipped with se-flow, one `<region>.toml` each."""
    return Path(str(resources.files("se_flow"))) / "calendars"


def _calendars(parts: list[tuple[str, dict[str, Any]]], faults: list[Fault]) -> dict[str, Any]:
    """The shipped calendar files, by region, when a `[calendar]` table asks for one."""
    if not any("calendar" in p for _, p in parts):
        return {}
    found: dict[str, Any] = {}
    for file in sorted(calendars_dir().glob("*.toml")):
        try:
            found[file.stem] = (file.name, tomllib.loads(_read(file).decode("utf-8-sig")))
        except (_Unreadable, OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            faults.append(Fault("files_readable", f"calendar {file.name}: {exc}"))
    return found


def default_programmes_dir() -> Path:
    """The funder definitions shipped with se-flow (`se_flow/programmes`)."""
    return Path(str(resources.files("se_flow.programmes")))


def load_programmes(path: str | Path | None = None) -> tuple[Programme, ...]:
    """Load and validate every `*.toml` funder definition in `path` (default: the shipped
    ones), sorted by id and version. Raises `ProgrammeInvalid` listing every fault of every
    file, each naming its file and key; two files of one id and version are a fault."""
    folder = Path(path) if path is not None else default_programmes_dir()
    source = str(folder)
    if not folder.is_dir():
        raise ProgrammeInvalid(source, [Fault("folder_exists", f"{folder} is not a folder")])
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise ProgrammeInvalid(source, [Fault("folder_exists", f"{folder} holds no .toml files")])
    faults: list[Fault] = []
    found: dict[tuple[str, str], Programme] = {}
    for file in files:
        try:
            parsed = tomllib.loads(_read(file).decode("utf-8-sig"))
            if _depth(parsed) > MAX_DEPTH:
                raise _Unreadable("files_readable", TOO_DEEP)
            programme = parse_programme(file.name, parsed)
        except _Unreadable as exc:
            faults.append(Fault(exc.check, f"{file.name}: {exc}"))
            continue
        except RecursionError:
            faults.append(Fault("files_readable", f"{file.name}: {TOO_DEEP}"))
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            faults.append(Fault("files_readable", f"{file.name}: {exc}"))
            continue
        except ProgrammeInvalid as invalid:
            faults.extend(invalid.faults)
            continue
        key = (programme.id, programme.version)
        if key in found:
            faults.append(
                Fault(
                    "programmes_unique",
                    f"{file.name}: programme {programme.ref} is also defined in {found[key].file}",
                )
            )
            continue
        found[key] = programme
    if faults:
        raise ProgrammeInvalid(source, faults)
    return tuple(found[k] for k in sorted(found))


def load_workflow(path: str | Path | None = None) -> Workflow:
    """Load and validate every `*.toml` in `path` (default: the shipped stages).

    Raises `WorkflowInvalid` listing every fault: unreadable files, bad TOML and every
    failed named check, all at once."""
    folder = Path(path) if path is not None else default_stages_dir()
    source = str(folder)
    if not folder.is_dir():
        raise WorkflowInvalid(source, [Fault("folder_exists", f"{folder} is not a folder")])
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise WorkflowInvalid(source, [Fault("folder_exists", f"{folder} holds no .toml files")])
    parts: list[tuple[str, dict[str, Any]]] = []
    faults: list[Fault] = []
    for file in files:
        try:
            data = _read(file)
            # A byte-order mark, as some Windows editors write, is no reason to refuse a file.
            parsed = tomllib.loads(data.decode("utf-8-sig"))
        except _Unreadable as exc:
            faults.append(Fault(exc.check, f"{file.name}: {exc}"))
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            faults.append(Fault("files_readable", f"{file.name}: {exc}"))
            continue
        except RecursionError:
            faults.append(Fault("stage_data_well_formed", f"{file.name}: {TOO_DEEP}"))
            continue
        if _depth(parsed) > MAX_DEPTH:
            faults.append(Fault("stage_data_well_formed", f"{file.name}: {TOO_DEEP}"))
            continue
        parts.append((file.name, parsed))
    try:
        calendars = _calendars(parts, faults)
        workflow = build(parts, catalog=GUARDS, source=source, calendars=calendars)
    except WorkflowInvalid as invalid:
        # Check what could be read too, so one run reports every fault, not just the first file.
        raise WorkflowInvalid(source, [*faults, *invalid.faults]) from None
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        # `_schema` names every misfit it knows; this is the net for one it does not (a value
        # that fits its type and still trips a named check): a fault report, never a traceback.
        shape = Fault("stage_data_well_formed", f"a value has the wrong type or shape: {exc!r}")
        raise WorkflowInvalid(source, [*faults, shape]) from None
    if faults:
        raise WorkflowInvalid(source, faults)
    return workflow


class _Unreadable(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


def _read(file: Path) -> bytes:
    """The bytes of a regular file of at most `MAX_FILE_BYTES`. A FIFO, device or socket
    (or a link to one) named *.toml is never opened: reading it would block or never end."""
    info = file.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _Unreadable("files_regular", "not a regular file (a FIFO, device or link to one)")
    if info.st_size > MAX_FILE_BYTES:
        raise _Unreadable("files_small", f"{info.st_size:,} bytes; the most is {MAX_FILE_BYTES:,}")
    # O_NONBLOCK and fstat: should it be swapped for a FIFO since the stat, it cannot block us.
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _Unreadable("files_regular", "not a regular file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _Unreadable("files_small", f"more than {MAX_FILE_BYTES:,} bytes")
    return data


def _depth(value: Any) -> int:
    """How deep arrays and tables nest in `value`, walked without recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
    return deepest
