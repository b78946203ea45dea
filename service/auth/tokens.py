"""Session tokens verified the way Clerk verifies them: RS256 JWTs against a JWKS.

With no external issuer configured the service is its own issuer: `LocalIssuer` keeps an RSA
key in ``<data_dir>/keys/``, publishes it at ``/.well-known/jwks.json`` and signs tokens.
`TokenVerifier` accepts only RS256, looks the key up by ``kid`` (re-fetching a remote JWKS when
an unknown ``kid`` appears, so key rotation works), checks ``exp``/``nbf`` with a small leeway,
the issuer, and ``azp`` against the allowed origins.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.roles import ROLES
from service.text import has_visible

ALGORITHM = "RS256"


class TokenError(Exception):
    """The token is not acceptable; ``code`` is the stable reason answered with 401."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str | None
    email: str | None
    issuer: str
    raw: dict


def role_from_claims(claims: dict) -> str | None:
    """Clerk puts custom data in ``metadata``/``public_metadata`` via a session-token template."""
    for holder in (claims, claims.get("metadata") or {}, claims.get("public_metadata") or {}):
        role = holder.get("role") if isinstance(holder, dict) else None
        if role in ROLES:
            return role
    return None


def _load_own_key(pem: bytes):
    """Our own key file: the RSA consistency check (~40 ms) adds nothing at each start."""
    try:
        return serialization.load_pem_private_key(pem, password=None,
                                                  unsafe_skip_rsa_key_validation=True)
    except TypeError:  # cryptography < 39 has no such switch
        return serialization.load_pem_private_key(pem, password=None)


class LocalIssuer:
    """The service's own signing key and token factory."""

    def __init__(self, key_dir: Path, issuer: str, ttl_s: int):
        self.issuer = issuer
        self.ttl_s = ttl_s
        key_dir.mkdir(parents=True, exist_ok=True)
        path = key_dir / "signing-key.pem"
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            os.replace(tmp, path)
        self.private_key = _load_own_key(path.read_bytes())
        public = self.private_key.public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha256(der).hexdigest()[:16]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        self.jwk = jwk
        self.public_key = public

    def jwks(self) -> dict:
        return {"keys": [self.jwk]}

    def issue(self, sub: str, role: str = "user", email: str | None = None,
              azp: str | None = None, ttl_s: int | None = None) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "role": role,
            "azp": azp or self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_s or self.ttl_s),
            "sid": "sess_" + uuid.uuid4().hex[:20],
        }
        if email:
            claims["email"] = email
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def parse_jwks(body) -> dict[str, object]:
    """The RS256 public keys of a JWKS document by ``kid``; ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise ValueError("the JWKS is not an object with a 'keys' list")
    keys = {}
    for k in body["keys"]:
        if not (isinstance(k, dict) and k.get("kty") == "RSA" and isinstance(k.get("kid"), str)
                and k.get("alg", ALGORITHM) == ALGORITHM and k.get("use", "sig") == "sig"):
            continue
        try:
            keys[k["kid"]] = jwt.PyJWK(k, algorithm=ALGORITHM).key
        except jwt.PyJWKError:
            continue  # one broken key does not take the others down
    return keys


MAX_SUB = 255


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_claim_types(claims: dict) -> None:
    """Claims a signature does not vouch for the shape of: ``sub`` a non-empty string, the
    times numbers (RFC 7519 NumericDate, not strings), ``azp`` and ``iss`` strings."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not has_visible(sub) or len(sub) > MAX_SUB or sub != sub.strip():
        raise TokenError("invalid_token", "the token's sub must be a non-empty string")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise TokenError("invalid_token", f"the token's {name} must be a number")
    for name in ("azp", "iss"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenError("invalid_token", f"the token's {name} must be a string")
    if not is_text(sub):
        raise TokenError("invalid_token", "the token's sub is not valid text")


def is_text(value: str) -> bool:
    """False for strings with lone surrogates (JSON allows them; UTF-8 and databases do not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TokenVerifier:
    def __init__(self, *, issuer: str, allowed_origins: tuple[str, ...], leeway_s: int,
                 local: LocalIssuer | None = None, jwks_url: str = "",
                 jwks_cache_s: int = 600, http: aiohttp.ClientSession | None = None,
                 min_refetch_s: float = 10.0):
        self.issuer = issuer
        self.allowed_origins = {o.rstrip("/") for o in allowed_origins}
        self.leeway_s = leeway_s
        self.local = local
        self.jwks_url = jwks_url
        self.jwks_cache_s = jwks_cache_s
        self.http = http
        #: an unknown ``kid`` forces a JWKS fetch, but at most once per this many seconds.
        self.min_refetch_s = min_refetch_s
        self._keys: dict[str, object] = {}
        self._fetched_at = float("-inf")  # never (monotonic time may start near 0 at boot)
        self._lock = asyncio.Lock()
        if local is not None:
            self._keys[local.kid] = local.public_key

    async def _refresh(self, force: bool) -> None:
        if not self.jwks_url:
            return
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if (not force and age < self.jwks_cache_s) or (force and age < self.min_refetch_s):
                return
            self._fetched_at = time.monotonic()
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with self.http.get(self.jwks_url, timeout=timeout) as resp:
                    resp.raise_for_status()
                    keys = parse_jwks(await resp.json(content_type=None))
            except (TimeoutError, aiohttp.ClientError, ValueError) as e:
                if not self._keys:
                    raise TokenError("jwks_unavailable", f"cannot fetch the JWKS: {e}") from e
                return  # keep the cached keys through an outage
            self._keys = keys

    async def verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as e:
            raise TokenError("malformed_token", f"the token is not a JWT: {e}") from e
        if header.get("alg") != ALGORITHM:
            raise TokenError("bad_algorithm", f"only {ALGORITHM} tokens are accepted")
        kid = header.get("kid")
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise TokenError("unknown_key", "the token was signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer or None,
                leeway=self.leeway_s,
                options={"require": ["exp", "sub", "iat"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as e:
            raise TokenError("token_expired", "the token has expired") from e
        except jwt.ImmatureSignatureError as e:
            raise TokenError("token_not_yet_valid", "the token is not valid yet (nbf)") from e
        except jwt.InvalidIssuerError as e:
            raise TokenError("wrong_issuer", wrong_issuer_message(token, self.issuer)) from e
        except jwt.InvalidTokenError as e:
            raise TokenError("invalid_token", f"the token is invalid: {e}") from e
        check_claim_types(claims)
        azp = claims.get("azp")
        if azp is not None and azp.rstrip("/") not in self.allowed_origins:
            raise TokenError("unknown_azp", "the token's origin is not allowed")
        email = claims.get("email")
        if not (isinstance(email, str) and email and is_text(email) and len(email) <= 254):
            email = None
        return Claims(
            sub=claims["sub"],
            role=role_from_claims(claims),
            email=email,
            issuer=claims.get("iss", ""),
            raw=claims,
        )


def wrong_issuer_message(token: str, expected: str) -> str:
    """Names both issuers: a token for another port or host is the usual cause."""
    try:
        got = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        got = None
    return (f"the token was issued by {got!r}, but this service accepts tokens from {expected!r}:"
            " get a token from this service (its /signin page, or `python -m service token`"
            " with the same REALCHECK_DATA_DIR, which uses the issuer the service recorded there)")
