"""Appointments with the référent on the pages (issue 16 §3), with assignment replaced by a
fake backend: the citizen books a slot from the slots page (a fieldset per day), sees it on
their file page in Paris time and in French, moves or cancels it; a slot taken meanwhile
comes back on the slots page in assignment's words, nothing booked; the référent books for
the citizen from the desk, cancels, and sees their day with the days around it."""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from guichet_runtime.policy import Policy, route_policies
from tests.unit.test_web_auth import AGENT_LOGIN, pages, signed_in
from tests.unit.test_web_citizen_file import (  # noqa: F401  (the `settings` fixture)
    FILE_ID,
    VIEW,
    FakeBackend,
    form_token,
    open_with_code,
    settings,
)
from web.api.deps import get_backend
from web.api.rendez_vous import CHOOSE
from web.backend import BackendError
from web.bootstrap import bootstrap
from web.pages import when_fr

NBSP = "\u00a0"
REFERENT = {
    "agent_id": "AG-75-01-1",
    "name": "Sophie Lefebvre",
    "office": "France Services Paris 18e",
    "office_address": "12 rue Ordener, 75018 Paris",
    "phone": "0142000000",
}
#: 9 h 30 and 10 h in Paris (winter time: UTC+1), on Tuesday 2 March 2027; then Wednesday.
FIRST, SECOND = "2027-03-02T08:30:00+00:00", "2027-03-02T09:00:00+00:00"
WEDNESDAY = "2027-03-03T13:00:00+00:00"
TAKEN = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."


def appointment(appointment_id: str, starts_at: str, status: str = "reserve") -> dict:
    start = dt.datetime.fromisoformat(starts_at)
    return {
        "appointment_id": appointment_id,
        "file_id": FILE_ID,
        "starts_at": starts_at,
        "ends_at": (start + dt.timedelta(minutes=30)).isoformat(),
        "status": status,
        "office_address": REFERENT["office_address"],
        "referent_name": REFERENT["name"],
        "agent_id": REFERENT["agent_id"],
        "booked_by": "citoyen",
        "cancelled_by": None,
        "cancel_reason": None,
    }


