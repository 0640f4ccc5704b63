"""Reads a stage folder (TOML files) into a validated `Workflow`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._guards import GUARDS
from ._workflow import Workflow, build
from .errors import Fault, ProgrammeInvalid, WorkflowInvalid

if TYPE_CHECKING:
    from ._outcomes import Programme

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
    # The package's own folder, as importlib.resources finds it for a package on disk
    # (importing importlib.resources, with zipfile, costs ~13 ms at every start).
    from . import stages

    return Path(str(stages.__file__)).parent


def calendars_dir() -> Path:
    """The working-day calendars shipped with se-flow, one `<region>.toml` each."""
    return Path(__file__).parent / "calendars"


def _calendars(parts: list[tuple[str, dict[str, Any]]], faults: list[Fault]) -> dict[str, Any]:
    """The shipped calendar files, by region, when a `[calendar]` table asks for one."""
    import tomllib

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
    from importlib import resources

    return Path(str(resources.files("se_flow.programmes")))


def load_programmes(path: str | Path | None = None) -> tuple[Programme, ...]:
    """Load and validate every `*.toml` funder definition in `path` (default: the shipped
    ones), sorted by id and version. Raises `ProgrammeInvalid` listing every fault of every
    file, each naming its file and key; two files of one id and version are a fault."""
    import tomllib

    from ._outcomes import parse_programme

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
    failed named check, all at once. The shipped workflow, once built, is kept in the
    user's cache folder (`_WorkflowCache`) and read back while its files, and se-flow's own
    code, are byte for byte those it was built from."""
    if path is None:
        return _WorkflowCache(default_stages_dir()).load()
    return _load_workflow(Path(path))


def _load_workflow(folder: Path) -> Workflow:
    import tomllib  # here, not at the top: a workflow read back from the cache parses no TOML

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


# --- the shipped workflow, kept built ----------------------------------------------------------
# Building the workflow (TOML, the stage-file shapes through cattrs, the named checks) is about
# a fifth of a CLI command's start; reading it back built costs under a millisecond.

_CACHE_FORMAT = b"se-flow workflow cache 1\n"
_CACHE_MAX_BYTES = 4 * 1024 * 1024
# What a cached workflow may be made of: its own attrs values, and these (anything else in a
# file is refused, so reading one can never run code, and it is rebuilt instead).
_CACHE_MODULES = ("se_flow._workflow", "se_flow._calendar", "se_flow._standards")
_CACHE_CLASSES = frozenset(
    {
        ("builtins", "list"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("datetime", "date"),
        ("decimal", "Decimal"),
        ("transitions.core", "Event"),
        ("transitions.core", "Machine"),
        ("transitions.core", "State"),
        ("transitions.core", "Transition"),
    }
)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CACHE_CLASSES:
            return super().find_class(module, name)
        if module in _CACHE_MODULES:
            found = getattr(sys.modules[module], name, None)
            if isinstance(found, type) and attrs.has(found):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a workflow")


class _WorkflowCache:
    """The workflow of `folder`, built once and kept in a file of the user's cache folder,
    named by the folder. The file starts with a digest of everything the build read or ran:
    se-flow's code (each module's size and modification time: a new version is new code), the
    Python and
    library versions, the folder's name and every stage and calendar file's bytes. A file
    whose digest differs, or that is not the user's own, or not a workflow, is rebuilt;
    a cache that cannot be read or written changes nothing but the time taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self) -> Workflow:
        try:
            key = self._key()
            file = self._file()
        except (OSError, RuntimeError, KeyError, _Unreadable):
            # Unreadable files, no home folder: the build says what is wrong, or works.
            return _load_workflow(self.folder)
        found = self._read(file, key)
        if found is not None:
            return found
        workflow = _load_workflow(self.folder)
        self._write(file, key, workflow)
        return workflow

    def _key(self) -> bytes:
        import transitions.core

        digest = hashlib.sha256(_CACHE_FORMAT)
        digest.update(f"{sys.version}\n".encode())
        # The libraries whose classes a cached workflow holds, as installed (a version string
        # would cost an importlib.metadata look-up, more than the cache saves).
        for module in (attrs, transitions.core):
            info = os.stat(str(module.__file__))
            digest.update(f"{module.__name__} {info.st_size} {info.st_mtime_ns}\n".encode())
        digest.update(f"{self.folder}\n".encode())
        code = Path(__file__).parent
        for entry in sorted(os.scandir(code), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                info = entry.stat()
                digest.update(f"{entry.name} {info.st_size} {info.st_mtime_ns}\n".encode())
        for file in [*sorted(self.folder.glob("*.toml")), *sorted(calendars_dir().glob("*.toml"))]:
            data = _read(file)
            digest.update(f"{file.parent.name}/{file.name} {len(data)}\n".encode())
            digest.update(data)
        return digest.digest()

    def _file(self) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        named = hashlib.sha256(str(self.folder).encode()).hexdigest()[:16]
        return Path(base) / "se-flow" / f"workflow-{named}.pickle"

    def _read(self, file: Path, key: bytes) -> Workflow | None:
        try:
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(file, flags)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
            # Only a regular file of the user's own that nobody else may write is trusted.
            if not (stat.S_ISREG(info.st_mode) and mine and not info.st_mode & 0o022):
                return None
            data = f.read(_CACHE_MAX_BYTES + 1)
        if len(data) > _CACHE_MAX_BYTES or data[: len(key)] != key:
            return None
        try:
            found = _Unpickler(io.BytesIO(data[len(key) :])).load()
        except Exception:  # a torn or foreign file: rebuilt, never trusted
            return None
        return found if isinstance(found, Workflow) and found.source == str(self.folder) else None

    @staticmethod
    def _write(file: Path, key: bytes, workflow: Workflow) -> None:
        import tempfile

        try:
            data = pickle.dumps(workflow, protocol=pickle.HIGHEST_PROTOCOL)
            _Unpickler(io.BytesIO(data)).load()  # what cannot be read back is not kept
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=file.parent, prefix=".workflow-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(key + data)
                os.replace(temp, file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except (OSError, pickle.PicklingError, pickle.UnpicklingError, TypeError):
            pass  # no cache: the next start builds it again
