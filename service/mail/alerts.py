"""Which events send which emails; every message goes to the outbox inside the event's transaction.

- A user with ``email_alerts`` on: once per image, when a check of theirs comes back fake.
- Moderators and admins with ``queue_alerts`` on: new (or reopened) open items, in one message
  per sender pass (immediately) or once the oldest waited ``mail_digest_s`` seconds (digest).
- Every reporter with an email address: when moderators decide on the item they reported.
"""

from __future__ import annotations

import hashlib

from service.mail import compose
from service.mail.outbox import enqueue
from service.moderation import queue
from service.store import Connection, Database, now


def active(alias: str = "") -> str:
    """SQL condition: an account that can receive mail."""
    return f"{alias}disabled = 0 AND {alias}deleted_at IS NULL AND {alias}email IS NOT NULL"


async def fake_alert(tx: Connection, check: dict, user_id: str, base_url: str) -> bool:
    user = await tx.fetchone(f"SELECT email FROM users WHERE id = ? AND email_alerts = 1 AND {active()}",
                             (user_id,))
    if user is None:
        return False
    subject, body = compose.fake_alert(check, base_url)
    return await enqueue(tx, kind="fake_alert", recipient=user["email"], subject=subject, body=body,
                         dedupe_key=f"fake:{user_id}:{check['sha256']}", user_id=user_id)


async def decision_mails(tx: Connection, flag_id: str, decision: str, note: str | None,
                         version: int, base_url: str) -> int:
    """Tell the item's reporters not yet told since they reported; the number queued."""
    reports = await tx.fetchall(f"""
        SELECT r.id, r.user_id, r.page_url, r.created_at, u.email FROM flag_reports r
        JOIN users u ON u.id = r.user_id
        WHERE r.flag_id = ? AND r.notified_version IS NULL AND {active('u.')}""", (flag_id,))
    for r in reports:
        subject, body = compose.decision(decision, note, dict(r), base_url)
        await enqueue(tx, kind="decision", recipient=r["email"], subject=subject, body=body,
                      dedupe_key=f"decision:{r['id']}:{version}", user_id=r["user_id"])
        await tx.execute("UPDATE flag_reports SET notified_version = ? WHERE id = ?", (version, r["id"]))
    return len(reports)


async def announce_new_items(db: Database, base_url: str, digest_s: float) -> int:
    """Queue alerts for items not yet announced; the number of items announced (0 = not due).

    The items are locked while they are announced, so replicas running this at once announce
    each item once (and the outbox's unique ``dedupe_key`` would drop a repeat anyway).
    """
    if not await queue.any_unannounced(db):
        return 0  # the common case, answered without taking the write lock
    async with db.transaction() as tx:
        items = await queue.unannounced(tx)
        if not items or (digest_s > 0 and now() - items[0]["queued_at"] < digest_s):
            return 0
        moderators = await tx.fetchall(
            f"SELECT id, email FROM users WHERE role IN ('moderator', 'admin')"
            f" AND queue_alerts = 1 AND {active()}")
        batch = hashlib.sha256(",".join(f"{i['id']}@{i['version']}" for i in items).encode()
                               ).hexdigest()[:24]
        subject, body = compose.queue_alert(items, base_url, digest=digest_s > 0)
        for m in moderators:
            await enqueue(tx, kind="queue_alert", recipient=m["email"], subject=subject, body=body,
                          dedupe_key=f"queue:{m['id']}:{batch}", user_id=m["id"])
        await queue.mark_announced(tx, [i["id"] for i in items])
    return len(items)
