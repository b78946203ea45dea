"""The ``images`` row: one per image or video (by SHA-256), whoever checked it."""

from __future__ import annotations

import json

from service.store import Connection, now

UPSERT = (
    "INSERT INTO images (sha256, models_version, result, thumbnail, cams, width,"
    " height, created_at, pdq, pdq_extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (sha256) DO UPDATE SET models_version = excluded.models_version,"
    " result = excluded.result, thumbnail = excluded.thumbnail, cams = excluded.cams,"
    " width = excluded.width, height = excluded.height,"
    " created_at = excluded.created_at, pdq = excluded.pdq,"
    " pdq_extra = excluded.pdq_extra")


async def store_image(tx: Connection, sha256: str, result: dict, thumbnail: bytes | None,
                      cams: bytes, pdq: str | None, pdq_extra: str | None) -> None:
    """One row per image, whichever replica scored it first or last (same models, same pixels:
    the same result); a new model version replaces the old result."""
    await tx.execute(UPSERT, (sha256, result["models_version"], json.dumps(result), thumbnail,
                              cams, result["width"], result["height"], now(), pdq, pdq_extra))
