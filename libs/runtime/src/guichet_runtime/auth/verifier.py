"""Standard OpenID Connect access tokens verified with PyJWT: issuer (one of several trusted),
audience, expiry, and the signature against the issuer's JWKS.

The JWKS is found through the issuer's discovery document, fetched with httpx (async: no
blocking of the event loop), kept for `jwks_max_age_seconds`, and fetched again when a token
names a key id the cache lacks (key rotation), at most once per `jwks_min_refresh_seconds`.
Any provider that follows the standard works: Keycloak in dev, FranceConnect and ProConnect in
production, by configuration only (AuthSettings).

A token verified once is remembered (`TokenVerifier.verified`, at most `REMEMBERED` tokens):
a caller sends the same token with every request of its session, and its signature check
(an RSA verification, base64 and JSON decodings: about 90 µs of CPU) was made again for each
of them. A remembered token is taken again without those only while it has
not expired (its `exp` plus the leeway, as PyJWT reads it) and while its issuer's current
keys still hold the very key that verified it: a JWKS fetched again (rotation, its maximum
age) or a key withdrawn sends it through the whole verification again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx
import jwt

from guichet_runtime.auth.principal import IssuerKind, Principal, principal_from_claims
from guichet_runtime.auth.settings import AuthSettings
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.tls_context import client_tls

log = logging.getLogger(__name__)

#: RFC 6750: tells the client to come back with a (valid) bearer token.
CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def refused_token(message: str) -> Refused:
    return Refused(RefusalKind.UNAUTHENTICATED, message, headers=CHALLENGE)


def provider_unavailable() -> Refused:
    return Refused(
        RefusalKind.UNAVAILABLE,
        "Le service d'identification ne répond pas ; réessayez dans un instant.",
    )


class IssuerKeys:
    """One issuer's signing keys: discovery document, then JWKS, cached, refreshed with a floor."""

    def __init__(
        self,
        issuer: str,
        *,
        min_refresh: float,
        max_age: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.min_refresh = min_refresh
        self.max_age = max_age
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.fetches = 0  # JWKS fetches made (observability, tests)
        self._jwks_uri: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        response = await client.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url}: a JSON object was expected")
        return body

    async def _refresh(self) -> None:
        self._tried_at = self.clock()
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self.transport, verify=client_tls()
        ) as client:
            if self._jwks_uri is None:
                discovery = await self._get_json(
                    client, f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
                )
                if discovery.get("issuer") != self.issuer:
                    raise ValueError(f"discovery of {self.issuer} names {discovery.get('issuer')}")
                self._jwks_uri = str(discovery["jwks_uri"])
            jwks = await self._get_json(client, self._jwks_uri)
        self.fetches += 1
        keys: dict[str, jwt.PyJWK] = {}
        for data in jwks.get("keys", []):
            if data.get("use", "sig") != "sig" or "kid" not in data:
                continue
            try:
                keys[str(data["kid"])] = jwt.PyJWK(data)
            except jwt.PyJWTError:  # an algorithm we do not support: not ours to use
                continue
        self._keys = keys
        self._fetched_at = self.clock()

    def _stale(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at > self.max_age

    def _may_retry(self) -> bool:
        return self._tried_at is None or self.clock() - self._tried_at >= self.min_refresh

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key `kid` (or the only one when the token names none), or None."""
        async with self._lock:
            if self._stale() and self._may_retry():
                await self._refresh_or_keep()
            found = self._pick(kid)
            if found is None and self._may_retry():
                log.info("unknown key id %s from %s: fetching its JWKS again", kid, self.issuer)
                await self._refresh_or_keep()
                found = self._pick(kid)
            return found

    async def _refresh_or_keep(self) -> None:
        """Refresh; on failure keep the keys we have, and fail only when we have none."""
        try:
            await self._refresh()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("cannot fetch the JWKS of %s: %s", self.issuer, exc)
            if not self._keys:
                raise provider_unavailable() from exc

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None


#: Tokens remembered once verified (a few kilobytes each: a few megabytes at most).
REMEMBERED = 1024


class Verified(NamedTuple):
    """A token that passed the whole verification, and what its reuse depends on."""

    principal: Principal
    issuer: str
    kid: str | None
    key: jwt.PyJWK
    #: From this instant (seconds since the epoch) PyJWT refuses it: `exp` + leeway.
    expires_at: float


class TokenVerifier:
    """Verifies bearer tokens of the trusted issuers for one audience; returns the principal."""

    def __init__(
        self,
        issuers: Mapping[str, IssuerKind],
        audience: str,
        *,
        algorithms: list[str] | None = None,
        leeway: float = 10,
        min_refresh: float = 30,
        max_age: float = 3600,
        timeout: float = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not issuers:
            raise ValueError("no trusted issuer: set OIDC_ISSUERS")
        if not audience:
            raise ValueError("no audience: set OIDC_AUDIENCE")
        self.issuers = dict(issuers)
        self.audience = audience
        self.algorithms = algorithms or ["RS256", "PS256", "ES256"]
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError("only asymmetric signature algorithms are accepted")
        self.leeway = leeway
        self.keys = {
            iss: IssuerKeys(
                iss,
                min_refresh=min_refresh,
                max_age=max_age,
                timeout=timeout,
                transport=transport,
                clock=clock,
            )
            for iss in self.issuers
        }
        self.verified: dict[str, Verified] = {}

    @classmethod
    def from_settings(cls, settings: AuthSettings | None = None) -> TokenVerifier:
        s = settings or AuthSettings()
        return cls(
            s.issuers,
            s.audience or "",
            algorithms=s.algorithms,
            leeway=s.leeway_seconds,
            min_refresh=s.jwks_min_refresh_seconds,
            max_age=s.jwks_max_age_seconds,
            timeout=s.http_timeout_seconds,
        )

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; `Refused` (401, French message) otherwise."""
        known = self.verified.get(token)
        if known is not None:
            if await self._still_valid(known):
                return known.principal
            self.verified.pop(token, None)  # another request may have dropped it meanwhile
        try:
            # Header and claims read in one parse, only to choose the issuer and the key.
            unverified_token = jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = unverified_token["header"], unverified_token["payload"]
        except jwt.PyJWTError as exc:
            raise refused_token("Jeton d'accès illisible.") from exc
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            raise refused_token("Jeton d'accès d'un émetteur non reconnu.")
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise refused_token("Jeton d'accès signé d'un algorithme non accepté.")
        kid = header.get("kid")
        key = await self.keys[issuer].key(kid if isinstance(kid, str) else None)
        if key is None:
            raise refused_token("Jeton d'accès signé d'une clé inconnue.")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise refused_token("Votre session a expiré : reconnectez-vous.") from exc
        except jwt.InvalidAudienceError as exc:
            raise refused_token("Ce jeton d'accès n'est pas destiné à ce service.") from exc
        except jwt.InvalidSignatureError as exc:
            raise refused_token("Signature du jeton d'accès invalide.") from exc
        except jwt.PyJWTError as exc:
            raise refused_token("Jeton d'accès invalide.") from exc
        principal = principal_from_claims(claims, self.issuers[issuer])
        self._remember(
            token,
            Verified(
                principal,
                issuer,
                kid if isinstance(kid, str) else None,
                key,
                float(claims["exp"]) + self.leeway,
            ),
        )
        return principal

    async def _still_valid(self, known: Verified) -> bool:
        """A remembered token may be taken again: not expired, and the key that verified it
        is still the one its issuer's current keys give for its key id."""
        if time.time() >= known.expires_at:  # the clock PyJWT reads `exp` against
            return False
        return await self.keys[known.issuer].key(known.kid) is known.key

    def _remember(self, token: str, verified: Verified) -> None:
        if len(self.verified) >= REMEMBERED:  # the oldest remembered token goes first
            del self.verified[next(iter(self.verified))]
        self.verified[token] = verified
