"""What the check path asks of moderation (kept tiny so checks do not depend on the rest)."""

from __future__ import annotations

import aiosqlite


async def override_for(db: aiosqlite.Connection, sha256: str) -> dict | None:
    """The moderators' decision for this image, if any: replaces the detectors' verdict."""
    return None


async def after_check(db: aiosqlite.Connection, check: dict, user_id: str | None) -> None:
    """Called (inside the check's transaction) after a check is stored: flags fakes, etc."""
    return None
