"""Signing in with OpenID Connect (authorization code + PKCE S256), with Authlib's Starlette
client: agents at their provider (ProConnect; Keycloak realm `agents` in dev), citizens with
an account at theirs (FranceConnect; realm `citoyens`). Each provider is configured by its
issuer URL (discovery), a client id and a secret, so replacing Keycloak is configuration.

The session keeps the login (`session["login"]`): the ID token's claims (checked by Authlib:
signature from the provider's keys, issuer, audience, nonce), the access token forwarded to
intake and assignment, the refresh token (used when the access token expires) and the ID
token (a hint for the provider's end-session endpoint)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from authlib.oauth2.rfc6749.errors import OAuth2Error
from starlette.requests import Request

from guichet_runtime.auth.principal import IssuerKind, Principal, principal_from_claims
from guichet_runtime.secrets import MissingSecret
from web.settings import WebSettings

log = logging.getLogger(__name__)

#: An access token this close to its expiry is refreshed before it is forwarded.
REFRESH_MARGIN_SECONDS = 30
#: The claims of the ID token kept in the session (what the pages and policies read).
KEPT_CLAIMS = (
    "sub",
    "iss",
    "name",
    "given_name",
    "family_name",
    "email",
    "agent_id",
    "offices",
    "roles",
)


class Audience(StrEnum):
    """Who signs in where; the value is the path segment of /connexion/<value>."""

    AGENTS = "agents"
    CITIZENS = "citoyens"


ISSUER_KIND = {Audience.AGENTS: IssuerKind.AGENT, Audience.CITIZENS: IssuerKind.CITIZEN}


@dataclass(frozen=True)
class Provider:
    audience: Audience
    issuer: str
    client_id: str
    client_secret: str


def providers(settings: WebSettings) -> dict[Audience, Provider]:
    """The configured providers; a provider without its client secret stops the start."""
    found: dict[Audience, Provider] = {}
    for audience, issuer, client_id, secret in (
        (
            Audience.AGENTS,
            settings.login_agents_issuer,
            settings.login_agents_client_id,
            settings.login_agents_client_secret,
        ),
        (
            Audience.CITIZENS,
            settings.login_citizens_issuer,
            settings.login_citizens_client_id,
            settings.login_citizens_client_secret,
        ),
    ):
        if not issuer:
            continue
        if secret is None or not secret.get_secret_value():
            raise MissingSecret(
                f"LOGIN_{audience.name}_CLIENT_SECRET is required with LOGIN_{audience.name}"
                "_ISSUER: give it from the secret store."
            )
        found[audience] = Provider(
            audience, issuer.rstrip("/"), client_id, secret.get_secret_value()
        )
    return found


class Login:
    """The OIDC clients of the configured providers."""

    def __init__(
        self, settings: WebSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.providers = providers(settings)
        # Tests answer for the provider with their own transport; None: the network.
        self.transport = transport
        self.public_url = settings.public_url.rstrip("/") if settings.public_url else None
        self.oauth = OAuth()
        for audience, provider in self.providers.items():
            self.oauth.register(
                name=audience.value,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                server_metadata_url=f"{provider.issuer}/.well-known/openid-configuration",
                client_kwargs={
                    "scope": "openid profile email",
                    "code_challenge_method": "S256",
                    **({"transport": transport} if transport else {}),
                },
            )

    def available(self, audience: Audience) -> bool:
        return audience in self.providers

    def client(self, audience: Audience) -> StarletteOAuth2App:
        app: StarletteOAuth2App = self.oauth.create_client(audience.value)
        return app

    def origins(self) -> list[str]:
        """The providers' origins (the pages' forms may lead there: signing out)."""
        return sorted({origin(p.issuer) for p in self.providers.values()})

    def url(self, request: Request, path: str) -> str:
        if self.public_url:
            return self.public_url + path
        return str(request.base_url).rstrip("/") + path

    async def start(self, request: Request, audience: Audience) -> Any:
        """The redirect to the provider's login page (state, nonce and PKCE verifier kept in
        the session by Authlib)."""
        return await self.client(audience).authorize_redirect(
            request, self.url(request, f"/connexion/{audience.value}/retour"), ui_locales="fr"
        )

    async def finish(self, request: Request, audience: Audience) -> dict[str, Any]:
        """The login, from the provider's answer (raises authlib's OAuthError if refused)."""
        token = await self.client(audience).authorize_access_token(request)
        claims = token.get("userinfo") or {}
        return {
            "kind": audience.value,
            "claims": {k: claims[k] for k in KEPT_CLAIMS if k in claims},
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "expires_at": float(token.get("expires_at") or time.time() + 60),
            "id_token": token.get("id_token"),
        }

    async def refreshed(self, login: dict[str, Any]) -> dict[str, Any] | None:
        """The login with a fresh access token when it is about to expire (None: it cannot
        be refreshed any more, e.g. the provider's session ended: sign in again)."""
        if login["expires_at"] - REFRESH_MARGIN_SECONDS > time.time():
            return login
        audience = Audience(login["kind"])
        if not login.get("refresh_token") or audience not in self.providers:
            return None
        metadata = await self.client(audience).load_server_metadata()
        provider = self.providers[audience]
        try:
            async with AsyncOAuth2Client(
                provider.client_id, provider.client_secret, transport=self.transport
            ) as client:
                token = await client.refresh_token(
                    metadata["token_endpoint"], refresh_token=login["refresh_token"]
                )
        except (OAuth2Error, OAuthError) as refused:
            log.info("refresh refused by %s: %s", audience.value, refused.error)
            return None
        except httpx.HTTPError as unreachable:
            # The provider is away: the token goes as it is, and the service judges it.
            log.warning("refresh at %s impossible: %r", audience.value, unreachable)
            return login
        return {
            **login,
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token") or login["refresh_token"],
            "expires_at": float(token.get("expires_at") or time.time() + 60),
            "id_token": token.get("id_token") or login.get("id_token"),
        }

    async def end_session_url(self, request: Request, login: dict[str, Any]) -> str | None:
        """The provider's end-session URL (RP-initiated logout), back to the home page."""
        audience = Audience(login["kind"])
        if audience not in self.providers:
            return None
        try:
            done = await self.client(audience).create_logout_url(
                post_logout_redirect_uri=self.url(request, "/"),
                id_token_hint=login.get("id_token"),
            )
        except RuntimeError:  # no end_session_endpoint: the local session ends alone
            return None
        return str(done["url"])


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def principal_of(login: dict[str, Any] | None) -> Principal:
    """Who signed in, from the ID token's claims kept in the session."""
    if not login:
        return Principal.anonymous()
    return principal_from_claims(login["claims"], ISSUER_KIND[Audience(login["kind"])])