class AppointmentsBackend(FakeBackend):
    """Assignment's appointments in memory (one file); what was asked is kept in `calls`;
    `refusal`, when set, refuses the next booking, move or cancellation."""

    def __init__(self) -> None:
        view = copy.deepcopy(VIEW)
        view["status"], view["answer"] = "en_cours", None
        super().__init__(view)
        self.free = [FIRST, SECOND, WEDNESDAY]
        self.upcoming: dict | None = None
        self.history: list[dict] = []
        self.calls: list[tuple] = []
        self.refusal: BackendError | None = None

    def _refuse(self) -> None:
        refusal, self.refusal = self.refusal, None
        if refusal is not None:
            raise refusal

    async def file_appointments(self, file_id: str) -> dict:
        every = ([self.upcoming] if self.upcoming else []) + self.history
        return {"referent": REFERENT, "upcoming": self.upcoming, "appointments": every}

    async def appointment_slots(self, file_id: str, start=None, days=None) -> dict:
        self.calls.append(("slots", start))
        by_day: dict[str, list[dict]] = {}
        for s in self.free:
            by_day.setdefault(s[:10], []).append({"starts_at": s, "ends_at": s})
        listed = [{"day": d, "slots": slots} for d, slots in sorted(by_day.items())]
        return {"referent": REFERENT, "slot_minutes": 30, "days": listed}

    async def book_appointment(self, file_id: str, starts_at: str) -> dict:
        self.calls.append(("book", starts_at))
        self._refuse()
        self.free.remove(starts_at)
        self.upcoming = appointment("RDV-1", starts_at)
        return self.upcoming

    async def move_appointment(self, file_id: str, appointment_id: str, starts_at: str) -> dict:
        self.calls.append(("move", appointment_id, starts_at))
        self._refuse()
        assert self.upcoming and self.upcoming["appointment_id"] == appointment_id
        self.free.append(self.upcoming["starts_at"])
        self.history.insert(0, {**self.upcoming, "status": "deplace"})
        self.free.remove(starts_at)
        self.upcoming = appointment("RDV-2", starts_at)
        return self.upcoming

    async def cancel_appointment(self, file_id: str, appointment_id: str, reason) -> dict:
        self.calls.append(("cancel", appointment_id, reason))
        self._refuse()
        assert self.upcoming and self.upcoming["appointment_id"] == appointment_id
        done = {**self.upcoming, "status": "annule", "cancel_reason": reason}
        self.free.append(self.upcoming["starts_at"])
        self.history.insert(0, done)
        self.upcoming = None
        return done

    async def agent_appointments(self, agent_id: str, day=None) -> dict:
        self.calls.append(("day", agent_id, day))
        shown = day or dt.date(2027, 3, 2)
        booked = [self.upcoming] if self.upcoming else []
        return {
            "agent_id": agent_id,
            "day": shown.isoformat(),
            "appointments": [
                {
                    "appointment_id": a["appointment_id"],
                    "file_id": FILE_ID,
                    "starts_at": a["starts_at"],
                    "ends_at": a["ends_at"],
                    "life_event_label": "Naissance d'un enfant",
                    "citizen": {"given_name": "Awa", "family_name": "Diallo"},
                    "booked_by": a["booked_by"],
                }
                for a in booked
                if a["starts_at"][:10] == shown.isoformat()
            ],
        }

    # The référent's file page (what the desk asks besides the appointments).
    async def file_record(self, file_id: str, reason: str | None = None) -> dict:
        citizen = {"given_name": "Awa", "family_name": "Diallo", "postcode": "75018"}
        citizen |= {"email": "awa@example.fr", "phone": None, "preferred_channel": "email"}
        return {"urgent": False, "description": "Notre fille est née.", "citizen": citizen}

    async def assignment_record(self, file_id: str) -> dict:
        return {
            "deadline": "2027-01-24",
            "referent_id": REFERENT["agent_id"],
            "history": [],
            "personal_word": None,
        }

    async def messages_to_citizen(self, file_id: str) -> list[dict]:
        return []

    async def file_stuck_requests(self, file_id: str) -> dict:
        return {"requests": []}

    async def mark_citizen_messages_read(self, file_id: str) -> dict:
        return {}

    async def portfolio(self, agent_id: str) -> dict:
        agent = {"agent_id": agent_id, "name": "Sophie Lefebvre", "office": "FS Paris 18e"}
        return {"agent": {**agent, "active_files": 1, "capacity": 40}, "files": []}

    async def agent_thanks(self, agent_id: str) -> dict:
        return {"agent_id": agent_id, "count": 0, "thanks": []}

    async def citizen_inbox(self, agent_id: str) -> dict:
        return {"agent_id": agent_id, "unread": 0, "waiting": 0, "files": []}


def citizen(web_settings, backend: AppointmentsBackend) -> TestClient:
    app = bootstrap(web_settings)
    app.dependency_overrides[get_backend] = lambda: backend
    return TestClient(app)


def section(html: str, anchor: str) -> str:
    """The file page's part from the heading `anchor` to the next h2."""
    return html.split(f'id="{anchor}"', 1)[1].split("<h2", 1)[0]


def test_times_are_said_in_paris_and_in_french():
    assert when_fr(FIRST) == f"mardi 2 mars 2027 à 9{NBSP}h{NBSP}30"
    # Summer time (UTC+2), on the hour, the first of the month.
    assert when_fr("2027-07-01T12:00:00+00:00") == f"jeudi 1er juillet 2027 à 14{NBSP}h"


