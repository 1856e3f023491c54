"""Quota counters on each storage the platform uses: this process's memory (embedded) and Redis (shared)."""
from __future__ import annotations

import pytest

from tests.support.gateway import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    return REDIS_URL if request.param == "redis" else None
