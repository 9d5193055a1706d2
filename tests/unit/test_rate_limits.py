"""Issue 12 §5-6: rate limits on the citizen-facing writes, counted in intake's database (so
every replica counts the same hits): 429 in French with Retry-After, per client address
(X-Forwarded-For only from a trusted proxy) and per file; beyond the limit no access code
is sent at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

import intake
import intake.tables
from guichet_runtime import migrations
from guichet_runtime.db import make_engine
from guichet_runtime.errors import install_french_validation
from guichet_runtime.rate_limits import RateLimit, RateLimiter, client_address
from guichet_runtime.refusals import Refused, install_refusals
from intake import api as intake_api
from intake import projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from intake.settings import IntakeSettings
from intake.tables import rate_counters
from shared_models import ReferentAssigned, topics
from tests.unit.conftest import ServiceDb
from tests.unit.samples import KEYRING, citizen, referent

FORM = {
    "life_event": "naissance",
    "citizen": {
        "given_name": "Awa",
        "family_name": "Diallo",
        "email": "awa.diallo@example.fr",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "Notre fille est née le 2 novembre.",
}
PROXY = "10.0.0.5"


def client(db, peer: str = "198.51.100.9", tokens=None, **limits: str) -> httpx.AsyncClient:
    """An HTTP client of intake's routes, the connection coming from `peer` (the routes
    verify the tokens of `tokens`' provider, when given)."""
    settings = IntakeSettings(rate_limits=limits, trusted_proxies=[f"{PROXY}/32"])
    runtime = SimpleNamespace(uow=db.uow, engine=db.engine, settings=settings)
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(intake_api.router(runtime, KEYRING))
    if tokens is not None:
        tokens.install(app)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://intake")


async def new_file(db) -> str:
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), db.uow())
    return file_id


REFERENT = referent().agent_id


async def assign(db, file_id: str) -> None:
    """The file's référent, as assignment announces it."""
    event = ReferentAssigned(
        file_id=file_id, referent=referent(), rule="proximite", explanation="…", citizen=citizen()
    )
    await projections.on_referent_assigned(event, db.uow(("intake", str(event.event_id))))


async def codes_sent(db) -> int:
    return sum(1 for t, _ in await db.outbox_events() if t == topics.ACCESS_CODES)


