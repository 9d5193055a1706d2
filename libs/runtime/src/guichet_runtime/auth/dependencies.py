"""FastAPI dependencies: the caller's principal from `Authorization: Bearer <token>`.

    from guichet_runtime.auth import Principal, current_principal

    @router.get("/api/agents/me/portfolio")
    async def portfolio(principal: Principal = Depends(current_principal)) -> ...

The verifier is built from the environment (AuthSettings) on first use and kept on
`app.state.token_verifier`; `install_token_verifier` sets one explicitly (tests, bootstrap).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from guichet_runtime.auth.principal import Principal
from guichet_runtime.auth.verifier import CHALLENGE, TokenVerifier
from guichet_runtime.refusals import RefusalKind, Refused

#: Declares the bearer scheme in the OpenAPI document; never refuses by itself.
bearer_scheme = HTTPBearer(auto_error=False, description="Jeton d'accès OpenID Connect.")


def install_token_verifier(app: FastAPI, verifier: TokenVerifier) -> None:
    app.state.token_verifier = verifier


def token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier, built from OIDC_* settings the first time a request needs it."""
    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier.from_settings()
        install_token_verifier(request.app, verifier)
    assert isinstance(verifier, TokenVerifier)
    return verifier


async def optional_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """The verified caller, or the anonymous principal when no bearer token is sent.

    A token that is sent but invalid is refused (401), never taken as anonymous.
    """
    if credentials is None:
        return Principal.anonymous()
    return await token_verifier(request).verify(credentials.credentials)


async def current_principal(
    principal: Principal = Depends(optional_principal),
) -> Principal:
    """The verified caller; 401 with a French message when there is none."""
    if principal.is_anonymous:
        raise Refused(
            RefusalKind.UNAUTHENTICATED,
            "Identifiez-vous pour continuer : jeton d'accès manquant.",
            headers={"WWW-Authenticate": CHALLENGE["WWW-Authenticate"].split(" ")[0]},
        )
    return principal
