"""The service starts with the bundled models and answers a real check."""

import json

import aiohttp

from tests.support.paths import REPO


async def test_health_reports_models_and_providers(client):
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert "CPUExecutionProvider" in body["providers"]
    shipped = json.loads((REPO / "models" / "ensemble.json").read_text())["members"]
    assert {"vgg16", "resnet"} <= set(shipped)
    assert {m["name"] for m in body["models"]["members"]} == set(shipped)


async def test_check_a_face(client, auth, face_bytes):
    form = aiohttp.FormData()
    form.add_field("image", face_bytes, filename="face.jpg", content_type="image/jpeg")
    resp = await client.post("/v1/checks", data=form, headers=auth())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["verdict"] in ("real", "fake", "uncertain")
    assert 0.0 <= body["score"] <= 1.0
    assert body["face_found"] is True and len(body["faces"]) == 1
