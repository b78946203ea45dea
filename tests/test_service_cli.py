"""``python -m service token`` and ``python -m service`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import aiohttp
import jwt

from service.app import create_app
from service.settings import Settings
from tests.support.live import live_service, make_token
from tests.support.paths import REPO


def cli(*args: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REALCHECK_")}
    environ.update({k: str(v) for k, v in env.items()})
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=60)


async def test_cli_tokens_are_accepted_with_their_role(aiohttp_client, tmp_path, noise_png):
    data_dir = tmp_path / "data"
    alice = cli("token", "--sub", "alice", "--role", "user", REALCHECK_DATA_DIR=data_dir)
    assert alice.returncode == 0, alice.stderr
    token = alice.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    client = await aiohttp_client(create_app(Settings(data_dir=data_dir, rate_limit_per_minute=0)))
    form = aiohttp.FormData()
    form.add_field("image", noise_png, filename="n.png", content_type="image/png")
    resp = await client.post("/v1/checks", data=form, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201, await resp.text()
    check_id = (await resp.json())["id"]

    moderator = cli("token", "--sub", "maria", "--role", "moderator",
                    REALCHECK_DATA_DIR=data_dir).stdout.strip()
    resp = await client.get(f"/v1/checks/{check_id}", headers={"Authorization": f"Bearer {moderator}"})
    assert resp.status == 200, "the moderator role of the CLI token is honoured"
    bob = cli("token", "--sub", "bob", REALCHECK_DATA_DIR=data_dir).stdout.strip()
    resp = await client.get(f"/v1/checks/{check_id}", headers={"Authorization": f"Bearer {bob}"})
    assert resp.status == 404


def test_cli_token_claims(tmp_path):
    out = cli("token", "--sub", "alice", "--role", "admin", "--email", "a@example.com",
              "--ttl", "60", REALCHECK_DATA_DIR=tmp_path / "d", REALCHECK_PORT=9999)
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["role"] == "admin"
    assert claims["email"] == "a@example.com"
    assert claims["iss"] == "http://127.0.0.1:9999" and claims["azp"] == claims["iss"]
    assert claims["exp"] - claims["iat"] == 60
    assert (tmp_path / "d" / "keys" / "signing-key.pem").exists()


def test_cli_refuses_bad_use(tmp_path):
    bad_role = cli("token", "--sub", "alice", "--role", "root", REALCHECK_DATA_DIR=tmp_path)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    no_sub = cli("token", REALCHECK_DATA_DIR=tmp_path)
    assert no_sub.returncode == 2 and "--sub" in no_sub.stderr
    external = cli("token", "--sub", "alice", REALCHECK_DATA_DIR=tmp_path,
                   REALCHECK_JWKS_URL="https://clerk.example.test/.well-known/jwks.json",
                   REALCHECK_ISSUER="https://clerk.example.test")
    assert external.returncode == 2 and "external issuer" in external.stderr
    assert external.stdout == ""
    no_issuer = cli("token", "--sub", "alice", REALCHECK_DATA_DIR=tmp_path,
                    REALCHECK_JWKS_URL="https://clerk.example.test/.well-known/jwks.json")
    assert no_issuer.returncode == 2 and "REALCHECK_ISSUER" in no_issuer.stderr


def test_the_event_loop_setting(tmp_path):
    """REALCHECK_EVENT_LOOP=asyncio runs on asyncio's own loop; an unknown loop is refused."""
    with live_service(tmp_path / "plain", REALCHECK_EVENT_LOOP="asyncio") as url:
        health = json.load(urllib.request.urlopen(url + "/health", timeout=10))
        assert health["event_loop"] == "asyncio"
    bad = cli(REALCHECK_DATA_DIR=tmp_path, REALCHECK_EVENT_LOOP="tokio")
    assert bad.returncode == 2 and "REALCHECK_EVENT_LOOP" in bad.stderr


def test_the_service_process_serves_checks(tmp_path, face_bytes):
    """`python -m service` on a free port, with a token from the CLI on the same data folder."""
    data_dir = tmp_path / "live"
    with live_service(data_dir, REALCHECK_RATE_LIMIT_PER_MINUTE=0) as url:
        health = json.load(urllib.request.urlopen(url + "/health", timeout=10))
        assert health["status"] == "ok"
        assert health["event_loop"] == "uvloop"  # installed with the service, used by default
        port = int(url.rsplit(":", 1)[1])
        token = make_token(data_dir, "alice", "user", port=port)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                f"filename=\"f.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
        body += face_bytes + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(url + "/v1/checks", data=body, method="POST", headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 201
            check = json.load(resp)
        assert check["face_found"] is True and check["verdict"] in ("real", "fake", "uncertain")
        assert (data_dir / "realcheck.sqlite3").exists()
