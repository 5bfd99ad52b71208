"""Shared test settings: one hypothesis profile, small fixtures."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "winback",
    max_examples=int(os.environ.get("WINBACK_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("winback")

# answers winback remembers between runs (engine.phonezones) go to a folder of this test run,
# not the user's ~/.cache; child processes inherit it
if "WINBACK_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["WINBACK_CACHE_DIR"] = tempfile.mkdtemp(prefix="winback-test-cache-")


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _one_plan_instant():
    """tests.helpers.make_plan's default send time: the start of each test (see PLAN_NOW)."""
    import time

    from tests import helpers

    helpers.PLAN_NOW[0] = time.time()
    yield
