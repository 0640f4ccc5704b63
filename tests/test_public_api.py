"""The public API is exactly what `se_flow.__all__` names; changing it is a deliberate act."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

import se_flow

# Exactly the public names, sorted: a name added, renamed or gone fails here, on purpose.
EXPECTED = [
    "AuditError",
    "Case",
    "CaseClosed",
    "CaseConflict",
    "CaseNotFound",
    "CasePaused",
    "CaseView",
    "Caseload",
    "ChainBroken",
    "Check",
    "Checkpoint",
    "CheckpointFileRefused",
    "ClaimRefused",
    "CommandIdReused",
    "CommandRepeated",
    "Copied",
    "DatabaseSettings",
    "Done",
    "DueView",
    "Event",
    "ExportMismatch",
    "ExportVerification",
    "Fault",
    "FutureEffectiveDate",
    "GENESIS",
    "GuardResult",
    "GuardsFailed",
    "HistoryPage",
    "ImportFailure",
    "ImportRefused",
    "ImportReport",
    "ImportedCase",
    "ImportedRecord",
    "ImportedTrigger",
    "InvalidExportRequest",
    "InvalidInput",
    "InvalidRecord",
    "KPI",
    "Manifest",
    "MemoryStore",
    "Milestone",
    "MilestoneState",
    "Needed",
    "NextSteps",
    "NotFound",
    "NoteRequired",
    "Outcomes",
    "Override",
    "Participant",
    "Period",
    "PermissionDenied",
    "PersonalDetails",
    "Programme",
    "ProgrammeInvalid",
    "Record",
    "Report",
    "Role",
    "SEFlow",
    "SEFlowError",
    "SQLiteStore",
    "SealKeyUnusable",
    "SetUp",
    "Staff",
    "StaffHoldsCases",
    "StaffNotFound",
    "Status",
    "StoreBusy",
    "StoreError",
    "StoreNotEmpty",
    "StoreUnavailable",
    "TextAlreadyErased",
    "TextNotFound",
    "TransitionRefused",
    "TriggerNotAvailable",
    "UnknownProgramme",
    "UnknownRecordKind",
    "UnknownTrigger",
    "Verification",
    "VerificationKey",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowMismatch",
    "__version__",
    "copy_store",
    "default_stages_dir",
    "load_workflow",
    "open",
    "verify_export",
]


def test_public_names_are_pinned() -> None:
    assert sorted(se_flow.__all__) == EXPECTED
    assert len(set(se_flow.__all__)) == len(se_flow.__all__), "a name listed twice"


@pytest.mark.parametrize("name", EXPECTED)
def test_every_public_name_is_on_the_module(name: str) -> None:
    # Over the pinned list, not __all__: a name gone from both still fails here, and a lazy
    # name whose import breaks fails with its own error.
    assert getattr(se_flow, name) is not None


def test_a_star_import_gives_every_public_name() -> None:
    space: dict[str, object] = {}
    exec("from se_flow import *", space)
    assert sorted(k for k in space if k != "__builtins__") == EXPECTED


def test_the_installed_version_is_the_package_version() -> None:
    # The metadata pip installed and the module's own literal: one source, checked.
    assert importlib.metadata.version("se-flow") == se_flow.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", se_flow.__version__)


def test_every_error_is_an_seflow_error_with_an_exit_code() -> None:
    errors = [getattr(se_flow, n) for n in se_flow.__all__]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) > 20
    for error in errors:
        assert issubclass(error, se_flow.SEFlowError), error
        assert isinstance(error.exit_code, int) and error.exit_code > 0, error


def test_errors_subclass_the_nearest_builtin() -> None:
    assert issubclass(se_flow.CaseNotFound, LookupError)
    assert issubclass(se_flow.InvalidRecord, ValueError)
    assert issubclass(se_flow.WorkflowInvalid, ValueError)
    assert issubclass(se_flow.PermissionDenied, PermissionError)
    assert issubclass(se_flow.StoreUnavailable, OSError)


def test_private_modules_are_private() -> None:
    public_modules = {"errors", "cli", "ports", "contract"}
    for name in se_flow.__all__:
        obj = getattr(se_flow, name)
        module = getattr(obj, "__module__", "se_flow") or "se_flow"
        if module.startswith("se_flow."):
            leaf = module.split(".")[1]
            assert leaf.startswith("_") or leaf in public_modules, (name, module)


def test_the_store_ports_and_contract_are_public() -> None:
    from se_flow import contract, ports

    assert set(ports.__all__) >= {"Store", "Tx", "Writer", "CaseReads", "LogReads", "Change"}
    assert contract.StoreContract.__module__ == "se_flow.contract"
    for store in (se_flow.MemoryStore, se_flow.SQLiteStore):
        assert ports.Store in store.__mro__, store
