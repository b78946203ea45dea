"""What a data folder holds survives a restart, and two data folders share nothing."""

from __future__ import annotations

import hashlib
import sqlite3

import aiohttp

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import Settings


def settings_for(data_dir, database_url: str = "") -> Settings:
    return Settings(data_dir=data_dir, rate_limit_per_minute=0, database_url=database_url)


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


async def upload(client, headers, data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("image", data, filename="f.jpg", content_type="image/jpeg")
    resp = await client.post("/v1/checks", data=form, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def journal_mode(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


async def test_checks_survive_a_restart(aiohttp_client, tmp_path, face_bytes, database_url):
    settings = settings_for(tmp_path / "data", database_url)
    first = await aiohttp_client(create_app(settings))
    token = LocalIssuer(settings.data_dir / "keys", settings.issuer, 3600).issue("alice")
    made = await upload(first, bearer(token), face_bytes)
    if not database_url:
        assert journal_mode(settings.db_path) == "wal"
    await first.close()

    second = await aiohttp_client(create_app(settings_for(tmp_path / "data", database_url)))
    # The signing key is kept too: a token issued before the restart still works.
    resp = await second.get(f"/v1/checks/{made['id']}", headers=bearer(token))
    assert resp.status == 200
    stored = await resp.json()
    assert {k: stored[k] for k in ("sha256", "score", "verdict", "faces")} == {
        k: made[k] for k in ("sha256", "score", "verdict", "faces")}
    sha = hashlib.sha256(face_bytes).hexdigest()
    hit = await second.get(f"/v1/checks?sha256={sha}", headers=bearer(token))
    assert hit.status == 200
    looked_up = await hit.json()
    assert looked_up["score"] == made["score"] and looked_up["cached"] is True
    again = await upload(second, bearer(token), face_bytes)
    assert again["cached"] is True
    health = await (await second.get("/health")).json()
    assert health["batching"]["batches_run"] == 0, "a known image is not scored again"
    listed = await (await second.get("/v1/checks", headers=bearer(token))).json()
    # One check per user and image: the lookup and the re-post count on the first check.
    assert again["id"] == looked_up["id"] == made["id"] and again["count"] == 3
    assert [(c["id"], c["count"]) for c in listed["items"]] == [(made["id"], 3)]
    if not database_url:
        assert journal_mode(settings.db_path) == "wal"


async def test_two_data_folders_share_nothing(aiohttp_client, tmp_path, face_bytes):
    sa, sb = settings_for(tmp_path / "a"), settings_for(tmp_path / "b")
    a = await aiohttp_client(create_app(sa))
    b = await aiohttp_client(create_app(sb))
    issuer_a = LocalIssuer(sa.data_dir / "keys", sa.issuer, 3600)
    issuer_b = LocalIssuer(sb.data_dir / "keys", sb.issuer, 3600)
    assert issuer_a.kid != issuer_b.kid
    token_a = issuer_a.issue("alice")
    made = await upload(a, bearer(token_a), face_bytes)

    resp = await b.get("/v1/checks", headers=bearer(token_a))
    assert resp.status == 401 and (await resp.json())["error"] == "unknown_key"
    moderator_b = bearer(issuer_b.issue("maria", "moderator"))
    assert (await b.get(f"/v1/checks/{made['id']}", headers=moderator_b)).status == 404
    miss = await b.get(f"/v1/checks?sha256={made['sha256']}", headers=moderator_b)
    assert miss.status == 404
    keys_a = (await (await a.get("/.well-known/jwks.json")).json())["keys"]
    keys_b = (await (await b.get("/.well-known/jwks.json")).json())["keys"]
    assert keys_a[0]["n"] != keys_b[0]["n"]
    assert sa.db_path != sb.db_path and sa.db_path.exists() and sb.db_path.exists()
