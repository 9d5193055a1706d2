"""DGFiP's SOAP dialect: envelopes in and out, a ``soap:Fault`` for a bad request (the
route is in :mod:`agency_simulator.dgfip`)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DefusedET
from fastapi.responses import Response

from agency_simulator.decisions import AgencyRequest

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DGFIP_NS = "urn:dgfip:situation:v1"


def soap_envelope(inner: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:dgfip="{DGFIP_NS}"><soap:Body>{inner}'
        f"</soap:Body></soap:Envelope>"
    )


def soap_fault(message: str) -> Response:
    fault = (
        f"<soap:Fault><faultcode>soap:Client</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soap:Fault>"
    )
    return Response(content=soap_envelope(fault), status_code=400, media_type="text/xml")


def soap_answer(answer: dict[str, Any]) -> str:
    if "decision" not in answer:
        status = answer["statut"].upper()
        inner = (
            f"<dgfip:Reference>{escape(answer['agency_reference'])}</dgfip:Reference>"
            f"<dgfip:Statut>{status}</dgfip:Statut>"
        )
        return soap_envelope(
            f"<dgfip:DeclarerChangementSituationReponse>{inner}</dgfip:DeclarerChangementSituationReponse>"
        )
    fields = [
        ("Reference", answer["agency_reference"]),
        ("Decision", answer["decision"]),
        ("Resume", answer["summary"]),
        ("Motif", answer.get("reason")),
        ("Montant", answer.get("amount_eur")),
        ("DateEffet", answer.get("start_date")),
    ]
    inner = "".join(
        f"<dgfip:{tag}>{escape(str(v))}</dgfip:{tag}>" for tag, v in fields if v is not None
    )
    return soap_envelope(
        f"<dgfip:DeclarerChangementSituationReponse>{inner}</dgfip:DeclarerChangementSituationReponse>"
    )


def parse_soap_request(text: str) -> tuple[AgencyRequest, dict[str, Any]]:
    root = DefusedET.fromstring(text)
    call = root.find(f"{{{SOAP_NS}}}Body/{{{DGFIP_NS}}}DeclarerChangementSituation")
    if call is None:
        raise ValueError("opération DeclarerChangementSituation absente")

    def text_of(tag: str) -> str:
        node = call.find(f"{{{DGFIP_NS}}}{tag}")
        if node is None or not (node.text or "").strip():
            raise ValueError(f"élément {tag} absent")
        return node.text.strip()

    taxpayer = call.find(f"{{{DGFIP_NS}}}Contribuable")
    citizen = (
        {}
        if taxpayer is None
        else {child.tag.split("}")[-1]: (child.text or "") for child in taxpayer}
    )
    request = AgencyRequest(
        request_id=text_of("IdentifiantDemande"),
        file_id=text_of("Dossier"),
        life_event=text_of("Evenement"),
        citizen=citizen,
    )
    raw = {
        "request_id": request.request_id,
        "file_id": request.file_id,
        "life_event": request.life_event,
        "citizen": citizen,
        "soap": text,
    }
    return request, raw
