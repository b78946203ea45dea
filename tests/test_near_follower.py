"""The near-duplicate index follows ``flag_hashes`` cheaply and completely, on both backends.

A check reads only the rows it has not loaded (none when nothing was added); a row that becomes
visible below the highest id loaded (PostgreSQL: transactions commit out of id order) is still
loaded; a rolled-back id does not make later checks read more.
"""

from __future__ import annotations

import secrets

import aiohttp
import pytest

from service.keys import DB, NEAR
from service.store import now


class Counting:
    """A connection that counts the rows its reads return."""

    def __init__(self, conn):
        self.conn = conn
        self.rows = 0

    async def fetchall(self, sql, params=()):
        rows = await self.conn.fetchall(sql, params)
        self.rows += len(rows)
        return rows


def known(near, h: str) -> bool:
    return any(d == 0 for d, _ in near.index.search(h, 0))


async def add_item(tx, hashes: list[str]) -> str:
    flag_id, at = "flg_" + secrets.token_hex(8), now()
    await tx.execute(
        "INSERT INTO flags (id, sha256, reason, score, detector_verdict, queued_at, created_at,"
        " last_seen_at) VALUES (?, ?, 'detectors', 0.9, 'fake', ?, ?, ?)",
        (flag_id, secrets.token_hex(32), at, at, at))
    for h in hashes:
        await tx.execute("INSERT INTO flag_hashes (flag_id, hash, is_window) VALUES (?, ?, 0)",
                         (flag_id, h))
    return flag_id


def new_hash() -> str:
    return secrets.token_hex(32)



async def decided_item(client, user, moderator, data: bytes, decision: str) -> str:
    """Check ``data``, report it and decide its item: the item's id."""
    from tests.support.api import post_check

    first = await post_check(client, user, data)
    r = await client.post(f"/v1/checks/{first['id']}/report", json={}, headers=user)
    item_id = (await r.json())["flag_id"]
    r = await client.get(f"/v1/moderation/items/{item_id}", headers=moderator)
    r = await client.post(f"/v1/moderation/items/{item_id}/decision", headers=moderator,
                          json={"decision": decision, "version": (await r.json())["version"]})
    assert r.status == 200
    return item_id

async def test_a_check_reads_no_rows_when_no_item_was_added(client, auth, fake_face_bytes):
    db, near = client.app[DB], client.app[NEAR]
    form = aiohttp.FormData()
    form.add_field("image", fake_face_bytes, filename="face.jpg", content_type="image/jpeg")
    r = await client.post("/v1/checks", data=form, headers=auth())
    assert r.status == 201
    assert (await r.json())["verdict"] in ("fake", "uncertain")  # it became an item
    stored = await db.fetchval("SELECT COUNT(*) FROM flag_hashes")
    assert stored >= 1
    counting = Counting(db)
    await near.refresh(counting)  # the item's own hashes, stored after its check's lookup
    assert counting.rows == stored
    await near.refresh(counting)
    assert counting.rows == stored  # nothing new: nothing read
    hashes = [new_hash() for _ in range(3)]
    async with db.transaction() as tx:
        await add_item(tx, hashes)
    await near.refresh(counting)
    assert counting.rows == stored + 3 and all(known(near, h) for h in hashes)
    await near.refresh(counting)
    assert counting.rows == stored + 3


async def test_rows_committed_out_of_id_order_are_loaded(client, backend):
    if backend != "postgresql":
        pytest.skip("SQLite's write lock makes ids visible in order")
    db, near = client.app[DB], client.app[NEAR]
    early, late, after = new_hash(), new_hash(), new_hash()
    async with db.transaction() as a:
        await add_item(a, [early])  # the lower id, committed last
        async with db.transaction() as b:
            await add_item(b, [late])
        await near.refresh(db)
        assert known(near, late) and not known(near, early)
    counting = Counting(db)
    await near.refresh(counting)
    assert known(near, early) and counting.rows == 1
    # an id spent by a transaction that rolled back stays a hole: later refreshes still read
    # only what is new
    with pytest.raises(RuntimeError):
        async with db.transaction() as c:
            await add_item(c, [new_hash()])
            raise RuntimeError("rolled back")
    async with db.transaction() as d:
        await add_item(d, [after])
    await near.refresh(counting)
    assert known(near, after) and counting.rows == 2
    await near.refresh(counting)
    await near.refresh(counting)
    assert counting.rows == 2