def test_the_citizen_books_a_slot_and_sees_it_on_their_file_page(settings):  # noqa: F811
    backend = AppointmentsBackend()
    with citizen(settings, backend) as client:
        before = section(open_with_code(client).text, "rendez-vous")
        slots = client.get(f"/dossier/{FILE_ID}/rendez-vous")
        token = form_token(client, f"/dossier/{FILE_ID}/rendez-vous")
        booked = client.post(
            f"/dossier/{FILE_ID}/rendez-vous", data={"starts_at": SECOND, "csrf_token": token}
        )

    assert f'href="/dossier/{FILE_ID}/rendez-vous">Prendre rendez-vous' in before
    # One fieldset per day, named by its legend; one labelled radio per free slot.
    legends = re.findall(r'<legend[^>]*id="(jour-[^"]+)-legend"><strong>([^<]+)<', slots.text)
    assert legends == [
        ("jour-2027-03-02", "Mardi 2 mars 2027"),
        ("jour-2027-03-03", "Mercredi 3 mars 2027"),
    ]
    radios = re.findall(r'<input type="radio" id="(creneau-[^"]+)" name="starts_at"', slots.text)
    labels = re.findall(r'<label class="fr-label" for="(creneau-[^"]+)">([^<]+)<', slots.text)
    assert [r for r, _ in labels] == radios
    assert [t for _, t in labels] == [f"9{NBSP}h{NBSP}30", f"10{NBSP}h", f"14{NBSP}h"]
    assert f'action="/dossier/{FILE_ID}/rendez-vous"' in slots.text

    assert booked.status_code == 200 and booked.url.path == f"/dossier/{FILE_ID}"
    assert backend.calls[-1] == ("book", SECOND)
    assert (
        f"Votre rendez-vous est réservé le mardi 2 mars 2027 à 10{NBSP}h, avec Sophie "
        "Lefebvre, 12 rue Ordener, 75018 Paris. Une confirmation vous est envoyée."
    ) in booked.text
    shown = section(booked.text, "rendez-vous")
    assert f'<time datetime="{SECOND}">mardi 2 mars 2027 à 10{NBSP}h</time>' in shown
    assert "Avec Sophie Lefebvre, votre référent" in shown
    assert "Adresse : 12 rue Ordener, 75018 Paris" in shown
    assert f'action="/dossier/{FILE_ID}/rendez-vous/RDV-1/annuler"' in shown
    assert f'href="/dossier/{FILE_ID}/rendez-vous">Déplacer le rendez-vous' in shown


def test_a_slot_taken_meanwhile_comes_back_on_the_slots_page_nothing_booked(settings):  # noqa: F811
    backend = AppointmentsBackend()
    backend.refusal = BackendError(409, TAKEN)
    with citizen(settings, backend) as client:
        open_with_code(client)
        token = form_token(client, f"/dossier/{FILE_ID}/rendez-vous")
        refused = client.post(
            f"/dossier/{FILE_ID}/rendez-vous", data={"starts_at": FIRST, "csrf_token": token}
        )
        nothing_chosen = client.post(f"/dossier/{FILE_ID}/rendez-vous", data={"csrf_token": token})
        page = client.get(f"/dossier/{FILE_ID}")

    assert refused.status_code == 409
    assert TAKEN.replace("'", "&#39;") in refused.text.split('id="starts_at-messages"')[1]
    assert 'role="alert"' in refused.text and 'href="#starts_at"' in refused.text
    assert 'name="starts_at"' in refused.text  # the slots offered now, to choose again
    assert nothing_chosen.status_code == 422 and CHOOSE in nothing_chosen.text
    assert [c for c in backend.calls if c[0] == "book"] == [("book", FIRST)]
    assert backend.upcoming is None
    assert "Prendre rendez-vous" in section(page.text, "rendez-vous")


