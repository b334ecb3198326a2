"""The one clock of recorded times: UTC, naive (as SQLite stores them)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
