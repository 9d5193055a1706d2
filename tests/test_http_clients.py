"""Every HTTP client of the project's code and tests shares the process's TLS context
(`guichet_runtime.tls_context.client_tls`): httpx otherwise builds one per client, reading
the whole CA bundle (25–28 ms of CPU here), and `httpx.get`/`post`/`request` make a client per
call. The authorisation matrix alone spent some 30 s of CPU a run on it.

A client given its own transport (an app, a mock) builds no context and is left alone; so is
the agency simulator's one client, made once at its start (it does not depend on
guichet_runtime), and the test that shows what a client without it costs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "libs", "services", "adapters", "tools/devstack", "tools/admin")
ON_PURPOSE = {"tests/unit/test_tls_context.py"}
MAKERS = {"get", "post", "put", "patch", "delete", "head", "request", "stream"}
MAKERS |= {"Client", "AsyncClient"}


def clients_without_the_shared_context() -> list[str]:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" in path.parts or str(path.relative_to(ROOT)) in ON_PURPOSE:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "httpx"
                    and node.func.attr in MAKERS
                ):
                    continue
                given = {k.arg for k in node.keywords}
                if not given & {"verify", "transport", "app"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} httpx.{node.func.attr}")
    return found


def test_every_http_client_shares_the_processs_tls_context():
    assert clients_without_the_shared_context() == []
