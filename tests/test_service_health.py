"""/health, /openapi.json, the local JWKS and the JSON answers of unknown routes."""

from __future__ import annotations

import jwt
import onnxruntime as ort

from service.routes import ROUTES
from service.settings import REPO_ROOT
from tests.test_service_checks import CARDS, ENSEMBLE, MEMBERS, TRAINED


async def test_health_reports_models_providers_and_training(client):
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["version"]
    assert body["trained"] is TRAINED and body["models"]["trained"] is TRAINED
    available = ort.get_available_providers()
    assert body["providers"] and set(body["providers"]) <= set(available)
    assert "CPUExecutionProvider" in body["providers"]
    models = body["models"]
    assert [m["name"] for m in models["members"]] == MEMBERS
    assert models["threshold"] == ENSEMBLE["threshold"]
    assert models["uncertain_band"] == ENSEMBLE["uncertain_band"]
    for m in models["members"]:
        card = CARDS[m["name"]]
        assert m["file"] in card["files"].values()
        assert (REPO_ROOT / "models" / m["file"]).exists()
        assert m["trained"] is (bool(card.get("trained")) and bool(card.get("metrics")))
        assert m["providers"] and set(m["providers"]) <= set(body["providers"])
    assert len(models["version"]) == 16
    b = body["batching"]
    assert b["batches_run"] == 0 and b["rows_run"] == 0 and b["max_batch"] >= 1


async def test_openapi_lists_every_route(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert listed == {(r.method, r.path) for r in ROUTES}
    for r in ROUTES:
        op = doc["paths"][r.path][r.method.lower()]
        assert op["x-required-role"] == r.role and op["summary"] == r.summary
        assert ("security" in op) is (r.role != "public")
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_local_jwks_verifies_the_local_tokens(client, issuer):
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    (key,) = (await resp.json())["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    token = issuer.issue("alice", "user")
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["sub"] == "alice"


async def test_unknown_route_and_method_answer_json(client):
    resp = await client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await client.delete("/v1/checks")
    body = await resp.json()
    assert resp.status == 405 and body["error"] == "method_not_allowed" and body["message"]
    assert "Allow" in resp.headers



async def test_opencv_threads_follow_the_setting(aiohttp_client, tmp_path):
    """The service sets OpenCV's threads per call (`REALCHECK_OPENCV_THREADS`): one by default;
    0 gives back OpenCV's own default (one per core)."""
    import os

    import cv2

    from service.app import create_app
    from service.settings import Settings

    try:
        await aiohttp_client(create_app(Settings(data_dir=tmp_path / "a", opencv_threads=0)))
        if (os.cpu_count() or 1) > 1:
            assert cv2.getNumThreads() > 1
        await aiohttp_client(create_app(Settings(data_dir=tmp_path / "b")))
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(1)
