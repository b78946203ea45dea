"""What the check path asks of moderation (kept tiny so checks do not depend on the rest)."""

from __future__ import annotations

import weakref

import aiosqlite

from service.moderation import flags, notify

#: the public URL of the app that owns each database connection (for links in emails)
_base_urls: "weakref.WeakKeyDictionary[aiosqlite.Connection, str]" = weakref.WeakKeyDictionary()


def bind(db: aiosqlite.Connection, base_url: str) -> None:
    """Called at start-up with the app's public URL."""
    _base_urls[db] = base_url.rstrip("/")


async def override_for(db: aiosqlite.Connection, sha256: str) -> dict | None:
    """The moderators' decision for this image, if any: replaces the detectors' verdict."""
    return await flags.override(db, sha256)


async def after_check(db: aiosqlite.Connection, check: dict, user_id: str | None) -> None:
    """Called (inside the check's transaction) after a check is stored: flags fakes, etc."""
    await flags.record_sighting(db, check)
    if user_id is not None and check["verdict"] == "fake":
        await notify.fake_alert(db, check, user_id, _base_urls.get(db, ""))
