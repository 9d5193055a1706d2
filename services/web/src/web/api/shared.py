"""What every audience shares: the home page, health, static files, the error pages when a
service refuses or cannot be reached, and the agent picker (the temporary identity seam)."""

from __future__ import annotations

import logging

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from web.api.deps import Agent, BackendClient, Render, Settings, get_renderer, redirect
from web.backend import BackendError
from web.settings import WebSettings

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/health", include_in_schema=False)
async def health(request: Request, response: Response, settings: Settings) -> dict[str, str]:
    if not request.app.state.ready:
        response.status_code = 503
        return {"status": "starting"}
    return {"status": "ok", "service": settings.service_name}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, render: Render) -> HTMLResponse:
    return render(request, "home.html", {})


@router.get("/agent", response_class=HTMLResponse)
async def choose_agent(
    request: Request, backend: BackendClient, render: Render, agent: Agent, suite: str = "/referent"
) -> HTMLResponse:
    directory = await backend.portfolios()
    return render(
        request,
        "agent_choose.html",
        {"agents": directory["agents"], "next": suite, "errors": {}, "current": agent},
    )


@router.post("/agent")
async def chose_agent(request: Request, backend: BackendClient, render: Render) -> Response:
    form = await request.form()
    agent = str(form.get("agent", ""))
    next_url = str(form.get("next", "/referent"))
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = "/referent"
    directory = await backend.portfolios()
    if agent not in {a["agent_id"] for a in directory["agents"]}:
        return render(
            request,
            "agent_choose.html",
            {
                "agents": directory["agents"],
                "next": next_url,
                "current": None,
                "errors": {"agent": "Choisissez votre nom dans la liste."},
            },
            status_code=422,
        )
    request.session["agent"] = agent
    return redirect(next_url)


def mount_static(app: FastAPI, settings: WebSettings) -> None:
    """The DSFR (installed by `npm ci`) and the pages' own CSS and script."""
    dsfr = settings.assets_dir / "@gouvfr" / "dsfr" / "dist"
    if not dsfr.is_dir():
        raise RuntimeError(f"DSFR introuvable dans {dsfr} : lancez `make setup` (npm ci).")
    app.mount("/dsfr", StaticFiles(directory=dsfr), name="dsfr")
    app.mount("/static", StaticFiles(packages=[("web", "static")]), name="static")


async def backend_refused(request: Request, exc: Exception) -> HTMLResponse:
    """A refusal no page handles itself: its French message on the error page."""
    refused = exc if isinstance(exc, BackendError) else BackendError(503, str(exc))
    return get_renderer(request)(
        request,
        "error.html",
        {"title": "Un problème est survenu", "message": refused.message},
        status_code=refused.status if refused.status in (404, 409) else 503,
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
    app.add_exception_handler(httpx.HTTPError, backend_unreachable)
