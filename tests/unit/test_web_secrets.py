"""Issue 12 §3: no default secret. The session cookie was signed with the default key
`dev-only-secret-change-me`, so a forged cookie opened `/dossier/{id}` with no code. Now the
session is kept server-side (the cookie is a random id: nothing to forge), and the web has no
default key: outside ENVIRONMENT=dev it refuses to start without SECRET_KEY; in dev a random
key is generated once and kept under the working directory."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from guichet_runtime.secrets import Environment, MissingSecret, required_secret
from tests.unit.test_web_citizen_file import FILE_ID, VIEW, FakeBackend, open_with_code
from web.api.deps import get_backend
from web.bootstrap import bootstrap
from web.settings import WebSettings

OLD_DEFAULT_KEY = "dev-only-secret-change-me"


def forged_cookie(key: str) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it: this file opened."""
    session = {"files": {FILE_ID: time.time() + 3600}}
    data = base64.b64encode(json.dumps(session).encode())
    return TimestampSigner(key).sign(data).decode()


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True)
    return tmp_path


@contextmanager
def pages(settings: WebSettings) -> Iterator[TestClient]:
    app = bootstrap(settings)
    app.dependency_overrides[get_backend] = lambda: FakeBackend(VIEW)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def open_with(client: TestClient, cookie: str) -> int:
    client.cookies.set("guichet_session", cookie)
    return client.get(f"/dossier/{FILE_ID}").status_code


@pytest.mark.parametrize("environment", ["dev", "production"])
def test_a_cookie_signed_with_the_old_default_key_opens_nothing(assets, tmp_path, environment):
    key = {"production": "a-real-secret-from-the-store"}.get(environment)
    settings = WebSettings(
        environment=environment,
        secret_key=key,
        secrets_dir=tmp_path / "secrets",
        assets_dir=assets,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db",
    )
    with pages(settings) as client:
        forged = open_with(client, forged_cookie(OLD_DEFAULT_KEY))
    real_key = key or (tmp_path / "secrets" / "secret_key").read_text().strip()
    with pages(settings) as client:
        signed_with_ours = open_with(client, forged_cookie(real_key))
    with pages(settings) as client:
        opened = open_with_code(client, follow_redirects=False)
        genuine = client.get(f"/dossier/{FILE_ID}").status_code

    assert forged == 303  # back to /suivi: a code is asked for
    # Even signed with the service's own key: a cookie is only a random session id now.
    assert signed_with_ours == 303
    assert opened.status_code == 303 and genuine == 200  # a code opens it


def test_production_without_the_secret_refuses_to_start(assets, tmp_path):
    with pytest.raises(MissingSecret, match="SECRET_KEY is required outside development"):
        bootstrap(WebSettings(secrets_dir=tmp_path, assets_dir=assets))  # production: default
    assert not any(tmp_path.glob("secret*"))  # nothing generated outside dev


def test_the_web_process_refuses_to_start_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ENVIRONMENT")}
    script = Path(sys.executable).parent / "web"
    done = subprocess.run(
        [str(script), "--port", "9"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "web refuses to start: SECRET_KEY is required outside development" in done.stderr


def test_dev_generates_a_random_key_once_and_keeps_it(tmp_path):
    folder = tmp_path / "var" / "secrets"
    first = required_secret(None, "SECRET_KEY", Environment.DEV, folder)
    again = required_secret(None, "SECRET_KEY", Environment.DEV, folder)
    elsewhere = required_secret(None, "SECRET_KEY", Environment.DEV, tmp_path / "other")

    assert first == again and len(first) >= 40 and first != elsewhere
    assert (folder / "secret_key").stat().st_mode & 0o777 == 0o600
