"""France Travail's adapter: the agency acknowledges at once and calls back later with
its decision, on the adapter's own `/callbacks` endpoint. A request with no decision after
RECONCILE_FIRST_SECONDS is looked up on the agency's status endpoint
(`GET /agencies/france_travail/demandes/{request_id}`), so a lost or refused callback
still brings its decision."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote

from pydantic import ValidationError

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
    PendingRequest,
)
from adapter_sdk.app import serve

#: What France Travail's status endpoint says of a request it has not decided yet.
UNDER_REVIEW = "en_instruction"


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
        return AgencyCall.json(
            "/agencies/france_travail/demandes",
            {
                "request_id": request.request_id,
                "file_id": request.file_id,
                "life_event": request.life_event,
                "citizen": {
                    k: citizen[k] for k in ("given_name", "family_name", "email", "postcode")
                },
                "description": citizen["description"],
                "callback_url": request.callback_url,
            },
        )

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

    def build_status_call(self, request: PendingRequest) -> AgencyCall:
        path = f"/agencies/france_travail/demandes/{quote(request.request_id, safe='')}"
        return AgencyCall(path, method="GET")

    def read_status(self, reply: AgencyReply) -> AgencyAnswer | None:
        body = reply.json()
        if not isinstance(body, dict):
            raise AnswerInvalid(f"état sans objet JSON : {str(body)[:120]}")
        decision = body.get("decision")
        if decision is None:
            if body.get("statut") == UNDER_REVIEW:
                return None
            raise AnswerInvalid(
                f"état sans décision ni statut « {UNDER_REVIEW} » : {str(body)[:120]}"
            )
        try:
            return AgencyAnswer.model_validate(decision)
        except ValidationError as exc:
            raise AnswerInvalid(f"décision illisible dans l'état de la demande : {exc}") from exc


def main() -> None:
    serve(FranceTravailAdapter)
