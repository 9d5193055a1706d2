"""Crash points: armed only by both variables in a test environment, exit hard at the N-th
pass of the named point, cost nothing otherwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from guichet_runtime import crashpoints

SCRIPT = textwrap.dedent(
    """
    from guichet_runtime.crashpoints import crash_point
    for i in range(1, 4):
        crash_point("consumer.after_commit_before_ack")
        crash_point("relay.after_publish")
        print("passed", i, flush=True)
    """
)


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_process_exits_hard_at_the_named_point_and_pass():
    done = run({"GUICHET_CRASH_POINTS_ENABLED": "1", "GUICHET_CRASH_AT": "relay.after_publish:2"})
    assert done.returncode == crashpoints.EXIT_STATUS
    assert done.stdout.split("\n")[:-1] == ["passed 1"]
    assert "crash point relay.after_publish reached (pass 2)" in done.stderr


def test_the_first_pass_when_no_count_is_given():
    done = run(
        {
            "GUICHET_CRASH_POINTS_ENABLED": "1",
            "GUICHET_CRASH_AT": "consumer.after_commit_before_ack",
        }
    )
    assert done.returncode == crashpoints.EXIT_STATUS and done.stdout == ""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"GUICHET_CRASH_AT": "relay.after_publish"},  # the guard alone is missing
        {"GUICHET_CRASH_POINTS_ENABLED": "true", "GUICHET_CRASH_AT": "relay.after_publish"},
        {"GUICHET_CRASH_POINTS_ENABLED": "1"},
    ],
)
def test_not_armed_without_both_variables(env):
    done = run(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("passed") == 3


def test_not_armed_where_the_test_tools_are_absent(monkeypatch):
    """The production image is built without the dev group: no pytest, never armed."""
    monkeypatch.setenv("GUICHET_CRASH_POINTS_ENABLED", "1")
    monkeypatch.setenv("GUICHET_CRASH_AT", "relay.after_publish")
    monkeypatch.setattr(crashpoints.importlib.util, "find_spec", lambda name: None)
    crashpoints.reset()
    try:
        crashpoints.crash_point("relay.after_publish")  # would exit the test run if armed
        assert crashpoints._read_settings() is None  # read as not armed, not merely survived
    finally:
        crashpoints.reset()


def test_an_armed_unknown_point_stops_the_process_loudly():
    done = run({"GUICHET_CRASH_POINTS_ENABLED": "1", "GUICHET_CRASH_AT": "relay.after_comit"})
    assert done.returncode == 2 and "unknown crash point" in done.stderr


def test_an_unknown_point_is_refused():
    with pytest.raises(ValueError, match="unknown crash point"):
        crashpoints.parse("relay.after_comit")
    with pytest.raises(ValueError, match=">= 1"):
        crashpoints.parse("relay.after_publish:0")
    assert crashpoints.parse("notification.after_send:3") == ("notification.after_send", 3)


def test_every_point_is_called_somewhere():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = "".join(
        p.read_text(encoding="utf-8")
        for base in ("libs", "services")
        for p in (root / base).rglob("*.py")
        if ".venv" not in p.parts
    )
    for name in crashpoints.POINTS:
        assert f'crash_point("{name}")' in sources, name
