"""Reads a stage folder (TOML files) into a validated `Workflow`."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ._guards import GUARDS
from ._workflow import Workflow, build
from .errors import Fault, WorkflowInvalid

__all__ = ["default_stages_dir", "load_workflow"]


def default_stages_dir() -> Path:
    """The default workflow shipped with se-flow (the `stages/` folder of the source tree)."""
    return Path(str(resources.files("se_flow.stages")))


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
            parts.append((file.name, tomllib.loads(file.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            faults.append(Fault("files_readable", f"{file.name}: {exc}"))
    try:
        workflow = build(parts, catalog=GUARDS, source=source)
    except WorkflowInvalid as invalid:
        # Check what could be read too, so one run reports every fault, not just the first file.
        raise WorkflowInvalid(source, [*faults, *invalid.faults]) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # Data of the wrong shape (a string where a table belongs, say) that the named checks
        # could not get past: still a fault report, never a traceback.
        shape = Fault("stage_data_well_formed", f"a value has the wrong type or shape: {exc!r}")
        raise WorkflowInvalid(source, [*faults, shape]) from None
    if faults:
        raise WorkflowInvalid(source, faults)
    return workflow
