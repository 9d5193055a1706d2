"""The development and test stacks run every process with ENVIRONMENT=dev (secrets generated
once in the workdir), the web trusted to name the client, and, on test stacks, the
per-client rate limits lifted (every test client is 127.0.0.1); `guichet-dev run` keeps the
services' own limits."""

from __future__ import annotations

import json

from devstack.stack import Stack


def test_every_process_of_the_stack_runs_in_dev(tmp_path):
    stack = Stack(tmp_path, "127.0.0.1:9")
    stack._define()
    for name in ("intake", "assignment", "notification", "web", "adapter-caf"):
        env = stack.processes[name].env
        assert env["ENVIRONMENT"] == "dev", name
        assert env["SECRETS_DIR"] == str(tmp_path / "secrets"), name
        assert "127.0.0.1/32" in json.loads(env["TRUSTED_PROXIES"]), name
    limits = json.loads(stack.processes["intake"].env["RATE_LIMITS"])
    assert limits["files_per_client"] == "100000/hour"


def test_make_run_keeps_the_services_own_limits(tmp_path):
    stack = Stack(tmp_path, "127.0.0.1:9", rate_limits={})
    stack._define()
    assert "RATE_LIMITS" not in stack.processes["intake"].env
