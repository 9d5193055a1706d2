"""Hypothesis profiles, loaded by tests/conftest.py (docs/testing.md, "Property-based tests").

- ``ci`` (the default, what ``make test`` runs): derandomized, so a commit runs the same
  examples on every machine and every run (a failure is no accident of the draw, and a rerun
  shows it again); the ``@reproduce_failure`` blob printed with a failing example; no example
  database (nothing carried over from an earlier run); no per-example deadline and no
  "too slow" health check, since on a loaded 2-core machine timing says nothing about the code
  (the test's pytest timeout bounds the whole run); 40 examples per test.
- ``nightly`` (``HYPOTHESIS_PROFILE=nightly``): random, 1,000 examples per test, the same
  deadline policy, the blob printed too; run it with ``--hypothesis-seed=<n>`` to draw from a
  seed chosen (and logged) by the caller, and the same seed replays the whole run.

A test states only what it needs beyond the profile (e.g. ``stateful_step_count``), so that
the profile decides how many examples run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Health checks about speed: a loaded 2-core machine fails them for reasons of its own.
TIMING_CHECKS = [HealthCheck.too_slow]

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=TIMING_CHECKS,
)
settings.register_profile(
    "nightly",
    max_examples=1000,
    derandomize=False,
    print_blob=True,
    deadline=None,
    suppress_health_check=TIMING_CHECKS,
)

#: The profile in force: HYPOTHESIS_PROFILE, else "ci".
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
