"""The end-to-end lane's two halves (`tests/e2e/shards.py`, `make test`): together they run
every end-to-end test exactly once, PostgreSQL's in the second half, and a wrong
GUICHET_E2E_SHARD stops the run instead of running nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.shards import SECOND_HALF_MODULES, SHARD_VARIABLE

ROOT = Path(__file__).resolve().parents[1]


def collected(half: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != SHARD_VARIABLE}
    if half is not None:
        env[SHARD_VARIABLE] = half
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "tests/e2e"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def ids(run: subprocess.CompletedProcess) -> list[str]:
    assert run.returncode == 0, run.stdout + run.stderr
    return [line for line in run.stdout.splitlines() if "::" in line]


def counts(run: subprocess.CompletedProcess) -> tuple[int, int]:
    """(kept, collected) from the summary line `71/130 tests collected (59 deselected)`."""
    found = re.search(r"^(\d+)/(\d+) tests collected \((\d+) deselected\)", run.stdout, re.M)
    assert found, run.stdout[-500:]
    kept, whole, deselected = map(int, found.groups())
    assert kept + deselected == whole
    return kept, whole


def test_the_two_halves_run_every_end_to_end_test_once():
    # Each half reports how many tests the whole lane has: two collections, not three.
    runs = collected("1/2"), collected("2/2")
    first, second = ids(runs[0]), ids(runs[1])
    (kept_first, whole), (kept_second, whole_again) = counts(runs[0]), counts(runs[1])

    assert whole == whole_again > 100
    assert (len(first), len(second)) == (kept_first, kept_second)
    # Disjoint halves of one collection that add up to it: together, the whole lane once.
    assert not set(first) & set(second)
    assert len(set(first)) + len(set(second)) == whole
    assert not [t for t in first if "postgresql" in t]
    assert [t for t in second if "postgresql" in t]
    # Each module named for the second half exists, and is there whole.
    for module in SECOND_HALF_MODULES:
        path = f"tests/e2e/{module}"
        assert (ROOT / path).exists(), path
        assert not [t for t in first if t.startswith(path + "::")], module


def test_a_wrong_half_stops_the_run():
    run = collected("3/2")
    assert run.returncode != 0
    assert "GUICHET_E2E_SHARD is 1/2 or 2/2, not '3/2'" in run.stdout + run.stderr
