"""Fixtures of the deployment tests: the overlays' `kustomize build` output."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.support import OVERLAYS, build


@pytest.fixture(params=[f"overlays/{o}" for o in OVERLAYS])
def overlay(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    return build(request.param)


@pytest.fixture
def production() -> tuple[dict[str, Any], ...]:
    return build("overlays/production")
