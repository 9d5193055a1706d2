"""The real OpenID Connect provider (Keycloak from Maven Central, devstack.keycloak) and the
services' token verification (guichet_runtime.auth) against it: the realms' users, roles and
clients, and every way a token is refused, key rotation included."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from devstack.cli import app as cli
from devstack.keycloak import REALMS, LocalKeycloak
from devstack.stack import Stack
from guichet_runtime.auth import IssuerKind, PrincipalKind, Role, TokenVerifier
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.tls_context import client_tls

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "services" / "assignment" / "src" / "assignment" / "data" / "directory.json"
AGENCIES = {
    "caf": "adapter-caf",
    "dgfip": "adapter-dgfip",
    "france_travail": "adapter-france-travail",
    "cpam": "adapter-cpam",
    "ants": "adapter-ants",
}

# The very first start on a machine also fetches Keycloak and builds it (minutes on 2 cores).
pytestmark = pytest.mark.timeout(900)
#: Seconds for one answer: a login page rendered for the first time, on a loaded machine, took
#: more than httpx's default 5 s once.
TIMEOUT = 30


def verifier(keycloak: LocalKeycloak, audience: str = "intake", **options: Any) -> TokenVerifier:
    issuers = {iss: IssuerKind(kind) for iss, kind in keycloak.issuers.items()}
    return TokenVerifier(issuers, audience, **options)


async def refused(verifier: TokenVerifier, token: str) -> Refused:
    with pytest.raises(Refused) as caught:
        await verifier.verify(token)
    assert caught.value.kind is RefusalKind.UNAUTHENTICATED
    return caught.value


def agents_realm() -> dict[str, Any]:
    """The agents' realm as `deploy/keycloak/realms/agents.json` declares it."""
    return json.loads((ROOT / "deploy/keycloak/realms/agents.json").read_text(encoding="utf-8"))


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_discovery_of_both_realms(keycloak):
    for realm in REALMS:
        doc = httpx.get(keycloak.discovery_url(realm), timeout=TIMEOUT, verify=client_tls()).json()
        assert doc["issuer"] == keycloak.issuer(realm)
        assert doc["jwks_uri"].startswith(keycloak.issuer(realm))
        assert "S256" in doc["code_challenge_methods_supported"]
        assert "RS256" in doc["id_token_signing_alg_values_supported"]
        keys = httpx.get(doc["jwks_uri"], timeout=TIMEOUT, verify=client_tls()).json()["keys"]
        assert any(k["use"] == "sig" and k["kty"] == "RSA" for k in keys)
    if keycloak.proc is not None:  # started by this run (not the one `make test` shares)
        assert keycloak.started_in is not None
        print(f"keycloak ready in {keycloak.started_in:.1f} s")


async def test_citizen_token_verifies_with_the_right_principal(keycloak):
    check = verifier(keycloak)
    marie = await check.verify(keycloak.password_token("marie.dupont", "citoyens"))
    lucas = await check.verify(keycloak.password_token("lucas.bernard", "citoyens"))
    assert marie.kind is PrincipalKind.CITIZEN
    assert marie.issuer == keycloak.issuer("citoyens")
    assert (marie.name, marie.email) == ("Marie Dupont", "marie.dupont@example.fr")
    # Stable subjects (ids fixed in the realm file), distinct citizens.
    assert marie.subject == str(
        uuid.uuid5(uuid.NAMESPACE_URL, "guichet-unique:citoyens:marie.dupont")
    )
    assert lucas.subject != marie.subject
    assert marie.roles == frozenset() and marie.agent_id is None
    # The same token is for assignment too (the web forwards it to both APIs).
    token = keycloak.password_token("marie.dupont", "citoyens")
    assert (await verifier(keycloak, "assignment").verify(token)).subject == marie.subject


async def test_agent_tokens_carry_roles_agent_id_and_offices(keycloak):
    check = verifier(keycloak, "assignment")
    expected = {
        "julien.durand": ({Role.GUICHET}, "AG-75-01-3", set()),
        "camille.martin": ({Role.REFERENT}, "AG-75-01-1", set()),
        "sophie.lefebvre": ({Role.REFERENT}, "AG-93-01-1", set()),
        "helene.marchand": ({Role.SUPERVISEUR}, "SUP-IDF", {"FS-75-01", "FS-93-01"}),
        "julien.faure": ({Role.SUPERVISEUR}, "SUP-ARA", {"FS-69-01"}),
        "admin.annuaire": ({Role.ADMIN_ANNUAIRE}, None, set()),
    }
    for username, (roles, agent_id, offices) in expected.items():
        principal = await check.verify(keycloak.password_token(username))
        assert principal.kind is PrincipalKind.AGENT, username
        assert (principal.roles, principal.agent_id, principal.offices) == (
            roles,
            agent_id,
            offices,
        ), username
        assert principal.client_id == "guichet-dev"


