"""Fetching an image by URL without reaching anything private (SSRF guard).

Only http(s); every address a host name resolves to must be public (no loopback, private,
link-local, multicast or reserved range), checked at connection time by the resolver, so DNS
rebinding and redirects to internal hosts are refused too. Redirects are followed by hand, at
most ``max_redirects``; the body is read up to ``max_bytes`` within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from service.errors import ApiError


def _fetch_error(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the low 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """Whether ``address`` is a global unicast address; one that embeds an IPv4 address is
    judged by that address (a NAT64 or 6to4 gateway would forward to it)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _NAT64_LOCAL or ip.teredo:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            ip = inner
    return ip.is_global and not ip.is_multicast


def _result(host: str, info) -> dict:
    family, _, proto, _, address = info
    return {"hostname": host, "host": address[0], "port": address[1], "family": family,
            "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}


class PublicOnlyResolver(AbstractResolver):
    """Resolves in its own thread pool (not the loop's shared one) and keeps only public
    addresses; any non-public answer refuses the whole name."""

    def __init__(self, allow_private: bool = False, executor=None):
        self.allow_private = allow_private
        self.executor = executor

    async def resolve(self, host, port=0, family=socket.AF_INET):
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.run_in_executor(
                self.executor, functools.partial(socket.getaddrinfo, host, port, family,
                                                 socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG))
        except UnicodeError as e:  # a label over 63 characters, an empty label...
            raise _fetch_error("bad_url", "the host name is not valid") from e
        results = [_result(host, i) for i in infos
                   if i[0] in (socket.AF_INET, socket.AF_INET6)]
        if not self.allow_private:
            if any(not is_public(r["host"]) for r in results):
                raise _fetch_error("url_forbidden", f"{host} resolves to a non-public address")
        return results

    async def close(self):
        pass


def make_fetch_session(allow_private: bool, dns_executor=None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allow_private, dns_executor),
                                     limit=32,
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
