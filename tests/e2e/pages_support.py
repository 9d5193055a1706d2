"""What the pages' end-to-end tests share (their fixtures are in tests/e2e/conftest.py): the
paths of Chromium and axe-core, and the steps a person takes (check a page with axe, read an
error, open a file with its code, sign in on Keycloak's page, open a page of their own)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from itsdangerous import TimestampSigner

from devstack.keycloak import DEV_PASSWORD
from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from shared_models import topics
from tests.e2e.auth_support import REALM_AGENTS
from tests.e2e.support import read_topic

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "services/web/node_modules/axe-core/axe.min.js"
SHOTS = ROOT / "var/screenshots"


def check(page, name: str) -> None:
    """No serious or critical accessibility violation (axe-core), and a screenshot. axe is
    evaluated through the browser's devtools protocol: the pages' CSP refuses any script
    added to them (an inline script tag would be blocked, as it should)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert not serious, f"{name}: " + "\n".join(serious)
    assert not getattr(page, "csp_blocked", []), f"{name}: CSP blocked {page.csp_blocked}"


def error_of(page, field: str) -> str:
    """The message shown next to a field (the one its aria-describedby points to)."""
    described = page.get_attribute(f"#{field}", "aria-describedby") or page.get_attribute(
        f"#{field}", "aria-labelledby"
    )
    assert described and f"{field}-messages" in described
    return page.inner_text(f"#{field}-messages").strip()


def tick(page, input_id: str) -> None:
    """Tick a radio button or checkbox by its label, as a person does (DSFR draws the box)."""
    page.click(f"label[for='{input_id}']")
    assert page.is_checked(f"#{input_id}")


def access_code(stack: Stack, file_id: str, timeout: float = 30) -> str:
    """The one-time code the citizen received by email (read from the SMTP sink)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = httpx.get(f"{stack.smtp_http_url}/messages", timeout=5, verify=client_tls()).json()
        codes = [
            m for m in mails if m["subject"] == f"Votre dossier {file_id} : votre code d'accès"
        ]
        if codes:
            return re.search(r"^\s+(\d{6})\s*$", codes[-1]["text"], re.MULTILINE).group(1)
        time.sleep(0.3)
    raise AssertionError(f"no access code email for {file_id}")


def access_code_records(stack: Stack, file_id: str) -> list[dict]:
    """The events of `access-codes.issued` about a file, read from the broker (in a thread
    of its own: Playwright's loop runs in this one); one record per event id (the relay may
    publish a record twice, at least once, under one event id)."""
    topic = stack.namespace + topics.ACCESS_CODES
    reading = read_topic(
        stack.kafka_bootstrap, topic, lambda rs: any(r["key"] == file_id for r in rs)
    )
    with ThreadPoolExecutor(1) as pool:
        records = pool.submit(asyncio.run, reading).result()
    return list({r["body"]["event_id"]: r for r in records if r["key"] == file_id}.values())


def referent_named_in_mail(stack: Stack, file_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = httpx.get(f"{stack.smtp_http_url}/messages", timeout=5, verify=client_tls()).json()
        subjects = [
            m["subject"]
            for m in mails
            if m["subject"].startswith(f"Votre dossier {file_id} : ")
            and m["subject"].endswith("est votre référent")
        ]
        if subjects:
            return (
                subjects[0]
                .removeprefix(f"Votre dossier {file_id} : ")
                .removesuffix(" est votre référent")
            )
        time.sleep(0.3)
    raise AssertionError(f"no email naming the référent of {file_id}")


def open_file(page, stack: Stack, file_id: str) -> None:
    page.goto(f"/suivi?dossier={file_id}")
    page.click("text=Recevoir un code")
    page.wait_for_url(re.compile(r"/suivi/code"))
    page.fill("#code", access_code(stack, file_id))
    page.click("text=Ouvrir mon dossier")
    page.wait_for_url(re.compile(f"/dossier/{file_id}$"))


def reload_until(page, selector: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while page.locator(selector).count() == 0:
        assert time.monotonic() < deadline, f"{selector} never appeared on {page.url}"
        time.sleep(0.5)
        page.reload()


# -- signing in (issue 12: the pages' login at the real Keycloak) ------------------------------

DIRECTORY = ROOT / "services/assignment/src/assignment/data/directory.json"
#: The old default key of the signed session cookie (issue 12's forged-cookie attack).
OLD_DEFAULT_KEY = "dev-only-secret-change-me"
CSRF_REFUSED = "Ce formulaire a expiré ou ne vient pas de ce site"


def every_office() -> list[str]:
    """Every office of the seeded directory (a supervisor of all of them sees every file)."""
    return [o["office_id"] for o in json.loads(DIRECTORY.read_text())["offices"]]


def sign_in(page, stack: Stack, audience: str, username: str, then: str = "") -> None:
    """Sign in through the provider's own login page (Keycloak's form), as a person does:
    from the page asked for (`then`, which sends to the login) or from the login link."""
    page.goto(then or f"/connexion/{audience}")
    page.wait_for_selector("#username")
    assert "/realms/" in page.url and not page.url.startswith(stack.web_url), page.url
    page.fill("#username", username)
    page.fill("#password", DEV_PASSWORD)
    page.click("#kc-login")
    page.wait_for_url(re.compile("^" + re.escape(stack.web_url)))


def agent_username(tokens, agent_id: str) -> str:
    """The Keycloak user of a directory agent (created on first use, with their agent_id)."""
    tokens.agent_id(agent_id)
    return REALM_AGENTS.get(agent_id) or "agent-" + agent_id.lower()


def forged_session_cookie(file_id: str, key: str = OLD_DEFAULT_KEY) -> str:
    """A cookie as the old signed-cookie sessions were made: this file opened with a code."""
    session = {"files": {file_id: time.time() + 3600}, "agent": "AG-75-01-1"}
    data = base64.b64encode(json.dumps(session).encode())
    return TimestampSigner(key).sign(data).decode()


def referent_of(stack: Stack, headers: dict[str, str], file_id: str, timeout: float = 60) -> str:
    """The référent assignment named for a file (asked as one of the file's agents)."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(
            f"{stack.assignment_url}/api/files/{file_id}/assignment",
            headers=headers,
            timeout=10,
            verify=client_tls(),
        )
        if found.status_code == 200 and found.json().get("referent_id"):
            return str(found.json()["referent_id"])
        assert time.monotonic() < deadline, f"no référent assigned to {file_id}: {found.text}"
        time.sleep(0.3)


def new_page(browser, stack):
    """A page in a browser context of its own (its own cookies: another person)."""
    context = browser.new_context(
        base_url=stack.web_url, locale="fr-FR", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    # What the pages' Content-Security-Policy blocked (check() requires none).
    page.csp_blocked = []
    page.on(
        "console",
        lambda m: page.csp_blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page
