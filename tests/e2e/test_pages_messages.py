"""The file's thread on the pages, in Chromium (axe-checked) on the real system: Marie,
signed in, writes to her référent from her file page with an attachment (a refusal comes
back next to its field, her text kept) and is told who answers; the référent sees the
message in the inbox of their desk, reads it on the file's page (the inbox then says it is
read) and answers; Marie's page shows the answer under her message."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from guichet_runtime.tls_context import client_tls
from tests.e2e.pages_support import (
    agent_username,
    check,
    error_of,
    new_page,
    reload_until,
    sign_in,
    tick,
)
from tests.e2e.support import MARIE

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% avis\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TEXT = "Bonjour, la CAF m'écrit que mon dossier est incomplet : que dois-je envoyer ?"


def declare(page) -> str:
    """Marie, signed in, declares a birth; returns the file's reference."""
    page.goto("/demarche")
    tick(page, "life_event-naissance")
    page.fill("#description", "Notre fille est née le 24 novembre.")
    page.fill("#given_name", MARIE["given_name"])
    page.fill("#family_name", MARIE["family_name"])
    page.fill("#postcode", MARIE["postcode"])
    tick(page, "preferred_channel-email")
    page.fill("#email", "fil.pages@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    return page.inner_text(".gu-reference").strip()


def test_the_citizen_writes_the_referent_reads_in_the_inbox_and_answers(
    page, stack, browser, tokens, tmp_path
):
    sign_in(page, stack, "citoyens", "marie.dupont")
    file_id = declare(page)
    page.goto(f"/dossier/{file_id}")
    # The form comes with the référent's name.
    reload_until(page, f"form[action='/dossier/{file_id}/messages']")
    card = httpx.get(
        f"{stack.intake_url}/api/files/{file_id}",
        headers=tokens.citizen(),
        timeout=10,
        verify=client_tls(),
    ).json()["referent"]
    referent, agent_id = card["name"], card["agent_id"]
    assert f"Votre message à {referent}" in page.inner_text("label[for=text]")

    # A text file is refused next to the attachments, the typed text kept.
    note = tmp_path / "note.txt"
    note.write_text("pas un justificatif")
    page.fill("#text", TEXT)
    page.set_input_files("#fichier", str(note))
    page.click("text=Envoyer mon message")
    assert "PDF" in error_of(page, "fichier") and page.input_value("#text") == TEXT
    check(page, "40-fil-piece-refusee")

    avis = tmp_path / "avis.pdf"
    avis.write_bytes(PDF)
    page.set_input_files("#fichier", str(avis))
    page.click("text=Envoyer mon message")
    page.wait_for_url(re.compile(f"/dossier/{file_id}$"))
    assert f"transmis à votre référent, {referent}" in page.inner_text("[role=status]")
    thread = page.inner_text("#fil-messages")
    assert TEXT in thread and "avis.pdf" in thread
    check(page, "41-fil-citoyen")

    # The référent's desk: the inbox shows the file, unread; its page shows the message.
    desk = new_page(browser, stack)
    sign_in(desk, stack, "agents", agent_username(tokens, agent_id), then="/referent")
    reload_until(desk, f"#boite a[href*='{file_id}']")
    assert "non lu" in desk.inner_text("#boite")
    check(desk, "42-boite-referent")
    desk.click(f"#boite a[href*='{file_id}']")
    assert TEXT in desk.inner_text("#messages-recus")
    check(desk, "43-fil-referent")
    desk.goto("/referent")
    row = desk.inner_text(f"#boite tr:has(a[href*='{file_id}'])")
    assert "non lu" not in row  # opened: read

    desk.goto(f"/referent/dossiers/{file_id}")
    desk.fill("#message", "Il manque votre RIB : envoyez-le depuis votre espace.")
    desk.click("text=Envoyer le message")
    desk.wait_for_url(re.compile(f"/referent/dossiers/{file_id}"))
    reload_until(desk, "#messages-envoyes")
    # Answered: the file leaves the inbox.
    deadline = time.monotonic() + 60
    desk.goto("/referent")
    while desk.locator(f"#boite a[href*='{file_id}']").count():
        assert time.monotonic() < deadline, "the answered file stayed in the inbox"
        time.sleep(0.5)
        desk.reload()
    desk.context.close()

    page.goto(f"/dossier/{file_id}")
    thread = page.inner_text("#fil-messages")
    assert thread.index(TEXT) < thread.index("Il manque votre RIB")
    assert f"{referent}, votre référent" in thread
