"""Appointments on the pages, continued (issue 16 §3), in Chromium (axe-checked) on the real
system: the citizen moves their appointment to another slot; a front-desk agent answering a
citizen's call finds the file from the counter page and books, moves and cancels for them,
saying why; two citizens racing for one slot, each on their own page: the second is told in
French, next to the slots, that it was just taken, nothing is booked for them, and they book
another one.

The files are Paris 18e removals ("Déménagement", tests/e2e/authz_support.py): their
référent is Camille Martin, of FS-75-01, the office of the realm's front-desk agent Julien
Durand, who did not register them (or, should Camille Martin be away, another référent of
that office). The stack runs on the real date: slots start the day
after assignment's today, so the tests take the slots the pages offer, whatever they are."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from guichet_runtime.tls_context import client_tls
from tests.e2e.authz_support import LUCAS, MARIE, file_body
from tests.e2e.pages_support import check, error_of, new_page, reload_until, sign_in, tick
from tests.e2e.test_pages_appointments import text_of

pytestmark = pytest.mark.integration

TAKEN = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."
ON_THE_PHONE = "Appel téléphonique de l'usager"
FREE = "input[name=starts_at]"


def someone(first_name: str) -> str:
    """A citizen account of this test's own (created on first use): with sealing on, a
    logged-in citizen's files share one data key, and assignment gives a known citizen
    their former référent (continuity), so `marie.dupont`, who filed in other modules,
    would not get the référent of proximity these tests are about."""
    return f"{first_name}.{uuid.uuid4().hex[:8]}"


def new_file(stack, tokens, username: str, citizen: dict) -> str:
    """A removal declared online by the citizen `username` (logged in): the file's id."""
    filed = httpx.post(
        f"{stack.intake_url}/api/files",
        json=file_body(citizen),
        headers=tokens.citizen(username),
        timeout=15,
        verify=client_tls(),
    )
    assert filed.status_code in (200, 201, 202), filed.text
    return str(filed.json()["file_id"])


def referent_of(stack, tokens, username: str, file_id: str, timeout: float = 60) -> str:
    """The file's référent, once assignment has named one (as the citizen asks)."""
    deadline = time.monotonic() + timeout
    while True:
        card = httpx.get(
            f"{stack.assignment_url}/api/files/{file_id}/appointments",
            headers=tokens.citizen(username),
            timeout=10,
            verify=client_tls(),
        )
        if card.status_code == 200 and card.json()["referent"]:
            return str(card.json()["referent"]["agent_id"])
        assert time.monotonic() < deadline, f"no référent for {file_id}: {card.text}"
        time.sleep(0.3)


def open_slots(page, stack, username: str, file_id: str) -> None:
    """The citizen signs in, then opens their file's slots page."""
    sign_in(page, stack, "citoyens", username)
    page.goto(f"/dossier/{file_id}/rendez-vous")
    reload_until(page, FREE)


def upcoming_of(stack, tokens, username: str, file_id: str) -> dict | None:
    return httpx.get(
        f"{stack.assignment_url}/api/files/{file_id}/appointments",
        headers=tokens.citizen(username),
        timeout=10,
        verify=client_tls(),
    ).json()["upcoming"]


def slot(page, value: str) -> str:
    """The radio button offering the slot starting at `value` (its id)."""
    return str(page.locator(f"{FREE}[value='{value}']").get_attribute("id"))


def when_of(page, value: str) -> str:
    """How the page says that slot: "mardi 2 mars 2027 à 9 h 30"."""
    radio = slot(page, value)
    day = page.locator(f"fieldset:has(#{radio})").get_attribute("id").removeprefix("jour-")
    legend = text_of(page, f"#jour-{day}-legend").lower()
    return f"{legend} à {text_of(page, f'label[for={radio!r}]')}"


