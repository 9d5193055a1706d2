"""Shared fixtures of the tools' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agency_simulator.app import create_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as c:
        yield c
