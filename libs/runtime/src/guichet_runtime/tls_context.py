"""One TLS client context per process, for every outgoing HTTP client.

httpx builds an `ssl.SSLContext` for each client it creates (`httpx.AsyncClient()`, and each
call of `httpx.get`/`httpx.post`), and building one reads the whole CA bundle: about 25 ms of
CPU with OpenSSL 3.0 on the 2-core machine, whatever the client then talks to (plain HTTP
included). A context is safe to share between clients, threads and event loops, so a process
builds it once, at its first client, with httpx's own defaults (certifi's bundle, or
SSL_CERT_FILE / SSL_CERT_DIR when set): pass `verify=client_tls()`.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The process's TLS context for HTTP clients (httpx's default verification)."""
    return httpx.create_ssl_context()
