"""Moderators deciding at the same time: exactly one decision per version wins, the rest get 409.

Also across two service instances on the same SQLite file (two connections, two processes'
worth of state), where only the database can keep them apart.
"""

import asyncio

import aiohttp

from service.app import create_app
from service.keys import DB


async def flagged_item(client, auth, data: bytes) -> str:
    alice = auth("alice")
    form = aiohttp.FormData()
    form.add_field("image", data, filename="face.jpg", content_type="image/jpeg")
    check = await (await client.post("/v1/checks", data=form, headers=alice)).json()
    resp = await client.post(f"/v1/checks/{check['id']}/report", json={}, headers=alice)
    return (await resp.json())["flag_id"]


def decision(client, headers, flag_id, what, version=1):
    return client.post(f"/v1/moderation/items/{flag_id}/decision", headers=headers,
                       json={"decision": what, "version": version, "note": f"by {what}"})


async def test_many_moderators_deciding_at_once_one_wins(client, auth, face_bytes):
    flag_id = await flagged_item(client, auth, face_bytes)
    choices = ["fake", "real", "dismissed"] * 3
    mods = [auth(f"mod{i}", "moderator") for i in range(len(choices))]
    resps = await asyncio.gather(*(decision(client, m, flag_id, c) for m, c in zip(mods, choices)))
    statuses = [r.status for r in resps]
    assert sorted(statuses) == [200] + [409] * (len(choices) - 1), statuses
    winner = choices[statuses.index(200)]
    for r in resps:
        if r.status == 409:
            body = await r.json()
            assert body["error"] == "conflict" and body["current"]["version"] == 2
            assert body["current"]["decision"]["decision"] == winner
    item = await (await client.get(f"/v1/moderation/items/{flag_id}", headers=mods[0])).json()
    assert item["version"] == 2 and item["decision"]["note"] == f"by {winner}"
    assert [e["kind"] for e in item["history"]].count("decided") == 1
    audit = await (await client.get("/v1/admin/audit", params={"action": "moderation.decision"},
                                    headers=auth("root", "admin"))).json()
    assert len(audit["items"]) == 1 and audit["items"][0]["detail"]["decision"] == winner


async def test_a_loser_can_decide_again_on_the_new_version(client, auth, face_bytes):
    flag_id = await flagged_item(client, auth, face_bytes)
    m1, m2 = auth("m1", "moderator"), auth("m2", "moderator")
    assert (await decision(client, m1, flag_id, "fake")).status == 200
    assert (await decision(client, m2, flag_id, "real")).status == 409  # on version 1: refused
    resp = await decision(client, m2, flag_id, "real", version=2)  # after reloading
    assert resp.status == 200 and (await resp.json())["state"] == "real"


async def test_two_service_instances_on_one_database(aiohttp_client, settings, auth, face_bytes):
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    assert one.app[DB] is not two.app[DB]
    flag_id = await flagged_item(one, auth, face_bytes)
    m1, m2 = auth("m1", "moderator"), auth("m2", "moderator")
    for round_ in range(3):  # several rounds: either side may win each
        version = round_ + 1
        r1, r2 = await asyncio.gather(decision(one, m1, flag_id, "fake", version),
                                      decision(two, m2, flag_id, "real", version))
        assert sorted([r1.status, r2.status]) == [200, 409], (r1.status, r2.status)
    row = await two.app[DB].fetchone("SELECT version FROM flags WHERE id = ?", (flag_id,))
    assert row["version"] == 4
    decided = await one.app[DB].fetchval(
        "SELECT COUNT(*) FROM flag_events WHERE flag_id = ? AND kind = 'decided'",
        (flag_id,))
    assert decided == 3
