"""Shared HTTP pieces of the adapters: Retry-After in seconds or as an HTTP date."""

from __future__ import annotations

from email.utils import formatdate

from adapters.http import parse_retry_after


def test_parse_retry_after_seconds_and_dates():
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("0.5", now=now) == 0.5
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None and parse_retry_after("") is None