def test_the_citizen_moves_then_cancels_with_a_reason(settings):  # noqa: F811
    backend = AppointmentsBackend()
    backend.upcoming = appointment("RDV-1", FIRST)
    backend.free.remove(FIRST)
    with citizen(settings, backend) as client:
        open_with_code(client)
        slots = client.get(f"/dossier/{FILE_ID}/rendez-vous")
        token = form_token(client, f"/dossier/{FILE_ID}/rendez-vous")
        moved = client.post(
            f"/dossier/{FILE_ID}/rendez-vous/RDV-1/deplacer",
            data={"starts_at": WEDNESDAY, "csrf_token": token},
        )
        backend.refusal = BackendError(409, "Ce rendez-vous est déjà passé.")
        reason = "Je serai à l'hôpital ce jour-là."
        refused = client.post(
            f"/dossier/{FILE_ID}/rendez-vous/RDV-2/annuler",
            data={"cancel_reason": reason, "csrf_token": token},
        )
        cancelled = client.post(
            f"/dossier/{FILE_ID}/rendez-vous/RDV-2/annuler",
            data={"cancel_reason": reason, "csrf_token": token},
        )

    assert f'action="/dossier/{FILE_ID}/rendez-vous/RDV-1/deplacer"' in slots.text
    assert f'Rendez-vous actuel : <strong><time datetime="{FIRST}">' in slots.text
    assert ("move", "RDV-1", WEDNESDAY) in backend.calls
    assert f"Votre rendez-vous est déplacé au mercredi 3 mars 2027 à 14{NBSP}h" in moved.text
    # Refused: the message next to the reason, the reason kept; then cancelled.
    assert refused.status_code == 409
    assert "Ce rendez-vous est déjà passé." in refused.text.split('id="cancel_reason-messages"')[1]
    assert ">Je serai à l&#39;hôpital ce jour-là.</textarea>" in refused.text
    assert backend.calls[-1] == ("cancel", "RDV-2", reason) and backend.upcoming is None
    assert f"Votre rendez-vous du mercredi 3 mars 2027 à 14{NBSP}h est annulé." in cancelled.text
    assert "Prendre rendez-vous" in section(cancelled.text, "rendez-vous")


def test_a_cancellation_without_a_reason_sends_none(settings):  # noqa: F811
    backend = AppointmentsBackend()
    backend.upcoming = appointment("RDV-1", FIRST)
    with citizen(settings, backend) as client:
        open_with_code(client)
        token = form_token(client, f"/dossier/{FILE_ID}")
        client.post(
            f"/dossier/{FILE_ID}/rendez-vous/RDV-1/annuler",
            data={"cancel_reason": "  ", "csrf_token": token},
        )
    assert backend.calls[-1] == ("cancel", "RDV-1", None)


def test_the_slots_page_pages_on_and_says_when_nothing_is_free(settings):  # noqa: F811
    backend = AppointmentsBackend()
    with citizen(settings, backend) as client:
        open_with_code(client)
        first = client.get(f"/dossier/{FILE_ID}/rendez-vous")
        backend.free = []
        later = client.get(f"/dossier/{FILE_ID}/rendez-vous?du=2027-03-04")
        nonsense = client.get(f"/dossier/{FILE_ID}/rendez-vous?du=demain")

    assert f'href="/dossier/{FILE_ID}/rendez-vous?du=2027-03-04"' in first.text
    assert "Voir les créneaux à partir du jeudi 4 mars 2027" in first.text
    assert [c for c in backend.calls if c[0] == "slots"] == [
        ("slots", None),
        ("slots", dt.date(2027, 3, 4)),
        ("slots", None),
    ]
    assert nonsense.status_code == 200  # a day that is not one: the first slots
    assert "Aucun créneau libre sur cette période" in later.text
    assert 'href="tel:0142000000"' in later.text and "01 42 00 00 00" in later.text
    assert 'name="starts_at"' not in later.text


