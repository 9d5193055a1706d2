"""The citizen's GDPR pages (issue 13 §6): "Mes données" as JSON and as a readable PDF, for
the signed-in citizen only (intake answers for the forwarded token); the privacy notice from
one source text, on its page and on the submission page."""

from __future__ import annotations

import json

import httpx

from guichet_runtime.policy import Policy, route_policies
from shared_models import catalogue
from tests.pdfs import pdf_text
from tests.unit.test_web_auth import AGENT_LOGIN, pages, signed_in
from tests.unit.test_web_citizen_file import form_token
from tests.unit.test_web_own_lists import CITIZEN_LOGIN, ListsBackend, settings
from web.backend import CREDENTIALS
from web.bootstrap import bootstrap
from web.export_pdf import render_export

__all__ = ["settings"]

EXPORT = {
    "generated_at": "2026-11-30T10:00:00+00:00",
    "sources": [{"service": "accueil (intake)", "contenu": "votre dossier"}],
    "files": [
        {
            "file_id": "GU-2026-MARIE001",
            "life_event_label": "Naissance d'un enfant",
            "status": "repondu",
            "created_at": "2026-11-24T10:00:00+00:00",
            "erased_at": None,
            "contact": {"given_name": "Marie", "family_name": "Dupont", "postcode": "75018"},
            "description": "Naissance de notre fille Œlia.",
            "referent": {"name": "Camille Martin", "phone": "01 40 00 00 00"},
            "referent_change": None,
            "agencies": [
                {
                    "agency": "caf",
                    "label": "Caisse d'allocations familiales (CAF)",
                    "status": "repondu",
                    "decision": "accorde",
                    "fields_sent": ["prénom", "nom", "code postal"],
                }
            ],
            "notifications": [{"at": "2026-11-25T09:00:00+00:00", "label": "Courriel envoyé"}],
            "referent_messages": [],
            "documents": [],
            "survey": None,
            "thanks": [],
            "timeline": [],
        }
    ],
}


ASSIGNMENT_PART = {
    "source": "attribution du référent",
    "file_id": "GU-2026-MARIE001",
    "held": True,
    "referents": [
        {
            "agent_id": "AG-75-01-1",
            "name": "Camille Martin",
            "office": "France Services Paris 18e",
            "rule": "proximite",
            "why": "Agent le plus proche formé à la CAF.",
            "at": "2026-11-24T10:01:00+00:00",
        }
    ],
    "agency_requests": [
        {
            "agency": "caf",
            "status": "repondu",
            "issued_at": "2026-11-24T10:01:00+00:00",
            "answered_at": "2026-11-25T08:00:00+00:00",
            "answer": {"decision": "accorde"},
        }
    ],
    "personal_word": {"text": "Bon courage pour la suite.", "at": "2026-11-25T08:30:00+00:00"},
    "appointments": [
        {
            "starts_at": "2026-12-01T08:30:00+00:00",
            "ends_at": "2026-12-01T09:00:00+00:00",
            "office_address": "12 rue Ordener, 75018 Paris",
            "referent": "Camille Martin",
            "status": "annule",
            "booked_by": "citoyen",
            "booked_at": "2026-11-26T10:00:00+00:00",
            "cancelled_by": "citoyen",
            "cancel_reason": "Un empêchement.",
        }
    ],
}
NOTIFICATION_PART = {
    "source": "notifications",
    "file_id": "GU-2026-MARIE001",
    "held": True,
    "contact": None,
    "messages": [
        {
            "kind": "referent_assigne",
            "channel": "email",
            "address": "marie.dupont@example.fr",
            "subject": "Votre référent : Camille Martin",
            "body": "Bonjour Marie, Camille Martin suit votre dossier.",
            "status": "envoye",
            "recorded_at": "2026-11-24T10:02:00+00:00",
            "sent_at": "2026-11-24T10:02:05+00:00",
            "attempts": [],
        }
    ],
}


class ExportBackend(ListsBackend):
    #: The services whose part cannot be had (web.export_parts).
    unreachable: tuple[str, ...] = ()

    async def my_export(self) -> dict:
        self.asked.append(("export", CREDENTIALS.get().access_token))
        return EXPORT

    async def export_part(self, service: str, file_id: str) -> dict:
        self.asked.append((f"part:{service}", CREDENTIALS.get().access_token))
        if service in self.unreachable:
            raise httpx.ConnectError("refused")
        return {"assignment": ASSIGNMENT_PART, "notification": NOTIFICATION_PART}[service]


def gathered_export(**parts: dict | None) -> dict:
    """EXPORT as the pages serve it: each file with the parts of the other services."""
    return {
        **EXPORT,
        "files": [{**EXPORT["files"][0], "parties": parts}],
        "parties_manquantes": [],
    }


