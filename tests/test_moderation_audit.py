"""The audit trail: decisions, role changes, deletions and sign-in events, readable and as CSV."""

import csv
import io
import time

import aiohttp

from tests.support.accounts import register


async def test_every_kind_of_event_is_recorded_with_who_when_and_what(client, auth, face_bytes):
    started = time.time()
    root = auth("root", "admin", email="root@example.com")
    mod, alice = auth("mo", "moderator", email="mo@example.com"), auth("alice")
    await client.get("/v1/me", headers=root)
    await client.get("/v1/me", headers=alice)
    # sign-in events
    reg = await (await register(client, "ann@example.com", "ann's password")).json()
    await client.post("/v1/auth/login", json={"email": "ann@example.com", "password": "wrong one!!"})
    await client.post("/v1/auth/login", json={"email": "ann@example.com", "password": "ann's password"})
    # a report and a decision
    form = aiohttp.FormData()
    form.add_field("image", face_bytes, filename="f.jpg", content_type="image/jpeg")
    check = await (await client.post("/v1/checks", data=form, headers=alice)).json()
    flag_id = (await (await client.post(f"/v1/checks/{check['id']}/report", json={"note": "hm"},
                                        headers=alice)).json())["flag_id"]
    await client.post(f"/v1/moderation/items/{flag_id}/decision", headers=mod,
                      json={"decision": "real", "version": 1, "note": "checked"})
    # user administration
    await client.patch("/v1/admin/users/alice", json={"role": "moderator"}, headers=root)
    await client.patch("/v1/admin/users/alice", json={"disabled": True}, headers=root)
    await client.delete(f"/v1/admin/users/{reg['user']['id']}", headers=root)

    everything = items = (await (await client.get("/v1/admin/audit", headers=root)).json())["items"]
    # Token users are recorded the first time the service sees them.
    assert {e["target"] for e in items if e["action"] == "auth.first_seen"} >= {"alice", "root"}
    items = [e for e in items if e["action"] != "auth.first_seen"]
    assert [e["action"] for e in items] == [
        "admin.delete_user", "admin.disable", "admin.role_change", "moderation.decision",
        "moderation.report", "auth.login", "auth.login_failed", "auth.register",
        "auth.register_requested"]
    by_action = {e["action"]: e for e in items}
    assert all(started <= e["at"] <= time.time() for e in items)
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)
    decision = by_action["moderation.decision"]
    assert (decision["actor"], decision["actor_email"]) == ("mo", "mo@example.com")
    assert decision["target"] == flag_id
    assert decision["detail"] == {"decision": "real", "note": "checked", "version": 2,
                                  "reporters_notified": 0}
    assert by_action["admin.role_change"]["detail"] == {"from": "user", "to": "moderator"}
    assert by_action["admin.role_change"]["actor_email"] == "root@example.com"
    assert by_action["admin.delete_user"]["target"] == reg["user"]["id"]
    assert by_action["auth.login_failed"]["detail"] == {"email": "ann@example.com"}
    assert by_action["auth.login"]["ip"] == "127.0.0.1"

    # filters and paging
    admin_only = (await (await client.get("/v1/admin/audit", params={"action": "admin."},
                                          headers=root)).json())["items"]
    assert [e["action"] for e in admin_only] == ["admin.delete_user", "admin.disable", "admin.role_change"]
    by_mo = (await (await client.get("/v1/admin/audit", params={"actor": "mo"}, headers=root)).json())
    assert [e["action"] for e in by_mo["items"]] == ["moderation.decision", "auth.first_seen"]
    page = await (await client.get("/v1/admin/audit", params={"limit": 3}, headers=root)).json()
    rest = await (await client.get("/v1/admin/audit", params={"limit": 100, "before": page["next_before"]},
                                   headers=root)).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in everything]
    assert rest["next_before"] is None
    resp = await client.get("/v1/admin/audit", params={"before": "x"}, headers=root)
    assert resp.status == 400


async def test_csv_export(client, auth):
    root = auth("root", "admin", email="=HYPERLINK(\"http://evil\")@example.com")
    await client.get("/v1/me", headers=root)
    await client.get("/v1/me", headers=auth("bob"))
    await client.patch("/v1/admin/users/bob", json={"role": "moderator"}, headers=root)
    await client.post("/v1/admin/faq", json={"question": "Q, with \"quotes\"", "answer": "A"}, headers=root)

    resp = await client.get("/v1/admin/audit.csv", headers=root)
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["action"] for r in rows][0] == "auth.first_seen"  # bob, then root, first seen
    rows = [r for r in rows if r["action"] != "auth.first_seen"]
    assert [r["action"] for r in rows] == ["admin.role_change", "faq.create"]  # oldest first
    first = rows[0]
    assert first["actor"] == "root" and first["target"] == "bob"
    assert first["at"].endswith("+00:00") and first["at"][:2] == "20"
    assert first["actor_email"].startswith("'=HYPERLINK")  # no formula in a spreadsheet
    assert '"to": "moderator"' in first["detail"]
    assert 'Q, with \\"quotes\\"' in rows[1]["detail"]
    filtered = await (await client.get("/v1/admin/audit.csv", params={"action": "faq.create"},
                                       headers=root)).text()
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1
    for role in ("user", "moderator"):
        resp = await client.get("/v1/admin/audit.csv", headers=auth(f"x-{role}", role))
        assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
