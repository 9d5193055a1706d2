"""`guichet-dev token`: print an access token of a test user or of an agency's service account,
from the Keycloak of `make run` (or any, with --url). Development and tests only."""

from __future__ import annotations

import json
import os

import httpx
import typer

from devstack.kafka import find_root
from devstack.keycloak import (
    DEV_CLIENT,
    DEV_PASSWORD,
    DEV_PORT,
    client_token,
    dev_secret,
    password_token,
)

#: Where `guichet-dev run` starts Keycloak.
DEFAULT_URL = os.environ.get("GUICHET_KEYCLOAK_URL", f"http://127.0.0.1:{DEV_PORT}")


def realm_of(username: str) -> str | None:
    """The realm of deploy/keycloak/realms/ whose test users include `username`."""
    for path in sorted((find_root() / "deploy" / "keycloak" / "realms").glob("*.json")):
        realm = json.loads(path.read_text(encoding="utf-8"))
        if any(u.get("username") == username for u in realm.get("users", [])):
            return str(realm["realm"])
    return None


def token(
    user: str | None = typer.Argument(
        None, help="A test user (docs/security.md), e.g. marie.dupont or camille.martin."
    ),
    realm: str | None = typer.Option(
        None, "--realm", help="citoyens or agents (default: the realm that has USER; agents)."
    ),
    client: str | None = typer.Option(
        None, "--client", help="A service account instead of a user, e.g. adapter-caf."
    ),
    secret: str | None = typer.Option(None, "--secret", help="The client's secret (default: dev)."),
    password: str = typer.Option(DEV_PASSWORD, "--password", help="The user's password."),
    url: str = typer.Option(DEFAULT_URL, "--url", help="Keycloak's base URL."),
) -> None:
    """Print an access token: a test user's (password grant on the dev client) or a service
    account's (--client, client credentials). E.g. `curl -H "Authorization: Bearer $(guichet-dev
    token marie.dupont)" ...`."""
    if (user is None) == (client is None):
        raise typer.BadParameter("give either USER or --client")
    realm_name = realm or ("agents" if user is None else realm_of(user) or "agents")
    endpoint = f"{url.rstrip('/')}/realms/{realm_name}/protocol/openid-connect/token"
    try:
        if client is not None:
            typer.echo(client_token(endpoint, client, secret or dev_secret(client)))
        else:
            assert user is not None
            typer.echo(password_token(endpoint, user, password=password, client_id=DEV_CLIENT))
    except httpx.ConnectError as exc:
        typer.secho(f"error: no Keycloak at {url}: is `make run` running?", err=True, fg="red")
        raise typer.Exit(1) from exc
    except RuntimeError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
