"""The database layer itself, on both backends: migrations (also when replicas start together),
placeholders, and input the database cannot hold answered as a 400."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import yarl

from service.settings import Settings
from service.store import open_database
from service.store.migrations import statements_for, target_version
from service.store.postgres import numbered
from tests.support.api import post_check


def test_placeholders_are_numbered_outside_quotes():
    assert numbered("SELECT '?' AS q, \"a?\" FROM t WHERE x = ? AND y IN (?, ?)") == \
        "SELECT '?' AS q, \"a?\" FROM t WHERE x = $1 AND y IN ($2, $3)"


def test_every_migration_renders_in_both_dialects():
    for number in range(1, target_version() + 1):
        for dialect in ("sqlite", "postgresql"):
            sql = " ".join(statements_for(number, dialect))
            assert "{" not in sql and "}" not in sql
    assert "BYTEA" in " ".join(statements_for(1, "postgresql"))
    assert "DOUBLE PRECISION" not in " ".join(statements_for(1, "sqlite"))


async def schema_versions(db) -> list[int]:
    if db.dialect == "sqlite":
        return [await db.fetchval("PRAGMA user_version")]
    return [r["version"] for r in await db.fetchall("SELECT version FROM schema_version ORDER BY version")]


async def test_replicas_starting_together_migrate_once(tmp_path, database_url, request):
    """Six processes' worth of connections open a fresh database at the same moment."""
    if database_url:  # an empty PostgreSQL database, not the pre-migrated copy
        database_url = request.getfixturevalue("postgres").create_database(migrated=False)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    dbs = await asyncio.gather(*(open_database(settings) for _ in range(6)))
    try:
        want = list(range(1, target_version() + 1))
        expect = want if dbs[0].dialect == "postgresql" else [target_version()]
        for db in dbs:
            assert await schema_versions(db) == expect
        # Every table is there once and usable from any of them.
        async with dbs[0].transaction() as tx:
            await tx.execute("INSERT INTO faq (question, answer, position, published, created_at,"
                             " updated_at) VALUES (?, ?, ?, ?, ?, ?)", ("q", "a", 1, 1, 1.0, 1.0))
        assert await dbs[-1].fetchval("SELECT COUNT(*) FROM faq") == 1
    finally:
        for db in dbs:
            await db.close()


async def test_a_new_sqlite_file_opens_while_another_process_is_writing_it(tmp_path):
    """Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at
    once (no busy wait) while another connection writes: the flaky start of replicas together.
    The opening waits for the writer instead of failing."""
    path = tmp_path / "new.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)  # another process, mid-write
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    opening = asyncio.ensure_future(
        open_database(Settings(data_dir=tmp_path, database_url=f"sqlite://{path}")))
    try:
        done, _ = await asyncio.wait([opening], timeout=2.0)  # before the fix: failed at once
        assert not done, opening.exception()
    finally:
        writer.execute("COMMIT")
        writer.close()
    db = await asyncio.wait_for(opening, 60)
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA user_version") == target_version()
    finally:
        await db.close()


async def test_an_older_sqlite_database_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as con:  # a file written by the first release: migration 1 only
        for sql in statements_for(1, "sqlite"):
            con.execute(sql)
        con.execute("INSERT INTO users (id, email, created_at) VALUES ('u1', 'a@example.com', 1.0)")
        con.execute("PRAGMA user_version=1")
    db = await open_database(Settings(data_dir=tmp_path, database_url=f"sqlite://{path}"))
    try:
        assert await db.fetchval("PRAGMA user_version") == target_version()
        row = await db.fetchone("SELECT email, queue_alerts FROM users WHERE id = 'u1'")
        assert (row["email"], row["queue_alerts"]) == ("a@example.com", 1)
    finally:
        await db.close()


async def test_values_the_database_cannot_hold_are_a_400(client, auth):
    body = {"question": "a question with a \x00 in it", "answer": "x"}
    resp = await client.post("/v1/admin/faq", json=body, headers=auth("root", "admin"))
    # SQLite stored NUL characters (201) where PostgreSQL text cannot (400): both refuse now
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"] == "bad_value"
    # Nothing half-written: the transaction was rolled back, the audit trail has no entry.
    audit = await (await client.get("/v1/admin/audit", params={"action": "faq.create"},
                                    headers=auth("root", "admin"))).json()
    assert audit["items"] == []


