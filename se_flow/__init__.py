"""se-flow: the Supported Employment workflow engine.

    import se_flow
    with se_flow.open("caseload.db", actor="sam") as flow:  # or ":memory:"
        flow.add_staff("sam", "Sam Coach", "coach")  # the first staff member bootstraps
        case = flow.refer("Alex Doe", source="GP").case
        flow.advance(case.id, "engage")

Everything public is named in `__all__`; the modules starting with `_` are private.
"""

from typing import TYPE_CHECKING, Any

# The errors load with the package: every caller needs them and they cost next to nothing.
from .errors import (
    AuditError,
    CaseClosed,
    CaseConflict,
    CaseNotFound,
    CasePaused,
    ChainBroken,
    CheckpointFileRefused,
    ClaimRefused,
    CommandIdReused,
    CommandRepeated,
    ExportMismatch,
    Fault,
    FutureEffectiveDate,
    GuardsFailed,
    ImportRefused,
    InvalidExportRequest,
    InvalidInput,
    InvalidRecord,
    NoteRequired,
    NotFound,
    PermissionDenied,
    ProgrammeInvalid,
    SealKeyUnusable,
    SEFlowError,
    StaffHoldsCases,
    StaffNotFound,
    StoreBusy,
    StoreError,
    StoreNotEmpty,
    StoreUnavailable,
    TextAlreadyErased,
    TextNotFound,
    TransitionRefused,
    TriggerNotAvailable,
    UnknownProgramme,
    UnknownRecordKind,
    UnknownTrigger,
    WorkflowInvalid,
    WorkflowMismatch,
)

# The one place the version is written: pyproject.toml reads it from here, so the installed
# metadata and `se_flow.__version__` agree (a literal: no importlib.metadata at start-up).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._api import Copied, SEFlow, copy_store, open
    from ._audit import GENESIS, Checkpoint
    from ._export import Manifest
    from ._import import (
        ImportedCase,
        ImportedRecord,
        ImportedTrigger,
        ImportFailure,
        ImportReport,
    )
    from ._loader import default_stages_dir, load_workflow
    from ._memory import MemoryStore
    from ._model import (
        Case,
        Check,
        DatabaseSettings,
        Done,
        Event,
        GuardResult,
        Override,
        Participant,
        PersonalDetails,
        Record,
        Role,
        Staff,
        Status,
        Verification,
    )
    from ._outcomes import Milestone, MilestoneState, Needed, Outcomes, Programme
    from ._report import KPI, Period, Report
    from ._seal import VerificationKey
    from ._sqlite import SQLiteStore
    from ._verify_export import ExportVerification, verify_export
    from ._views import Caseload, CaseView, DueView, HistoryPage, NextSteps, SetUp
    from ._workflow import Workflow

# Name -> the private module that holds it. Each module loads on first use of one of its
# names (PEP 562), so a program (or a CLI command) pays only for what it touches: listing
# cases never loads the reports, exports, outcomes or the in-memory store.
_LAZY = {
    "Copied": "_api",
    "SEFlow": "_api",
    "copy_store": "_api",
    "open": "_api",
    "GENESIS": "_audit",
    "Checkpoint": "_audit",
    "Manifest": "_export",
    "ImportedCase": "_import",
    "ImportedRecord": "_import",
    "ImportedTrigger": "_import",
    "ImportFailure": "_import",
    "ImportReport": "_import",
    "default_stages_dir": "_loader",
    "load_workflow": "_loader",
    "MemoryStore": "_memory",
    "Case": "_model",
    "Check": "_model",
    "DatabaseSettings": "_model",
    "Done": "_model",
    "Event": "_model",
    "GuardResult": "_model",
    "Override": "_model",
    "Participant": "_model",
    "PersonalDetails": "_model",
    "Record": "_model",
    "Role": "_model",
    "Staff": "_model",
    "Status": "_model",
    "Verification": "_model",
    "Milestone": "_outcomes",
    "MilestoneState": "_outcomes",
    "Needed": "_outcomes",
    "Outcomes": "_outcomes",
    "Programme": "_outcomes",
    "KPI": "_report",
    "Period": "_report",
    "Report": "_report",
    "VerificationKey": "_seal",
    "SQLiteStore": "_sqlite",
    "ExportVerification": "_verify_export",
    "verify_export": "_verify_export",
    "Caseload": "_views",
    "CaseView": "_views",
    "DueView": "_views",
    "HistoryPage": "_views",
    "NextSteps": "_views",
    "SetUp": "_views",
    "Workflow": "_workflow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'se_flow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found once: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "GENESIS",
    "KPI",
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
