"""Admins manage users (list, role, disable, delete with their data) and the FAQ of the help page."""

import asyncio

from service.keys import DB
from tests.support.accounts import register
from tests.support.api import post_check as check
from tests.support.paths import require_shared_data, sample_images


async def test_list_search_and_change_roles(client, auth):
    root = auth("root", "admin", email="root@example.com")
    for sub, email in (("ann", "ann@example.com"), ("bob", "bob@corp.example"), ("cy", None)):
        await client.get("/v1/me", headers=auth(sub, email=email))
    await client.get("/v1/me", headers=root)
    listing = await (await client.get("/v1/admin/users", headers=root)).json()
    assert listing["total"] == 4 and {u["id"] for u in listing["items"]} == {"root", "ann", "bob", "cy"}
    found = await (await client.get("/v1/admin/users", params={"q": "corp"}, headers=root)).json()
    assert [u["id"] for u in found["items"]] == ["bob"]
    assert (await (await client.get("/v1/admin/users", params={"q": "%"}, headers=root)).json())["total"] == 0

    resp = await client.patch("/v1/admin/users/ann", json={"role": "moderator"}, headers=root)
    assert resp.status == 200 and (await resp.json())["role"] == "moderator"
    mods = await (await client.get("/v1/admin/users", params={"role": "moderator"}, headers=root)).json()
    assert [u["id"] for u in mods["items"]] == ["ann"]
    cases = [("ann", {"role": "boss"}, 400, "bad_role"), ("ann", {}, 400, "nothing_to_change"),
             ("ann", {"disabled": "yes"}, 400, "bad_field"), ("nobody", {"role": "user"}, 404, "not_found"),
             ("root", {"role": "user"}, 409, "own_account"), ("root", {"disabled": True}, 409, "own_account")]
    for user_id, body, status, code in cases:
        resp = await client.patch(f"/v1/admin/users/{user_id}", json=body, headers=root)
        assert resp.status == status and (await resp.json())["error"] == code, (user_id, body)
    resp = await client.get("/v1/admin/users", params={"role": "boss"}, headers=root)
    assert resp.status == 400


async def test_disable_and_enable(client, auth):
    root, ann = auth("root", "admin"), auth("ann")
    await client.get("/v1/me", headers=ann)
    await client.get("/v1/me", headers=root)
    resp = await client.patch("/v1/admin/users/ann", json={"disabled": True}, headers=root)
    assert resp.status == 200 and (await resp.json())["disabled"] is True
    resp = await client.get("/v1/checks", headers=ann)
    assert resp.status == 403 and (await resp.json())["error"] == "account_disabled"
    await client.patch("/v1/admin/users/ann", json={"disabled": False}, headers=root)
    assert (await client.get("/v1/checks", headers=ann)).status == 200
    actions = [e["action"] for e in (await (await client.get(
        "/v1/admin/audit", params={"target": "ann"}, headers=root)).json())["items"]]
    assert actions == ["admin.enable", "admin.disable", "auth.first_seen"]



async def test_two_admins_demoting_each_other_at_once_leave_one_admin(client, auth):
    """Each request alone passes the last-admin guard; on PostgreSQL both passed at once and
    left no admin (the guard counted the other admin before the other demotion committed)."""
    a, b = auth("a", "admin"), auth("b", "admin")
    db = client.app[DB]
    for body in ({"role": "user"}, {"disabled": True}, {"role": "moderator", "disabled": True}):
        await client.get("/v1/me", headers=a)
        await client.get("/v1/me", headers=b)
        await db.execute("UPDATE users SET role = 'admin', disabled = 0 WHERE id IN ('a', 'b')")
        answers = await asyncio.gather(
            client.patch("/v1/admin/users/b", json=body, headers=a),
            client.patch("/v1/admin/users/a", json=body, headers=b))
        # one is refused: as the last admin, or, when the other had committed before it was
        # let in, because its caller is no longer an admin
        assert sorted(r.status for r in answers) in ([200, 403], [200, 409]), body
        refused = await next(r for r in answers if r.status != 200).json()
        assert refused["error"] in ("last_admin", "forbidden", "account_disabled"), body
        assert await db.fetchval("SELECT COUNT(*) FROM users WHERE role = 'admin'"
                                 " AND disabled = 0") == 1, body

