"""Share links: an unguessable token that shows one check to anyone who has the link, until
its owner revokes it. The token is the only key (256 random bits); revoking keeps the row, so
a revoked link stays dead."""

from __future__ import annotations

import secrets

from service.store import Connection, Database, for_update, now


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def active(conn: Connection, check_id: str) -> dict | None:
    row = await conn.fetchone(
        "SELECT token, created_at FROM shares WHERE check_id = ? AND revoked_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1", (check_id,))
    return {"token": row["token"], "created_at": row["created_at"]} if row else None


async def create(db: Database, check_id: str) -> tuple[dict, bool]:
    """(share, created): the check's live link, made if it has none."""
    async with db.transaction() as tx:
        # the check's row stays locked until this ends (PostgreSQL), so two requests at once
        # make one link: the second waits, then finds the first's
        await tx.execute(f"SELECT id FROM checks WHERE id = ?{for_update(tx)}", (check_id,))
        existing = await active(tx, check_id)
        if existing is not None:
            return existing, False
        share = {"token": new_token(), "created_at": now()}
        await tx.execute("INSERT INTO shares (token, check_id, created_at) VALUES (?, ?, ?)",
                         (share["token"], check_id, share["created_at"]))
    return share, True


async def revoke(db: Database, check_id: str) -> int:
    """Kills every live link of the check; how many there were."""
    async with db.transaction() as tx:
        return await tx.execute("UPDATE shares SET revoked_at = ? WHERE check_id = ?"
                                " AND revoked_at IS NULL", (now(), check_id))


async def resolve(conn: Connection, token: str) -> str | None:
    """The check id a live link shows, else None (unknown or revoked)."""
    return await conn.fetchval("SELECT check_id FROM shares WHERE token = ? AND revoked_at IS NULL",
                               (token,))
