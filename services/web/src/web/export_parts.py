""" "Mes données", gathered: intake's export, and for each of its files the parts assignment
and notification hold about the citizen (docs/data-protection.md, "The citizen's rights").
Each service decides on the citizen's own credentials (forwarded by `web.backend`); a part
that cannot be had is said, in French, in the download (`parties_manquantes`, and on the
PDF's first page): it is never left out silently."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from web.backend import Backend, BackendError

#: The services holding a part, and the part's name as the citizen reads it.
PARTS = {
    "assignment": "attribution du référent (référents successifs et motifs, demandes aux "
    "organismes et leurs réponses, rendez-vous avec le référent)",
    "notification": "messages envoyés (canal, adresse, objet, texte, dates)",
}


def missing(service: str, file_id: str, why: str) -> str:
    return (
        f"La partie « {PARTS[service]} » du dossier {file_id} n'a pas pu être obtenue : {why} "
        "Ce document est donc incomplet ; téléchargez-le de nouveau dans quelques instants."
    )


async def part_of(backend: Backend, service: str, file_id: str) -> dict[str, Any] | str:
    """The part, or why it is missing (in French)."""
    try:
        return await backend.export_part(service, file_id)
    except BackendError as refused:
        return missing(service, file_id, refused.message)
    except httpx.HTTPError:
        return missing(service, file_id, "le service qui la conserve ne répond pas.")


async def gathered(backend: Backend, export: dict[str, Any]) -> dict[str, Any]:
    """`export` (intake's) with each file's `parties` and the parts missing, if any (a
    copy: `export` is left as it is)."""
    files = [dict(f) for f in export.get("files", [])]
    asked = [(f, service) for f in files for service in PARTS]
    answers = await asyncio.gather(*(part_of(backend, s, f["file_id"]) for f, s in asked))
    lacking: list[str] = []
    for (file, service), answer in zip(asked, answers, strict=True):
        parts = file.setdefault("parties", {})  # the copy's
        if isinstance(answer, str):
            parts[service] = None
            lacking.append(answer)
        else:
            parts[service] = answer
    return {**export, "files": files, "parties_manquantes": lacking}