def test_the_referent_books_for_the_citizen_cancels_and_sees_their_day(settings):  # noqa: F811
    backend = AppointmentsBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, AGENT_LOGIN)
        desk = client.get("/referent")
        token = form_token(client, "/referent")
        empty_file = client.get(f"/referent/dossiers/{FILE_ID}")
        slots = client.get(f"/referent/dossiers/{FILE_ID}/rendez-vous")
        booked = client.post(
            f"/referent/dossiers/{FILE_ID}/rendez-vous",
            data={"starts_at": FIRST, "csrf_token": token},
        )
        file_page = client.get(f"/referent/dossiers/{FILE_ID}")
        day = client.get("/referent/rendez-vous?jour=2027-03-02")
        backend.refusal = BackendError(404, "Ce rendez-vous n'existe pas.")
        refused = client.post(
            f"/referent/dossiers/{FILE_ID}/rendez-vous/RDV-1/annuler",
            data={"cancel_reason": "Agent en formation.", "csrf_token": token},
        )
        after_refusal = client.get(f"/referent/dossiers/{FILE_ID}")
        client.post(
            f"/referent/dossiers/{FILE_ID}/rendez-vous/RDV-1/annuler",
            data={"cancel_reason": "Agent en formation.", "csrf_token": token},
        )
        empty_day = client.get("/referent/rendez-vous?jour=pas-un-jour")

    assert 'href="/referent/rendez-vous">Mes rendez-vous du jour' in desk.text
    assert "Prendre rendez-vous pour l'usager" in section(empty_file.text, "rendez-vous")
    assert f'action="/referent/dossiers/{FILE_ID}/rendez-vous"' in slots.text
    assert "L'usager rencontre Sophie Lefebvre" in slots.text
    assert booked.status_code == 303
    assert booked.headers["location"] == f"/referent/dossiers/{FILE_ID}#rendez-vous"
    shown = section(file_page.text, "rendez-vous")
    assert "Rendez-vous réservé pour l&#39;usager le mardi 2 mars 2027" in file_page.text
    assert f">mardi 2 mars 2027 à 9{NBSP}h{NBSP}30</time>" in shown
    assert f'action="/referent/dossiers/{FILE_ID}/rendez-vous/RDV-1/annuler"' in shown

    # The day: the appointment by time, the citizen, the life event, the file; the days around.
    assert ("day", "AG-75-01-1", dt.date(2027, 3, 2)) in backend.calls
    assert "<h1>Mes rendez-vous du mardi 2 mars 2027</h1>" in day.text
    row = day.text.split('id="rendez-vous-du-jour"')[1].split("</tbody>")[0]
    assert f">9{NBSP}h{NBSP}30</time> – " in row and "Awa Diallo" in row
    assert "Naissance d&#39;un enfant" in row
    assert f'href="/referent/dossiers/{FILE_ID}#rendez-vous"' in row
    assert 'href="/referent/rendez-vous?jour=2027-03-01"' in day.text
    assert "Jour précédent : lundi 1er mars 2027" in day.text
    assert "Jour suivant : mercredi 3 mars 2027" in day.text

    # A refusal comes back next to the reason, the reason kept; then cancelled.
    assert refused.status_code == 303
    kept = section(after_refusal.text, "rendez-vous")
    assert "Ce rendez-vous n&#39;existe pas." in kept.split('id="cancel_reason-messages"')[1]
    assert ">Agent en formation.</textarea>" in kept
    assert backend.calls.count(("cancel", "RDV-1", "Agent en formation.")) == 2
    assert backend.upcoming is None
    assert ("day", "AG-75-01-1", None) in backend.calls  # a day that is not one: today
    assert "Aucun rendez-vous ce jour-là." in empty_day.text


@pytest.mark.parametrize(
    ("route", "policy"),
    [
        ("GET /dossier/{file_id}/rendez-vous", Policy.FILE_CITIZEN),
        ("POST /dossier/{file_id}/rendez-vous", Policy.FILE_CITIZEN),
        ("POST /dossier/{file_id}/rendez-vous/{appointment_id}/deplacer", Policy.FILE_CITIZEN),
        ("POST /dossier/{file_id}/rendez-vous/{appointment_id}/annuler", Policy.FILE_CITIZEN),
        ("GET /referent/rendez-vous", Policy.AGENT),
        ("GET /referent/dossiers/{file_id}/rendez-vous", Policy.AGENT),
        ("POST /referent/dossiers/{file_id}/rendez-vous", Policy.AGENT),
        (
            "POST /referent/dossiers/{file_id}/rendez-vous/{appointment_id}/deplacer",
            Policy.AGENT,
        ),
        ("POST /referent/dossiers/{file_id}/rendez-vous/{appointment_id}/annuler", Policy.AGENT),
    ],
)
def test_each_appointment_page_declares_its_policy(settings, route, policy):  # noqa: F811
    assert route_policies(bootstrap(settings))[route] is policy


def test_the_desk_pages_send_to_the_login_first(settings):  # noqa: F811
    with pages(settings, AppointmentsBackend()) as client:
        response = client.get("/referent/rendez-vous?jour=2027-03-02")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/connexion/agents?suite=")
