"""Content Credentials of a video file: read from the MP4 itself by the provenance reader."""

from __future__ import annotations

import asyncio
import time

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import Settings
from tests.support.c2pa_signing import SigningCA
from tests.support.videos import encode


async def test_a_signed_mp4_carries_its_credentials(aiohttp_client, tmp_path):
    ca = SigningCA.make("Test Generator Inc")
    anchors = tmp_path / "trust.pem"
    anchors.write_text(ca.root_pem)
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0,
                        c2pa_trust_anchors=str(anchors))
    client = await aiohttp_client(create_app(settings))
    issuer = LocalIssuer(settings.data_dir / "keys", settings.issuer, settings.token_ttl_s)
    user = {"Authorization": "Bearer " + issuer.issue("alice", "user")}
    signed = ca.sign(encode([], seconds=1.0), mime="video/mp4")
    resp = await client.post("/v1/checks", data=signed,
                             headers={**user, "Content-Type": "video/mp4"})
    assert resp.status == 202, await resp.text()
    deadline = time.monotonic() + 60
    while (job := (await (await client.get(resp.headers["Location"], headers=user)).json())["job"]
           )["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # a poll interval
    assert job["status"] == "done", job
    p = job["check"]["provenance"]
    assert p["c2pa"]["state"] == "valid" and p["c2pa"]["signed_by"] == "Test Generator Inc"
    assert p["ai_generated"] is True
    assert p["summary"] == "AI-generated, per its Content Credentials, signed by Test Generator Inc"
    assert job["check"]["verdict"] == "no_face"  # credentials sit beside the detectors, never in
