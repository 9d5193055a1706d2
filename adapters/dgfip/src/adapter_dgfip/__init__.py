"""The DGFiP's adapter: a SOAP-style XML service (parsed with defusedxml: an agency's
answer is untrusted input)."""

from __future__ import annotations

from xml.sax.saxutils import escape

import defusedxml.ElementTree as ET
from defusedxml import DefusedXmlException

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

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
DGFIP = "urn:dgfip:situation:v1"
# Our citizen fields under the DGFiP's names.
TAXPAYER = {"family_name": "Nom", "given_name": "Prenom", "postcode": "CodePostal"}


class DgfipAdapter(AgencyAdapter):
    declaration = Declaration(
        agency="dgfip",
        label="Direction générale des Finances publiques (DGFiP)",
        life_events=("perte_emploi", "naissance", "demenagement", "arret_maladie"),
        citizen_fields=frozenset(TAXPAYER),
        deadline_rule=DeadlineRule.SILENCE_ACCEPTS,
        deadline_months=2,
        legal_basis="Livre des procédures fiscales, art. L. 114 et L. 152",
        purpose="Mise à jour de la situation fiscale du foyer",
    )

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        taxpayer = "".join(
            f"<dgfip:{tag}>{escape(str(request.citizen[field]))}</dgfip:{tag}>"
            for field, tag in TAXPAYER.items()
        )
        envelope = (
            f'<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:dgfip="{DGFIP}"><soap:Body>'
            f"<dgfip:DeclarerChangementSituation>"
            f"<dgfip:IdentifiantDemande>{escape(request.request_id)}</dgfip:IdentifiantDemande>"
            f"<dgfip:Dossier>{escape(request.file_id)}</dgfip:Dossier>"
            f"<dgfip:Evenement>{escape(request.life_event)}</dgfip:Evenement>"
            f"<dgfip:Contribuable>{taxpayer}</dgfip:Contribuable>"
            f"</dgfip:DeclarerChangementSituation></soap:Body></soap:Envelope>"
        )
        return AgencyCall.xml(
            "/agencies/dgfip/soap", envelope, {"SOAPAction": "DeclarerChangementSituation"}
        )

    def read_answer(self, reply: AgencyReply) -> AgencyAnswer | Acknowledged:
        try:
            root = ET.fromstring(reply.body)
        except (ET.ParseError, DefusedXmlException) as exc:
            raise AnswerInvalid(f"XML illisible : {exc}") from exc
        answer = root.find(f"{{{SOAP}}}Body/{{{DGFIP}}}DeclarerChangementSituationReponse")
        if answer is None:
            raise AnswerInvalid("enveloppe SOAP sans DeclarerChangementSituationReponse")

        def value(tag: str) -> str | None:
            node = answer.find(f"{{{DGFIP}}}{tag}")
            return node.text if node is not None else None

        if value("Decision") is None and value("Statut") == "EN_INSTRUCTION" and value("Reference"):
            # Taken but not decided yet: the legal clock runs, silence may decide.
            return Acknowledged(agency_reference=value("Reference"))
        if value("Decision") is None or value("Reference") is None:
            raise AnswerInvalid("réponse SOAP sans Decision ni Reference")
        return AgencyAnswer(
            decision=value("Decision"),
            summary=value("Resume") or "",
            agency_reference=value("Reference"),
            reason=value("Motif"),
            amount_eur=value("Montant"),
            start_date=value("DateEffet"),
        )


def main() -> None:
    serve(DgfipAdapter)
