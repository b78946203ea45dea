"""Passwords: scrypt (memory-hard, standard library) hashes, and lockout after failed sign-ins.

A hash is stored as ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>``, so its cost can be raised
later: ``needs_rehash`` tells when a stored hash is weaker than the current parameters, and the
sign-in upgrades it. Hashing takes ~0.3 s and 128 MiB in a thread of the app's password pool
(``service.pools``: two at once, a bounded queue), never in the threads other work shares.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re

LOG2_N, R, P = 17, 8, 1  # OWASP's minimum for scrypt: N = 2^17, r = 8, p = 1
KEY_BYTES = 32
MIN_LENGTH, MAX_LENGTH = 10, 1024
#: local@domain.tld without spaces or control characters; the OpenAPI schema states the same
#: pattern, so it is written with explicit ranges that read alike in Python and ECMAScript; its
#: parts are bounded so that a match is never longer than 254 characters.
EMAIL_PATTERN = (r"[^@\x00-\x20\x7f]{1,64}@[^@\x00-\x20\x7f]{1,120}"
                 r"\.[^@.\x00-\x20\x7f]{2,63}")
EMAIL_RE = re.compile(EMAIL_PATTERN)

#: stands for the hash of an account that does not exist: the same parameters, so checking a
#: password against it costs what a real check costs, and a key no password derives (2^-256)
_DUMMY_HASH = f"scrypt${LOG2_N}${R}${P}${base64.b64encode(os.urandom(16)).decode()}$" \
    + base64.b64encode(bytes(KEY_BYTES)).decode()


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=2 * 128 * n * r * p)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_sync(password: str) -> str:
    salt = os.urandom(16)
    key = _scrypt(password, salt, LOG2_N, R, P)
    return f"scrypt${LOG2_N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_sync(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    try:
        _, log2_n, r, p, _, _ = stored.split("$")
        return (int(log2_n), int(r), int(p)) < (LOG2_N, R, P)
    except ValueError:
        return True


async def _run(pool, fn, *args):
    """In ``pool`` (a ``BoundedPool``: raises ``PoolBusy`` when full), or a one-off thread."""
    if pool is None:
        return await asyncio.to_thread(fn, *args)
    return await pool.run(fn, *args)


async def hash_password(password: str, pool=None) -> str:
    return await _run(pool, hash_sync, password)


async def verify_password(password: str, stored: str | None, pool=None) -> bool:
    """Constant work whether or not the account exists (``stored`` None): no timing oracle."""
    if stored is None:
        await _run(pool, verify_sync, password, _DUMMY_HASH)
        return False
    return await _run(pool, verify_sync, password, stored)


def password_problem(password) -> str | None:
    """Why this password is not acceptable, or None."""
    if not isinstance(password, str):
        return "password must be a string"
    if len(password) < MIN_LENGTH:
        return f"the password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password may have at most {MAX_LENGTH} characters"
    return None


def normalize_email(email) -> str | None:
    """The address lower-cased, or None if it does not look like one."""
    if not isinstance(email, str):
        return None
    email = email.strip(" ")  # spaces around a pasted address (and only spaces: see the schema)
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        return None
    return email.lower()
