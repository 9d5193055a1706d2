"""What every page reaches through FastAPI dependencies: the settings, the backend client,
the renderer and the agent in front of the screen; and the two answers pages share (a
redirect after POST, a message shown once on the next page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from web.backend import Backend
from web.pages import Renderer
from web.settings import WebSettings


def get_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def get_renderer(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.renderer
    return renderer


def current_agent(request: Request) -> str | None:
    """TEMPORARY seam until agents sign in (a later issue brings real authentication):
    the `X-Guichet-Agent` header, else `?agent=` (remembered in the session), else the
    agent picked on /agent. Replace this one dependency with the authenticated identity."""
    agent = request.headers.get("x-guichet-agent") or request.query_params.get("agent")
    if agent:
        request.session["agent"] = agent
        return agent
    agent_in_session: str | None = request.session.get("agent")
    return agent_in_session


Settings = Annotated[WebSettings, Depends(get_settings)]
BackendClient = Annotated[Backend, Depends(get_backend)]
Render = Annotated[Renderer, Depends(get_renderer)]
Agent = Annotated[str | None, Depends(current_agent)]


def redirect(url: str) -> RedirectResponse:
    """POST then redirect: the browser's back button never sends a form twice."""
    return RedirectResponse(url, status_code=303)


def flash(request: Request, message: str, kind: str = "success") -> None:
    """A message shown once, on the next page rendered for this browser."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})
