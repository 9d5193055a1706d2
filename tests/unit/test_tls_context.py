"""guichet_runtime.tls_context: one TLS context per process for the HTTP clients, built once
(each httpx client otherwise reads the whole CA bundle again: about 25 ms of CPU), and no
weaker than the one httpx would have built for each client."""

from __future__ import annotations

import ssl

import httpx

from guichet_runtime.tls_context import client_tls


def test_one_context_per_process_verifying_as_httpx_does():
    shared = client_tls()
    assert client_tls() is shared
    own = httpx.create_ssl_context()
    assert shared.verify_mode == own.verify_mode == ssl.CERT_REQUIRED
    assert shared.check_hostname and own.check_hostname
    assert shared.minimum_version == own.minimum_version
    assert shared.cert_store_stats() == own.cert_store_stats()


def test_clients_given_it_build_none_of_their_own(monkeypatch):
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    client_tls()  # the process's, built at most once
    monkeypatch.setattr(ssl, "create_default_context", counting)
    for _ in range(3):
        httpx.Client(verify=client_tls()).close()
    assert built == []
    httpx.Client().close()  # without it, each client builds one
    assert len(built) == 1
