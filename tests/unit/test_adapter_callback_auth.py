"""Issue 12: an adapter's callback endpoint takes only its agency's signed callbacks, fresh,
never seen, for its own requests. Unsigned, wrongly signed, stale, replayed → 401; another
agency's request → 403; each refusal counted, logged, in the ledger where the file is known,
and never applied."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from adapter_france_travail import FranceTravailAdapter
from adapter_sdk import signatures, tables
from adapter_sdk.app import serve
from adapter_sdk.callback_gate import is_agency_request, missing_secret_problem
from adapter_sdk.signatures import RefusalReason, SignatureRefused
from tests.unit import test_adapter_callbacks as base
from tests.unit.test_adapter_callbacks import GRANTED, SECRET, Adapter, file_of, new_request

# The callback tests' fixtures: the adapter on its real database, a fake France Travail.
adapter_template = base.adapter_template
ft = base.ft

# -------------------------------------------------------------------- the signature itself


def test_a_signature_made_with_the_secret_is_verified():
    body = b'{"callback_id": "cb-1"}'
    header = signatures.sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    signed = signatures.verify([SECRET], header, body, now=1_700_000_010, window=300)
    assert signed.timestamp == 1_700_000_000 and len(signed.digest) == 64


@pytest.mark.parametrize(
    "secrets, header, now, reason",
    [
        ([SECRET], None, 1_700_000_000, RefusalReason.MISSING),
        ([SECRET], "", 1_700_000_000, RefusalReason.MISSING),
        ([SECRET], "n'importe quoi", 1_700_000_000, RefusalReason.INVALID),
        ([SECRET], "t=abc,v1=00", 1_700_000_000, RefusalReason.INVALID),
        (["un-autre-secret"], "SIGNED", 1_700_000_000, RefusalReason.INVALID),
        ([SECRET], "SIGNED", 1_700_000_000 + 301, RefusalReason.OUTSIDE_WINDOW),
        ([SECRET], "SIGNED", 1_700_000_000 - 301, RefusalReason.OUTSIDE_WINDOW),
        ([""], "SIGNED", 1_700_000_000, RefusalReason.NO_SECRET),
    ],
)
def test_each_bad_signature_is_refused_with_its_reason(secrets, header, now, reason):
    body = b'{"callback_id": "cb-1"}'
    if header == "SIGNED":
        header = signatures.sign(SECRET, body, 1_700_000_000)
    with pytest.raises(SignatureRefused) as refused:
        signatures.verify(secrets, header, body, now=now, window=300)
    assert refused.value.reason is reason


def test_a_signature_does_not_cover_another_body_and_the_previous_secret_still_works():
    header = signatures.sign(SECRET, b'{"decision": "accorde"}', 1_700_000_000)
    with pytest.raises(SignatureRefused):
        signatures.verify([SECRET], header, b'{"decision": "refuse"}', 1_700_000_000, 300)
    assert signatures.verify(
        ["nouveau", SECRET], header, b'{"decision": "accorde"}', 1e9 + 7e8, 300
    )


def test_request_ids_of_the_agency():
    assert is_agency_request("GU-2026-ABCD1234-france_travail", "france_travail")
    assert not is_agency_request("GU-2026-ABCD1234-caf", "france_travail")
    assert not is_agency_request("-france_travail", "france_travail")


# -------------------------------------------------------------------- on the adapter


def body_of(request_id: str, callback_id: str = "cb-forge", decision: dict = GRANTED) -> bytes:
    return json.dumps(
        {"callback_id": callback_id, "request_id": request_id, "decision": decision}
    ).encode()


async def assert_nothing_applied(ft: Adapter, request_id: str) -> None:
    assert await ft.answers(request_id) == []
    assert await ft.rows(tables.callbacks, tables.callbacks.c.request_id == request_id) == []
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert row.status == "accuse"


async def test_a_signed_callback_is_taken(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    assert await ft.callback(request_id, "cb-1") == (200, {"statut": "recu"})
    assert len(await ft.answers(request_id)) == 1


async def test_the_issue_s_forged_unsigned_decision_is_refused_recorded_and_not_applied(
    ft: Adapter, caplog
):
    request_id = new_request()
    await ft.issue(request_id)
    forged = body_of(request_id)
    status, body = await ft.core.on_callback(forged, {}, "203.0.113.9")
    assert status == 401 and body["kind"] == "unauthenticated"
    assert "pas signé" in body["message"]
    await assert_nothing_applied(ft, request_id)
    assert ft.counted("adapter_callbacks_refused_total", reason="signature_absente") == 1
    assert "signature_absente" in caplog.text and "203.0.113.9" in caplog.text
    assert "Rappel refusé (non signé) : " in "".join(await ft.ledger(request_id))
    # The same forgery a hundred times: one ledger entry, a hundred refusals counted.
    for _ in range(3):
        assert (await ft.core.on_callback(forged, {}))[0] == 401
    refused = [p for p in await ft.ledger(request_id) if p.startswith("Rappel refusé")]
    assert len(refused) == 1
    assert ft.counted("adapter_callbacks_refused_total", reason="signature_absente") == 4
    # The agency's own callback then comes in as usual.
    assert await ft.callback(request_id, "cb-real") == (200, {"statut": "recu"})


async def test_a_callback_signed_with_another_secret_is_refused(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    forged = body_of(request_id)
    header = signatures.sign("devine", forged, int(time.time()))
    status, body = await ft.core.on_callback(forged, {"X-Signature": header})
    assert (status, body["kind"]) == (401, "unauthenticated")
    await assert_nothing_applied(ft, request_id)
    assert ft.counted("adapter_callbacks_refused_total", reason="signature_invalide") == 1


async def test_a_callback_signed_too_long_ago_is_refused(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    body = body_of(request_id)
    header = signatures.sign(SECRET, body, int(ft.now) - 301)
    assert (await ft.core.on_callback(body, {"x-signature": header}))[0] == 401
    await assert_nothing_applied(ft, request_id)
    assert ft.counted("adapter_callbacks_refused_total", reason="horodatage_hors_fenetre") == 1


async def test_an_exact_replay_is_refused(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    body = body_of(request_id, decision={**GRANTED})
    headers = {"x-signature": signatures.sign(SECRET, body, int(ft.now) - 5)}
    assert await ft.core.on_callback(body, headers) == (200, {"statut": "recu"})
    status, reply = await ft.core.on_callback(body, headers)
    assert status == 401 and "rejeu" in reply["message"]
    assert ft.counted("adapter_callbacks_refused_total", reason="signature_rejouee") == 1
    assert len(await ft.answers(request_id)) == 1
    # Signed anew (a redelivery by the agency), the same callback is a known duplicate.
    again = {"x-signature": signatures.sign(SECRET, body, int(ft.now) - 4)}
    assert await ft.core.on_callback(body, again) == (200, {"statut": "deja_recu"})


async def test_a_signed_unreadable_callback_is_refused_and_its_replay_refused_as_such(
    ft: Adapter,
):
    body = b"{pas du json"
    headers = {"x-signature": signatures.sign(SECRET, body, int(ft.now))}
    status, reply = await ft.core.on_callback(body, headers)
    assert status == 400 and reply["message"].startswith("Rappel illisible")
    # The signature was taken all the same: the exact replay is refused as a replay.
    status, reply = await ft.core.on_callback(body, headers)
    assert status == 401 and "rejeu" in reply["message"]
    assert ft.counted("adapter_callbacks_refused_total", reason="signature_rejouee") == 1


async def test_a_callback_is_checked_and_its_request_read_in_one_transaction(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    begun: list[int] = []

    def count(_conn: object) -> None:
        begun.append(1)

    sa.event.listen(ft.engine.sync_engine, "begin", count)
    try:
        assert await ft.callback(request_id, "cb-1") == (200, {"statut": "recu"})
    finally:
        sa.event.remove(ft.engine.sync_engine, "begin", count)
    # One for its signature and the request it names, one to take and apply it.
    assert len(begun) == 2


async def test_a_replay_after_the_window_is_refused_and_old_signatures_are_forgotten(
    ft: Adapter,
):
    request_id = new_request()
    await ft.issue(request_id)
    body = body_of(request_id)
    headers = {"x-signature": signatures.sign(SECRET, body, int(ft.now))}
    assert (await ft.core.on_callback(body, headers))[0] == 200
    ft.now += 400  # the window has passed: the signature is stale, and no longer stored
    assert (await ft.core.on_callback(body, headers))[0] == 401
    assert ft.counted("adapter_callbacks_refused_total", reason="horodatage_hors_fenetre") == 1
    fresh = {"x-signature": signatures.sign(SECRET, body, int(ft.now))}
    assert await ft.core.on_callback(body, fresh) == (200, {"statut": "deja_recu"})
    [kept] = await ft.rows(tables.callback_signatures)  # the old one is forgotten
    assert kept.signature == fresh["x-signature"].rsplit("=", 1)[1]


async def test_old_signatures_are_deleted_at_most_once_a_minute(ft: Adapter):
    window = 300
    first, second, third = (new_request() for _ in range(3))
    for request_id in (first, second, third):
        await ft.issue(request_id)

    async def deliver(request_id: str, signed_at: int) -> None:
        body = body_of(request_id, callback_id=f"cb-{request_id}")
        headers = {"x-signature": signatures.sign(SECRET, body, signed_at)}
        assert (await ft.core.on_callback(body, headers))[0] == 200

    await deliver(first, int(ft.now) - window + 5)  # nearly stale; the old ones deleted now
    ft.now += 30
    await deliver(second, int(ft.now))  # the first is older than the window: not deleted yet
    assert len(await ft.rows(tables.callback_signatures)) == 2
    ft.now += 31  # a minute since the last deletion
    await deliver(third, int(ft.now))
    assert len(await ft.rows(tables.callback_signatures)) == 2  # the first one is gone


async def test_a_signed_callback_for_another_agency_s_request_is_forbidden(ft: Adapter):
    caf_request = f"{file_of(new_request())}-caf"
    body = body_of(caf_request)
    headers = {"x-signature": signatures.sign(SECRET, body, int(ft.now))}
    status, reply = await ft.core.on_callback(body, headers)
    assert (status, reply["kind"]) == (403, "forbidden")
    assert await ft.rows(tables.callbacks) == []  # not even held
    assert ft.counted("adapter_callbacks_refused_total", reason="demande_d_un_autre_organisme") == 1


async def test_without_a_secret_every_callback_is_refused(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    ft.core.desk.gate.secrets = ("", "")
    body = body_of(request_id)
    headers = {"x-signature": signatures.sign(SECRET, body, int(ft.now))}
    assert (await ft.core.on_callback(body, headers))[0] == 401
    await assert_nothing_applied(ft, request_id)


# -------------------------------------------------------------------- at start


def test_outside_dev_an_asynchronous_adapter_without_secret_refuses_to_start(monkeypatch):
    monkeypatch.delenv("CALLBACK_SECRET", raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    config = FranceTravailAdapter.Config()
    assert "CALLBACK_SECRET n'est pas configuré" in (missing_secret_problem(config, True) or "")
    with pytest.raises(SystemExit, match="CALLBACK_SECRET"):
        serve(FranceTravailAdapter, [])
    assert missing_secret_problem(config, asynchronous=False) is None
    assert missing_secret_problem(FranceTravailAdapter.Config(environment="dev"), True) is None
    assert missing_secret_problem(FranceTravailAdapter.Config(callback_secret="s"), True) is None
