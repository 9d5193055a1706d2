"""Requests to the agency simulator the way each agency's system takes them, and their
decisions read back (shared by the simulator's tests)."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import httpx

from agency_simulator.app import DGFIP_NS, SOAP_NS

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


def granted(reference: str, summary: str, start: str, amount: float | None = None) -> dict:
    return {
        "agency_reference": reference,
        "decision": "accorde",
        "summary": summary,
        "amount_eur": amount,
        "start_date": start,
        "reason": None,
        "requested_document": None,
    }


def refused(reference: str, summary: str, reason: str) -> dict:
    return {
        "agency_reference": reference,
        "decision": "refuse",
        "summary": summary,
        "amount_eur": None,
        "start_date": None,
        "reason": reason,
        "requested_document": None,
    }


#: (agency, request id, life event) -> the answer the simulator must give, written out by
#: hand (issue 18 §3: the simulator's own `decide()` is not the oracle). Derived from the
#: documented rule, checked with `printf 'caf:req-naissance-0' | sha256sum`: the hash read
#: as an integer n; reference n mod 10^12; refused when (n >> 20) mod 100 < 10; amount base
#: + ((n >> 40) mod (spread in cents + 1)) cents; start the 1st of month (n >> 60) mod 12 + 1.
ANSWERS: dict[tuple[str, str, str], dict] = {
    ("caf", "req-naissance-0", "naissance"): granted(
        "CAF-2026-218552196104", "Prime à la naissance accordée", "2026-03-01", 1084.43
    ),
    ("caf", "req-naissance-10", "naissance"): refused(
        "CAF-2026-725323093358",
        "Demande de prestation refusée",
        "Les ressources du foyer dépassent le plafond d'attribution de la prestation.",
    ),
    ("caf", "req-demenagement-0", "demenagement"): granted(
        "CAF-2026-320079809311",
        "Aide personnalisée au logement (APL) accordée",
        "2026-12-01",
        184.97,  # 150 € + 34,97 €
    ),
    ("caf", "socket-1", "perte_emploi"): granted(
        "CAF-2026-904110467410",
        "Droit au revenu de solidarité active (RSA) ouvert",
        "2026-03-01",
        648.1,  # 400 € + 248,10 €
    ),
    ("caf", "f-1", "naissance"): granted(
        "CAF-2026-991576962487", "Prime à la naissance accordée", "2026-01-01", 1084.43
    ),
    ("dgfip", "req-naissance-0", "naissance"): granted(
        "DGFIP-2026-294673811866",
        "Situation fiscale mise à jour : taux de prélèvement à la source recalculé",
        "2026-02-01",
    ),
    ("dgfip", "req-naissance-8", "naissance"): refused(
        "DGFIP-2026-908896631151",
        "Demande de mise à jour de la situation fiscale refusée",
        "Le numéro fiscal ne correspond pas à l'identité déclarée.",
    ),
    ("france_travail", "req-naissance-1", "naissance"): granted(
        "FT-2026-146820402489",
        "Situation familiale du demandeur d'emploi mise à jour",
        "2026-06-01",
    ),
    ("france_travail", "req-naissance-0", "naissance"): refused(
        "FT-2026-292941526290",
        "Demande d'allocation d'aide au retour à l'emploi refusée",
        "Durée d'affiliation insuffisante : moins de 6 mois travaillés au cours des 24 derniers "
        "mois.",
    ),
    ("france_travail", "req-perte_emploi-0", "perte_emploi"): granted(
        "FT-2026-879851395465",
        "Allocation d'aide au retour à l'emploi accordée",
        "2026-05-01",
        1493.02,  # 1 100 € + 393,02 €
    ),
    ("france_travail", "stable-1", "perte_emploi"): granted(
        "FT-2026-166103316949",
        "Allocation d'aide au retour à l'emploi accordée",
        "2026-12-01",
        1796.12,  # 1 100 € + 696,12 €
    ),
    ("cpam", "req-naissance-0", "naissance"): granted(
        "CPAM-2026-176323580457", "Rattachement de l'enfant enregistré", "2026-04-01"
    ),
    ("cpam", "req-naissance-2", "naissance"): refused(
        "CPAM-2026-063918796933",
        "Demande de mise à jour du dossier d'assuré refusée",
        "Le numéro de sécurité sociale est inconnu de la caisse.",
    ),
    ("cpam", "req-birth-1", "birth"): granted(
        "CPAM-2026-638950549443", "Rattachement de l'enfant enregistré", "2026-04-01"
    ),
    ("ants", "req-naissance-1", "naissance"): granted(
        "ANTS-2026-991414545243",
        "Demande de carte d'identité pour l'enfant enregistrée : rendez-vous en mairie à prendre",
        "2026-09-01",
    ),
    ("ants", "req-naissance-0", "naissance"): refused(
        "ANTS-2026-478389903491",
        "Demande de titre d'identité refusée",
        "Aucune pré-demande en ligne ne correspond à l'identité déclarée.",
    ),
}
#: The CPAM asks for the salary certificate on a sick leave (arret_maladie), then decides:
#: request id -> (its first answer's reference, its decision once the document is there).
SICK_LEAVE = {
    "ij-1": granted(
        "CPAM-2026-345389533188",
        "Indemnités journalières maladie accordées",
        "2026-03-01",
        955.24,  # 900 € + 55,24 €
    ),
    "ij-inc": granted(
        "CPAM-2026-560402592166",
        "Indemnités journalières maladie accordées",
        "2026-10-01",
        1099.15,  # 900 € + 199,15 €
    ),
}
SALARY_CERTIFICATE = {
    "code": "attestation_salaire",
    "label": "Attestation de salaire établie par votre employeur",
}

#: Per agency, a request for a birth it grants, and one it refuses (in ANSWERS).
GRANTED_BIRTH = {
    "caf": "req-naissance-0",
    "dgfip": "req-naissance-0",
    "france_travail": "req-naissance-1",
    "cpam": "req-naissance-0",
    "ants": "req-naissance-1",
}
REFUSED_BIRTH = {
    "caf": "req-naissance-10",
    "dgfip": "req-naissance-8",
    "france_travail": "req-naissance-0",
    "cpam": "req-naissance-2",
    "ants": "req-naissance-0",
}


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
