"""Fetching an image by URL without reaching anything private (SSRF guard).

Only http(s); every address a host name resolves to must be public (no loopback, private,
link-local, multicast or reserved range), checked at connection time by the resolver, so DNS
rebinding and redirects to internal hosts are refused too. Redirects are followed by hand, at
most ``max_redirects``; the body is read up to ``max_bytes`` within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from service.errors import ApiError


def _fetch_error(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    def __init__(self, allow_private: bool = False):
        self.inner = ThreadedResolver()
        self.allow_private = allow_private

    async def resolve(self, host, port=0, family=socket.AF_INET):
        try:
            infos = await self.inner.resolve(host, port, family)
        except UnicodeError as e:  # a label over 63 characters, an empty label...
            raise _fetch_error("bad_url", "the host name is not valid") from e
        if not self.allow_private:
            bad = [i["host"] for i in infos if not is_public(i["host"])]
            if bad:
                raise _fetch_error("url_forbidden", f"{host} resolves to a non-public address")
        return infos

    async def close(self):
        await self.inner.close()


def make_fetch_session(allow_private: bool) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allow_private), limit=32,
                                     use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": "Realcheck/1.0"})


def check_url(url: str, allow_private: bool) -> URL:
    try:
        u = URL(url)
    except (ValueError, TypeError) as e:
        raise _fetch_error("bad_url", "the url is not valid") from e
    if u.scheme not in ("http", "https") or not u.host:
        raise _fetch_error("bad_url", "only http and https URLs can be fetched")
    if u.user or u.password:
        raise _fetch_error("bad_url", "URLs with credentials are not fetched")
    try:
        literal = ipaddress.ip_address(u.host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public(str(literal)):
        raise _fetch_error("url_forbidden", "that address is not public")
    if u.host.lower() in ("localhost",) and not allow_private:
        raise _fetch_error("url_forbidden", "that address is not public")
    return u


async def fetch_image(session: aiohttp.ClientSession, url: str, *, max_bytes: int,
                      timeout_s: float, max_redirects: int, allow_private: bool) -> bytes:
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(5.0, timeout_s))
    current = url
    try:
        async with asyncio.timeout(timeout_s):
            for _ in range(max_redirects + 1):
                u = check_url(current, allow_private)
                async with session.get(u, allow_redirects=False, timeout=timeout) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise _fetch_error("fetch_failed", "redirect without a Location")
                        try:
                            current = urljoin(str(u), location)
                        except ValueError as e:
                            raise _fetch_error("bad_url", "the redirect's Location is not a valid URL") from e
                        continue
                    if resp.status != 200:
                        raise _fetch_error("fetch_failed", f"the URL answered HTTP {resp.status}")
                    declared = resp.content_length
                    if declared is not None and declared > max_bytes:
                        raise ApiError(413, "payload_too_large",
                                       f"the image is larger than {max_bytes} bytes")
                    chunks, size = [], 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ApiError(413, "payload_too_large",
                                           f"the image is larger than {max_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
            raise _fetch_error("too_many_redirects", f"more than {max_redirects} redirects")
    except TimeoutError as e:
        raise _fetch_error("fetch_timeout", f"the URL did not answer within {timeout_s} s") from e
    except aiohttp.ClientError as e:
        raise _fetch_error("fetch_failed", f"cannot fetch the URL: {e.__class__.__name__}") from e
