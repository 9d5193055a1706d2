"""Issue 12 §6: a request-body size limit on every service. Over real HTTP (uvicorn): a
declared Content-Length over the limit, and a chunked body growing past it while it
streams, both answer 413 in French; an upload route has its own, larger limit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from guichet_runtime.body_limit import BodySizeLimit
from guichet_runtime.sealing import new_key
from guichet_runtime.tls_context import client_tls

KEY = new_key()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return {"received": len(str(body))}

    @app.post("/upload")
    async def upload(request: Request) -> dict:
        return {"received": len(await request.body())}

    app.add_middleware(BodySizeLimit, max_bytes=1024, overrides=[(r"/upload", 4096)])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def _chunks(total: int, size: int = 256) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_a_small_body_passes(server):
    answer = httpx.post(f"{server}/echo", json={"texte": "bonjour"}, verify=client_tls())
    assert answer.status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_reading(server):
    answer = httpx.post(f"{server}/echo", json={"texte": "x" * 2000}, verify=client_tls())
    assert answer.status_code == 413
    assert answer.json() == {
        "message": "La requête est trop volumineuse : 1 Ko au plus.",
        "kind": "too_large",
    }


def test_a_chunked_body_growing_past_the_limit_is_refused(server):
    answer = httpx.post(
        f"{server}/upload",
        content=_chunks(10_000),
        headers={"Content-Type": "application/octet-stream"},
        verify=client_tls(),
    )
    assert "content-length" not in answer.request.headers  # really streamed, chunked
    assert answer.status_code == 413
    assert answer.json()["message"] == "La requête est trop volumineuse : 4 Ko au plus."


def test_a_chunked_json_body_past_the_limit_is_refused_even_when_the_app_parses_it(server):
    answer = httpx.post(
        f"{server}/echo",
        content=_chunks(5000),
        headers={"Content-Type": "application/json"},
        verify=client_tls(),
    )
    assert answer.status_code == 413 and answer.json()["kind"] == "too_large"


def test_an_upload_route_takes_more_than_the_default(server):
    answer = httpx.post(f"{server}/upload", content=b"x" * 3000, verify=client_tls())
    assert answer.status_code == 200 and answer.json() == {"received": 3000}
    streamed = httpx.post(f"{server}/upload", content=_chunks(3000), verify=client_tls())
    assert streamed.status_code == 200 and streamed.json() == {"received": 3000}


@pytest.mark.parametrize("service", ["intake", "assignment", "notification", "adapter", "web"])
def test_every_service_app_has_the_limit(service: str, tmp_path: Path):
    db = f"sqlite+aiosqlite:///{tmp_path}/{service}.db"
    if service == "intake":
        from intake.bootstrap import IntakeSettings, bootstrap

        app = bootstrap(IntakeSettings(database_url=db, access_code_key=KEY))
    elif service == "assignment":
        from assignment.bootstrap import AssignmentSettings, bootstrap

        app = bootstrap(AssignmentSettings(database_url=db))
    elif service == "notification":
        from notification.bootstrap import NotificationSettings, bootstrap

        app = bootstrap(NotificationSettings(database_url=db, access_code_key=KEY))
    elif service == "adapter":
        from adapter_sdk import discovery
        from adapter_sdk.app import build_app

        cls = discovery.load("caf")
        app = build_app(cls, cls.Config(database_url=db))
    else:
        from web.bootstrap import bootstrap
        from web.settings import WebSettings

        (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True)
        app = bootstrap(WebSettings(secret_key="test-only-secret", assets_dir=tmp_path))
    limits = [m for m in app.user_middleware if m.cls is BodySizeLimit]
    assert len(limits) == 1
    assert limits[0].kwargs["max_bytes"] == 64 * 1024
