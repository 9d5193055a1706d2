"""Token verification (guichet_runtime.auth) against an in-process fake provider
(tests.unit.tokens: RSA keys made there, discovery and JWKS served by an httpx mock
transport). The same checks run against the real Keycloak in tests/devstack/test_keycloak.py."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from guichet_runtime.auth import (
    AuthSettings,
    IssuerKind,
    Principal,
    PrincipalKind,
    Role,
    TokenVerifier,
    current_principal,
    install_token_verifier,
    optional_principal,
)
from guichet_runtime.auth import verifier as verifier_module
from guichet_runtime.refusals import RefusalKind, Refused, install_refusals
from tests.unit.tokens import AGENTS, CITIZENS, FakeProvider, verifier_for


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


async def refusal(verifier: TokenVerifier, token: str) -> Refused:
    with pytest.raises(Refused) as caught:
        await verifier.verify(token)
    return caught.value


async def test_citizen_token_gives_a_citizen(provider):
    principal = await verifier_for(provider).verify(
        provider.sign(
            given_name="Marie",
            family_name="Dupont",
            email="marie@example.fr",
            roles=["referent"],
            agency="caf",
        )
    )
    assert principal.kind is PrincipalKind.CITIZEN
    assert (principal.subject, principal.issuer) == ("user-1", CITIZENS)
    assert (principal.name, principal.email) == ("Marie Dupont", "marie@example.fr")
    # A citizens' issuer never makes an agent or an agency, whatever the token says.
    assert principal.roles == frozenset() and principal.agency is None


async def test_agent_token_carries_roles_and_directory_ids(provider):
    principal = await verifier_for(provider).verify(
        provider.sign(
            AGENTS,
            roles=["superviseur", "offline_access"],
            agent_id="SUP-IDF",
            offices=["FS-75-01", "FS-93-01"],
            azp="web",
        )
    )
    assert principal.kind is PrincipalKind.AGENT
    assert principal.roles == {Role.SUPERVISEUR}
    assert principal.agent_id == "SUP-IDF"
    assert principal.supervises("FS-93-01") and not principal.supervises("FS-69-01")
    assert principal.client_id == "web"


async def test_keycloak_realm_access_roles_are_read_when_no_flat_claim(provider):
    principal = await verifier_for(provider).verify(
        provider.sign(AGENTS, realm_access={"roles": ["referent", "default-roles-agents"]})
    )
    assert principal.roles == {Role.REFERENT}


async def test_agency_service_account(provider):
    principal = await verifier_for(provider).verify(
        provider.sign(AGENTS, agency="caf", azp="adapter-caf", roles=["superviseur"])
    )
    assert principal.kind is PrincipalKind.AGENCY
    assert (principal.agency, principal.client_id) == ("caf", "adapter-caf")
    assert principal.roles == frozenset()


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "assignment"}, "n'est pas destiné à ce service"),
        ({"iss": "https://elsewhere.test/realms/citoyens"}, "émetteur non reconnu"),
        ({"exp": int(time.time()) - 60}, "expiré"),
        ({"sub": None}, "invalide"),
    ],
)
async def test_refused_claims(provider, claims, message):
    token = (
        provider.sign(**claims)
        if "iss" not in claims
        else jwt.encode(
            {
                "iss": claims["iss"],
                "sub": "x",
                "aud": "intake",
                "exp": int(time.time()) + 60,
                "iat": int(time.time()),
            },
            provider.keys[CITIZENS][0][1],
            algorithm="RS256",
        )
    )
    refused = await refusal(verifier_for(provider), token)
    assert refused.kind is RefusalKind.UNAUTHENTICATED and refused.status == 401
    assert message in refused.message
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


async def test_expiry_has_a_small_leeway(provider):
    token = provider.sign(exp=int(time.time()) - 3)
    assert (await verifier_for(provider, leeway=10).verify(token)).subject == "user-1"
    assert "expiré" in (await refusal(verifier_for(provider, leeway=0), token)).message


async def test_tampered_signature_and_unsigned_tokens_are_refused(provider):
    verifier = verifier_for(provider)
    header, _payload, signature = provider.sign().split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps(
            {
                **jwt.decode(provider.sign(), options={"verify_signature": False}),
                "sub": "someone-else",
            }
        ).encode()
    ).decode()
    assert (
        "Signature" in (await refusal(verifier, f"{header}.{forged_payload}.{signature}")).message
    )
    unsigned = jwt.encode(
        {
            "iss": CITIZENS,
            "sub": "x",
            "aud": "intake",
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
        },
        None,
        algorithm="none",
    )
    assert "algorithme" in (await refusal(verifier, unsigned)).message
    hmac = jwt.encode(
        {
            "iss": CITIZENS,
            "sub": "x",
            "aud": "intake",
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
        },
        "a-secret-long-enough-for-hs256-0123456789",
        algorithm="HS256",
    )
    assert "algorithme" in (await refusal(verifier, hmac)).message
    assert "illisible" in (await refusal(verifier, "not-a-jwt")).message


async def test_key_rotation_refetches_the_jwks_with_a_floor(provider):
    now = [1000.0]
    verifier = verifier_for(provider, min_refresh=30, clock=lambda: now[0])
    await verifier.verify(provider.sign())
    assert provider.jwks_fetches == 1
    await verifier.verify(provider.sign())
    assert provider.jwks_fetches == 1  # cached

    now[0] += 31
    provider.rotate(CITIZENS)
    assert (await verifier.verify(provider.sign())).subject == "user-1"  # unknown kid: refetched
    assert provider.jwks_fetches == 2

    # Forged key ids right after: no refetch within the floor, and refused.
    for _ in range(5):
        assert "clé inconnue" in (await refusal(verifier, provider.sign(kid="forged"))).message
    assert provider.jwks_fetches == 2
    now[0] += 31
    await refusal(verifier, provider.sign(kid="forged"))
    assert provider.jwks_fetches == 3


async def test_jwks_expires_after_max_age(provider):
    now = [0.0]
    verifier = verifier_for(provider, max_age=3600, clock=lambda: now[0])
    await verifier.verify(provider.sign())
    now[0] += 3601
    await verifier.verify(provider.sign())
    assert provider.jwks_fetches == 2


async def test_provider_down_is_unavailable_but_cached_keys_still_serve(provider):
    now = [0.0]
    provider.down = True
    verifier = verifier_for(provider, clock=lambda: now[0])
    assert (await refusal(verifier, provider.sign())).kind is RefusalKind.UNAVAILABLE
    provider.down = False
    now[0] += 60
    await verifier.verify(provider.sign())
    provider.down = True
    now[0] += 7200  # stale, refetch fails: the keys we have still verify
    assert (await verifier.verify(provider.sign())).subject == "user-1"


def counted_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature PyJWT checks from now on (the real check, counted)."""
    checked: list[str] = []
    real_decode = jwt.decode

    def decode(token: str, *args: object, **kwargs: object) -> object:
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return checked