async def test_delete_a_user_with_their_data(client, auth):
    require_shared_data()
    images = [p.read_bytes() for p in sample_images(3, source="tpdne-unsplash", label="real")]
    root, mod = auth("root", "admin"), auth("mo", "moderator")
    bob, ann = auth("bob", email="bob@example.com"), auth("ann")
    await client.get("/v1/me", headers=root)
    shared = await check(client, bob, images[0], "https://bob.example/private")
    await check(client, ann, images[0], "https://ann.example/page")
    only_bob = await check(client, bob, images[1], "https://bob.example/other")
    decided = await check(client, bob, images[2])
    r_shared = await (await client.post(f"/v1/checks/{shared['id']}/report", json={"note": "bob's"},
                                        headers=bob)).json()
    r_only = await (await client.post(f"/v1/checks/{only_bob['id']}/report", json={}, headers=bob)).json()
    r_decided = await (await client.post(f"/v1/checks/{decided['id']}/report", json={}, headers=bob)).json()
    resp = await client.post(f"/v1/moderation/items/{r_decided['flag_id']}/decision", headers=mod,
                             json={"decision": "fake", "version": 1})
    assert resp.status == 200

    resp = await client.delete("/v1/admin/users/bob", headers=root)
    assert resp.status == 200, await resp.text()
    removed = (await resp.json())["removed"]
    assert removed["checks"] == 3 and removed["reports"] == 3 and removed["items"] == 1

    # His checks are gone, for moderators too; his token does not bring him back.
    assert (await client.get(f"/v1/checks/{shared['id']}", headers=mod)).status == 404
    resp = await client.get("/v1/me", headers=bob)
    assert resp.status == 403 and (await resp.json())["error"] == "account_disabled"
    users = await (await client.get("/v1/admin/users", headers=root)).json()
    assert "bob" not in {u["id"] for u in users["items"]}
    assert (await client.delete("/v1/admin/users/bob", headers=root)).status == 404
    # The shared image's item keeps ann's check, loses bob's page and report.
    item = await (await client.get(f"/v1/moderation/items/{r_shared['flag_id']}", headers=mod)).json()
    assert (item["check_count"], item["report_count"]) == (1, 0)
    assert [p["url"] for p in item["pages"]] == ["https://ann.example/page"]
    assert "bob's" not in str(item["history"])
    # The item only bob kept open is gone, with its image; the decided one stays and applies.
    assert (await client.get(f"/v1/moderation/items/{r_only['flag_id']}", headers=mod)).status == 404
    db = client.app[DB]
    assert await db.fetchone("SELECT 1 FROM images WHERE sha256 = ?", (only_bob["sha256"],)) is None
    assert (await check(client, ann, images[2]))["moderation"]["verdict"] == "fake"
    row = await db.fetchone("SELECT email, password_hash, deleted_at FROM users WHERE id = 'bob'")
    assert row["email"] is None and row["password_hash"] is None and row["deleted_at"] > 0
    entry = (await (await client.get("/v1/admin/audit", params={"action": "admin.delete_user"},
                                     headers=root)).json())["items"][0]
    assert entry["actor"] == "root" and entry["target"] == "bob"
    assert entry["detail"]["email"] == "bob@example.com" and entry["detail"]["removed"] == removed
    # The address is free again.
    resp = await register(client, "bob@example.com", "a new password 1")
    assert resp.status == 201
    assert (await client.delete("/v1/admin/users/root", headers=root)).status == 409


async def test_faq_crud_and_the_public_help_page(client, auth):
    root = auth("root", "admin")
    made = []
    for body in ({"question": "Why <uncertain>?", "answer": "Too close to call.\n\nBe careful.",
                  "position": 2},
                 {"question": "Who decides?", "answer": "Moderators.", "position": 1},
                 {"question": "Draft", "answer": "Not yet.", "published": False}):
        resp = await client.post("/v1/admin/faq", json=body, headers=root)
        assert resp.status == 201, await resp.text()
        made.append(await resp.json())
    public = (await (await client.get("/v1/faq")).json())["items"]
    assert [e["question"] for e in public] == ["Who decides?", "Why <uncertain>?"]
    everything = (await (await client.get("/v1/admin/faq", headers=root)).json())["items"]
    assert len(everything) == 3 and everything[-1]["published"] is False

    page = await (await client.get("/help")).text()
    assert "Why &lt;uncertain&gt;?" in page and "<uncertain>" not in page
    assert "<p>Too close to call.</p><p>Be careful.</p>" in page and "Not yet." not in page
    assert page.index("Who decides?") < page.index("Why &lt;uncertain&gt;?")

    resp = await client.patch(f"/v1/admin/faq/{made[2]['id']}", json={"published": True,
                                                                      "answer": "Now public."},
                              headers=root)
    assert resp.status == 200 and (await resp.json())["answer"] == "Now public."
    assert "Now public." in await (await client.get("/help")).text()
    resp = await client.delete(f"/v1/admin/faq/{made[0]['id']}", headers=root)
    assert resp.status == 200
    assert [e["id"] for e in (await (await client.get("/v1/faq")).json())["items"]] == \
        [made[1]["id"], made[2]["id"]]
    cases = [("post", "/v1/admin/faq", {"question": "Q"}, 400, "missing_field"),
             ("post", "/v1/admin/faq", {"question": " ", "answer": "A"}, 400, "bad_field"),
             # invisible beyond ASCII: zero-width space, no-break space, BOM, word joiner
             ("post", "/v1/admin/faq", {"question": "\u200b", "answer": "A"}, 400, "bad_field"),
             ("post", "/v1/admin/faq", {"question": "Q", "answer": "\u00a0\ufeff\u2060\u3000"},
              400, "bad_field"),
             ("patch", f"/v1/admin/faq/{made[1]['id']}", {"question": "\u200b\u200d"}, 400,
              "bad_field"),
             ("post", "/v1/admin/faq", {"question": "Q", "answer": "A", "position": "1"}, 400, "bad_field"),
             ("patch", f"/v1/admin/faq/{made[1]['id']}", {}, 400, "nothing_to_change"),
             ("patch", "/v1/admin/faq/999", {"answer": "x"}, 404, "not_found"),
             ("delete", f"/v1/admin/faq/{made[0]['id']}", None, 404, "not_found"),
             ("delete", "/v1/admin/faq/abc", None, 404, "not_found")]
    for method, path, body, status, code in cases:
        resp = await client.request(method, path, json=body, headers=root)
        assert resp.status == status and (await resp.json())["error"] == code, (method, path, body)
    actions = [e["action"] for e in (await (await client.get(
        "/v1/admin/audit", params={"action": "faq."}, headers=root)).json())["items"]]
    assert actions == ["faq.delete", "faq.update", "faq.create", "faq.create", "faq.create"]


async def test_pages_are_served_with_a_strict_content_security_policy(client):
    for path in ("/dashboard", "/signin", "/help"):
        resp = await client.get(path)
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for name, ctype in (("dashboard.js", "text/javascript"), ("site.css", "text/css")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200 and resp.content_type == ctype
    for name in ("..%2Fapp.py", "nope.js", "dashboard.html"):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"