def assert_too_many(answer: httpx.Response, window: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["kind"] == "too_many"
    assert answer.json()["message"].startswith("Trop de demandes en peu de temps : réessayez dans")
    assert 1 <= int(answer.headers["Retry-After"]) <= window


async def test_access_codes_per_client_stop_and_no_further_code_is_sent(intake_db):
    files = [await new_file(intake_db) for _ in range(3)]
    async with client(intake_db, access_codes_per_client="2/hour") as c:
        answers = [await c.post(f"/api/files/{f}/access-codes") for f in files]

    assert [a.status_code for a in answers[:2]] == [202, 202]
    assert_too_many(answers[2], 3600)
    assert await codes_sent(intake_db) == 2  # no AccessCodeIssued beyond the limit


async def test_access_codes_per_file_stop_whoever_asks(intake_db):
    file_id = await new_file(intake_db)
    answers = []
    for n in range(3):  # three citizens behind the Ingress, each with their own address
        async with client(intake_db, peer=PROXY, access_codes_per_file="2/day") as c:
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            answers.append(await c.post(f"/api/files/{file_id}/access-codes", headers=headers))

    assert [a.status_code for a in answers[:2]] == [202, 202]
    assert_too_many(answers[2], 86400)
    assert await codes_sent(intake_db) == 2


async def test_behind_a_trusted_proxy_each_citizen_has_their_own_count(intake_db):
    files = [await new_file(intake_db) for _ in range(3)]
    async with client(intake_db, peer=PROXY, access_codes_per_client="1/hour") as c:
        first = await c.post(
            f"/api/files/{files[0]}/access-codes", headers={"X-Forwarded-For": "203.0.113.1"}
        )
        other = await c.post(
            f"/api/files/{files[1]}/access-codes", headers={"X-Forwarded-For": "203.0.113.2"}
        )
        again = await c.post(
            f"/api/files/{files[2]}/access-codes",
            headers={"X-Forwarded-For": "203.0.113.1, " + PROXY},
        )
    assert (first.status_code, other.status_code) == (202, 202)
    assert_too_many(again, 3600)


async def test_an_untrusted_caller_cannot_dodge_the_limit_with_x_forwarded_for(intake_db):
    files = [await new_file(intake_db) for _ in range(2)]
    async with client(intake_db, access_codes_per_client="1/hour") as c:
        first = await c.post(
            f"/api/files/{files[0]}/access-codes", headers={"X-Forwarded-For": "192.0.2.1"}
        )
        second = await c.post(
            f"/api/files/{files[1]}/access-codes", headers={"X-Forwarded-For": "192.0.2.2"}
        )
    assert first.status_code == 202
    assert_too_many(second, 3600)
    assert await codes_sent(intake_db) == 1


async def test_code_checks_file_submissions_and_citizen_writes_are_limited(intake_db):
    file_id = await new_file(intake_db)
    async with client(
        intake_db,
        code_checks_per_client="1/hour",
        files_per_client="1/hour",
        referent_changes_per_client="0/hour",  # switched off
        contact_changes_per_client="1/hour",
        thanks_per_client="1/hour",
        surveys_per_client="1/hour",
        messages_per_client="1/hour",
    ) as c:
        check = f"/api/files/{file_id}/access-codes/verify"
        checks = [await c.post(check, json={"code": "000000"}) for _ in range(2)]
        submitted = [await c.post("/api/files", json=FORM) for _ in range(2)]
        contact = {"preferred_channel": "email", "email": "awa@example.fr", "postcode": "93200"}
        url = f"/api/files/{file_id}/contact-preferences"
        contacts = [await c.put(url, json=contact) for _ in range(2)]
        thanks = [
            await c.post(f"/api/files/{file_id}/thanks", json={"message": "Merci"})
            for _ in range(2)
        ]
        surveys = [await c.post(f"/api/files/{file_id}/survey", json={"score": 5}) for _ in "ab"]
        text = {"agent_id": "AG-1", "text": "Bonjour"}
        messages = [await c.post(f"/api/files/{file_id}/messages", json=text) for _ in "ab"]

    assert checks[0].status_code == 403  # a wrong code, counted as before
    assert submitted[0].status_code == 201
    # without the proof a verified code gives: refused (401), and the attempt still counts
    # against the caller's own quota (not the file's: see the test below)
    assert contacts[0].status_code == 401, contacts[0].text
    for limited in (checks, submitted, contacts, thanks, surveys, messages):
        assert_too_many(limited[1], 86400)


async def test_an_outsiders_refused_attempts_spend_none_of_the_files_quota(intake_db, tokens):
    """The per-file limits are counted after the access check: an outsider refused (401,
    403) again and again leaves the file's citizen and référent their whole daily quota."""
    marie, paul = tokens.citizen("marie"), tokens.citizen("paul")
    async with client(
        intake_db,
        tokens=tokens,
        contact_changes_per_file="2/day",
        thanks_per_file="1/day",
        messages_per_file="2/day",
    ) as c:
        created = await c.post("/api/files", json=FORM, headers=marie)
        assert created.status_code == 201, created.text
        file_id = created.json()["file_id"]
        await assign(intake_db, file_id)
        contact = {"preferred_channel": "email", "email": "awa@example.fr", "postcode": "93200"}
        thanks = {"message": "Merci"}
        message = {"text": "Bonjour, votre dossier avance."}
        base = f"/api/files/{file_id}"
        for headers in [{}, paul, {"X-Access-Proof": "inventee"}, tokens.agent("AG-75-01-1")] * 2:
            refused = [
                await c.put(f"{base}/contact-preferences", json=contact, headers=headers),
                await c.post(f"{base}/thanks", json=thanks, headers=headers),
                await c.post(f"{base}/messages", json=message, headers=headers),
            ]
            assert {a.status_code for a in refused} <= {401, 403}, [a.text for a in refused]
        referent_token = tokens.agent(REFERENT)
        mine = [
            await c.put(f"{base}/contact-preferences", json=contact, headers=marie),
            await c.post(f"{base}/thanks", json=thanks, headers=marie),
            await c.post(f"{base}/messages", json=message, headers=referent_token),
        ]
        assert [a.status_code for a in mine] == [200, 201, 201], [a.text for a in mine]
        again = [
            await c.put(f"{base}/contact-preferences", json=contact, headers=marie),
            await c.post(f"{base}/messages", json=message, headers=referent_token),
        ]
        assert [a.status_code for a in again] == [200, 201], [a.text for a in again]
        # The quota itself still holds for the file's own people.
        assert_too_many(await c.post(f"{base}/thanks", json=thanks, headers=marie), 86400)
        assert_too_many(
            await c.post(f"{base}/messages", json=message, headers=referent_token), 86400
        )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def counters_db(request, intake_db):
    """Intake's database, on SQLite and on a real PostgreSQL server (the same upsert)."""
    if request.param == "sqlite":
        yield intake_db
        return
    url = request.getfixturevalue("postgres_factory")(f"limits_{id(request)}")
    await migrations.upgrade(Path(intake.__file__).parent / "migrations", url)
    db = ServiceDb(url, make_engine(url), intake.tables)
    yield db
    await db.engine.dispose()


async def test_concurrent_hits_from_two_replicas_let_exactly_the_limit_through(counters_db):
    replicas = [RateLimiter(counters_db.engine, rate_counters) for _ in range(2)]
    limit = RateLimit.parse("5/hour")

    async def hit(n: int) -> bool:
        try:
            await replicas[n % 2].hit("files_per_client:203.0.113.1", limit)
        except Refused:
            return False
        return True

    accepted = await asyncio.gather(*(hit(n) for n in range(20)))
    assert sum(accepted) == 5


async def test_the_counter_is_shared_and_its_window_rolls_over(counters_db):
    intake_db = counters_db
    now = [1_000_000.0]
    limiter = RateLimiter(intake_db.engine, rate_counters, clock=lambda: now[0])
    other_replica = RateLimiter(intake_db.engine, rate_counters, clock=lambda: now[0])
    limit = RateLimit.parse("2/minute")
    await limiter.hit("k", limit)
    await other_replica.hit("k", limit)
    with pytest.raises(Refused) as refused:
        await limiter.hit("k", limit)
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": str(60 - int(now[0]) % 60)}
    now[0] += 60  # the next window
    await limiter.hit("k", limit)
    assert len(await intake_db.rows(rate_counters)) == 1  # the old window is gone
    now[0] += 2 * 86400
    assert await limiter.purge() == 1


def test_rate_limits_read_from_text():
    assert RateLimit.parse("5/hour") == RateLimit(count=5, seconds=3600)
    assert RateLimit.parse("3/15minutes") == RateLimit(count=3, seconds=900)
    with pytest.raises(ValueError):
        RateLimit.parse("beaucoup")
    settings = IntakeSettings(rate_limits={"files_per_client": "100/day"})
    assert settings.rate_limits["files_per_client"] == RateLimit(count=100, seconds=86400)
    assert settings.rate_limits["access_codes_per_client"] == RateLimit(count=10, seconds=3600)
    with pytest.raises(ValueError, match="unknown rate limit"):
        IntakeSettings(rate_limits={"nope": "1/hour"})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.9", "203.0.113.1", "198.51.100.9"),  # not a proxy: its header is ignored
        (PROXY, "203.0.113.1", "203.0.113.1"),
        (PROXY, "1.2.3.4, 203.0.113.1", "203.0.113.1"),  # the client wrote the left part
        (PROXY, "203.0.113.1, 10.0.0.6", "203.0.113.1"),  # two trusted hops
        (PROXY, None, PROXY),
    ],
)
def test_the_client_address(peer, forwarded, expected):
    from starlette.requests import HTTPConnection

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "client": (peer, 1), "headers": headers}
    trusted = IntakeSettings(trusted_proxies=["10.0.0.0/24"]).trusted_proxies
    assert client_address(HTTPConnection(scope), trusted) == expected


