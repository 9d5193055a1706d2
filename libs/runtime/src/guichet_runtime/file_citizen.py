"""Who a file's citizen is, for a service that does not keep it (assignment, notification):
the facts of their FILE_CITIZEN routes (the citizen's export parts, docs/data-protection.md).

Intake alone holds the link between a file and its citizen (the account's `sub`) and the
one-time codes' proofs. Rather than copy the `sub` into more events and tables (and still be
unable to check a proof), the asking service hands intake the caller's own credentials — the
verified token it was given, the `X-Access-Proof` of the file — at
`GET /api/files/{file_id}/citizen` (FILE_CITIZEN at intake). Intake's answer is the fact:
200, the caller is the file's citizen; its 401, 403 or 404 is passed on as it is, in French.
Nothing about the citizen is copied; intake unreachable is a 503 (the pages say the part is
missing, they do not leave it out silently).
"""

from __future__ import annotations

import httpx
from fastapi import Request

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Facts, FileParties, Subject
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.tls_context import client_tls

#: The route at intake that answers "is the caller this file's citizen?".
CITIZEN_CHECK = "/api/files/{file_id}/citizen"
#: The credentials passed on to intake, as the caller sent them.
FORWARDED = ("Authorization", "X-Access-Proof")
INTAKE_UNREACHABLE = (
    "La vérification de votre accès au dossier est momentanément indisponible. Réessayez dans "
    "quelques instants."
)
PASSED_ON = {
    401: RefusalKind.UNAUTHENTICATED,
    403: RefusalKind.FORBIDDEN,
    404: RefusalKind.NOT_FOUND,
}


class FileCitizenCheck:
    """FILE_CITIZEN's facts from intake (`intake_url`); `client` is the service's own."""

    def __init__(self, intake_url: str | None, client: httpx.AsyncClient | None = None) -> None:
        self.intake_url = (intake_url or "").rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=5.0, verify=client_tls())

    async def close(self) -> None:
        await self.client.aclose()

    def facts(self) -> Facts:
        async def facts(request: Request, principal: Principal) -> Subject:
            file_id = request.path_params["file_id"]
            return await self.subject(file_id, request, principal)

        return facts

    async def subject(self, file_id: str, request: Request, principal: Principal) -> Subject:
        if not self.intake_url:
            raise Refused(RefusalKind.UNAVAILABLE, INTAKE_UNREACHABLE)
        headers = {name: value for name in FORWARDED if (value := request.headers.get(name))}
        try:
            answer = await self.client.get(
                self.intake_url + CITIZEN_CHECK.format(file_id=file_id), headers=headers
            )
        except httpx.HTTPError as exc:
            raise Refused(RefusalKind.UNAVAILABLE, INTAKE_UNREACHABLE) from exc
        if answer.status_code == 200:
            # Intake verified it: the logged-in file's citizen, or the holder of its proof.
            parties = FileParties(file_id=file_id, citizen_subject=principal.subject)
            return Subject(file=parties, proved=principal.is_anonymous)
        kind = PASSED_ON.get(answer.status_code)
        if kind is None:
            raise Refused(RefusalKind.UNAVAILABLE, INTAKE_UNREACHABLE)
        try:
            message = str(answer.json()["message"])
        except (ValueError, KeyError, TypeError):
            message = INTAKE_UNREACHABLE
        headers_out = {"WWW-Authenticate": "Bearer"} if answer.status_code == 401 else None
        raise Refused(kind, message, headers=headers_out)
