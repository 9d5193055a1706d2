"""Every secret a process refuses to start without is given to it on the cluster, from a Secret
(never a literal, never a ConfigMap); and who signs people in is the same in the pages and in
the services that verify the tokens.

Which secrets are required is asked of the code itself: each process's settings are built from
what its manifest gives it (ConfigMaps, literal values) without the Secrets, and its own start
check must then refuse; with the Secrets' variables it must pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from guichet_runtime.sealing import KeyMissing, Keyring
from guichet_runtime.secrets import Environment, MissingSecret, required_secret
from tests.deploy.support import environments, of_kind, settings_class, settings_from

#: A valid value for any secret variable (ACCESS_CODE_KEY wants base64 of 32 bytes).
DUMMY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#: The secrets only the platform needs (Kafka's and the database's passwords), per feature.
PLATFORM = {"KAFKA_SASL_PASSWORD", "DATABASE_PASSWORD"}


def refuses_to_start(name: str, settings: Any, tmp: Path) -> list[str]:
    """The secrets the process's own start checks find missing (their variable names)."""
    missing = []
    if name == "web":
        from web.login import providers

        try:
            required_secret(settings.secret_key, "SECRET_KEY", settings.environment, tmp)
        except MissingSecret:
            missing.append("SECRET_KEY")
        for audience in ("AGENTS", "CITIZENS"):  # checked in this order: one refusal at a time
            variable = f"LOGIN_{audience}_CLIENT_SECRET"
            try:
                providers(settings)
            except MissingSecret as refused:
                if str(refused).startswith(variable):
                    missing.append(variable)
                    setattr(settings, variable.lower(), SecretStr(DUMMY))
    elif name in ("intake", "notification", "assignment"):
        if name != "assignment":
            try:
                Keyring.from_text(
                    settings.access_code_key.get_secret_value(), name="ACCESS_CODE_KEY"
                )
            except KeyMissing:
                missing.append("ACCESS_CODE_KEY")
        if name == "intake":  # the key-encryption key of the citizens' data keys
            from intake.bootstrap import inbound_listener, personal_data_kek

            try:
                personal_data_kek(settings)
            except MissingSecret:
                missing.append("PERSONAL_DATA_KEK")
            if settings.inbound_smtp_port is not None:  # the citizens' email replies
                try:
                    inbound_listener(MagicMock(startup=[], workers=[], shutdown=[]), settings)
                except MissingSecret:
                    missing.append("REPLY_ADDRESS_KEY")
        if name != "notification":  # the services keeping an audit trail
            try:
                required_secret(
                    settings.audit_anchor_key, "AUDIT_ANCHOR_KEY", settings.environment, tmp
                )
            except MissingSecret:
                missing.append("AUDIT_ANCHOR_KEY")
    elif name.startswith("adapter-"):
        from adapter_sdk import discovery
        from adapter_sdk.callback_gate import missing_secret_problem

        adapter = discovery.load(name.removeprefix("adapter-").replace("-", "_"))
        if missing_secret_problem(settings, adapter.declaration.asynchronous):
            missing.append("CALLBACK_SECRET")
    return missing


def test_every_secret_a_process_requires_comes_from_a_secret(overlay, monkeypatch, tmp_path):
    required_somewhere = set()
    for name, (plain, secrets) in environments(overlay).items():
        # Nothing in the manifests relaxes the checks: production is the default.
        assert plain.get("ENVIRONMENT", Environment.PRODUCTION) == Environment.PRODUCTION, name
        without = settings_from(name, plain, monkeypatch)
        missing = refuses_to_start(name, without, tmp_path)
        assert set(missing) <= set(secrets), f"{name} would refuse to start: {missing}"
        given = settings_from(name, plain | dict.fromkeys(secrets, DUMMY), monkeypatch)
        assert not refuses_to_start(name, given, tmp_path), name
        required_somewhere |= set(missing)
        # Every variable the settings hold as a secret comes from a Secret when set at all.
        secret_fields = {
            field.upper()
            for field, info in settings_class(name).model_fields.items()
            if "SecretStr" in str(info.annotation)
        }
        assert not secret_fields & set(plain), f"{name}: {secret_fields & set(plain)} inlined"
    # The checks above did run: each of these is required by some process.
    assert required_somewhere == {
        "SECRET_KEY",
        "LOGIN_AGENTS_CLIENT_SECRET",
        "LOGIN_CITIZENS_CLIENT_SECRET",
        "ACCESS_CODE_KEY",
        "CALLBACK_SECRET",
        "AUDIT_ANCHOR_KEY",
        "PERSONAL_DATA_KEK",
        "REPLY_ADDRESS_KEY",
    }


def test_each_process_gets_the_platform_secrets_of_what_it_uses(overlay):
    for name, (plain, secrets) in environments(overlay).items():
        if "KAFKA_SASL_USERNAME" in plain:
            assert secrets["KAFKA_SASL_PASSWORD"] == (name, "password"), name
        if "DATABASE_URL" in plain:
            assert "$(DATABASE_PASSWORD)" in plain["DATABASE_URL"], name
            assert secrets["DATABASE_PASSWORD"] == (f"{name}-db", "password"), name


def test_the_pages_keep_their_sessions_in_their_own_postgresql_database(overlay):
    plain, secrets = environments(overlay)["web"]
    url = urlsplit(plain["DATABASE_URL"])
    assert (url.scheme, url.username, url.path) == ("postgresql+asyncpg", "web", "/web")
    assert plain["MIGRATE_AT_START"] == "false"  # the Job `web-migrate` does, as web_owner
    assert {j["metadata"]["name"] for j in of_kind(overlay, "Job")} >= {"web-migrate"}
    assert secrets["SECRET_KEY"] == ("web-session", "secret-key")


def test_production_cookies_are_secure_and_the_redirect_uri_public(production):
    plain, _ = environments(production)["web"]
    assert plain["SECURE_COOKIES"] == "true"
    hosts = {rule["host"] for i in of_kind(production, "Ingress") for rule in i["spec"]["rules"]}
    assert urlsplit(plain["PUBLIC_URL"]).hostname in hosts
    assert plain["PUBLIC_URL"].startswith("https://")


def test_the_services_trust_the_issuers_the_pages_sign_people_in_at(overlay):
    found = environments(overlay)
    web, _ = found["web"]
    login = {
        web["LOGIN_AGENTS_ISSUER"]: "agent",
        web["LOGIN_CITIZENS_ISSUER"]: "citizen",
    }
    core = ("intake", "assignment", "notification")
    verifiers = [n for n in found if n in core or n.startswith("adapter-")]
    assert len(verifiers) >= 8
    for name in verifiers:
        plain, _ = found[name]
        assert json.loads(plain["OIDC_ISSUERS"]) == login, name
        assert plain["OIDC_AUDIENCE"] == name, name  # a token for another service is refused
    for name in set(found) - set(verifiers):
        assert "OIDC_ISSUERS" not in found[name][0], name


@pytest.mark.parametrize("issuer", ["LOGIN_AGENTS_ISSUER", "LOGIN_CITIZENS_ISSUER"])
def test_production_issuers_are_https(production, issuer):
    plain, _ = environments(production)["web"]
    assert plain[issuer].startswith("https://"), issuer
