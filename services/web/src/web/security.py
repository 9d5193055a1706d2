"""The browser's side of security: a CSRF token on every form, and the security headers on
every response (CSP without inline scripts, no framing, no referrer leaving the site, no
MIME sniffing, no caching of pages that may hold personal data)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request

from guichet_runtime.refusals import RefusalKind, Refused

#: The form field (and header, for scripts) carrying the token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_REFUSED = (
    "Ce formulaire a expiré ou ne vient pas de ce site : rien n'a été envoyé. "
    "Rechargez la page et recommencez."
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use (a form rendered)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Every POST carries the session's token (hidden field, or the header): else 403."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = str((await request.form()).get(CSRF_FIELD) or "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused(RefusalKind.FORBIDDEN, CSRF_REFUSED)


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """Scripts, styles and images from the site only (no inline script); never in a frame;
    forms post here (and lead to the identity providers when signing out)."""
    form_action = " ".join(["'self'", *form_targets])
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action {form_action}",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """Plain ASGI: the headers go on every response, error pages and static files too."""

    def __init__(self, app: Any, csp: str) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": csp,
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin",
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(("/dsfr/", "/static/"))

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_wrapper)
