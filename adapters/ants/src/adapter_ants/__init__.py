"""The préfecture / ANTS adapter (identity documents), built step by step in
docs/adapters.md: a JSON REST system that answers at once."""

from __future__ import annotations

from adapter_sdk import (
    AdapterConfig,
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


class AntsConfig(AdapterConfig):
    """ANTS-specific settings, read from the environment like the others."""

    ants_guichet: str = "guichet-unique"  # ANTS_GUICHET: who calls, for the ANTS's own logs


class AntsAdapter(AgencyAdapter):
    declaration = Declaration(
        agency="ants",
        label="Agence nationale des titres sécurisés (ANTS)",
        life_events=("perte_papiers", "demenagement"),
        citizen_fields=frozenset({"given_name", "family_name", "postcode"}),
        deadline_rule=DeadlineRule.NONE,
        legal_basis="Décret n° 55-1397 du 22 octobre 1955 instituant la carte nationale d'identité",
        purpose="Délivrance et mise à jour des titres d'identité",
    )
    Config = AntsConfig

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json(
            "/agencies/ants/requests",
            {
                "request_id": request.request_id,
                "file_id": request.file_id,
                "life_event": request.life_event,
                "citizen": {k: citizen[k] for k in ("given_name", "family_name", "postcode")},
            },
            headers={"X-Guichet": self.config.ants_guichet},
        )

    def read_answer(self, reply: AgencyReply) -> AgencyAnswer:
        body = reply.json()
        if not isinstance(body, dict) or "decision" not in body:
            raise AnswerInvalid(f"réponse sans décision : {str(body)[:120]}")
        return AgencyAnswer.model_validate(body)


def main() -> None:
    serve(AntsAdapter)
