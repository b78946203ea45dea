"""Session tokens the way Clerk issues them: RS256 JWTs checked against a JWKS.

Local mode signs with the app's own key (``<data_dir>/keys``); external mode fetches a JWKS
from a real HTTP server run by the test, whose keys the test generates and rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.app import create_app
from service.keys import VERIFIER
from service.settings import Settings

CLERK = "https://clerk.example.test"
EXTENSION = "chrome-extension://abcdefghijklmnop"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(name: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key(name).public_key()))
    return {**jwk, "kid": name, "alg": "RS256", "use": "sig"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(issuer_url: str, /, **changes) -> dict:
    """Clerk-like claims; a change to None removes that claim."""
    now = int(time.time())
    claims = {"iss": issuer_url, "sub": "alice", "azp": issuer_url, "iat": now - 5, "nbf": now - 5,
              "exp": now + 300, "sid": "sess_1"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(key, kid: str, claims: dict) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def status_of(client, token: str | None, header: str | None = None) -> tuple[int, str | None]:
    """Status and error code of an authenticated call (listing one's checks: no model run)."""
    headers = {"Authorization": header if header is not None else f"Bearer {token}"}
    resp = await client.get("/v1/checks", headers=headers)
    body = await resp.json()
    if resp.status != 200:
        assert set(body) >= {"error", "message"} and resp.content_type == "application/json"
    return resp.status, body.get("error")


# --- local issuer ------------------------------------------------------------------------------


async def test_missing_or_unusable_authorization(client, issuer):
    assert await status_of(client, issuer.issue("alice", "user")) == (200, None)
    resp = await client.get("/v1/checks")
    body = await resp.json()
    assert resp.status == 401 and body["error"] == "missing_token" and body["message"]
    assert await status_of(client, None, "Basic YWxpY2U6c2VjcmV0") == (401, "missing_token")
    assert await status_of(client, None, "Bearer ") == (401, "missing_token")
    assert await status_of(client, "not-a-jwt") == (401, "malformed_token")


async def test_other_algorithms_are_refused(client, issuer):
    """``alg: none``, and the key-confusion attack: HS256 with the published PEM as secret."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": issuer.kid}).encode())
    payload = b64(json.dumps(claims_for(issuer.issuer)).encode())
    assert await status_of(client, f"{header}.{payload}.") == (401, "bad_algorithm")
    pem = issuer.public_key.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    payload = b64(json.dumps(claims_for(issuer.issuer)).encode())
    sig = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert await status_of(client, f"{header}.{payload}.{sig}") == (401, "bad_algorithm")


async def test_time_claims_with_clock_skew(client, issuer, settings):
    now = int(time.time())
    skew = settings.clock_skew_s
    assert skew > 5
    late = claims_for(issuer.issuer, iat=now - 600, nbf=now - 600, exp=now - skew // 2)
    assert await status_of(client, signed(issuer.private_key, issuer.kid, late)) == (200, None)
    expired = claims_for(issuer.issuer, iat=now - 600, nbf=now - 600, exp=now - skew - 60)
    assert await status_of(client, signed(issuer.private_key, issuer.kid, expired)) == (
        401, "token_expired")
    soon = claims_for(issuer.issuer, nbf=now + settings.clock_skew_s // 2)
    assert await status_of(client, signed(issuer.private_key, issuer.kid, soon)) == (200, None)
    later = claims_for(issuer.issuer, nbf=now + settings.clock_skew_s + 120)
    assert await status_of(client, signed(issuer.private_key, issuer.kid, later)) == (
        401, "token_not_yet_valid")


async def test_required_claims(client, issuer):
    for missing in ("sub", "exp", "iat", "iss"):
        token = signed(issuer.private_key, issuer.kid, claims_for(issuer.issuer, **{missing: None}))
        assert await status_of(client, token) == (401, "invalid_token"), missing


async def test_a_sub_that_shows_nothing_is_refused(client, issuer):
    """A sub of a zero-width space (or a no-break space, a BOM) is as blank as an empty one."""
    for sub in ("\u200b", "\u00a0", "\ufeff\u2060", " "):
        token = signed(issuer.private_key, issuer.kid, claims_for(issuer.issuer, sub=sub))
        assert await status_of(client, token) == (401, "invalid_token"), ascii(sub)
    token = signed(issuer.private_key, issuer.kid, claims_for(issuer.issuer, sub="\u00e9"))
    assert await status_of(client, token) == (200, None)


async def test_unknown_kid_and_forged_signature(client, issuer):
    stranger = claims_for(issuer.issuer)
    assert await status_of(client, signed(rsa_key("stranger"), "other-kid", stranger)) == (
        401, "unknown_key")
    # The right kid, the wrong key: the signature does not verify.
    assert await status_of(client, signed(rsa_key("stranger"), issuer.kid, stranger)) == (
        401, "invalid_token")
    # A valid token whose payload was changed afterwards.
    head, _, sig = issuer.issue("alice").split(".")
    payload = b64(json.dumps(claims_for(issuer.issuer, sub="admin")).encode())
    assert await status_of(client, f"{head}.{payload}.{sig}") == (401, "invalid_token")


async def test_wrong_issuer_and_unknown_azp_are_refused(client, issuer):
    token = signed(issuer.private_key, issuer.kid, claims_for("https://evil.example"))
    assert await status_of(client, token) == (401, "wrong_issuer")
    token = issuer.issue("alice", azp="https://evil.example")
    assert await status_of(client, token) == (401, "unknown_azp")
    no_azp = signed(issuer.private_key, issuer.kid, claims_for(issuer.issuer, azp=None))
    assert await status_of(client, no_azp) == (200, None)


async def test_allowed_azp_is_accepted(aiohttp_client, tmp_path):
    settings = Settings(data_dir=tmp_path / "d", allowed_origins=(EXTENSION,),
                        rate_limit_per_minute=0)
    client = await aiohttp_client(create_app(settings))
    from service.auth.tokens import LocalIssuer

    issuer = LocalIssuer(settings.data_dir / "keys", settings.issuer, 300)
    assert await status_of(client, issuer.issue("alice", azp=EXTENSION)) == (200, None)
    assert await status_of(client, issuer.issue("alice", azp=EXTENSION + "/")) == (200, None)
    assert await status_of(client, issuer.issue("alice", azp="chrome-extension://other")) == (
        401, "unknown_azp")


# --- external JWKS (Clerk mode) ----------------------------------------------------------------


class JwksServer:
    """A real HTTP server publishing a JWKS the test can rotate or break."""

    def __init__(self):
        self.kids = ["k1"]
        self.fetches = 0
        self.failing = False

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.failing:
            return web.Response(status=503, text="down")
        # A Clerk JWKS may hold keys of other kinds; the verifier must skip them.
        extra = {"kty": "EC", "kid": "ec1", "crv": "P-256", "x": "x", "y": "y"}
        return web.json_response({"keys": [public_jwk(k) for k in self.kids] + [extra]})


@pytest.fixture
async def jwks(aiohttp_server):
    state = JwksServer()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", state.handle)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("/.well-known/jwks.json"))
    return state


@pytest.fixture
async def clerk_client(aiohttp_client, tmp_path, jwks, database_url):
    settings = Settings(data_dir=tmp_path / "d", jwks_url=jwks.url, issuer=CLERK,
                        allowed_origins=(EXTENSION,), rate_limit_per_minute=0,
                        database_url=database_url)
    return await aiohttp_client(create_app(settings))


def clerk_token(kid: str = "k1", **changes) -> str:
    claims = claims_for(CLERK, **{"azp": EXTENSION, **changes})
    claims.setdefault("public_metadata", {"role": "user"})
    return signed(rsa_key(kid), kid, claims)


async def test_external_jwks_tokens_are_verified(clerk_client, jwks):
    assert await status_of(clerk_client, clerk_token("k1")) == (200, None)
    assert await status_of(clerk_client, clerk_token("k1", sub="bob")) == (200, None)
    assert jwks.fetches == 1, "the JWKS is cached"
    assert await status_of(clerk_client, clerk_token("k1", iss="https://other.clerk.example")) == (
        401, "wrong_issuer")
    assert await status_of(clerk_client, clerk_token("k1", azp="https://evil.example")) == (
        401, "unknown_azp")
    # In external mode there is no local issuer: no local keys published, none accepted.
    resp = await clerk_client.get("/.well-known/jwks.json")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


async def test_key_rotation_is_picked_up(clerk_client, jwks):
    assert await status_of(clerk_client, clerk_token("k1")) == (200, None)
    clerk_client.app[VERIFIER].min_refetch_s = 0  # the rotation happens within the test's second
    jwks.kids = ["k2"]
    assert await status_of(clerk_client, clerk_token("k2")) == (200, None)
    assert jwks.fetches == 2
    assert await status_of(clerk_client, clerk_token("k1")) == (401, "unknown_key")


async def test_unknown_kids_do_not_cause_a_fetch_storm(clerk_client, jwks):
    assert await status_of(clerk_client, clerk_token("k1")) == (200, None)
    for _ in range(3):
        assert await status_of(clerk_client, clerk_token("stranger")) == (401, "unknown_key")
    assert jwks.fetches == 1


async def test_cached_keys_survive_a_jwks_outage(clerk_client, jwks):
    assert await status_of(clerk_client, clerk_token("k1")) == (200, None)
    jwks.failing = True
    clerk_client.app[VERIFIER].jwks_cache_s = 0  # every request now tries to refresh
    assert await status_of(clerk_client, clerk_token("k1")) == (200, None)
    assert jwks.fetches == 2


async def test_no_jwks_at_all_is_refused(clerk_client, jwks):
    jwks.failing = True
    assert await status_of(clerk_client, clerk_token("k1")) == (503, "jwks_unavailable")