def test_web_client_takes_loopback_redirects_on_any_port_with_pkce(keycloak):
    """The pages log in with the authorization code flow and PKCE, whatever their port."""
    challenge = base64.urlsafe_b64encode(b"0" * 32).decode().rstrip("=")
    for realm in REALMS:
        auth = f"{keycloak.issuer(realm)}/protocol/openid-connect/auth"
        params = {
            "client_id": "web",
            "response_type": "code",
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        for port in (8003, 41234):
            page = httpx.get(
                auth,
                params={**params, "redirect_uri": f"http://127.0.0.1:{port}/cb"},
                timeout=TIMEOUT,
                verify=client_tls(),
            )
            assert page.status_code == 200 and 'id="kc-form-login"' in page.text, realm
            assert 'lang="fr"' in page.text
        elsewhere = httpx.get(
            auth,
            params={**params, "redirect_uri": "https://attacker.example/cb"},
            timeout=TIMEOUT,
            verify=client_tls(),
        )
        assert elsewhere.status_code == 400
        without_pkce = {k: v for k, v in params.items() if not k.startswith("code_challenge")}
        refused = httpx.get(
            auth,
            params={**without_pkce, "redirect_uri": "http://127.0.0.1:8003/cb"},
            timeout=TIMEOUT,
            verify=client_tls(),
        )
        assert "code_challenge" in refused.headers.get("location", "") + refused.text


def test_test_users_match_the_seeded_directory():
    """agent_id and offices in the agents realm name real agents, supervisors and offices."""
    directory = json.loads(DIRECTORY.read_text(encoding="utf-8"))
    agents = {a["agent_id"]: a for a in directory["agents"]}
    supervisors = {s["supervisor_id"]: s for s in directory["supervisors"]}
    offices = {o["office_id"]: o for o in directory["offices"]}
    realm = agents_realm()
    for user in realm["users"]:
        attributes = user.get("attributes", {})
        [agent_id] = attributes.get("agent_id", [None])
        if "superviseur" in user["realmRoles"]:
            supervisor = supervisors[agent_id]
            assert {offices[o]["departement"] for o in attributes["offices"]} <= set(
                supervisor["departements"]
            )
            assert user["email"] == supervisor["email"]
        elif agent_id is not None:
            assert agents[agent_id]["email"] == user["email"]
            assert "offices" not in attributes


async def test_agency_service_accounts_carry_their_agency(keycloak):
    for agency, client_id in AGENCIES.items():
        token = keycloak.client_token(client_id)
        principal = await verifier(keycloak, client_id).verify(token)
        assert principal.kind is PrincipalKind.AGENCY
        assert (principal.agency, principal.client_id) == (agency, client_id)
        assert principal.roles == frozenset()
    # An agency's token is for its own adapter only.
    message = (
        await refused(verifier(keycloak, "adapter-dgfip"), keycloak.client_token("adapter-caf"))
    ).message
    assert "pas destiné à ce service" in message
    with pytest.raises(RuntimeError, match="401"):
        keycloak.client_token("adapter-caf", secret="wrong")


async def test_wrong_audience_and_wrong_issuer_are_refused(keycloak):
    citizen = keycloak.password_token("marie.dupont", "citoyens")
    # A citizen's token names intake, assignment and notification (their export parts), never
    # an agency's adapter.
    adapter = verifier(keycloak, "adapter-caf")
    assert "pas destiné" in (await refused(adapter, citizen)).message
    only_citizens = TokenVerifier({keycloak.issuer("citoyens"): IssuerKind.CITIZEN}, "intake")
    agent = keycloak.password_token("camille.martin")
    assert "émetteur non reconnu" in (await refused(only_citizens, agent)).message


async def test_expired_token_is_refused(keycloak):
    token = keycloak.password_token("marie.dupont", "citoyens", client_id="guichet-test-court")
    body = claims(token)
    assert body["exp"] - body["iat"] == 2  # the test client's lifespan
    await asyncio.sleep(max(0.0, body["exp"] + 1.5 - time.time()))
    assert "expiré" in (await refused(verifier(keycloak, leeway=0), token)).message
    # A small leeway absorbs clock skew between the provider and the service.
    assert (await verifier(keycloak, leeway=10).verify(token)).kind is PrincipalKind.CITIZEN


async def test_tampered_tokens_are_refused(keycloak):
    check = verifier(keycloak)
    token = keycloak.password_token("lucas.bernard", "citoyens")
    header, payload, signature = token.split(".")
    body = claims(token) | {
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, "guichet-unique:citoyens:marie.dupont"))
    }
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert "Signature" in (await refused(check, f"{header}.{forged}.{signature}")).message
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert "Signature" in (await refused(check, f"{header}.{payload}.{flipped}")).message


