"""Every module of the package has its place in the import-linter layers (pyproject.toml), so
a new module cannot escape the contracts CI checks with `lint-imports`; and every core module
is under the no-I/O contract."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "se_flow"


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _layered() -> set[str]:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    names: set[str] = set()
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().removeprefix("se_flow."))
    return names


def _modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_every_module_has_a_layer() -> None:
    assert _modules() - _layered() == set()
    assert _layered() - _modules() == set(), "the layers name modules that are gone"


def test_the_core_is_under_the_no_io_contract() -> None:
    (forbidden,) = [c for c in _contracts() if c["type"] == "forbidden"]
    core = {m.removeprefix("se_flow.") for m in forbidden["source_modules"]}
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    below_io = layers["layers"][
        layers["layers"].index(
            "se_flow._export | se_flow._sqlite | "
            "se_flow._postgres | se_flow._memory | "
            "se_flow._loader"
        )
        + 1 :
    ]
    for layer in below_io:
        for part in layer.replace("|", ":").split(":"):
            assert part.strip().removeprefix("se_flow.") in core, part
