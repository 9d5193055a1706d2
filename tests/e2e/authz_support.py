"""One real stack with Keycloak and the scenario the authorisation tests call routes on
(tests/e2e/test_authorization_matrix.py, tests/e2e/test_attacks.py).

The scenario: citizen A (marie.dupont) submits file A logged in, from Paris 18e, so that its
référent is in FS-75-01; the front desk (julien.durand) registers file B at the counter for
citizen B (lucas.bernard); both files get their référent. "Another référent" is Sophie
Lefebvre (AG-93-01-1, FS-93-01); the supervisor of the office is Hélène Marchand (FS-75-01,
FS-93-01), the supervisor of another office Julien Faure (FS-69-01).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from devstack.smtp_sink import read_maildir
from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from tests.e2e.auth_support import Tokens
from tests.e2e.support import LAUNCHER

#: Paris 18e: the nearest office is FS-75-01. "Déménagement" concerns the CAF, the DGFiP and
#: the CPAM: in FS-75-01 only Camille Martin is trained for all three, so the référent is a
#: référent (not the front-desk agent, who is also in the directory).
POSTCODE = "75018"
LIFE_EVENT = "demenagement"
OTHER_REFERENT = "AG-93-01-1"  # Sophie Lefebvre, FS-93-01
#: An agent of FS-75-01 without files: the target of absences, return and departure.
ABSENT_AGENT = "AG-75-01-2"  # Nadia Bernard
FRONT_DESK = "AG-75-01-3"  # Julien Durand

MARIE = {
    "given_name": "Marie",
    "family_name": "Dupont",
    "email": "marie.dupont@example.fr",
    "phone": "06 12 34 56 78",
    "postcode": POSTCODE,
    "preferred_channel": "email",
}
LUCAS = {
    "given_name": "Lucas",
    "family_name": "Bernard",
    "email": "lucas.bernard@example.fr",
    "phone": "06 98 76 54 32",
    "postcode": POSTCODE,
    "preferred_channel": "email",
}


def file_body(citizen: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "life_event": LIFE_EVENT,
        "citizen": dict(citizen),
        "description": "Je déménage à Paris le mois prochain : que dois-je faire ?",
        "urgent": False,
    }
    if channel:
        body["channel"] = channel
    return body


def start_stack(tmp: Path, kafka_bootstrap: str, keycloak) -> Stack:
    stack = Stack(
        tmp,
        kafka_bootstrap,
        namespace=f"authz-{uuid.uuid4().hex[:6]}.",
        oidc_issuers=keycloak.issuers,
        extra_env={"INDICATORS_MIN_FILES": "1", "INDICATORS_CACHE_SECONDS": "0"},
        launcher=LAUNCHER,
    )
    stack.start()
    return stack


def sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


def scalar(stack: Stack, service: str, statement: str, **params: Any) -> Any:
    engine = sa.create_engine(sync_url(stack.database_urls[service]))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(statement), params).scalar()
    finally:
        engine.dispose()


def wait_for(probe, timeout: float = 90, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"not reached within {timeout}s: {what} (last: {last!r})")


#: The document citizen A attaches to a message in the scenario.
ATTACHED_PDF = b"%PDF-1.4\n% avis de la CAF\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Scenario:
    stack: Stack
    tokens: Tokens
    file_a: str = ""
    file_b: str = ""
    referents: dict[str, str] = field(default_factory=dict)  # file id -> référent's agent id
    proof: str = ""  # what citizen A's one-time code for file A gave (X-Access-Proof)
    attachment: str = ""  # a document citizen A attached to a message on file A

    def url(self, service: str) -> str:
        if service == "intake":
            return self.stack.intake_url
        if service == "assignment":
            return self.stack.assignment_url
        return self.stack.adapter_url(service.removeprefix("adapter-"))

    def file(self, name: str | None) -> str:
        return self.file_b if name == "B" else self.file_a

    def headers(self, principal: str, file: str | None = None) -> dict[str, str]:
        """The Authorization header of one of the matrix's principals; "référent" is the
        référent of `file` (A by default)."""
        t = self.tokens
        match principal:
            case "anonymous":
                return {}
            case "code_holder":
                return {"X-Access-Proof": self.proof}
            case "citizen_a":
                return t.citizen("marie.dupont")
            case "citizen_b":
                return t.citizen("lucas.bernard")
            case "front_desk":
                return t.agent("julien.durand")
            case "referent":
                return t.agent_id(self.referents[self.file(file)])
            case "other_referent":
                return t.agent_id(OTHER_REFERENT)
            case "supervisor":
                return t.agent("helene.marchand")
            case "other_supervisor":
                return t.agent("julien.faure")
            case "admin":
                return t.admin()
            case "caf":
                return t.agency("caf")
            case "dgfip":
                return t.agency("dgfip")
        raise KeyError(principal)

    def set_up(self) -> Scenario:
        with httpx.Client(
            base_url=self.stack.intake_url, timeout=15, verify=client_tls()
        ) as intake:
            answer = intake.post(
                "/api/files", json=file_body(MARIE), headers=self.headers("citizen_a")
            )
            assert answer.status_code == 201, answer.text
            self.file_a = answer.json()["file_id"]
            answer = intake.post(
                "/api/files",
                json=file_body(LUCAS, channel="guichet"),
                headers=self.headers("front_desk"),
            )
            assert answer.status_code == 201, answer.text
            self.file_b = answer.json()["file_id"]
            for file_id in (self.file_a, self.file_b):
                self.referents[file_id] = self.referent_known(file_id)
            assert FRONT_DESK not in self.referents.values(), self.referents
            # The citizen thanks their référent: intake then knows the référent's office
            # (a supervisor of it may read the thanks, AGENT_SELF).
            answer = intake.post(
                f"/api/files/{self.file_a}/thanks",
                json={"message": "Merci pour votre aide si rapide."},
                headers=self.headers("citizen_a"),
            )
            assert answer.status_code == 201, answer.text
            # Citizen A writes to the référent with a document: the attachment's route has an
            # object to name.
            answer = intake.post(
                f"/api/files/{self.file_a}/citizen-messages",
                data={"text": "Voici l'avis reçu de la CAF."},
                files={"fichier": ("avis.pdf", ATTACHED_PDF, "application/pdf")},
                headers=self.headers("citizen_a"),
            )
            assert answer.status_code == 201, answer.text
            self.attachment = answer.json()["attachments"][0]["attachment_id"]
            self.proof = self.access_proof(intake, self.file_a)
        return self

    def access_proof(self, intake: httpx.Client, file_id: str) -> str:
        """A one-time code sent to the file's email, read there and verified: the proof."""
        asked = intake.post(f"/api/files/{file_id}/access-codes")
        assert asked.status_code == 202, asked.text
        subject = f"Votre dossier {file_id} : votre code d'accès"

        def code() -> str | None:
            for mail in read_maildir(self.stack.maildir):
                if mail["Subject"] == subject:
                    text = mail.get_body(("plain",)).get_content()
                    found = re.search(r"^\s+(\d{6})\s*$", text, re.MULTILINE)
                    return found.group(1) if found else None
            return None

        typed = wait_for(code, what="the access code by email")
        verified = intake.post(f"/api/files/{file_id}/access-codes/verify", json={"code": typed})
        assert verified.status_code == 200, verified.text
        return verified.json()["proof"]

    def referent_known(self, file_id: str) -> str:
        """The file's référent, once both assignment and intake know it."""
        agent_id = wait_for(
            lambda: scalar(
                self.stack,
                "assignment",
                "SELECT referent_id FROM files WHERE file_id = :f",
                f=file_id,
            ),
            what=f"référent of {file_id}",
        )

        def intake_knows() -> bool:
            card = scalar(
                self.stack, "intake", "SELECT referent FROM files WHERE file_id = :f", f=file_id
            )
            card = json.loads(card) if isinstance(card, str) else card
            return bool(card) and card.get("agent_id") == agent_id

        wait_for(intake_knows, what=f"intake told of the référent of {file_id}")
        return agent_id
