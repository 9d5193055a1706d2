"""What every audience shares: the home page, health, static files, and the error pages: a
service refuses or cannot be reached, a page needs a login, a form's CSRF token is wrong."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from guichet_runtime.auth.principal import PrincipalKind
from guichet_runtime.policy import Policy
from guichet_runtime.refusals import Refused
from web.api.deps import LoginNeeded, Render, Settings, get_renderer, page, redirect
from web.backend import BackendError
from web.login import Audience
from web.settings import WebSettings

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/health", include_in_schema=False, dependencies=[page(Policy.OPS)])
async def health(request: Request, response: Response, settings: Settings) -> dict[str, str]:
    if not request.app.state.ready:
        response.status_code = 503
        return {"status": "starting"}
    return {"status": "ok", "service": settings.service_name}


@router.get("/", response_class=HTMLResponse, dependencies=[page(Policy.PUBLIC)])
async def home(request: Request, render: Render) -> HTMLResponse:
    return render(request, "home.html", {})


def mount_static(app: FastAPI, settings: WebSettings) -> None:
    """The DSFR (installed by `npm ci`) and the pages' own CSS and script."""
    dsfr = settings.assets_dir / "@gouvfr" / "dsfr" / "dist"
    if not dsfr.is_dir():
        raise RuntimeError(f"DSFR introuvable dans {dsfr} : lancez `make setup` (npm ci).")
    app.mount("/dsfr", StaticFiles(directory=dsfr), name="dsfr")
    app.mount("/static", StaticFiles(packages=[("web", "static")]), name="static")


NO_ACCESS = "Vous n'avez pas accès à cette page."


async def backend_refused(request: Request, exc: Exception) -> Response:
    """A refusal no page handles itself: its French message on the error page; a service
    that wants a login (401) sends an agent back to it."""
    refused = exc if isinstance(exc, BackendError) else BackendError(503, str(exc))
    visitor = getattr(request.state, "visitor", None)
    if refused.status == 401 and visitor is not None and not visitor.is_anonymous:
        request.session.pop("login", None)
        return await login_needed(request, LoginNeeded(_audience(visitor), request.url.path))
    title = "Accès refusé" if refused.status in (401, 403) else "Un problème est survenu"
    return get_renderer(request)(
        request,
        "error.html",
        {"title": title, "message": refused.message},
        status_code=refused.status if refused.status in (401, 403, 404, 409) else 503,
    )


def _audience(visitor: object) -> Audience:
    kind = getattr(visitor, "kind", None)
    return Audience.CITIZENS if kind is PrincipalKind.CITIZEN else Audience.AGENTS


async def login_needed(request: Request, exc: Exception) -> Response:
    """A page of the agents' space without an agent signed in: to the login, then back."""
    assert isinstance(exc, LoginNeeded)
    return redirect(f"/connexion/{exc.audience.value}?{urlencode({'suite': exc.next_url})}")


async def refused_here(request: Request, exc: Exception) -> HTMLResponse:
    """The pages' own refusals (a form's CSRF token, a supervisors' page): the message."""
    assert isinstance(exc, Refused)
    return get_renderer(request)(
        request,
        "error.html",
        {"title": "Accès refusé", "message": exc.message or NO_ACCESS},
        status_code=exc.status,
    )


async def backend_unreachable(request: Request, exc: Exception) -> HTMLResponse:
    log.warning("backend unreachable: %r", exc)
    return get_renderer(request)(
        request,
        "error.html",
        {
            "title": "Service momentanément indisponible",
            "message": "Nous ne pouvons pas afficher cette page pour le moment. "
            "Réessayez dans quelques minutes.",
        },
        status_code=503,
    )


def add_error_pages(app: FastAPI) -> None:
    app.add_exception_handler(BackendError, backend_refused)
    app.add_exception_handler(LoginNeeded, login_needed)
    app.add_exception_handler(Refused, refused_here)
    app.add_exception_handler(httpx.HTTPError, backend_unreachable)
