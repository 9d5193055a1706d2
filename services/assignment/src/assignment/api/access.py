"""The facts assignment's routes hand to their access policy (`requires(Policy.X, facts)`,
guichet_runtime.policy; who may do what: docs/security.md), from assignment's own tables."""

from __future__ import annotations

from fastapi import Request

from assignment import views
from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Facts, Subject
from guichet_runtime.service import Runtime


class Access:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def file(self) -> Facts:
        """The route's `{file_id}`: its référent (or the agent covering them) and office.
        An unknown file is a 404 to an identified caller (401 to an anonymous one)."""

        async def facts(request: Request, principal: Principal) -> Subject:
            file_id = request.path_params["file_id"]
            found = await views.file_subject(self.runtime.uow(), file_id)
            if found is None and not principal.is_anonymous:
                raise views.no_file(file_id)
            return found or Subject(exists=False)

        return facts

    def agent(self) -> Facts:
        """The route's `{agent_id}` and their office (404 for an unknown agent, as above)."""

        async def facts(request: Request, principal: Principal) -> Subject:
            agent_id = request.path_params["agent_id"]
            found = await views.agent_subject(self.runtime.uow(), agent_id)
            if found is None and not principal.is_anonymous:
                raise views.no_agent(agent_id)
            return found or Subject(exists=False)

        return facts