def _admin(keycloak: LocalKeycloak) -> dict[str, str]:
    return {"Authorization": f"Bearer {keycloak.admin_token()}"}


@pytest.fixture
def rotating_realm(keycloak: LocalKeycloak) -> Iterator[str]:
    """A copy of the agents' realm under a name of its own, deleted afterwards: its keys
    rotate there, not in the realm the services of the other test runs trust (`make test`
    shares one Keycloak, and a service meeting a new key id within its refresh floor refuses
    the token)."""
    name = f"rotation-{uuid.uuid4().hex[:8]}"
    realm = agents_realm()
    # The users' ids are fixed (their subjects are stable); a realm's users get new ones.
    realm["users"] = [{k: v for k, v in user.items() if k != "id"} for user in realm["users"]]
    created = httpx.post(
        f"{keycloak.url}/admin/realms",
        headers=_admin(keycloak),
        json=realm | {"realm": name},
        timeout=60,
        verify=client_tls(),
    )
    assert created.status_code == 201, created.text
    try:
        yield name
    finally:
        httpx.delete(
            f"{keycloak.url}/admin/realms/{name}",
            headers=_admin(keycloak),
            timeout=60,
            verify=client_tls(),
        )


def _add_realm_key(keycloak: LocalKeycloak, realm: str) -> None:
    """A new RSA signing key with the highest priority, through the admin REST API."""
    admin = _admin(keycloak)
    realm_id = httpx.get(
        f"{keycloak.url}/admin/realms/{realm}", headers=admin, timeout=TIMEOUT, verify=client_tls()
    ).json()["id"]
    response = httpx.post(
        f"{keycloak.url}/admin/realms/{realm}/components",
        headers=admin,
        json={
            "name": f"rotated-{uuid.uuid4().hex[:6]}",
            "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {
                "priority": ["1000"],
                "keySize": ["2048"],
                "active": ["true"],
                "enabled": ["true"],
                "algorithm": ["RS256"],
            },
        },
        timeout=30,
        verify=client_tls(),
    )
    assert response.status_code == 201, response.text


async def test_key_rotation_refreshes_the_jwks(keycloak, rotating_realm):
    issuer = keycloak.issuer(rotating_realm)
    eager = TokenVerifier({issuer: IssuerKind.AGENT}, "assignment", min_refresh=0)
    floored = TokenVerifier({issuer: IssuerKind.AGENT}, "assignment", min_refresh=3600)
    before = keycloak.password_token("camille.martin", rotating_realm)
    for check in (eager, floored):
        await check.verify(before)
    keys = eager.keys[issuer]
    assert keys.fetches == 1

    _add_realm_key(keycloak, rotating_realm)
    after = keycloak.password_token("camille.martin", rotating_realm)
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]

    principal = await eager.verify(after)  # unknown kid: the JWKS is fetched again
    assert principal.agent_id == "AG-75-01-1"
    assert keys.fetches == 2
    await eager.verify(before)  # the old key is still published, and cached
    assert keys.fetches == 2
    # Within the floor, an unknown key id is refused without asking the provider again.
    assert "clé inconnue" in (await refused(floored, after)).message
    assert floored.keys[issuer].fetches == 1


def test_dev_token_command(keycloak):
    runner = CliRunner()
    result = runner.invoke(cli, ["token", "marie.dupont", "--url", keycloak.url])
    assert result.exit_code == 0, result.output
    assert claims(result.output.strip())["iss"] == keycloak.issuer("citoyens")  # realm found
    result = runner.invoke(cli, ["token", "helene.marchand", "--url", keycloak.url])
    assert claims(result.output.strip())["offices"] == ["FS-75-01", "FS-93-01"]
    result = runner.invoke(cli, ["token", "--client", "adapter-caf", "--url", keycloak.url])
    assert claims(result.output.strip())["agency"] == "caf"
    result = runner.invoke(cli, ["token", "nobody", "--url", keycloak.url])
    assert result.exit_code == 1


def test_busy_port_is_refused(keycloak, tmp_path):
    with pytest.raises(RuntimeError, match="already in use"):
        LocalKeycloak(ROOT, tmp_path, port=keycloak.port).launch()


def test_stack_gives_services_the_issuers_and_their_audience(tmp_path):
    issuers = {"http://127.0.0.1:1/realms/citoyens": "citizen"}
    stack = Stack(tmp_path, "127.0.0.1:9", oidc_issuers=issuers)
    stack._define()
    for name in ("intake", "assignment", "adapter-caf"):
        env = stack.processes[name].env
        assert (json.loads(env["OIDC_ISSUERS"]), env["OIDC_AUDIENCE"]) == (issuers, name)
    assert "OIDC_AUDIENCE" not in stack.processes["web"].env
    assert "OIDC_ISSUERS" in stack.processes["web"].env