async def test_the_face_check_of_a_copy_runs_before_the_checks_transaction(
        client, auth, monkeypatch):
    """The face comparison (10-15 ms of CPU) of a new near-duplicate runs before its check's
    transaction opens (on SQLite that transaction holds the database's write lock), against the
    items the index held then; an item created since (no check has refreshed the index after
    it) is compared inside, as before. Either way the copy joins the item and gets its
    decision."""
    import service.moderation.near as near_module
    from tests.support.api import post_check
    from tests.support.copies import COPIES
    from tests.support.paths import require_shared_data, sample_images

    require_shared_data()
    db = client.app[DB]
    open_now = [0]
    compared: list[bool] = []  # per face comparison: was a transaction open?
    transaction, verified = db.transaction, near_module.verified_distance

    def tracked():
        class Tracked:
            async def __aenter__(self):
                self.cm = transaction()
                tx = await self.cm.__aenter__()
                open_now[0] += 1
                return tx

            async def __aexit__(self, *exc):
                open_now[0] -= 1
                return await self.cm.__aexit__(*exc)
        return Tracked()

    def comparing(*args, **kwargs):
        compared.append(open_now[0] > 0)
        return verified(*args, **kwargs)

    monkeypatch.setattr(db, "transaction", tracked)
    monkeypatch.setattr(near_module, "verified_distance", comparing)
    alice, mod = auth("alice"), auth("mo", "moderator")
    data = sample_images(1, source="celebrity-press")[0].read_bytes()
    item_id = await decided_item(client, alice, mod, data, "real")
    # the item was created after the last check's lookup: its first copy is compared inside
    copy = await post_check(client, alice, COPIES["png"](data))
    assert copy["moderation"]["match"]["item_id"] == item_id and copy["verdict"] == "real"
    assert compared == [True]
    # now the index holds it: another copy is compared before the transaction
    copy = await post_check(client, alice, COPIES["jpeg_q50"](data))
    assert copy["moderation"]["match"]["item_id"] == item_id and copy["verdict"] == "real"
    assert compared == [True, False]
    again = await post_check(client, auth("bob"), COPIES["jpeg_q50"](data))
    assert again["moderation"]["match"]["item_id"] == item_id
    assert compared == [True, False]  # the same image again: remembered, not compared again
    r = await client.get(f"/v1/moderation/items/{item_id}", headers=mod)
    assert len((await r.json())["variants"]) == 2


async def test_a_flagged_image_sent_again_is_not_compared_with_its_own_item(
        client, auth, monkeypatch, fake_face_bytes):
    """Its own item is found by its hash too, but a comparison with itself could decide
    nothing: the image's own decision is looked up by sha256 first. No face check runs, and
    the answers are as before."""
    import service.moderation.near as near_module
    from tests.support.api import post_check

    compared = []
    verified = near_module.verified_distance

    def comparing(*args, **kwargs):
        compared.append(1)
        return verified(*args, **kwargs)

    monkeypatch.setattr(near_module, "verified_distance", comparing)
    alice, mod = auth("alice"), auth("mo", "moderator")
    first = await post_check(client, alice, fake_face_bytes)
    assert first["verdict"] in ("fake", "uncertain") and first["moderation"] is None
    again = await post_check(client, auth("bob"), fake_face_bytes)
    assert again["cached"] is True and again["verdict"] == first["verdict"]
    assert again["moderation"] is None
    r = await client.get("/v1/moderation/items", params={"state": "all"}, headers=mod)
    (item,) = (await r.json())["items"]
    assert item["variant_count"] == 0 and item["check_count"] == 2
    r = await client.post(f"/v1/moderation/items/{item['id']}/decision", headers=mod,
                          json={"decision": "real", "version": item["version"]})
    assert r.status == 200
    third = await post_check(client, alice, fake_face_bytes)
    assert third["verdict"] == "real" and third["moderation"]["match"] is None
    assert third["moderation"]["item_id"] == item["id"]
    assert compared == []


async def test_a_face_check_that_fails_ahead_is_made_in_the_transaction(
        client, auth, monkeypatch):
    """Comparing ahead is a shortcut: if it fails, the copy is compared inside its transaction
    as before, and still gets the decision."""
    import service.moderation.near as near_module
    from tests.support.api import post_check
    from tests.support.copies import COPIES
    from tests.support.paths import require_shared_data, sample_images

    require_shared_data()
    alice, mod = auth("alice"), auth("mo", "moderator")
    data = sample_images(1, source="celebrity-press")[0].read_bytes()
    item_id = await decided_item(client, alice, mod, data, "fake")
    await post_check(client, alice, sample_images(2, source="utkface")[1].read_bytes())  # index
    verified, calls = near_module.verified_distance, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the comparison ahead failed")
        return verified(*args, **kwargs)

    monkeypatch.setattr(near_module, "verified_distance", failing_once)
    copy = await post_check(client, alice, COPIES["png"](data))
    assert len(calls) == 2  # ahead (failed), then inside the transaction
    assert copy["verdict"] == "fake" and copy["moderation"]["match"]["item_id"] == item_id
