"""The Hypothesis profiles (tests/hypothesis_profiles.py): ``ci`` by default, reproducible,
printing how to replay a failure; ``nightly`` drawing many more examples."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def test_the_profile_in_force_is_the_one_asked_for_else_ci_which_is_reproducible() -> None:
    assert settings.get_current_profile_name() == os.environ.get("HYPOTHESIS_PROFILE", "ci")
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.print_blob and ci.database is None and ci.deadline is None


def test_the_nightly_profile_draws_many_more_examples_at_random() -> None:
    ci, nightly = settings.get_profile("ci"), settings.get_profile("nightly")
    assert nightly.max_examples >= 20 * ci.max_examples
    assert not nightly.derandomize and nightly.print_blob and nightly.deadline is None


def test_a_failure_under_ci_tells_how_to_replay_it_and_fails_alike_every_run() -> None:
    drawn: list[list[int]] = []

    def run() -> str:
        seen: list[int] = []
        drawn.append(seen)

        @settings(settings.get_profile("ci"))
        @given(st.integers(min_value=0, max_value=10_000))
        def prop(n: int) -> None:
            seen.append(n)
            assert n < 1000

        with pytest.raises(AssertionError) as failed:
            prop()
        return "\n".join(getattr(failed.value, "__notes__", []))

    notes = run()
    assert "@reproduce_failure(" in notes and "n=1000" in notes
    assert run() == notes  # derandomized: the same failure, the same replay, every run
    assert drawn[0] == drawn[1]
