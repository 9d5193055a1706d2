"""The simulated SMS gateway and postal service, as a real process on a real socket."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from guichet_runtime.tls_context import client_tls


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.providers",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", verify=client_tls()).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("providers did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def gateway(tmp_path):
    port = free_port()
    procs = [start(tmp_path, port)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", verify=client_tls()) as client:
        yield client, tmp_path, procs
    for proc in procs:
        if proc.poll() is None:
            stop(proc)


def sms(client: httpx.Client, key: str, to: str = "06 12 34 56 78") -> httpx.Response:
    return client.post(
        "/api/sms",
        json={"to": to, "text": "Bonjour", "sender": "GUICHET"},
        headers={"Idempotency-Key": key, "X-Guichet-File": "GU-1"},
    )


def test_an_sms_is_delivered_once_per_idempotency_key(gateway):
    client, _, _ = gateway
    first, again = sms(client, "k1"), sms(client, "k1")

    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    [stored] = client.get("/api/sms").json()
    assert (stored["to"], stored["file_id"], stored["key"]) == ("+33612345678", "GU-1", "k1")
    assert client.get("/stats").json()["replayed"] == 1


def test_every_call_is_recorded_and_a_repeated_key_is_reported(gateway):
    """Issue 18: the gateway does not deliver a replay again, but the test sees the repeat."""
    client, _, _ = gateway
    assert client.get("/repeats").json() == []
    for key in ("k1", "k1", "k2"):
        sms(client, key)
    letter = {"Idempotency-Key": "L1", "Content-Type": "application/pdf", "X-Guichet-File": "GU-7"}
    for _ in range(3):
        client.post("/api/letters", content=b"%PDF-1.4 x", headers=letter)

    assert len(client.get("/api/sms").json()) == 2 and len(client.get("/api/letters").json()) == 1
    calls = client.get("/calls").json()
    assert [(c["kind"], c["key"], c["replayed"]) for c in calls] == [
        ("sms", "k1", False),
        ("sms", "k1", True),
        ("sms", "k2", False),
        ("letters", "L1", False),
        ("letters", "L1", True),
        ("letters", "L1", True),
    ]
    assert client.get("/repeats").json() == [
        {"kind": "sms", "key": "k1", "file_id": "GU-1", "calls": 2},
        {"kind": "letters", "key": "L1", "file_id": "GU-7", "calls": 3},
    ]
    assert client.get("/stats").json()["replayed"] == 3
    client.delete("/api/sms")
    assert [r["kind"] for r in client.get("/repeats").json()] == ["letters"]


def test_faults_answer_permanent_and_temporary_errors(gateway):
    client, _, _ = gateway
    client.post(
        "/admin/faults",
        json={"refuse_numbers": ["0699999999"], "sms_unavailable": 1, "letters_unavailable": 1},
    )

    down = sms(client, "k2")
    assert down.status_code == 503 and down.json()["error"]["permanent"] is False
    refused = sms(client, "k3", to="06 99 99 99 99")
    assert refused.status_code == 400 and refused.json()["error"] == {
        "code": "numero_invalide",
        "message": "Numéro non joignable par SMS : +33699999999.",
        "permanent": True,
    }
    assert sms(client, "k3b", to="12").status_code == 400
    assert sms(client, "k2").status_code == 201  # the outage is over
    pdf = {"headers": {"Idempotency-Key": "L1", "Content-Type": "application/pdf"}}
    assert client.post("/api/letters", content=b"%PDF-1.4 x", **pdf).status_code == 503
    assert client.post("/api/letters", content=b"pas un pdf", **pdf).status_code == 400
    assert (
        client.post(
            "/api/letters", content=b"x", headers={"Content-Type": "application/pdf"}
        ).status_code
        == 400
    )


def test_letters_and_keys_survive_a_restart(gateway):
    client, data_dir, procs = gateway
    headers = {"Idempotency-Key": "L9", "Content-Type": "application/pdf", "X-Guichet-File": "GU-9"}
    first = client.post("/api/letters", content=b"%PDF-1.4 lettre", headers=headers)
    assert first.status_code == 201

    stop(procs[0])
    procs.append(start(data_dir, client.base_url.port))

    again = client.post("/api/letters", content=b"%PDF-1.4 lettre", headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # the repeat is counted across the restart
    assert client.get("/repeats").json() == [
        {"kind": "letters", "key": "L9", "file_id": "GU-9", "calls": 2}
    ]
    assert client.get("/stats").json()["replayed"] == 1
    [letter] = client.get("/api/letters").json()
    assert letter["file_id"] == "GU-9"
    assert client.get(f"/api/letters/{letter['id']}.pdf").content == b"%PDF-1.4 lettre"
