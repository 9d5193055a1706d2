"""Requests to the agency simulator the way each agency's system takes them, and their
decisions read back (shared by the simulator's tests)."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import httpx

from agency_simulator.app import DGFIP_NS, SOAP_NS, AgencyRequest, decide

EXPECTED_PREFIX = {
    "caf": "CAF",
    "dgfip": "DGFIP",
    "france_travail": "FT",
    "cpam": "CPAM",
    "ants": "ANTS",
}


def body(request_id: str, life_event: str = "naissance", **extra: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "file_id": "DOS-2026-0001",
        "life_event": life_event,
        "citizen": {
            "nir": "2850575123456",
            "nom": "Martin",
            "prenom": "Camille",
            "adresse": "12 rue des Lilas, 69003 Lyon",
        },
        "description": "Naissance de Léa le 3 janvier",
        **extra,
    }


def find_request_id(agency: str, decision: str, life_event: str = "naissance") -> str:
    """First request id, in a fixed sequence, that ``agency`` answers with ``decision``."""
    for i in range(10_000):
        rid = f"req-{life_event}-{i}"
        req = AgencyRequest(**body(rid, life_event))
        if decide(agency, req).decision == decision:
            return rid
    raise AssertionError(f"no request id gives {decision} for {agency}")


class Reply:
    """An agency's answer, whatever its protocol, as status code + JSON decision."""

    def __init__(self, status_code: int, data: dict | None) -> None:
        self.status_code, self._data = status_code, data

    def json(self) -> dict | None:
        return self._data


def soap_request(sent: dict) -> str:
    citizen = "".join(f"<dgfip:{k}>{v}</dgfip:{k}>" for k, v in sent["citizen"].items())
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:dgfip="{DGFIP_NS}"><soap:Body>'
        f"<dgfip:DeclarerChangementSituation><dgfip:IdentifiantDemande>{sent['request_id']}</dgfip:IdentifiantDemande>"
        f"<dgfip:Dossier>{sent['file_id']}</dgfip:Dossier><dgfip:Evenement>{sent['life_event']}</dgfip:Evenement>"
        f"<dgfip:Contribuable>{citizen}</dgfip:Contribuable></dgfip:DeclarerChangementSituation></soap:Body></soap:Envelope>"
    )


def soap_answer(text: str) -> dict:
    root = ET.fromstring(text)
    node = root.find(f"{{{SOAP_NS}}}Body/{{{DGFIP_NS}}}DeclarerChangementSituationReponse")
    values = {child.tag.split("}")[1]: child.text for child in node}
    return {
        "agency_reference": values["Reference"],
        "decision": values["Decision"],
        "summary": values["Resume"],
        "amount_eur": float(values["Montant"]) if "Montant" in values else None,
        "start_date": values.get("DateEffet"),
        "reason": values.get("Motif"),
        "requested_document": None,
    }


async def submit(client: httpx.AsyncClient, agency: str, sent: dict, **kw) -> Reply:
    """Send a request the way ``agency``'s system takes it; its decision back."""
    if agency == "dgfip":
        r = await client.post("/agencies/dgfip/soap", content=soap_request(sent), **kw)
        return Reply(r.status_code, soap_answer(r.text) if r.status_code == 200 else None)
    if agency == "france_travail":
        r = await client.post(
            "/agencies/france_travail/demandes",
            json={**sent, "callback_url": "http://127.0.0.1:9/callbacks"},
            **kw,
        )
        if r.status_code != 202:
            return Reply(r.status_code, None)
        record = (
            await client.get(f"/agencies/france_travail/demandes/{sent['request_id']}")
        ).json()
        return Reply(200, record["decision"])
    r = await client.post(f"/agencies/{agency}/requests", json=sent, **kw)
    return Reply(r.status_code, r.json() if r.status_code == 200 else None)