@pytest.mark.integration
async def test_on_postgresql_a_hit_holds_the_counters_row_only_while_its_statement_runs(
    request, monkeypatch
):
    """Callers sharing a key (one address: an office's network, a proxy) do not queue behind
    a hit whose process is busy elsewhere: once its statement has answered, the row is free
    (autocommit), not locked until a COMMIT sent a turn of the event loop later."""
    from guichet_runtime.direct_asyncpg import DirectPgConnection

    url = request.getfixturevalue("postgres_factory")(f"limits_lock_{id(request)}")
    await migrations.upgrade(Path(intake.__file__).parent / "migrations", url)
    engine = make_engine(url)
    probe = await asyncpg.connect(url.replace("+asyncpg", ""))
    locked_after_statement: list[bool] = []
    execute = DirectPgConnection.execute

    async def execute_then_probe(self, statement, parameters=None, **kw):
        result = await execute(self, statement, parameters, **kw)
        try:  # another caller of the same key, now
            await probe.execute(
                "SELECT count FROM rate_counters WHERE key = $1 FOR UPDATE NOWAIT", "k"
            )
            locked_after_statement.append(False)
        except asyncpg.exceptions.LockNotAvailableError:
            locked_after_statement.append(True)
        return result

    monkeypatch.setattr(DirectPgConnection, "execute", execute_then_probe)
    try:
        limiter = RateLimiter(engine, rate_counters)
        await limiter.hit("k", RateLimit.parse("5/hour"))
        await limiter.hit("k", RateLimit.parse("5/hour"))
    finally:
        await probe.close()
        await engine.dispose()
    assert locked_after_statement == [False, False]


async def test_a_rule_longer_than_a_day_keeps_its_window_through_the_purge(counters_db):
    now = [1_000_000.0]
    limiter = RateLimiter(counters_db.engine, rate_counters, clock=lambda: now[0])
    rules = {"per_client": RateLimit.parse("2/2days"), "per_file": RateLimit.parse("5/hour")}
    limit = rules["per_client"]
    now[0] = 2 * 86400 * 10  # a window's start
    await limiter.hit("k", limit)
    await limiter.hit("k", limit)
    now[0] += 1.5 * 86400  # the same two-day window, a day and a half on

    assert await limiter.purge(rules.values()) == 0
    with pytest.raises(Refused):  # its count was kept: still refused
        await limiter.hit("k", limit)

    now[0] += 2 * 86400  # every rule is done with that window
    assert await limiter.purge(rules.values()) == 1
