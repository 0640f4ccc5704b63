"""se-flow: the Supported Employment workflow engine.

    import se_flow
    with se_flow.open("caseload.db", actor="sam") as flow:
        case = flow.refer("Alex Doe", source="GP")
        flow.advance(case.id, "engage")

Everything public is named in `__all__`; the modules starting with `_` are private.
"""

from typing import TYPE_CHECKING, Any

from ._api import SEFlow, open
from ._audit import GENESIS, Checkpoint
from ._loader import default_stages_dir, load_workflow
from ._model import (
    Case,
    Check,
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
from ._workflow import Workflow
from .errors import (
    AuditError,
    CaseClosed,
    CaseConflict,
    CaseNotFound,
    CasePaused,
    ChainBroken,
    ExportMismatch,
    Fault,
    FutureEffectiveDate,
    GuardsFailed,
    InvalidExportRequest,
    InvalidInput,
    InvalidRecord,
    NotFound,
    PermissionDenied,
    ProgrammeInvalid,
    SEFlowError,
    StaffNotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    TransitionRefused,
    TriggerNotAvailable,
    UnknownProgramme,
    UnknownRecordKind,
    UnknownTrigger,
    WorkflowInvalid,
    WorkflowMismatch,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._export import ExportVerification, Manifest, verify_export

_LAZY = {"ExportVerification", "Manifest", "verify_export"}


def __getattr__(name: str) -> Any:
    # The export machinery loads on first use, keeping `import se_flow` (and CLI start) lean.
    if name in _LAZY:
        from . import _export

        return getattr(_export, name)
    raise AttributeError(f"module 'se_flow' has no attribute {name!r}")


__all__ = [
    "GENESIS",
    "AuditError",
    "Case",
    "CaseClosed",
    "CaseConflict",
    "CaseNotFound",
    "CasePaused",
    "ChainBroken",
    "Check",
    "Checkpoint",
    "Event",
    "ExportMismatch",
    "ExportVerification",
    "Fault",
    "FutureEffectiveDate",
    "GuardResult",
    "GuardsFailed",
    "InvalidExportRequest",
    "InvalidInput",
    "InvalidRecord",
    "Manifest",
    "Milestone",
    "MilestoneState",
    "Needed",
    "NotFound",
    "Outcomes",
    "Override",
    "Participant",
    "PermissionDenied",
    "PersonalDetails",
    "Programme",
    "ProgrammeInvalid",
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
    "UnknownProgramme",
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
    "verify_export",
]
