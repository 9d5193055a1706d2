"""The pages, walked as people would in Debian's Chromium (Playwright) on the real system:
a real Kafka broker, Keycloak, every service, the agency simulator and the SMTP sink. Agents
and citizens with an account sign in on Keycloak's own login page. Each page is checked with
axe-core (no serious or critical violation) and screenshotted into var/screenshots/."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from guichet_runtime.clock import Clock
from guichet_runtime.tls_context import client_tls
from tests.e2e.pages_support import (
    CSRF_REFUSED,
    SHOTS,
    access_code,
    access_code_records,
    agent_username,
    check,
    error_of,
    new_page,
    open_file,
    referent_named_in_mail,
    referent_of,
    reload_until,
    sign_in,
    tick,
)
from tests.e2e.support import file_body

pytestmark = pytest.mark.integration


def test_a_citizen_declares_follows_with_a_code_and_reads_the_coordinated_answer(page, stack):
    page.goto("/")
    check(page, "01-accueil")
    page.click("text=Déclarer un changement de situation")
    check(page, "02-declaration")

    # Bad input: each message next to its field, everything typed kept.
    page.fill(
        "#description", "J'ai perdu mon emploi le 15 novembre et je ne sais pas par où commencer."
    )
    page.fill("#given_name", "Marie")
    page.fill("#postcode", "93")
    tick(page, "preferred_channel-email")
    page.fill("#email", "marie.dupont@")
    page.click("text=Envoyer ma déclaration")
    assert error_of(page, "life_event") == "Ce champ est obligatoire."
    assert error_of(page, "family_name") == "Ce champ ne peut pas être vide."
    assert error_of(page, "postcode") == "Code postal invalide : 5 chiffres attendus."
    assert error_of(page, "email") == "Adresse électronique invalide."
    assert page.input_value("#description").startswith("J'ai perdu mon emploi le 15 novembre")
    assert (
        page.input_value("#given_name") == "Marie" and page.input_value("#email") == "marie.dupont@"
    )
    assert page.is_checked("#preferred_channel-email")
    assert page.title().startswith("Erreur : ")
    check(page, "03-declaration-erreurs")

    tick(page, "life_event-perte_emploi")
    tick(page, "urgent")
    page.fill("#family_name", "Dupont")
    page.fill("#postcode", "93200")
    page.fill("#email", "marie.dupont@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    file_id = page.inner_text(".gu-reference").strip()
    assert re.fullmatch(r"GU-\d{4}-[0-9A-Z]{8}", file_id)
    check(page, "04-declaration-envoyee")

    page.click("main a.fr-btn:has-text('Suivre mon dossier')")
    assert page.input_value("#reference") == file_id
    page.fill("#reference", "GU-12")
    page.click("text=Recevoir un code")
    assert (
        "Référence invalide" in error_of(page, "reference")
        and page.input_value("#reference") == "GU-12"
    )
    check(page, "05-suivi-erreur")
    page.fill("#reference", file_id.lower())
    page.click("text=Recevoir un code")
    page.wait_for_url(re.compile(r"/suivi/code"))
    page.fill("#code", "12")
    page.click("text=Ouvrir mon dossier")
    assert error_of(page, "code") == "Le code comporte 6 chiffres, par ex. 123456."
    assert page.input_value("#code") == "12"
    check(page, "06-code-erreur")
    code = access_code(stack, file_id)
    page.fill("#code", code)
    page.click("text=Ouvrir mon dossier")
    page.wait_for_url(re.compile(f"/dossier/{file_id}$"))
    # The email brought the code; the topic that carried it to notification never held it.
    [issued] = access_code_records(stack, file_id)
    assert code not in json.dumps(issued) and "code" not in issued["body"]
    assert set(issued["body"]["sealed_code"]) == {"key_id", "nonce", "ciphertext"}

    reload_until(page, "#reponse")
    name = referent_named_in_mail(stack, file_id)
    assert page.inner_text(".gu-referent-name").strip() == name
    card = page.inner_text("#referent")
    assert "Téléphone direct" in card and "Horaires d'accueil" in card and "France Services" in card
    assert page.locator("svg.gu-photo").get_attribute("aria-label").startswith(f"Photo de {name}")
    assert name in page.inner_text(".gu-answer")
    statuses = page.text_content("#organismes")  # badges are upper-cased by CSS only
    assert statuses.count("Réponse reçue") == 3
    assert {"Accordé", "Refusé"} & set(re.findall(r"Accordé|Refusé", page.inner_text("#decisions")))
    assert "Réponse coordonnée rédigée par" in page.inner_text(".gu-timeline")
    check(page, "07-dossier-citoyen")

    # The code was spent: another browser needs its own code.
    page.click("text=Fermer mon dossier sur cet appareil")
    page.goto(f"/dossier/{file_id}")
    assert "/suivi" in page.url


PDF = b"%PDF-1.4\n% attestation de salaire\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_a_citizen_sends_the_document_the_cpam_asks_for_thanks_the_referent_and_answers_the_survey(
    page, stack, browser, tokens, everywhere
):
    page.goto("/demarche")
    tick(page, "life_event-arret_maladie")
    page.fill(
        "#description",
        "Je suis en arrêt maladie depuis le 3 novembre, mon employeur ne répond pas.",
    )
    page.fill("#given_name", "Lina")
    page.fill("#family_name", "Moreau")
    page.fill("#postcode", "13001")
    tick(page, "preferred_channel-email")
    page.fill("#email", "lina.moreau@example.fr")
    page.click("text=Envoyer ma déclaration")
    page.wait_for_url(re.compile(r"/demarche/confirmation/"))
    file_id = page.inner_text(".gu-reference").strip()
    open_file(page, stack, file_id)

    # Contact preferences: SMS needs a phone number; the message sits next to it, the choice is
    # kept.
    assert page.input_value("#email") == "lina.moreau@example.fr" and page.is_checked(
        "#preferred_channel-email"
    )
    tick(page, "preferred_channel-sms")
    page.click("text=Enregistrer mes préférences de contact")
    assert error_of(page, "phone").startswith("Un numéro de téléphone est nécessaire")
    assert (
        page.is_checked("#preferred_channel-sms")
        and page.input_value("#email") == "lina.moreau@example.fr"
    )
    check(page, "16-contact-erreur")
    page.fill("#phone", "06 11 22 33 44")
    page.click("text=Enregistrer mes préférences de contact")
    assert "préférences de contact sont enregistrées" in page.inner_text("[role=status]")
    assert "Moyen de contact actuel : SMS, au 06 11 22 33 44" in page.inner_text("#contact + p")

    # The CPAM asks for the employer's salary certificate; its legal clock stops meanwhile.
    reload_until(page, "#organismes >> text=Délai suspendu")
    assert page.inner_text(".gu-referent-name").strip() == referent_named_in_mail(stack, file_id)
    assert "Attestation de salaire" in page.inner_text("#pieces + .fr-callout")
    check(page, "17-piece-demandee")
    page.click("text=Envoyer le document")
    assert error_of(page, "document") == "Choisissez le fichier à envoyer."
    page.set_input_files(
        "#document",
        files=[
            {
                "name": "attestation.pdf",
                "mimeType": "application/pdf",
                "buffer": b"MZ\x90\x00 not a pdf",
            }
        ],
    )
    page.click("text=Envoyer le document")
    assert (
        error_of(page, "document") == "Format non accepté : envoyez un PDF, une image JPEG ou PNG."
    )
    check(page, "18-piece-erreur")
    page.set_input_files(
        "#document",
        files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": PDF + b"0" * 600_000}],
    )
    page.click("text=Envoyer le document")
    assert error_of(page, "document") == "Le fichier dépasse 512 Ko."
    page.set_input_files(
        "#document",
        files=[{"name": "attestation.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    page.click("text=Envoyer le document")
    assert "Pièce reçue" in page.inner_text("[role=status]")

    # The CPAM decides on the document; the one answer and the exchange ledger are there.
    reload_until(page, "#reponse")
    assert "(CPAM)" in page.inner_text("#decisions")
    ledger = page.inner_text("#registre")
    assert "Envoyé à l'organisme" in ledger and "Reçu de l'organisme" in ledger
    assert re.search(r"\b[0-9a-f]{64}\b", ledger)
    assert "Pièce envoyée à" in page.inner_text(".gu-timeline")
    check(page, "19-reponse-et-registre")

    # Thanks: too short is said next to the field, then sent by name.
    name = page.inner_text(".gu-referent-name").strip()
    page.fill("#message", "M")
    page.click("text=Remercier mon référent")
    assert (
        error_of(page, "message") == "Au moins 2 caractères sont attendus."
        and page.input_value("#message") == "M"
    )
    page.fill("#message", "Merci pour votre aide et votre patience !")
    page.click("text=Remercier mon référent")
    assert f"Votre message est transmis à {name}" in page.inner_text("[role=status]")
    assert page.locator("#message").count() == 0

    # The survey: the score is required, the comment typed is kept.
    page.fill("#comment", "Un seul interlocuteur, enfin.")
    page.click("text=Envoyer mon avis")
    assert error_of(page, "score") == "Ce champ est obligatoire."
    assert page.input_value("#comment") == "Un seul interlocuteur, enfin."
    check(page, "20-enquete-erreur")
    tick(page, "score-5")
    tick(page, "referent_reachable-oui")
    page.click("text=Envoyer mon avis")
    assert "Merci pour votre avis" in page.inner_text("[role=status]")
    assert "Vous avez répondu à l'enquête" in page.inner_text("main")
    check(page, "21-avis-donne")

    # The référent, signed in, finds the thanks on their desk.
    agent = referent_of(stack, everywhere, file_id)
    desk = new_page(browser, stack)
    sign_in(desk, stack, "agents", agent_username(tokens, agent), then="/referent")
    assert desk.url.endswith("/referent")
    thanks = desk.inner_text("#remerciements ~ .gu-thanks")
    assert (
        "Lina" in thanks
        and file_id in thanks
        and "Merci pour votre aide et votre patience !" in thanks
    )
    check(desk, "22-remerciements")
    desk.context.close()


def test_a_counter_agent_creates_a_file_for_an_offline_citizen_and_prints_the_receipt(page, stack):
    # The front desk's page needs the agent signed in: Keycloak's page, then back.
    sign_in(page, stack, "agents", "julien.durand", then="/guichet")
    assert page.url.endswith("/guichet")
    check(page, "08-guichet")
    assert page.is_checked("#preferred_channel-courrier")
    assert page.is_checked("#channel-guichet")  # how the citizen came: at the counter
    tick(page, "channel-telephone")
    tick(page, "life_event-demenagement")
    page.fill("#description", "Monsieur Martin déménage à Villeurbanne le 1er décembre.")
    page.fill("#given_name", "Jean")
    page.fill("#family_name", "Martin")
    page.fill("#postcode", "69100")
    tick(page, "preferred_channel-telephone")
    page.click("text=Créer le dossier et préparer le récépissé")
    assert error_of(page, "phone").startswith("Un numéro de téléphone est nécessaire")
    assert (
        page.input_value("#description")
        == "Monsieur Martin déménage à Villeurbanne le 1er décembre."
    )
    assert page.is_checked("#life_event-demenagement") and page.is_checked(
        "#preferred_channel-telephone"
    )
    check(page, "09-guichet-erreur")

    page.fill("#phone", "04 78 12 34 56")
    page.click("text=Créer le dossier et préparer le récépissé")
    # A citizen who is phoned also gets every message as a letter: the address is needed.
    assert error_of(page, "street").startswith("Une adresse postale complète")
    assert page.input_value("#phone") == "04 78 12 34 56"
    page.fill("#street", "8 rue Francis de Pressensé")
    page.fill("#city", "Villeurbanne")
    page.click("text=Créer le dossier et préparer le récépissé")
    page.wait_for_url(re.compile(r"/guichet/recu/"))
    file_id = page.url.rsplit("/", 1)[1]
    receipt = page.inner_text(".gu-receipt")
    assert "Jean Martin" in receipt and "Téléphone, au 04 78 12 34 56" in receipt
    name = page.inner_text(".gu-referent-name").strip()
    assert name and "Téléphone direct" in receipt
    # The privacy notice (RGPD art. 13) is printed on the receipt, from the pages' one text.
    assert "Vos données personnelles" in receipt and "CNIL" in receipt
    assert page.is_visible("[data-print]")  # the print button appears with JavaScript
    check(page, "10-recepisse")

    page.emulate_media(media="print")
    assert not page.is_visible(".gu-nav") and not page.is_visible("footer")
    assert page.is_visible(".gu-referent-name") and page.is_visible(".gu-print-only")
    pdf = page.pdf(path=str(SHOTS / "10-recepisse.pdf"), format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000

    # The counter page lists the files this agent registered (intake answers for their token).
    page.emulate_media(media="screen")
    page.goto("/guichet")
    registered = page.inner_text("#enregistres")
    assert file_id in registered and "Jean Martin" in registered and "Au téléphone" in registered
    check(page, "10b-guichet-dossiers-enregistres")


def test_a_referent_works_the_portfolio_and_the_citizen_asks_for_another(
    page, stack, browser, tokens, everywhere
):
    # The CPAM's system is down: the birth file stays open on the référent's desk.
    httpx.post(
        f"{stack.simulator_url('cpam')}/admin/faults",
        json={"agency": "cpam", "mode": "down"},
        verify=client_tls(),
    ).raise_for_status()
    try:
        created = httpx.post(
            f"{stack.intake_url}/api/files",
            json=file_body(
                "naissance", email="awa.diallo@example.fr", given_name="Awa", family_name="Diallo"
            ),
            timeout=10,
            verify=client_tls(),
        ).json()
        file_id = created["file_id"]
        agent = referent_of(stack, everywhere, file_id)

        # Issue 12's attack: any visitor was any agent with ?agent=. Now: Keycloak's login.
        outsider = new_page(browser, stack)
        outsider.goto(f"/referent/dossiers/{file_id}?agent=nobody")
        outsider.wait_for_selector("#username")
        assert "/realms/agents/" in outsider.url and "Diallo" not in outsider.content()
        outsider.context.close()

        sign_in(page, stack, "agents", agent_username(tokens, agent), then="/referent")
        page.wait_for_url(re.compile(r"/referent$"))
        assert "Se déconnecter" in page.inner_text(".gu-nav")
        # The shared stack gives this référent other tests' files too: this file's row says
        # urgent, and the urgent files come first.
        rows = page.locator("#portefeuille tbody tr").all_text_contents()
        [mine] = [row for row in rows if file_id in row]
        assert "Urgent" in mine
        urgent = ["Urgent" in row for row in rows]
        assert urgent == sorted(urgent, reverse=True), rows
        check(page, "12-portefeuille")

        page.click(f"text={file_id}")
        page.wait_for_url(re.compile(f"/referent/dossiers/{file_id}$"))
        assert "J'ai perdu mon emploi" in page.inner_text(".gu-quote")  # the citizen's own words
        assert "Awa Diallo" in page.inner_text("main")
        assert "Transmis, en cours d'examen" in page.text_content("#organismes")
        check(page, "13-dossier-referent")

        # The référent's personal word on the answer, then a message to the citizen.
        page.fill("#personal_word", "   ")
        page.click("button:has-text('Enregistrer mon mot')")
        assert error_of(page, "personal_word") == "Écrivez quelques mots avant d'enregistrer."
        word = "Félicitations pour cette naissance ! Je reste à votre écoute."
        page.fill("#personal_word", word)
        page.click("button:has-text('Enregistrer mon mot')")
        assert "mot personnel est enregistré" in page.inner_text("[role=status]")
        assert page.input_value("#personal_word") == word
        page.fill("#message", "x" * 2001)
        page.click("button:has-text('Envoyer le message')")
        assert error_of(page, "message") == "Le message fait au plus 2000 caractères (ici : 2001)."
        assert page.input_value("#message") == "x" * 2001  # nothing typed is lost
        page.fill("#message", "Bonjour, pouvez-vous m'apporter le certificat d'accouchement ?")
        page.click("button:has-text('Envoyer le message')")
        assert "message est envoyé" in page.inner_text("[role=status]")
        assert "certificat d'accouchement" in page.inner_text("#messages-envoyes")
        assert page.input_value("#message") == ""
        check(page, "13b-dossier-referent-mot-et-message")

        # A form sent without the page's CSRF token (another site's form): refused, in French.
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        forged = httpx.post(
            f"{stack.web_url}/referent/dossiers/{file_id}/messages",
            data={"message": "Message glissé par un autre site"},
            cookies=cookies,
            timeout=10,
            verify=client_tls(),
        )
        assert forged.status_code == 403 and CSRF_REFUSED in forged.text
        page.reload()
        assert "glissé par un autre site" not in page.inner_text("#messages-envoyes")

        # Another agent signed in sees only their own portfolio.
        colleague = "camille.martin" if agent != "AG-75-01-1" else "sophie.lefebvre"
        other = new_page(browser, stack)
        sign_in(other, stack, "agents", colleague, then="/referent")
        assert file_id not in other.inner_text("main")
        other.context.close()

        # The citizen, in their own browser, asks for another référent.
        citizen = browser.new_context(base_url=stack.web_url, locale="fr-FR").new_page()
        open_file(citizen, stack, file_id)
        citizen.fill("#reason", "non")
        citizen.click("button:has-text('Demander un autre référent')")
        assert error_of(citizen, "reason") == "Au moins 5 caractères sont attendus."
        assert citizen.input_value("#reason") == "non"
        check(citizen, "14-changement-erreur")
        citizen.fill("#reason", "Nous ne parvenons pas à nous comprendre.")
        citizen.click("button:has-text('Demander un autre référent')")
        assert "nouveau référent vous sera présenté" in citizen.inner_text("[role=status]")
        reload_until(citizen, "text=Votre nouveau référent est")
        citizen.context.close()
    finally:
        httpx.post(
            f"{stack.simulator_url('cpam')}/admin/faults",
            json={"agency": "cpam", "mode": "ok"},
            verify=client_tls(),
        )


def test_a_supervisor_sees_waiting_files_deadlines_and_the_balance(
    page, stack, tokens, everywhere, agents_back
):
    # Everybody is away today: a new file waits, visibly, for a référent.
    supervisor = tokens.agent("helene.marchand")  # Île-de-France: FS-75-01, FS-93-01
    agents = httpx.get(
        f"{stack.assignment_url}/api/supervision/portfolios",
        headers=supervisor,
        timeout=10,
        verify=client_tls(),
    ).json()["agents"]
    today = Clock().today().isoformat()  # the services' day (Paris), not the machine's (UTC)
    every_agent = httpx.get(
        f"{stack.assignment_url}/api/supervision/portfolios",
        headers=everywhere,
        timeout=10,
        verify=client_tls(),
    ).json()["agents"]
    for a in every_agent:
        httpx.post(
            f"{stack.assignment_url}/api/agents/{a['agent_id']}/absences",
            json={"starts_on": today, "ends_on": today, "reason": "Formation collective"},
            headers=everywhere,
            timeout=10,
            verify=client_tls(),
        ).raise_for_status()
    file_id = httpx.post(
        f"{stack.intake_url}/api/files",
        json=file_body(email="personne.seule@example.fr"),
        timeout=10,
        verify=client_tls(),
    ).json()["file_id"]
    deadline = time.monotonic() + 60
    while file_id not in str(
        httpx.get(
            f"{stack.assignment_url}/api/supervision/waiting",
            headers=supervisor,
            verify=client_tls(),
        ).json()
    ):
        assert time.monotonic() < deadline, "the file never waited"
        time.sleep(0.3)

    sign_in(page, stack, "agents", "helene.marchand", then="/supervision")
    assert page.url.endswith("/supervision")
    waiting = page.text_content("#en-attente")
    assert file_id in waiting and "Urgent" in waiting
    rows = page.locator("#agents tbody tr")
    assert rows.count() == len(agents) and "Absent(e)" in page.inner_text("#agents")
    assert page.locator("figure[aria-labelledby='graphe-titre'] svg g").count() == len(
        [a for a in agents if a["status"] != "parti"]
    )
    # The indicators: the national row and each agency of the waiting file, in tables beside the
    # charts.
    offices = page.inner_text("#indicateurs-espaces")
    assert "France entière" in offices and "Non publié" not in offices
    agencies = page.inner_text("#indicateurs-organismes")
    assert all(
        name in agencies for name in ("France Travail", "Caisse d'allocations familiales (CAF)")
    )
    assert (
        page.locator("h3 + figure.gu-chart").count() == 2
    )  # a chart per level, each before its table
    exported = httpx.get(f"{stack.web_url}/indicateurs.csv", timeout=10, verify=client_tls())
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    assert (
        exported.text.startswith("niveau;identifiant;libelle;publie;")
        and "France entière" in exported.text
    )
    check(page, "15-supervision")