async def test_a_token_verified_once_is_not_verified_again(provider, monkeypatch):
    signature_checks = counted_signature_checks(monkeypatch)
    verifier = verifier_for(provider)
    token = provider.sign(sub="marie")
    first = await verifier.verify(token)
    again = await verifier.verify(token)
    assert again == first and again.subject == "marie"
    assert len(signature_checks) == 1
    assert (await verifier.verify(provider.sign(sub="paul"))).subject == "paul"  # another token
    assert len(signature_checks) == 2


async def test_a_remembered_token_is_refused_once_it_expires():
    provider = FakeProvider()
    verifier = verifier_for(provider, leeway=0)
    expires = int(time.time()) + 1
    token = provider.sign(exp=expires)
    assert (await verifier.verify(token)).subject == "user-1"
    await asyncio.sleep(expires - time.time() + 0.01)  # PyJWT refuses it from `exp` on
    assert "expiré" in (await refusal(verifier, token)).message
    assert token not in verifier.verified


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(provider):
    now = [0.0]
    verifier = verifier_for(provider, max_age=3600, clock=lambda: now[0])
    token = provider.sign()
    assert (await verifier.verify(token)).subject == "user-1"
    provider.rotate(CITIZENS)
    del provider.keys[CITIZENS][0]  # the key that signed it, withdrawn from the JWKS
    assert (await verifier.verify(token)).subject == "user-1"  # the JWKS not fetched again yet
    now[0] += 3601
    assert "clé inconnue" in (await refusal(verifier, token)).message
    assert provider.jwks_fetches == 2


async def test_a_jwks_fetched_again_sends_a_remembered_token_through_the_whole_check(
    provider, monkeypatch
):
    now = [0.0]
    verifier = verifier_for(provider, max_age=3600, clock=lambda: now[0])
    token = provider.sign()
    await verifier.verify(token)
    signature_checks = counted_signature_checks(monkeypatch)
    now[0] += 3601  # the same keys, fetched again: new key objects
    assert (await verifier.verify(token)).subject == "user-1"
    assert len(signature_checks) == 1 and provider.jwks_fetches == 2


async def test_the_remembered_tokens_are_bounded_the_oldest_dropped_first(provider, monkeypatch):
    monkeypatch.setattr(verifier_module, "REMEMBERED", 2)
    verifier = verifier_for(provider)
    tokens = [provider.sign(sub=f"citoyen-{i}") for i in range(3)]
    for token in tokens:
        await verifier.verify(token)
    assert list(verifier.verified) == tokens[1:]


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("OIDC_ISSUERS", json.dumps({CITIZENS: "citizen", AGENTS: "agent"}))
    monkeypatch.setenv("OIDC_AUDIENCE", "assignment")
    monkeypatch.setenv("OIDC_LEEWAY_SECONDS", "5")
    verifier = TokenVerifier.from_settings(AuthSettings())
    assert verifier.issuers == {CITIZENS: IssuerKind.CITIZEN, AGENTS: IssuerKind.AGENT}
    assert (verifier.audience, verifier.leeway) == ("assignment", 5)
    with pytest.raises(ValueError, match="OIDC_ISSUERS"):
        TokenVerifier({}, "intake")
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier({CITIZENS: IssuerKind.CITIZEN}, "intake", algorithms=["HS256"])


async def test_fastapi_dependencies(provider):
    app = FastAPI()
    install_refusals(app)
    install_token_verifier(app, verifier_for(provider))

    @app.get("/me")
    async def me(principal: Principal = Depends(current_principal)) -> dict[str, str | None]:
        return {"kind": principal.kind, "subject": principal.subject}

    @app.get("/maybe")
    async def maybe(principal: Principal = Depends(optional_principal)) -> dict[str, str]:
        return {"kind": principal.kind}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        missing = await c.get("/me")
        assert missing.status_code == 401
        assert missing.json()["kind"] == "unauthenticated"
        assert "jeton d'accès manquant" in missing.json()["message"]
        assert missing.headers["www-authenticate"] == "Bearer"
        ok = await c.get("/me", headers={"Authorization": f"Bearer {provider.sign()}"})
        assert ok.json() == {"kind": "citizen", "subject": "user-1"}
        assert (await c.get("/maybe")).json() == {"kind": "anonymous"}
        bad = await c.get("/maybe", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401  # a bad token is never taken as anonymous
        schemes = (await c.get("/openapi.json")).json()["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["scheme"] == "bearer"
