"""One refusal type for every service: the domain says *why* (a kind, a French message,
the field concerned); the runtime's app factory maps the kind to an HTTP status once.

A use case raises `Refused(RefusalKind.CONFLICT, "Vous avez déjà répondu au questionnaire.")`;
no domain or use-case module knows HTTP status codes.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class RefusalKind(StrEnum):
    """Why a request is refused, independent of the protocol."""

    INVALID = "invalid"  # the input breaks a rule
    NOT_FOUND = "not_found"  # no such file, agent, request…
    CONFLICT = "conflict"  # the state forbids it now (already done, already answered…)
    FORBIDDEN = "forbidden"  # not theirs to do
    UNAUTHENTICATED = "unauthenticated"  # who is asking is not proven
    TOO_MANY = "too_many"  # rate or attempt limit reached
    TOO_LARGE = "too_large"  # the payload exceeds a limit
    UNSUPPORTED = "unsupported"  # a media type we do not take
    UNAVAILABLE = "unavailable"  # a dependency is down: try again later
    GONE = "gone"  # it existed and was erased for good (a shredded data key)


#: The one place a refusal becomes an HTTP status.
HTTP_STATUS: dict[RefusalKind, int] = {
    RefusalKind.INVALID: 422,
    RefusalKind.NOT_FOUND: 404,
    RefusalKind.CONFLICT: 409,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.UNAUTHENTICATED: 401,
    RefusalKind.TOO_MANY: 429,
    RefusalKind.TOO_LARGE: 413,
    RefusalKind.UNSUPPORTED: 415,
    RefusalKind.UNAVAILABLE: 503,
    RefusalKind.GONE: 410,
}


class Refused(Exception):
    """A request the rules refuse, said in French for the citizen or the agent.

    `field` names the input concerned (for forms: the message goes next to it);
    `errors` lists several `{field, message}` at once (e.g. a directory import, row by row);
    `headers` are protocol hints the caller may need (e.g. Retry-After).
    """

    def __init__(
        self,
        kind: RefusalKind,
        message: str,
        field: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.errors = errors or ([{"field": field, "message": message}] if field else [])
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.kind]

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"message": self.message, "kind": self.kind.value}
        if self.field:
            out["field"] = self.field
        if self.errors:
            out["errors"] = self.errors
        return out


def refusal_response(refused: Refused) -> JSONResponse:
    return JSONResponse(status_code=refused.status, content=refused.body(), headers=refused.headers)


def install_refusals(app: FastAPI) -> None:
    """Every `Refused` raised under a route answers with its status and French body."""

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return refusal_response(exc)
