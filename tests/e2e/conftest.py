"""Fixtures of the end-to-end tests.

The shared stacks: one whole system per database backend for the session
(`shared_stack_sqlite`, `shared_stack_postgresql`), each started when a test first asks for it
and stopped at the end of the session. A module runs on one with

    @pytest.fixture(scope="module")
    def stack(shared_stack):
        return shared_stack("sqlite")

(or `params=BACKENDS` and `shared_stack(request.param)` for both backends). Its tests use
their own files (fresh ids, their own addresses), so they never see each other's data:
an assertion counts only the test's own files, never the whole stack (docs/testing.md).
A test that kills or reconfigures a process restarts it as it was; `shared_stack` restarts
whatever a previous module left dead. Modules whose stack must differ (a catalogue of
their own, a controllable clock, other settings) define their own `stack`.

Also the pages' fixtures (tests/e2e/test_pages*.py): the pages' stack, Debian's Chromium,
real tokens.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import AGENCIES, Ports, Stack
from guichet_runtime.tls_context import client_tls
from shared_models.catalogue import DEFAULT_CATALOGUE
from tests.e2e import sealing_support
from tests.e2e.auth_support import Tokens
from tests.e2e.pages_support import AXE, CHROMIUM, SHOTS, every_office, new_page
from tests.e2e.shards import keep_chosen_half
from tests.e2e.support import ANTS_LINE, BACKENDS, LAUNCHER, shared_catalogue_path

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

#: What every shared stack runs with: the union of what the modules on it need. Indicators
#: of every group published from the first file (a handful of files per test), always fresh.
SHARED_ENV = {
    "INDICATORS_MIN_FILES": "1",
    "INDICATORS_CACHE_SECONDS": "0",
    # A message cut by a kill is taken up after 10 s rather than a minute: the crash tests
    # wait for it (one notification process: its own loop never claims what it is sending).
    "DISPATCH_LEASE_SECONDS": "10",
}


def start_shared(workdir, kafka_bootstrap: str, keycloak, backend: str, postgres=None) -> Stack:
    """Every service on `backend`, the four agencies and the ANTS (adapter and simulator each),
    the shipped catalogue plus the ANTS's life event (`shared_catalogue_path`), the web and
    the services trusting the session's Keycloak (OIDC), with SHARED_ENV; personal data sealed
    with the citizens' keys as in production (tests read the fields through
    `tests.e2e.sealing_support`), kept in memory `sealing_support.KEY_TTL_SECONDS`."""
    catalogue = shared_catalogue_path(workdir)
    catalogue.write_text(
        DEFAULT_CATALOGUE.read_text(encoding="utf-8") + ANTS_LINE, encoding="utf-8"
    )
    st = Stack(
        workdir,
        kafka_bootstrap,
        ports=Ports.free(agencies=(*AGENCIES, "ants")),
        namespace=f"shared-{backend[:2]}-{uuid.uuid4().hex[:6]}.",
        postgres=postgres,
        extra_env={**SHARED_ENV, "GUICHET_CATALOGUE": str(catalogue)},
        oidc_issuers=keycloak.issuers,
        personal_data_sealing=True,  # as in production: personal fields sealed on the topics
        personal_data_key_ttl=sealing_support.KEY_TTL_SECONDS,
        launcher=LAUNCHER,
    )
    sealing_support.register(st)
    st.start()
    return st


#: The first day of the controllable-date stacks (a Monday); their clock only moves forward.
CLOCK_START = dt.date(2027, 3, 1)


@pytest.fixture(scope="session", params=BACKENDS)
def clock_stack(request, kafka_bootstrap, keycloak, tmp_path_factory) -> Iterator[Stack]:
    """A stack on a controllable date (`CLOCK_FILE`, `Stack.travel_to`), on each backend,
    for the modules about dates (the legal clock, the answer-time promise): pytest runs
    every test on one backend's stack, module after module, before starting the next. The
    clock only moves forward: a module jumps to dates after those of the modules before it
    (tests/e2e/test_legal_clock.py, then test_message_promise.py)."""
    backend = request.param
    postgres = request.getfixturevalue("postgres_factory") if backend == "postgresql" else None
    workdir = tmp_path_factory.mktemp(f"stack-clock-{backend}")
    clock_file = workdir / "today"
    clock_file.write_text(CLOCK_START.isoformat())
    st = Stack(
        workdir,
        kafka_bootstrap,
        namespace=f"e2e-lc{backend[:2]}-{uuid.uuid4().hex[:6]}.",
        clock_file=clock_file,
        postgres=postgres,
        extra_env={
            "HOUSEKEEPING_SECONDS": "0.5",
            # Reconciliation slowed past the module's length: an agency that never calls back
            # stays without a decision (test_a_request_without_a_decision_is_seen_…); and
            # the adapters' overdue gauge counts it after a second (it counts real time).
            "RECONCILE_FIRST_SECONDS": "3600",
            "OVERDUE_SECONDS": "1",
        },
        oidc_issuers=keycloak.issuers,
        launcher=LAUNCHER,
    )
    st.start()
    CLOCK_RUNNING.append(st)
    yield st
    st.stop()  # already stopped after the last test on it: then a no-op


def revive(stack: Stack, timeout: float = 120) -> Stack:
    """Restart any process of `stack` that is not running (a module that failed between a
    kill and its restart), so that the next module gets the whole system."""
    for name, proc in stack.processes.items():
        if not proc.is_running:
            log.warning("shared stack: %s was not running, restarting it", name)
            stack.restart(name, timeout)
    return stack


#: The shared stacks started so far: stopped right after the last test that uses one.
RUNNING: list[Stack] = []
#: The clock stacks started so far: the last one stops right after the last test on it
#: (a session fixture would otherwise idle until the end of the session).
CLOCK_RUNNING: list[Stack] = []
#: The session's last test on a shared stack, and on a clock stack.
_LAST_SHARED = pytest.StashKey[pytest.Item]()
_LAST_CLOCK = pytest.StashKey[pytest.Item]()


def _e2e(item: pytest.Item) -> bool:
    return item.path.parent == HERE


@pytest.hookimpl(trylast=True)  # after `-k`/`-m` deselected theirs: the items that will run
def pytest_collection_modifyitems(session, config, items: list[pytest.Item]) -> None:
    """The modules on the shared stacks run one after the other, after the e2e modules with
    stacks of their own (whole modules moved, their order otherwise kept), so a shared stack
    never idles through another module; and the last test on one is noted, so that the
    shared stacks stop right after it rather than at the end of the session. With
    GUICHET_E2E_SHARD, only that half of the lane is kept (`tests.e2e.shards`)."""
    keep_chosen_half(config, items, _e2e)
    if not items:
        return
    sharing = {item.path for item in items if "shared_stack" in item.fixturenames}
    clocked = [item for item in items if "clock_stack" in item.fixturenames]
    if clocked:
        config.stash[_LAST_CLOCK] = clocked[-1]
    if not sharing:
        return
    e2e = [i for i, item in enumerate(items) if _e2e(item)]
    if e2e == list(range(e2e[0], e2e[-1] + 1)):  # one block: reorder it
        items[e2e[0] : e2e[-1] + 1] = sorted(
            items[e2e[0] : e2e[-1] + 1], key=lambda item: item.path in sharing
        )
    config.stash[_LAST_SHARED] = [item for item in items if item.path in sharing][-1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Once the last test on a shared stack is torn down (its own fixtures included), stop the
    shared stacks if other tests follow; after the very last test, the session's teardown
    stops them, before the PostgreSQL and the broker they run on."""
    yield
    if nextitem is None:
        return
    if item is item.config.stash.get(_LAST_SHARED, None):
        while RUNNING:
            RUNNING.pop().stop()
    if item is item.config.stash.get(_LAST_CLOCK, None):
        while CLOCK_RUNNING:
            CLOCK_RUNNING.pop().stop()


