"""The CAF's adapter: a JSON REST system that answers at once."""

from __future__ import annotations

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
)
from adapter_sdk.app import serve


class CafAdapter(AgencyAdapter):
    declaration = Declaration(
        agency="caf",
        label="Caisse d'allocations familiales (CAF)",
        life_events=("perte_emploi", "naissance", "demenagement", "arret_maladie"),
        citizen_fields=frozenset({"given_name", "family_name", "postcode", "description"}),
        deadline_rule=DeadlineRule.SILENCE_REJECTS,
        deadline_months=2,
        legal_basis="Code de la sécurité sociale, art. L. 114-12 et L. 583-3",
        purpose="Ouverture ou révision des prestations familiales et sociales",
    )

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json(
            "/agencies/caf/requests",
            {
                "request_id": request.request_id,
                "file_id": request.file_id,
                "life_event": request.life_event,
                "citizen": {k: citizen[k] for k in ("given_name", "family_name", "postcode")},
                "description": citizen["description"],
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


def main() -> None:
    serve(CafAdapter)
