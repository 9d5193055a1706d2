"""Appointments with the référent on the pages (issue 16 §3), in Chromium (axe-checked) on
the real system: Marie, signed in, declares, waits for her référent, books the first free
slot from the slots page and sees it on her file page; her référent signs in and sees it in
the day view of that day, then on the file's page; Marie cancels it (with a reason) and the
slot is offered again.

The pages' stack runs on the real date: slots start the day after assignment's today, so the
test books on the first day offered, whatever it is."""

from __future__ import annotations

import re

import httpx
import pytest

from guichet_runtime.tls_context import client_tls
from tests.e2e.pages_support import agent_username, check, new_page, reload_until, sign_in, tick
from tests.e2e.support import MARIE

pytestmark = pytest.mark.integration

NBSP = "\u00a0"


def text_of(page, selector: str) -> str:
    """What a person reads there, with the non-breaking spaces of "9 h 30" as spaces."""
    return page.inner_text(selector).replace(NBSP, " ")


def declare(page) -> str:
    """Marie, signed in, declares a birth; returns the file's reference."""
    page.goto("/demarche")
    tick(page, "life_event-naissance")
    page.fill("#description", "Notre fils est né le 28 novembre.")
    page.fill("#given_name", MARIE["given_name"])
    page.fill("#family_name", MARIE["family_name"])
    page.fill("#postcode", MARIE["postcode"])
    tick(page, "preferred_channel-email")
    page.fill("#email", "rdv.pages@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    return page.inner_text(".gu-reference").strip()


def test_the_citizen_books_the_referent_sees_it_in_their_day_the_citizen_cancels(
    page, stack, browser, tokens
):
    sign_in(page, stack, "citoyens", "marie.dupont")
    file_id = declare(page)
    page.goto(f"/dossier/{file_id}")
    # Once assignment named her référent, the file page offers to book.
    book = f"a[href='/dossier/{file_id}/rendez-vous']:has-text('Prendre rendez-vous')"
    reload_until(page, book)
    check(page, "50-rendez-vous-a-prendre")

    page.click(book)
    page.wait_for_url(re.compile(f"/dossier/{file_id}/rendez-vous$"))
    first = page.locator("input[name=starts_at]").first
    starts_at, radio = first.get_attribute("value"), first.get_attribute("id")
    day = page.locator("fieldset[id^=jour-]").first.get_attribute("id").removeprefix("jour-")
    hour = text_of(page, f"label[for='{radio}']")
    legend = text_of(page, f"#jour-{day}-legend")
    check(page, "51-creneaux")
    tick(page, radio)
    page.click("text=Réserver ce créneau")
    page.wait_for_url(re.compile(f"/dossier/{file_id}(#rendez-vous)?$"))

    # Her file page: the day and time in French, the référent, the address.
    card = httpx.get(
        f"{stack.intake_url}/api/files/{file_id}",
        headers=tokens.citizen(),
        timeout=10,
        verify=client_tls(),
    ).json()["referent"]
    when = f"{legend.lower()} à {hour}"
    assert "Votre rendez-vous est réservé le " + when in text_of(page, "[role=status]")
    booked = text_of(page, "#rendez-vous-prevu")
    assert when in booked and f"Avec {card['name']}, votre référent" in booked
    assert "Adresse : " in booked
    check(page, "52-rendez-vous-pris")

    # Her référent's day view, from the desk's navigation, on that day.
    desk = new_page(browser, stack)
    sign_in(desk, stack, "agents", agent_username(tokens, card["agent_id"]), then="/referent")
    desk.click("text=Mes rendez-vous du jour")
    desk.wait_for_url(re.compile(r"/referent/rendez-vous"))
    desk.goto(f"/referent/rendez-vous?jour={day}")
    assert text_of(desk, "h1") == f"Mes rendez-vous du {legend.lower()}"
    row = text_of(desk, f"#rendez-vous-du-jour tr:has(a[href*='{file_id}'])")
    assert row.startswith(hour) and f"{MARIE['given_name']} {MARIE['family_name']}" in row
    assert "Naissance" in row and "L'usager" in row
    check(desk, "53-rendez-vous-du-jour")
    desk.click(f"#rendez-vous-du-jour a[href*='{file_id}']")
    desk.wait_for_url(re.compile(f"/referent/dossiers/{file_id}"))
    assert when in text_of(desk, "#rendez-vous-prevu")
    check(desk, "54-rendez-vous-dossier-referent")
    desk.context.close()

    # Marie cancels, with a reason: the slot is free again.
    page.goto(f"/dossier/{file_id}")
    page.fill("#cancel_reason", "Un empêchement : je reprendrai rendez-vous.")
    page.click("text=Annuler le rendez-vous")
    page.wait_for_url(re.compile(f"/dossier/{file_id}(#rendez-vous)?$"))
    assert f"Votre rendez-vous du {when} est annulé." in text_of(page, "[role=status]")
    assert page.locator("#rendez-vous-prevu").count() == 0
    page.click(book)
    page.wait_for_url(re.compile(f"/dossier/{file_id}/rendez-vous$"))
    assert page.locator(f"input[name=starts_at][value='{starts_at}']").count() == 1
