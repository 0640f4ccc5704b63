"""se-flow: the Supported Employment workflow engine.

    import se_flow
    with se_flow.open("caseload.db", actor="sam") as flow:
        case = flow.refer("Alex Doe", source="GP").case
        flow.advance(case.id, "engage")

Everything public is named in `__all__`; the modules starting with `_` are private.
"""

from typing import TYPE_CHECKING, Any

from ._api import Copied, SEFlow, copy_store, open
from ._audit import GENESIS, Checkpoint
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
from ._views import Caseload, CaseView, DueView, HistoryPage, NextSteps, SetUp
from ._workflow import Workflow
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
    from ._export import Manifest
    from ._verify_export import ExportVerification, verify_export

# Name -> the module that holds it.
_LAZY = {
    "ExportVerification": "_verify_export",
    "Manifest": "_export",
    "verify_export": "_verify_export",
}


def __getattr__(name: str) -> Any:
    # The export machinery loads on first use, keeping `import se_flow` (and CLI start) lean.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'se_flow' has no attribute {name!r}")


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
