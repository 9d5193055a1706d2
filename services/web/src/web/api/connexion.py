"""Signing in and out: the provider's login page (agents: ProConnect, citizens with an account:
FranceConnect; Keycloak in development), back here with a code, then the page asked for; and
signing out, here and at the provider."""

from __future__ import annotations

import logging

from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.policy import Policy
from web.api.deps import LoginClient, Render, flash, page, redirect
from web.login import Audience
from web.sessions import session_control

log = logging.getLogger(__name__)

router = APIRouter()

UNAVAILABLE = "La connexion n'est pas disponible pour le moment : réessayez plus tard."
FAILED = "La connexion n'a pas abouti : recommencez."
WELCOME = {
    Audience.AGENTS: "Vous êtes connecté(e) à l'espace des agents.",
    Audience.CITIZENS: "Vous êtes connecté(e) : vos dossiers s'ouvrent sans code.",
}
DEFAULT_NEXT = {Audience.AGENTS: "/referent", Audience.CITIZENS: "/"}


def local(url: str, default: str) -> str:
    """Only a path of this site comes after the login (no open redirect)."""
    return url if url.startswith("/") and not url.startswith(("//", "/\\")) else default


@router.get(
    "/connexion/{audience}", response_class=HTMLResponse, dependencies=[page(Policy.PUBLIC)]
)
async def login(
    request: Request,
    audience: Audience,
    login: LoginClient,
    render: Render,
    suite: str = "",
) -> Response:
    if not login.available(audience):
        return render(
            request, "error.html", {"title": "Connexion", "message": UNAVAILABLE}, status_code=503
        )
    request.session["login_next"] = local(suite, DEFAULT_NEXT[audience])
    return await login.start(request, audience)


@router.get(
    "/connexion/{audience}/retour",
    response_class=HTMLResponse,
    dependencies=[page(Policy.PUBLIC)],
)
async def login_done(
    request: Request,
    audience: Audience,
    login: LoginClient,
    render: Render,
) -> Response:
    if not login.available(audience):
        return render(
            request, "error.html", {"title": "Connexion", "message": UNAVAILABLE}, status_code=503
        )
    try:
        signed_in = await login.finish(request, audience)
    except OAuthError as refused:
        log.info("login at %s refused: %s", audience.value, refused.error)
        return render(
            request, "error.html", {"title": "Connexion", "message": FAILED}, status_code=400
        )
    session = request.session
    next_url = local(str(session.pop("login_next", "")), DEFAULT_NEXT[audience])
    for stale in [k for k in session if k.startswith("_state_")]:
        session.pop(stale)
    session["login"] = signed_in
    session_control(request).rotate = True  # a new id once signed in: no session fixation
    flash(request, WELCOME[audience])
    return redirect(next_url)


@router.post("/deconnexion", dependencies=[page(Policy.PUBLIC)])
async def sign_out(
    request: Request, login: LoginClient, _: object = page(Policy.PUBLIC)
) -> Response:
    """Ends the session here (the row is deleted) and at the provider when signed in."""
    signed_in = request.session.get("login")
    session_control(request).end = True
    request.session.clear()
    if signed_in:
        end_session = await login.end_session_url(request, signed_in)
        if end_session:
            return redirect(end_session)
    return redirect("/")
