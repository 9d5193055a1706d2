"""The tests' and the chaos command's token caches on a machine just booted: the monotonic
clock counts from boot, and a cache that stamped "never fetched" as 0.0 took itself for
fresh during the first minutes of a clean CI machine, sending `Bearer ` with no token
(fifteen end-to-end tests failed on one)."""

from __future__ import annotations

import pytest

from devstack import cli_chaos
from tests.e2e import auth_support


class FakeKeycloak:
    """Counts the tokens asked for; stands for devstack.keycloak.LocalKeycloak."""

    def __init__(self) -> None:
        self.issued = 0

    def password_token(self, username: str, realm: str) -> str:
        self.issued += 1
        return f"{realm}:{username}:{self.issued}"


@pytest.fixture
def just_booted(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [12.0]  # twelve seconds after the machine's boot
    monkeypatch.setattr(auth_support.time, "monotonic", lambda: now[0])
    return now


def test_the_tests_first_token_is_fetched_even_right_after_boot(just_booted):
    keycloak = FakeKeycloak()
    tokens = auth_support.Tokens(keycloak)
    assert tokens.citizen("marie.dupont") == {"Authorization": "Bearer citoyens:marie.dupont:1"}
    assert tokens.citizen("marie.dupont")["Authorization"].endswith(":1")  # reused
    just_booted[0] += auth_support.REUSE_SECONDS + 1
    assert tokens.citizen("marie.dupont")["Authorization"].endswith(":2")  # fetched again
    assert keycloak.issued == 2


def test_the_chaos_commands_first_token_is_fetched_even_right_after_boot(just_booted):
    # auth_support.time and cli_chaos.time are the same module: the patch holds for both.
    keycloak = FakeKeycloak()
    token = cli_chaos.CitizenToken(keycloak)  # type: ignore[arg-type]
    assert token() == {"Authorization": f"Bearer citoyens:{cli_chaos.CITIZEN}:1"}
    assert token()["Authorization"].endswith(":1")
    assert keycloak.issued == 1
