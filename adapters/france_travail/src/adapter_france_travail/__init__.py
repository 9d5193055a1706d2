"""France Travail's adapter: the agency acknowledges at once and calls back later with
its decision, on the adapter's own `/callbacks` endpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping

from adapter_sdk import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AgencyReply,
    AnswerInvalid,
    CallbackAnswer,
    CanonicalRequest,
    DeadlineRule,
    Declaration,
)


class FranceTravailAdapter(AgencyAdapter):
    declaration = Declaration(
        agency="france_travail",
        label="France Travail",
        life_events=("perte_emploi", "demenagement", "arret_maladie"),
        citizen_fields=frozenset({"given_name", "family_name", "email", "postcode", "description"}),
        deadline_rule=DeadlineRule.SILENCE_REJECTS,
        deadline_months=2,
        legal_basis="Code du travail, art. L. 5312-13 et R. 5312-38",
        purpose="Inscription et indemnisation des demandeurs d'emploi",
        asynchronous=True,
    )

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json("/agencies/france_travail/demandes", {
            "request_id": request.request_id,
            "file_id": request.file_id,
            "life_event": request.life_event,
            "citizen": {k: citizen[k] for k in ("given_name", "family_name", "email", "postcode")},
            "description": citizen["description"],
            "callback_url": request.callback_url,
        })

    def read_answer(self, reply: AgencyReply) -> Acknowledged:
        body = reply.json()
        if not isinstance(body, dict) or not body.get("reference"):
            raise AnswerInvalid(f"accusé de réception sans référence : {str(body)[:120]}")
        return Acknowledged(agency_reference=body["reference"])

    def read_callback(self, body: bytes, headers: Mapping[str, str]) -> CallbackAnswer:
        try:
            data = json.loads(body)
            return CallbackAnswer(
                callback_id=data["callback_id"],
                request_id=data["request_id"],
                answer=AgencyAnswer.model_validate(data["decision"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AnswerInvalid(f"rappel illisible : {exc}") from exc


def main() -> None:
    from adapter_sdk.runtime import serve

    serve(FranceTravailAdapter)
