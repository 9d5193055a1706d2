"""The CPAM's adapter: JSON REST; before deciding on a sick leave it asks for a
supporting document, which goes to it as a multipart upload."""

from __future__ import annotations

import httpx

from adapter_sdk import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AgencyReply,
    AnswerInvalid,
    CanonicalRequest,
    DeadlineRule,
    Declaration,
    SupportingDocument,
)
from adapter_sdk.app import serve


class CpamAdapter(AgencyAdapter):
    declaration = Declaration(
        agency="cpam",
        label="Caisse primaire d'assurance maladie (CPAM)",
        life_events=("naissance", "demenagement", "arret_maladie"),
        citizen_fields=frozenset({"given_name", "family_name", "postcode"}),
        deadline_rule=DeadlineRule.SILENCE_REJECTS,
        deadline_days=30,
        legal_basis="Code de la sécurité sociale, art. L. 161-1-1 et L. 323-1",
        purpose="Affiliation, rattachement et indemnités journalières de l'assurance maladie",
        accepts_documents=True,
    )

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json(
            "/agencies/cpam/requests",
            {
                "request_id": request.request_id,
                "file_id": request.file_id,
                "life_event": request.life_event,
                "citizen": {k: citizen[k] for k in ("given_name", "family_name", "postcode")},
            },
        )

    def read_answer(self, reply: AgencyReply) -> AgencyAnswer | Acknowledged:
        body = reply.json()
        if (
            isinstance(body, dict)
            and body.get("statut") == "en_instruction"
            and body.get("agency_reference")
        ):
            # Taken but not decided yet: the legal clock runs, silence may decide.
            return Acknowledged(agency_reference=body["agency_reference"])
        if not isinstance(body, dict) or "decision" not in body:
            raise AnswerInvalid(f"réponse sans décision : {str(body)[:120]}")
        return AgencyAnswer.model_validate(body)

    def build_document_call(self, document: SupportingDocument) -> AgencyCall:
        # httpx lays out the multipart body; the runtime sends it.
        encoded = httpx.Request(
            "POST",
            "http://cpam/",
            data={"code": document.code},
            files={"fichier": (document.filename, document.content, document.media_type)},
        )
        return AgencyCall(
            f"/agencies/cpam/requests/{document.request_id}/pieces",
            encoded.read(),
            {"Content-Type": encoded.headers["Content-Type"]},
        )


def main() -> None:
    serve(CpamAdapter)
