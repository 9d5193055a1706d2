"""The adapter SDK: what an agency implements to plug into guichet unique."""

from adapter_sdk.config import AdapterConfig
from adapter_sdk.declaration import (
    CITIZEN_FIELDS,
    Declaration,
    catalogue_problems,
    declaration_problems,
)
from adapter_sdk.interface import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AgencyReply,
    AnswerInvalid,
    CallbackAnswer,
    CanonicalRequest,
    CitizenData,
    PendingRequest,
    SupportingDocument,
    UndeclaredField,
    answer_problems,
    offers_status,
)
from shared_models import DeadlineRule, Decision, RequestedDocument

__all__ = [
    "CITIZEN_FIELDS",
    "Acknowledged",
    "AdapterConfig",
    "AgencyAdapter",
    "AgencyAnswer",
    "AgencyCall",
    "AgencyReply",
    "AnswerInvalid",
    "CallbackAnswer",
    "CanonicalRequest",
    "CitizenData",
    "DeadlineRule",
    "Decision",
    "Declaration",
    "PendingRequest",
    "RequestedDocument",
    "SupportingDocument",
    "UndeclaredField",
    "answer_problems",
    "catalogue_problems",
    "declaration_problems",
    "offers_status",
]
