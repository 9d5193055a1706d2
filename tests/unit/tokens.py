"""Access tokens for the unit tests: an in-process OpenID provider (RSA keys made here,
discovery and JWKS served by an httpx mock transport) and the callers of issue 12's matrix
(citizens, front desk, référents, supervisors, the directory administrator, agencies), each
as the `Authorization` header a request sends. The same checks run against the real
Keycloak in the end-to-end tests (tests/e2e/auth_support.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from guichet_runtime.auth import IssuerKind, TokenVerifier, install_token_verifier

CITIZENS = "https://idp.test/realms/citoyens"
AGENTS = "https://idp.test/realms/agents"
AUDIENCES = ["intake", "assignment"]
#: The offices of the default directory (services/assignment/…/data/directory.json).
NETWORK = (
    "FS-75-01",
    "FS-93-01",
    "FS-69-01",
    "FS-13-01",
    "FS-59-01",
    "FS-33-01",
    "FS-31-01",
    "FS-44-01",
    "FS-23-01",
    "FS-2A-01",
    "FS-974-01",
)


class FakeProvider:
    """Discovery + JWKS of two issuers; `rotate()` adds a key; counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, list[tuple[str, rsa.RSAPrivateKey]]] = {CITIZENS: [], AGENTS: []}
        self.jwks_fetches = 0
        self.down = False
        for issuer in self.keys:
            self.rotate(issuer)

    def rotate(self, issuer: str) -> str:
        kid = f"key-{len(self.keys[issuer]) + 1}"
        self.keys[issuer].append(
            (kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        )
        return kid

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        url = str(request.url)
        for issuer, keys in self.keys.items():
            if url == f"{issuer}/.well-known/openid-configuration":
                return httpx.Response(200, json={"issuer": issuer, "jwks_uri": f"{issuer}/certs"})
            if url == f"{issuer}/certs":
                self.jwks_fetches += 1
                jwks = []
                for kid, key in keys:
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                    jwks.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
                return httpx.Response(200, json={"keys": jwks})
        return httpx.Response(404)

    def sign(self, issuer: str = CITIZENS, *, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": issuer,
            "sub": "user-1",
            "aud": AUDIENCES,
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        key_id, key = self.keys[issuer][-1]
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid or key_id})


def verifier_for(provider: FakeProvider, audience: str = "intake", **options: Any) -> TokenVerifier:
    return TokenVerifier(
        {CITIZENS: IssuerKind.CITIZEN, AGENTS: IssuerKind.AGENT},
        audience,
        transport=httpx.MockTransport(provider.handler),
        **options,
    )


class Tokens:
    """The callers, as `Authorization` headers signed by `provider`."""

    def __init__(self, provider: FakeProvider | None = None) -> None:
        self.provider = provider or FakeProvider()

    def install(self, app: FastAPI, audience: str = "intake") -> FastAPI:
        """Have `app` verify this provider's tokens."""
        install_token_verifier(app, verifier_for(self.provider, audience))
        return app

    def bearer(self, issuer: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.provider.sign(issuer, **claims)}"}

    def citizen(self, sub: str = "citoyen-marie") -> dict[str, str]:
        return self.bearer(CITIZENS, sub=sub, given_name="Marie", family_name="Dupont")

    def agent(
        self,
        agent_id: str,
        *roles: str,
        offices: Iterable[str] = (),
    ) -> dict[str, str]:
        """An agent with `roles` (référent when none is given)."""
        return self.bearer(
            AGENTS,
            sub=f"sub-{agent_id}",
            agent_id=agent_id,
            roles=list(roles or ("referent",)),
            offices=list(offices) or None,
        )

    def guichet(self, agent_id: str = "AG-93-01-9") -> dict[str, str]:
        """A front-desk agent (France Services counter, phone line, mail room)."""
        return self.agent(agent_id, "guichet")

    def supervisor_of(self, *offices: str, agent_id: str = "SUP-1") -> dict[str, str]:
        return self.agent(agent_id, "superviseur", offices=offices)

    def admin(self, agent_id: str = "ADM-1") -> dict[str, str]:
        return self.agent(agent_id, "admin-annuaire")

    def network_head(self, agent_id: str = "SUP-RESEAU") -> dict[str, str]:
        """The directory administrator who also supervises every office of the default
        directory: passes every route of assignment but a référent's own (tests of the
        directory's moves, whose subject is not who may make them)."""
        return self.agent(agent_id, "admin-annuaire", "superviseur", offices=NETWORK)

    def agency(self, agency: str = "caf") -> dict[str, str]:
        return self.bearer(AGENTS, sub=f"service-account-{agency}", agency=agency)
