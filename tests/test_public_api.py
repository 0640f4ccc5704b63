"""The public API is exactly what `se_flow.__all__` names; changing it is a deliberate act."""

from __future__ import annotations

import se_flow

EXPECTED = {
    "GENESIS",
    "AuditError",
    "Case",
    "CaseClosed",
    "CaseConflict",
    "CaseNotFound",
    "CasePaused",
    "ChainBroken",
    "Check",
    "Event",
    "ExportMismatch",
    "Fault",
    "FutureEffectiveDate",
    "GuardResult",
    "GuardsFailed",
    "InvalidExportRequest",
    "InvalidInput",
    "InvalidRecord",
    "NotFound",
    "Override",
    "Participant",
    "PermissionDenied",
    "PersonalDetails",
    "Record",
    "Role",
    "SEFlow",
    "SEFlowError",
    "Staff",
    "StaffNotFound",
    "Status",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "TransitionRefused",
    "TriggerNotAvailable",
    "UnknownRecordKind",
    "UnknownTrigger",
    "Verification",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowMismatch",
    "__version__",
    "default_stages_dir",
    "load_workflow",
    "open",
}

# Names added by later issues (exports and checkpoints) are pinned here once they land.
OPTIONAL = {"Checkpoint", "ExportVerification", "Manifest", "verify_export"}
# Outcomes (issue 13): the read side's values and its refusals.
OPTIONAL |= {
    "Milestone",
    "MilestoneState",
    "Needed",
    "Outcomes",
    "Programme",
    "ProgrammeInvalid",
    "UnknownProgramme",
}


def test_public_names_are_pinned() -> None:
    names = set(se_flow.__all__)
    assert names >= EXPECTED, f"missing from __all__: {EXPECTED - names}"
    assert names - EXPECTED <= OPTIONAL, f"unpinned public names: {names - EXPECTED - OPTIONAL}"


def test_every_public_name_resolves() -> None:
    for name in se_flow.__all__:
        assert hasattr(se_flow, name), name


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
    public_modules = {"errors", "cli"}
    for name in se_flow.__all__:
        obj = getattr(se_flow, name)
        module = getattr(obj, "__module__", "se_flow") or "se_flow"
        if module.startswith("se_flow."):
            leaf = module.split(".")[1]
            assert leaf.startswith("_") or leaf in public_modules, (name, module)