def test_mes_donnees_downloads_the_citizens_own_data_as_json_and_pdf(settings):
    policies = route_policies(bootstrap(settings))
    assert policies["GET /mes-donnees.pdf"] is Policy.CITIZEN
    assert policies["POST /dossier/{file_id}/effacement"] is Policy.FILE_CITIZEN
    backend = ExportBackend()
    with pages(settings, backend) as client:
        anonymous = client.get("/mes-donnees.json")
        signed_in(client, settings, AGENT_LOGIN)
        agent = client.get("/mes-donnees.pdf")
        signed_in(client, settings, CITIZEN_LOGIN)
        page = client.get("/mes-donnees")
        as_json = client.get("/mes-donnees.json")
        as_pdf = client.get("/mes-donnees.pdf")

    for refused in (anonymous, agent):
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/connexion/citoyens")
    assert page.status_code == 200 and 'href="/mes-donnees.pdf"' in page.text
    assert as_json.headers["content-disposition"] == 'attachment; filename="mes-donnees.json"'
    assert as_json.headers["cache-control"] == "no-store"
    assert json.loads(as_json.content) == gathered_export(
        assignment=ASSIGNMENT_PART, notification=NOTIFICATION_PART
    )
    assert as_pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(as_pdf.content)
    assert "Mes données" in text and "GU-2026-MARIE001" in text
    assert "a reçu : prénom, nom, code postal" in text and "Œlia" in text
    # The other services' parts, asked with the citizen's own token.
    text = " ".join(text.split())
    assert "Agent le plus proche formé à la CAF." in text and "Bon courage" in text
    assert (
        "Rendez-vous : 01/12/2026 à 09:30, avec Camille Martin, 12 rue Ordener, 75018 Paris "
        "(annulé) ; motif : Un empêchement."
    ) in text
    assert "marie.dupont@example.fr" in text and "Camille Martin suit votre dossier" in text
    once = [
        ("export", "jeton-de-marie"),
        ("part:assignment", "jeton-de-marie"),
        ("part:notification", "jeton-de-marie"),
    ]
    assert backend.asked == once + once
    assert "Document incomplet" not in text


def test_a_part_that_cannot_be_had_is_said_in_french_not_left_out(settings):
    backend = ExportBackend()
    backend.unreachable = ("notification",)
    with pages(settings, backend) as client:
        signed_in(client, settings, CITIZEN_LOGIN)
        as_json = client.get("/mes-donnees.json")
        as_pdf = client.get("/mes-donnees.pdf")

    body = json.loads(as_json.content)
    [lacking] = body["parties_manquantes"]
    assert "« messages envoyés (canal, adresse, objet, texte, dates) »" in lacking
    assert "GU-2026-MARIE001" in lacking and "incomplet" in lacking
    assert body["files"][0]["parties"] == {"assignment": ASSIGNMENT_PART, "notification": None}
    text = " ".join(pdf_text(as_pdf.content).split())
    assert "Document incomplet" in text and "ne répond pas" in text
    assert "Agent le plus proche formé à la CAF." in text


def test_an_erased_file_reads_as_erased_in_the_pdf():
    erased = {**EXPORT["files"][0], "contact": {}, "description": "", "erased_at": "2026-11-30"}
    text = pdf_text(render_export({**EXPORT, "files": [erased]}))
    assert "Données personnelles effacées le" in text and "Marie" not in text


def test_the_privacy_notice_says_who_why_to_whom_how_long_and_the_rights(settings):
    backend = ExportBackend()
    with pages(settings, backend) as client:
        notice = client.get("/confidentialite")
        form = client.get("/demarche")

    assert notice.status_code == 200
    text = notice.text
    for agency in catalogue().served_agencies():
        assert catalogue().agencies[agency].replace("'", "&#39;") in text
    assert "2 ans après la réponse coordonnée" in text  # from shared_models.retention
    assert "90 jours après la réponse coordonnée" in text
    assert "Délégué à la protection des données" in text and "CNIL" in text
    assert "article 6.1.e" not in text and "art. 6.1.e" in text
    assert "RGPD, art. 17.3.b" in text
    assert 'href="/confidentialite"' in form.text and "Vos données personnelles" in form.text


class ErasingBackend(ExportBackend):
    async def erase_file(self, file_id: str) -> dict:
        self.asked.append(("erase", CREDENTIALS.get().access_token))
        return {"file_id": file_id, "message": "effacé"}


def test_the_erasure_is_sent_only_once_the_citizen_confirms_it(settings):
    backend = ErasingBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, CITIZEN_LOGIN)
        token = form_token(client, "/mes-dossiers")
        url = "/dossier/GU-2026-MARIE001/effacement"
        unconfirmed = client.post(url, data={"csrf_token": token})
        asked_before = list(backend.asked)
        confirmed = client.post(url, data={"csrf_token": token, "confirm": "oui"})
        home = client.get("/")

    assert unconfirmed.status_code == 303
    assert unconfirmed.headers["location"] == "/dossier/GU-2026-MARIE001#mes-donnees"
    assert [a for a in asked_before if a[0] == "erase"] == []
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/"
    assert [a for a in backend.asked if a[0] == "erase"] == [("erase", "jeton-de-marie")]
    assert "Les données personnelles de votre dossier sont effacées" in home.text