def test_the_citizen_moves_their_appointment_to_another_slot(page, stack, tokens):
    marie = someone("marie")
    file_id = new_file(stack, tokens, marie, MARIE)
    referent_of(stack, tokens, marie, file_id)
    open_slots(page, stack, marie, file_id)
    first = page.locator(FREE).first.get_attribute("value")
    tick(page, slot(page, first))
    page.click("text=Réserver ce créneau")
    page.wait_for_url(re.compile(f"/dossier/{file_id}(#rendez-vous)?$"))

    # From the file page, to the slots page in "move" mode: the current one said.
    page.click(f"a[href='/dossier/{file_id}/rendez-vous']:has-text('Déplacer le rendez-vous')")
    page.wait_for_url(re.compile(f"/dossier/{file_id}/rendez-vous$"))
    assert text_of(page, "h1").startswith("Déplacer votre rendez-vous avec ")
    assert "Rendez-vous actuel : " in text_of(page, "#rendez-vous-actuel")
    assert page.locator(f"{FREE}[value='{first}']").count() == 0  # taken: by her
    check(page, "55-rendez-vous-a-deplacer")
    # Another day's first slot.
    other = page.locator(f"fieldset[id^=jour-]:nth-of-type(2) {FREE}").first
    target = other.get_attribute("value")
    when = when_of(page, target)
    tick(page, slot(page, target))
    page.click("text=Déplacer le rendez-vous à ce créneau")
    page.wait_for_url(re.compile(f"/dossier/{file_id}(#rendez-vous)?$"))
    assert f"Votre rendez-vous est déplacé au {when}" in text_of(page, "[role=status]")
    assert when in text_of(page, "#rendez-vous-prevu")
    check(page, "56-rendez-vous-deplace")
    moved = upcoming_of(stack, tokens, marie, file_id)
    assert moved is not None and moved["starts_at"] == target
    # The former slot is offered again.
    page.goto(f"/dossier/{file_id}/rendez-vous")
    assert page.locator(f"{FREE}[value='{first}']").count() == 1


def test_the_front_desk_books_moves_and_cancels_for_a_citizen_on_the_phone(page, stack, tokens):
    marie = someone("marie")
    file_id = new_file(stack, tokens, marie, MARIE)
    assert referent_of(stack, tokens, marie, file_id).startswith("AG-75-01-")
    sign_in(page, stack, "agents", "julien.durand", then="/guichet")
    page.wait_for_url(re.compile("/guichet$"))
    assert "Prendre rendez-vous pour un usager au téléphone" in text_of(
        page, "#rendez-vous-telephone"
    )
    check(page, "57-guichet-rendez-vous-telephone")

    # The citizen reads out their file's reference: the slots page names them.
    page.fill("#dossier", file_id.lower())
    page.click("text=Voir les créneaux du référent")
    page.wait_for_url(re.compile(f"/guichet/dossiers/{file_id}/rendez-vous$"))
    reload_until(page, FREE)
    assert "Usager : Marie Dupont" in text_of(page, "#usager")
    assert text_of(page, "h1").startswith("Prendre rendez-vous avec ")
    check(page, "58-guichet-creneaux")

    # Without saying why: refused next to the reason, nothing booked.
    first = page.locator(FREE).first.get_attribute("value")
    when = when_of(page, first)
    tick(page, slot(page, first))
    page.click("text=Réserver ce créneau")
    assert "Indiquez le motif de cette action" in error_of(page, "access_reason")
    assert upcoming_of(stack, tokens, marie, file_id) is None
    check(page, "59-guichet-motif-manquant")
    tick(page, slot(page, first))
    page.fill("#access_reason", ON_THE_PHONE)
    page.click("text=Réserver ce créneau")
    page.wait_for_url(re.compile(f"/guichet/dossiers/{file_id}/rendez-vous$"))
    status = text_of(page, "[role=status]")
    assert f"Rendez-vous réservé pour l'usager le {when}, avec " in status
    assert "L'usager en reçoit la confirmation." in status
    assert when in text_of(page, "#rendez-vous-actuel")
    check(page, "60-guichet-rendez-vous-pris")
    booked = upcoming_of(stack, tokens, marie, file_id)
    assert booked is not None and booked["booked_by"] == "agent"

    # The citizen calls again: moved to another slot, then cancelled.
    target = page.locator(f"fieldset[id^=jour-]:nth-of-type(2) {FREE}").first
    moved_to = target.get_attribute("value")
    moved_when = when_of(page, moved_to)
    tick(page, slot(page, moved_to))
    page.fill("#access_reason", ON_THE_PHONE)
    page.click("text=Déplacer le rendez-vous à ce créneau")
    page.wait_for_url(re.compile(f"/guichet/dossiers/{file_id}/rendez-vous$"))
    assert f"Rendez-vous déplacé au {moved_when}" in text_of(page, "[role=status]")
    assert upcoming_of(stack, tokens, marie, file_id)["starts_at"] == moved_to
    page.fill("#cancel_reason", "Vous nous avez appelés pour annuler.")
    page.fill("#cancel_access_reason", ON_THE_PHONE)
    page.click("button:has-text('Annuler le rendez-vous')")
    page.wait_for_url(re.compile(f"/guichet/dossiers/{file_id}/rendez-vous$"))
    assert f"Le rendez-vous du {moved_when} est annulé. L'usager en est informé." in text_of(
        page, "[role=status]"
    )
    assert page.locator("#rendez-vous-actuel").count() == 0
    check(page, "61-guichet-rendez-vous-annule")
    assert upcoming_of(stack, tokens, marie, file_id) is None


