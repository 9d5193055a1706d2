"""What every page reaches through FastAPI dependencies: the settings, the backend client,
the renderer, the login; each page's guard (`page(Policy.X)`: its declared policy, the CSRF
check of its forms, who is in front of the screen); and the two answers pages share (a
redirect after POST, a message shown once on the next page)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from guichet_runtime.policy import Policy
from guichet_runtime.refusals import RefusalKind, Refused
from web.backend import CREDENTIALS, Backend
from web.login import Audience, Login, principal_of
from web.pages import Renderer
from web.security import check_csrf
from web.settings import WebSettings

#: Pages of the agents' space: a login at the agents' provider is needed (else: to it);
#: the citizens' own pages (Policy.CITIZEN) need a login at the citizens' provider.
AGENTS_SPACE = frozenset({Policy.AGENT, Policy.SUPERVISOR})
SUPERVISORS_ONLY = "Cette page est réservée aux superviseurs."
SIGNED_OUT = "Votre session a pris fin : connectez-vous de nouveau."


class LoginNeeded(Exception):
    """The page needs someone signed in at `audience`'s provider; `next_url` comes after."""

    def __init__(self, audience: Audience, next_url: str) -> None:
        super().__init__(audience.value)
        self.audience = audience
        self.next_url = next_url


def get_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def get_renderer(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.renderer
    return renderer


def get_login(request: Request) -> Login:
    login: Login = request.app.state.login
    return login


async def identify(request: Request) -> Principal:
    """Who is in front of the screen, from the session; their access token (refreshed when it
    expires) and their codes' live proofs are forwarded with every call made for them."""
    session = request.session
    login = session.get("login")
    if login:
        fresh = await get_login(request).refreshed(login)
        if fresh is None:
            session.pop("login", None)
            flash(request, SIGNED_OUT, kind="warning")
        elif fresh is not login:
            session["login"] = fresh
        login = fresh
    credentials = CREDENTIALS.get()
    if credentials is not None:
        credentials.access_token = login["access_token"] if login else None
        opened = session.get("files", {})
        credentials.proofs = {
            file_id: proof
            for file_id, proof in session.get("proofs", {}).items()
            if isinstance(proof, str) and opened.get(file_id, 0) > time.time()
        }
    return principal_of(login)


def page(policy: Policy) -> Any:
    """The page's policy, declared (the services decide on the forwarded credentials) and
    applied where the pages can: a form's CSRF token, a login for the agents' space."""

    async def guard(request: Request) -> Principal:
        await check_csrf(request)
        visitor = await identify(request)
        next_url = request.url.path if request.method == "GET" else "/"
        if policy in AGENTS_SPACE and visitor.kind is not PrincipalKind.AGENT:
            raise LoginNeeded(Audience.AGENTS, next_url)
        if policy is Policy.CITIZEN and visitor.kind is not PrincipalKind.CITIZEN:
            raise LoginNeeded(Audience.CITIZENS, next_url)
        if policy is Policy.SUPERVISOR and not visitor.has_role(Role.SUPERVISEUR):
            raise Refused(RefusalKind.FORBIDDEN, SUPERVISORS_ONLY)
        request.state.visitor = visitor
        return visitor

    guard.__guichet_policy__ = policy  # type: ignore[attr-defined]
    return Depends(guard)


Settings = Annotated[WebSettings, Depends(get_settings)]
BackendClient = Annotated[Backend, Depends(get_backend)]
Render = Annotated[Renderer, Depends(get_renderer)]
LoginClient = Annotated[Login, Depends(get_login)]
#: The agent signed in, for a page of the agents' space (declares Policy.AGENT).
AgentVisitor = Annotated[Principal, page(Policy.AGENT)]


def redirect(url: str) -> RedirectResponse:
    """POST then redirect: the browser's back button never sends a form twice."""
    return RedirectResponse(url, status_code=303)


def flash(request: Request, message: str, kind: str = "success") -> None:
    """A message shown once, on the next page rendered for this browser."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})
