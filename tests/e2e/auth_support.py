"""Real tokens for the end-to-end tests, from the session's Keycloak (tests/conftest.py).

    tokens = Tokens(keycloak)
    await client.get(f"/api/files/{fid}", headers=tokens.citizen("marie.dupont"))
    await client.get("/api/agents/AG-75-01-1/portfolio", headers=tokens.agent_id("AG-75-01-1"))

Tokens are cached until shortly before they expire (the realms give 5 minutes). Agents who
are in the test's directory but not among the realm's test users are created on first use
through Keycloak's admin API (`LocalKeycloak.ensure_user`), with their `agent_id`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

#: A token is used at most this long after it was issued (the realms' lifespan is 300 s).
REUSE_SECONDS = 240

#: The realm's own test users, by agent id (deploy/keycloak/realms/agents.json).
REALM_AGENTS = {
    "AG-75-01-3": "julien.durand",  # front desk (guichet), FS-75-01
    "AG-75-01-1": "camille.martin",  # référent, FS-75-01
    "AG-93-01-1": "sophie.lefebvre",  # référent, FS-93-01
    "SUP-IDF": "helene.marchand",  # supervisor of FS-75-01 and FS-93-01
    "SUP-ARA": "julien.faure",  # supervisor of FS-69-01
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Tokens:
    def __init__(self, keycloak) -> None:  # devstack.keycloak.LocalKeycloak
        self.keycloak = keycloak
        self._cache: dict[tuple[str, ...], tuple[float, str]] = {}
        self._made: set[tuple[str, str]] = set()

    def _cached(self, key: tuple[str, ...], fetch) -> str:
        # No entry means "never fetched", not "fetched at 0.0": the monotonic clock counts from
        # the machine's boot, so on a machine up for less than REUSE_SECONDS a zero stamp
        # looked fresh and an empty token went out (a clean CI machine did just that).
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > REUSE_SECONDS:
            hit = (time.monotonic(), fetch())
            self._cache[key] = hit
        return hit[1]

    def token(self, username: str, realm: str) -> str:
        return self._cached(
            (realm, username), lambda: self.keycloak.password_token(username, realm)
        )

    def citizen(self, username: str = "marie.dupont") -> dict[str, str]:
        """A citizen of the realm `citoyens` (marie.dupont, lucas.bernard, or any other
        name: created on first use)."""
        if username not in ("marie.dupont", "lucas.bernard"):
            self._ensure((username, "citoyens"), username, "citoyens")
        return bearer(self.token(username, "citoyens"))

    def agent(self, username: str) -> dict[str, str]:
        """One of the realm's agents by user name (julien.durand, camille.martin…)."""
        return bearer(self.token(username, "agents"))

    def agent_id(
        self,
        agent_id: str,
        roles: Sequence[str] = ("referent",),
        offices: Sequence[str] = (),
    ) -> dict[str, str]:
        """The agent with this directory id: the realm's user when there is one, else a user
        `agent-<id>` created with these roles (and offices, for a supervisor)."""
        username = REALM_AGENTS.get(agent_id)
        if username is None:
            username = "agent-" + agent_id.lower()
            attributes = {"agent_id": [agent_id]}
            if offices:
                attributes["offices"] = list(offices)
            self._ensure((username, "agents"), username, "agents", roles, attributes)
        return bearer(self.token(username, "agents"))

    def supervisor_of(self, *offices: str, name: str | None = None) -> dict[str, str]:
        """A supervisor of exactly these offices (created on first use)."""
        agent_id = name or "SUP-" + "-".join(offices)
        return self.agent_id(agent_id, roles=("superviseur",), offices=offices)

    def admin(self) -> dict[str, str]:
        """The directory administrator."""
        return self.agent("admin.annuaire")

    def agency(self, agency: str) -> dict[str, str]:
        """An agency's system (client credentials of `adapter-<agency>`)."""
        client = "adapter-" + agency.replace("_", "-")
        return bearer(self._cached(("client", client), lambda: self.keycloak.client_token(client)))

    def _ensure(self, key, username, realm, roles=(), attributes=None) -> None:
        if key in self._made:
            return
        self.keycloak.ensure_user(username, realm, roles=roles, attributes=attributes)
        self._made.add(key)