def session_stack(
    tmp_path_factory, kafka_bootstrap: str, keycloak, backend: str, postgres=None
) -> Stack:
    """Start the session's shared stack (`start_shared`) on `backend`, noted so that it stops
    right after the last test that uses one."""
    workdir = tmp_path_factory.mktemp(f"shared-{backend}")
    st = start_shared(workdir, kafka_bootstrap, keycloak, backend, postgres)
    RUNNING.append(st)
    return st


@pytest.fixture(scope="session")
def shared_stack_sqlite(kafka_bootstrap, keycloak, tmp_path_factory) -> Iterator[Stack]:
    st = session_stack(tmp_path_factory, kafka_bootstrap, keycloak, "sqlite")
    yield st
    st.stop()  # already stopped after the last test on it: then a no-op


@pytest.fixture(scope="session")
def shared_stack_postgresql(
    kafka_bootstrap, keycloak, postgres_factory, tmp_path_factory
) -> Iterator[Stack]:
    st = session_stack(tmp_path_factory, kafka_bootstrap, keycloak, "postgresql", postgres_factory)
    yield st
    st.stop()  # already stopped after the last test on it: then a no-op


@pytest.fixture(scope="module")
def shared_stack(request) -> Callable[[str], Stack]:
    """`shared_stack(backend)`: the session's shared stack on that backend (`start_shared`,
    fixture `shared_stack_<backend>`), started on first use, every process running."""

    def get(backend: str) -> Stack:
        if backend not in BACKENDS:
            raise ValueError(f"no shared stack on {backend!r}: one of {BACKENDS}")
        return revive(request.getfixturevalue(f"shared_stack_{backend}"))

    return get


@pytest.fixture(scope="module")
def stack(shared_stack) -> Stack:
    """The pages' stack: the session's SQLite one (the web signs people in at the session's
    Keycloak; every group's indicators published, always fresh)."""
    return shared_stack("sqlite")


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


@pytest.fixture
def agents_back(stack, everywhere) -> Iterator[None]:
    """For a test that marks agents absent: at its end every absent agent is back (the
    shared stack's later tests need référents)."""
    yield
    portfolios = f"{stack.assignment_url}/api/supervision/portfolios"
    answer = httpx.get(portfolios, headers=everywhere, timeout=10, verify=client_tls())
    agents = answer.json()["agents"]
    for agent in agents:
        if agent["status"] == "absent":
            httpx.post(
                f"{stack.assignment_url}/api/agents/{agent['agent_id']}/return",
                headers=everywhere,
                timeout=10,
                verify=client_tls(),
            ).raise_for_status()
