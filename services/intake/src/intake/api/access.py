"""The facts intake's routes hand to their access policy (`requires(Policy.X, facts)`,
guichet_runtime.policy; who may do what: docs/security.md)."""

from __future__ import annotations

from fastapi import Request

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Facts, Subject
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.service import Runtime
from intake.domain import PROOF_EXPIRED, unknown_file
from intake.views import access as views

#: The header carrying the proof `POST …/access-codes/verify` returned: it lets a citizen
#: without an account act on that one file (FILE_CITIZEN, FILE_READ) for 30 minutes.
ACCESS_PROOF_HEADER = "X-Access-Proof"


class Access:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def file(self, proof_needed: str | None = None) -> Facts:
        """The parties of the route's `{file_id}` and whether the request's X-Access-Proof
        opens it. An anonymous caller whose proof does not hold is told so (401); without
        a proof, `proof_needed` (when given) says what to do (401)."""

        async def facts(request: Request, principal: Principal) -> Subject:
            file_id = request.path_params["file_id"]
            proof = request.headers.get(ACCESS_PROOF_HEADER)
            subject = await views.file_subject(self.runtime.uow(), file_id, proof)
            if principal.is_anonymous and not subject.proved:
                if proof:
                    raise Refused(RefusalKind.UNAUTHENTICATED, PROOF_EXPIRED)
                if proof_needed:
                    raise Refused(RefusalKind.UNAUTHENTICATED, proof_needed)
            elif not subject.exists:
                raise unknown_file(file_id)
            return subject

        return facts

    def agent(self) -> Facts:
        """The route's `{agent_id}` and their office, as far as intake knows it."""

        async def facts(request: Request, principal: Principal) -> Subject:
            return await views.agent_subject(self.runtime.uow(), request.path_params["agent_id"])

        return facts
