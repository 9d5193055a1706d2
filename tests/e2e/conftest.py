"""Fixtures of the pages' end-to-end tests (tests/e2e/test_pages*.py): the stack with the
web signing people in at the session's Keycloak, Debian's Chromium, real tokens. Modules
that define their own `stack` keep theirs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.e2e.auth_support import Tokens
from tests.e2e.pages_support import AXE, CHROMIUM, SHOTS, every_office, new_page


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, keycloak, tmp_path_factory) -> Iterator[Stack]:
    """Every service, the web signing people in at the session's Keycloak."""
    st = Stack(
        tmp_path_factory.mktemp("stack-pages"),
        kafka_bootstrap,
        namespace=f"pages-{uuid.uuid4().hex[:6]}.",
        oidc_issuers=keycloak.issuers,
        # A handful of files: publish every group's indicators, always fresh.
        extra_env={"INDICATORS_MIN_FILES": "1", "INDICATORS_CACHE_SECONDS": "0"},
    )
    st.start()
    yield st
    st.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's Chromium is missing: `make setup` installs it (apt-get install chromium)."
        )
    if not AXE.exists():
        pytest.fail("axe-core is missing: `make setup` runs npm ci in services/web.")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


@pytest.fixture(scope="module")
def everywhere(tokens: Tokens) -> dict[str, str]:
    """A supervisor of every office: one of every file's agents (to ask who its référent is)."""
    return tokens.supervisor_of(*every_office(), name="SUP-E2E-PARTOUT")


@pytest.fixture
def page(browser, stack):
    pg = new_page(browser, stack)
    yield pg
    pg.context.close()
