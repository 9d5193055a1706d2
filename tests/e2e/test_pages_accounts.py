"""Citizens with an account, in Chromium on the real system: Marie signs in on Keycloak's page
(FranceConnect in production), her files open without a code, another citizen's login does
not open them, and signing out closes them; a cookie forged as the old signed sessions were
opens nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.pages_support import (
    check,
    forged_session_cookie,
    new_page,
    reload_until,
    sign_in,
    tick,
)
from tests.pdfs import pdf_text

pytestmark = pytest.mark.integration

#: How long the download of "Mes données" as a PDF may take (see its test).
PDF_TIMEOUT_MS = 90_000


def test_a_citizen_with_an_account_signs_in_and_opens_only_her_own_files(page, stack, browser):
    # Issue 12's attack: a cookie signed with the old default key opened a file with no code.
    outsider = new_page(browser, stack)
    outsider.context.add_cookies(
        [
            {
                "name": "guichet_session",
                "value": forged_session_cookie("GU-2026-AAAAAAAA"),
                "url": stack.web_url,
            }
        ]
    )
    outsider.goto("/dossier/GU-2026-AAAAAAAA")
    assert "/suivi" in outsider.url
    outsider.goto("/referent")
    assert "/realms/agents/" in outsider.url
    outsider.context.close()

    # Marie signs in with her account (FranceConnect in production) and declares a change.
    page.goto("/")
    page.click("text=Se connecter avec mon compte")
    page.wait_for_selector("#username")
    page.fill("#username", "marie.dupont")
    page.fill("#password", "dev-only-password")
    page.click("#kc-login")
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url)))
    assert "Vous êtes connecté(e)" in page.inner_text("[role=status]")
    page.goto("/demarche")
    tick(page, "life_event-naissance")
    page.fill("#description", "Notre fils est né le 20 novembre.")
    page.fill("#given_name", "Marie")
    page.fill("#family_name", "Dupont")
    page.fill("#postcode", "93200")
    tick(page, "preferred_channel-email")
    page.fill("#email", "marie.dupont@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    file_id = page.inner_text(".gu-reference").strip()
    # Her file opens without a code: it is hers.
    page.click("main a.fr-btn:has-text('Suivre mon dossier')")
    page.wait_for_url(re.compile(f"/dossier/{file_id}$"))
    assert page.url.endswith(f"/dossier/{file_id}") and file_id in page.inner_text("main")
    check(page, "23-citoyenne-connectee")

    # Lucas, signed in too, is not let into Marie's file: a code (sent to Marie) is asked.
    lucas = new_page(browser, stack)
    sign_in(lucas, stack, "citoyens", "lucas.bernard")
    lucas.goto(f"/dossier/{file_id}")
    assert "/suivi" in lucas.url and "pas rattaché à votre compte" in lucas.inner_text("main")
    # He declares his own change: his "Mes dossiers" lists it, not Marie's.
    lucas.goto("/demarche")
    tick(lucas, "life_event-demenagement")
    lucas.fill("#description", "Je déménage à Lyon le mois prochain.")
    lucas.fill("#given_name", "Lucas")
    lucas.fill("#family_name", "Bernard")
    lucas.fill("#postcode", "69003")
    tick(lucas, "preferred_channel-email")
    lucas.fill("#email", "lucas.bernard@example.fr")
    lucas.click("text=Envoyer ma déclaration")
    lucas.wait_for_url(re.compile(r"/demarche/confirmation/"))
    lucas_file = lucas.inner_text(".gu-reference").strip()
    lucas.click(".gu-nav >> text=Mes dossiers")
    lucas.wait_for_url(re.compile(r"/mes-dossiers$"))
    his = lucas.inner_text("#mes-dossiers")
    assert lucas_file in his and file_id not in his
    lucas.context.close()

    # Marie's "Mes dossiers" (from the nav) lists her file, not Lucas's; it opens without a code.
    page.goto("/")
    page.click(".gu-nav >> text=Mes dossiers")
    page.wait_for_url(re.compile(r"/mes-dossiers$"))
    hers = page.inner_text("#mes-dossiers")
    assert file_id in hers and lucas_file not in hers
    assert "Naissance" in hers
    check(page, "23b-mes-dossiers")
    page.click(f"#mes-dossiers >> text={file_id}")
    page.wait_for_url(re.compile(f"/dossier/{file_id}$"))
    # Her contact details on record fill the contact form (her own route, not the agents').
    assert page.input_value("#email") == "marie.dupont@example.fr"

    # Signing out ends the session here and at the provider: the file asks for a code again.
    page.click("text=Se déconnecter")
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url) + r"/(\?state=[\w-]+)?$"))
    assert "Se connecter (agents)" in page.inner_text(".gu-nav")
    page.goto(f"/dossier/{file_id}")
    assert "/suivi" in page.url


def declare(page, life_event: str, description: str) -> str:
    page.goto("/demarche")
    tick(page, f"life_event-{life_event}")
    page.fill("#description", description)
    page.fill("#given_name", "Marie")
    page.fill("#family_name", "Dupont")
    page.fill("#postcode", "93200")
    tick(page, "preferred_channel-email")
    page.fill("#email", "marie.dupont@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    return page.inner_text(".gu-reference").strip()


@pytest.mark.timeout(600)  # two files through the whole path, four pages checked with axe
def test_a_citizen_reads_the_privacy_notice_downloads_her_data_and_erases_a_closed_file(
    page, stack
):
    # The notice: summarised on the form, whole on its page (issue 13 §6).
    sign_in(page, stack, "citoyens", "marie.dupont")
    page.goto("/demarche")
    assert "Vos données personnelles" in page.inner_text("#donnees-personnelles")
    page.click("#donnees-personnelles >> text=Lire la notice complète")
    page.wait_for_url(re.compile(r"/confidentialite$"))
    notice = page.inner_text("main")
    assert "France Travail" in notice and "2 ans après la réponse coordonnée" in notice
    assert "CNIL" in notice and "Délégué à la protection des données" in notice
    check(page, "24-confidentialite")

    closed = declare(page, "perte_emploi", "J'ai perdu mon emploi, je veux tout effacer après.")
    open_file = declare(page, "arret_maladie", "Arrêt de travail depuis lundi.")

    # "Mes données": the PDF of everything held about her, from her space.
    page.goto("/mes-dossiers")
    page.click("main >> text=Mes données")
    page.wait_for_url(re.compile(r"/mes-donnees$"))
    check(page, "25-mes-donnees")
    # Every file of Marie's on the shared stack is laid out (a dozen by then, the first PDF
    # of the web process imports fpdf): seconds on a loaded machine, more than a click's 15.
    with page.expect_download(timeout=PDF_TIMEOUT_MS) as downloaded:
        page.click("text=Télécharger mes données (PDF)")
    text = pdf_text(Path(downloaded.value.path()).read_bytes())
    assert closed in text and open_file in text and "a reçu" in text

    # A file still being processed is not erased: the reason is said.
    page.goto(f"/dossier/{open_file}")
    tick(page, "confirm")
    page.click("text=Demander l'effacement de mes données")
    page.wait_for_url(re.compile(f"/dossier/{open_file}"))
    assert "article 17" in page.inner_text(".fr-alert")

    # Once the coordinated answer is sent, the closed file is erased and leaves her list.
    page.goto(f"/dossier/{closed}")
    reload_until(page, ".gu-answer", timeout=90)
    check(page, "26-dossier-clos-mes-donnees")
    tick(page, "confirm")
    page.click("text=Demander l'effacement de mes données")
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url) + "/$"))
    assert "sont effacées" in page.inner_text("main")
    page.goto("/mes-dossiers")
    listed = page.inner_text("#mes-dossiers")
    assert closed not in listed and open_file in listed
