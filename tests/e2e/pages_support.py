"""What the pages' end-to-end tests share: the paths of Chromium and axe-core, and the
steps a person takes (check a page with axe, read an error, open a file with its code)."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from devstack.stack import Stack
from shared_models import topics
from tests.e2e.support import read_topic

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "services/web/node_modules/axe-core/axe.min.js"
SHOTS = ROOT / "var/screenshots"


def check(page, name: str) -> None:
    """No serious or critical accessibility violation (axe-core), and a screenshot."""
    page.add_script_tag(path=str(AXE))
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
        mails = httpx.get(f"{stack.smtp_http_url}/messages", timeout=5).json()
        codes = [
            m for m in mails if m["subject"] == f"Votre dossier {file_id} : votre code d'accès"
        ]
        if codes:
            return re.search(r"^\s+(\d{6})\s*$", codes[-1]["text"], re.MULTILINE).group(1)
        time.sleep(0.3)
    raise AssertionError(f"no access code email for {file_id}")


def access_code_records(stack: Stack, file_id: str) -> list[dict]:
    """The records of `access-codes.issued` about a file, read from the broker (in a thread
    of its own: Playwright's loop runs in this one)."""
    topic = stack.namespace + topics.ACCESS_CODES
    reading = read_topic(
        stack.kafka_bootstrap, topic, lambda rs: any(r["key"] == file_id for r in rs)
    )
    with ThreadPoolExecutor(1) as pool:
        records = pool.submit(asyncio.run, reading).result()
    return [r for r in records if r["key"] == file_id]


def referent_named_in_mail(stack: Stack, file_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = httpx.get(f"{stack.smtp_http_url}/messages", timeout=5).json()
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
