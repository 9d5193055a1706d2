"""The thread on the citizen's file page (web): the messages with who answers, the form
with its key; a refused attachment comes back next to the files with the text kept and the
same key, a message sent says who answers."""

from __future__ import annotations

import copy
import re

from fastapi.testclient import TestClient

from tests.unit.test_web_citizen_file import (  # noqa: F401  (the `settings` fixture)
    FILE_ID,
    VIEW,
    FakeBackend,
    form_token,
    open_with_code,
    settings,
)
from web.api.deps import get_backend
from web.backend import BackendError
from web.bootstrap import bootstrap

SENT = "Votre message est transmis à votre référent, Sophie Lefebvre, qui vous répondra."


class ThreadBackend(FakeBackend):
    def __init__(self, view: dict) -> None:
        super().__init__(view)
        self.sent: list[tuple[str, list, str]] = []

    async def file_thread(self, file_id: str) -> list[dict]:
        return [
            {
                "message_id": "m-1",
                "from": "citoyen",
                "author": None,
                "to": "Karim Benali",
                "covering_for": "Sophie Lefebvre",
                "text": "Voici mon avis d'imposition.",
                "at": "2026-11-30T09:00:00+00:00",
                "attachments": [{"attachment_id": "a-1", "filename": "avis.pdf"}],
                "channel": None,
                "answer_due_on": "2026-12-02",
                "answered_at": None,
            },
            {
                "message_id": "m-0",
                "from": "citoyen",
                "author": None,
                "to": "Sophie Lefebvre",
                "covering_for": None,
                "text": "Un message plus ancien, déjà répondu.",
                "at": "2026-11-23T09:00:00+00:00",
                "attachments": [],
                "channel": "courriel",  # a reply to the référent's email
                "answer_due_on": "2026-11-25",
                "answered_at": "2026-11-24T10:00:00+00:00",
            },
        ]

    async def write_to_referent(self, file_id, text, attachments, key) -> dict:
        self.sent.append((text, attachments, key))
        if any(name.endswith(".txt") for name, _, _ in attachments):
            raise BackendError(
                415, "Format non accepté : envoyez un PDF, une image JPEG ou PNG.", None
            )
        return {"message": SENT}


def test_the_thread_and_its_form_refusal_next_to_the_files_then_sent(settings):  # noqa: F811
    backend = ThreadBackend(copy.deepcopy(VIEW))
    app = bootstrap(settings)
    app.dependency_overrides[get_backend] = lambda: backend
    with TestClient(app) as client:
        page = open_with_code(client)
        thread = page.text.split('id="fil-messages"')[1].split("</ol>")[0]
        assert "Vous, à Karim Benali (qui remplace Sophie Lefebvre) :" in thread
        assert "Vous, à Sophie Lefebvre, par courriel :" in thread
        assert f'href="/dossier/{FILE_ID}/pieces-jointes/a-1"' in thread
        # The answer-time promise, under the unanswered message only.
        assert thread.count("Réponse promise au plus tard le") == 1
        assert "Réponse promise au plus tard le 2 décembre 2026." in thread
        key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
        token = form_token(client, f"/dossier/{FILE_ID}")
        form = {"text": "Et celui-ci ?", "idempotency_key": key, "csrf_token": token}

        refused = client.post(
            f"/dossier/{FILE_ID}/messages",
            data=form,
            files={"fichier": ("note.txt", b"bonjour", "text/plain")},
        )
        sent = client.post(
            f"/dossier/{FILE_ID}/messages",
            data=form,
            files={"fichier": ("avis.pdf", b"%PDF-1.4", "application/pdf")},
        )

    assert refused.status_code == 415
    messages = refused.text.split('id="fichier-messages"')[1].split("</div>")[0]
    assert "Format non accepté" in messages
    assert ">Et celui-ci ?</textarea>" in refused.text and f'value="{key}"' in refused.text
    assert sent.status_code == 200 and SENT in sent.text
    assert [(t, [a[0] for a in files], k) for t, files, k in backend.sent] == [
        ("Et celui-ci ?", ["note.txt"], key),
        ("Et celui-ci ?", ["avis.pdf"], key),
    ]