async def test_nul_in_any_text_is_a_400_on_both_backends(client, auth, noise_png):
    """NUL in JSON text (however deep), form fields, CSV, query values and path parameters: one
    400 ``bad_value`` on both backends (SQLite stored it or answered 200/404; PostgreSQL 400)."""
    alice, admin, mod = auth("alice"), auth("root", "admin"), auth("mo", "moderator")
    check = await post_check(client, alice, noise_png)
    flag_id = (await (await client.post(f"/v1/checks/{check['id']}/report", json={},
                                        headers=alice)).json())["flag_id"]
    entry = await (await client.post("/v1/admin/faq", json={"question": "q", "answer": "a"},
                                     headers=admin)).json()
    nul = "a\x00b"
    csv_body = f"pdq,verdict,note\n{'a' * 64},fake,{nul}\n"
    form = aiohttp.FormData()
    form.add_field("image", noise_png, filename="x.png", content_type="image/png")
    form.add_field("page_url", "https://p.example/" + nul)
    calls = [
        ("POST", "/v1/admin/faq", admin, {"json": {"question": "q", "answer": nul}}),
        ("PATCH", f"/v1/admin/faq/{entry['id']}", admin, {"json": {"question": nul}}),
        ("POST", f"/v1/checks/{check['id']}/report", alice, {"json": {"note": nul}}),
        ("POST", f"/v1/moderation/items/{flag_id}/decision", mod,
         {"json": {"decision": "fake", "version": 1, "note": nul}}),
        ("POST", "/v1/lookups", alice, {"json": {"sha256": [nul]}}),  # inside a list
        ("POST", "/v1/admin/faq", admin, {"json": {"question": "q", "answer": "a", nul: 1}}),
        ("POST", "/v1/admin/hashlist", admin, {"params": {"source": "t"}, "data": csv_body,
                                               "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/v1/checks", alice, {"data": form}),
        ("GET", "/v1/admin/users", admin, {"params": {"q": nul}}),
        ("GET", "/v1/admin/audit", admin, {"params": {"actor": nul}}),
        ("GET", "/v1/moderation/items", mod, {"params": {"state": "open", nul: "x"}}),
        ("GET", "/v1/checks", alice, {"params": {"page_url": "https://p.example/" + nul}}),
        ("GET", "/v1/checks/chk%00x", alice, {}),
        ("GET", "/v1/moderation/items/flg%00x", mod, {}),
        ("PATCH", "/v1/admin/users/u%00x", admin, {"json": {"disabled": True}}),
        ("DELETE", "/v1/admin/faq/1%00", admin, {}),
    ]
    for method, path, headers, kw in calls:
        headers = {**headers, **kw.pop("headers", {})}
        resp = await client.request(method, yarl.URL(path, encoded=True), headers=headers, **kw)
        assert resp.status == 400, (method, path, kw, await resp.text())
        assert (await resp.json())["error"] == "bad_value", (method, path, kw)
    # Nothing was written: the entry, the report and the item are as they were.
    assert (await (await client.get("/v1/admin/faq", headers=admin)).json())["items"] == [entry]
    item = await (await client.get(f"/v1/moderation/items/{flag_id}", headers=mod)).json()
    assert item["state"] == "open"
    assert "\x00" not in json.dumps(await (await client.get("/v1/admin/audit",
                                                            headers=admin)).json())


async def test_binary_uploads_with_nul_bytes_are_not_text(client, auth, noise_png):
    """Only text is held to the NUL rule: image bytes (full of NUL bytes) are checked as usual."""
    assert b"\x00" in noise_png
    form = aiohttp.FormData()
    form.add_field("image", noise_png, filename="x.png", content_type="image/png")
    form.add_field("page_url", "https://p.example/a")
    resp = await client.post("/v1/checks", data=form, headers=auth())
    assert resp.status == 201, await resp.text()
    resp = await client.post("/v1/checks", data=noise_png,
                             headers={**auth(), "Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()


async def test_numbers_past_a_column_are_refused_alike_on_both_backends(client, auth):
    body = {"question": "q", "answer": "x", "position": 2 ** 40}  # fits SQLite, not INTEGER
    resp = await client.post("/v1/admin/faq", json=body, headers=auth("root", "admin"))
    assert resp.status == 400 and (await resp.json())["error"] == "bad_field"


async def test_a_unique_key_taken_meanwhile_is_a_409_not_a_500(client, auth):
    """Two imports of one hash list at once (PostgreSQL): each looked for the entries, found
    none, and inserted them; the later insert broke the unique key (hash, source) and answered
    500. A ``Duplicate`` no store module handles now answers 409 ``conflict`` at the edge.
    SQLite runs the two imports one after the other: both succeed."""
    admin = {**auth("ad", "admin"), "Content-Type": "text/csv"}
    body = "pdq,verdict\n" + "".join(f"{i:064x},fake\n" for i in range(300))
    resps = await asyncio.gather(*(
        client.post("/v1/admin/hashlist", params={"source": "t"}, data=body, headers=admin)
        for _ in range(4)))
    answers = [(r.status, (await r.json()).get("error")) for r in resps]
    assert all(a in ((201, None), (409, "conflict")) for a in answers), answers
    assert (201, None) in answers, answers
    exported = await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text()
    assert exported.count("\n") == 301  # the header and each entry once