def test_two_citizens_race_for_one_slot_the_second_is_told_and_books_another(
    page, browser, stack, tokens
):
    marie, lucas_account = someone("marie"), someone("lucas")
    marie_file = new_file(stack, tokens, marie, MARIE)
    lucas_file = new_file(stack, tokens, lucas_account, LUCAS)
    referent = referent_of(stack, tokens, marie, marie_file)
    assert referent_of(stack, tokens, lucas_account, lucas_file) == referent
    lucas = new_page(browser, stack)
    open_slots(page, stack, marie, marie_file)
    open_slots(lucas, stack, lucas_account, lucas_file)
    # Both pages show the same free slot; Marie books it first.
    first = page.locator(FREE).first.get_attribute("value")
    assert lucas.locator(f"{FREE}[value='{first}']").count() == 1
    tick(page, slot(page, first))
    tick(lucas, slot(lucas, first))
    page.click("text=Réserver ce créneau")
    page.wait_for_url(re.compile(f"/dossier/{marie_file}(#rendez-vous)?$"))

    # Lucas submits the slot his page still shows: told next to the slots, nothing booked.
    lucas.click("text=Réserver ce créneau")
    lucas.wait_for_selector("#starts_at-messages .fr-message--error")
    assert text_of(lucas, "#starts_at-messages") == TAKEN
    assert TAKEN in text_of(lucas, "#erreurs")
    assert lucas.locator(f"{FREE}[value='{first}']").count() == 0  # the slots as they are now
    assert upcoming_of(stack, tokens, lucas_account, lucas_file) is None
    check(lucas, "62-creneau-pris-entre-temps")

    # He books another one.
    other = lucas.locator(FREE).first.get_attribute("value")
    when = when_of(lucas, other)
    tick(lucas, slot(lucas, other))
    lucas.click("text=Réserver ce créneau")
    lucas.wait_for_url(re.compile(f"/dossier/{lucas_file}(#rendez-vous)?$"))
    assert f"Votre rendez-vous est réservé le {when}" in text_of(lucas, "[role=status]")
    check(lucas, "63-autre-creneau-reserve")
    lucas.context.close()
    assert upcoming_of(stack, tokens, lucas_account, lucas_file)["starts_at"] == other
    assert upcoming_of(stack, tokens, marie, marie_file)["starts_at"] == first
