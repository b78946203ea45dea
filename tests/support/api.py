"""Calls to the real app that many tests make."""

from __future__ import annotations

import aiohttp


async def post_check(client, headers, data: bytes, page_url: str | None = None) -> dict:
    """``POST /v1/checks`` with a multipart image; asserts 201 and returns the check."""
    form = aiohttp.FormData()
    form.add_field("image", data, filename="face.jpg", content_type="image/jpeg")
    if page_url:
        form.add_field("page_url", page_url)
    resp = await client.post("/v1/checks", data=form, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()
