"""The dashboard shows an item's Content Credentials beside the detectors' score, and the
near-duplicates merged into it (real headless Chromium, real service)."""

from __future__ import annotations

import aiohttp
import pytest

from service.app import create_app
from service.settings import Settings
from tests.support.c2pa_signing import SigningCA
from tests.support.copies import png
from tests.test_dashboard_browser import browser, new_page, wait_until  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


async def test_provenance_and_variants_in_the_item(browser, aiohttp_server, tmp_path, auth,  # noqa: F811
                                                   issuer, face_bytes, database_url):
    ca = SigningCA.make("Test Generator Inc")
    anchors = tmp_path / "trust.pem"
    anchors.write_text(ca.root_pem)
    server = await aiohttp_server(create_app(Settings(
        data_dir=tmp_path / "data", rate_limit_per_minute=0, database_url=database_url,
        c2pa_trust_anchors=str(anchors))))
    base = str(server.make_url("")).rstrip("/")
    signed = ca.sign(face_bytes)
    alice = auth("alice")
    async with aiohttp.ClientSession(base) as http:
        checks = []
        for data in (signed, png(signed)):
            form = aiohttp.FormData()
            form.add_field("image", data, filename="x", content_type="application/octet-stream")
            checks.append(await (await http.post("/v1/checks", data=form, headers=alice)).json())
        resp = await http.post(f"/v1/checks/{checks[0]['id']}/report", json={}, headers=alice)
        flag_id = (await resp.json())["flag_id"]
        form = aiohttp.FormData()  # the PNG again, after the item exists: it joins as a variant
        form.add_field("image", png(signed), filename="x", content_type="image/png")
        await http.post("/v1/checks", data=form, headers=alice)
    page, errors = await new_page(browser)
    await page.goto(base + "/dashboard")
    await page.fill("#token-input", issuer.issue("mo", "moderator"))
    await page.click("#token-submit")
    await page.locator(f'#items .item[data-id="{flag_id}"]').wait_for()
    await page.wait_for_selector("#provenance")
    assert await page.get_attribute("#provenance", "data-kind") == "ai"
    assert await page.text_content("#provenance") == (
        "AI-generated, per its Content Credentials, signed by Test Generator Inc")
    await wait_until(page, "document.querySelectorAll('#variants li').length === 1")
    assert "bits from the image" in await page.text_content("#variants")
    assert errors == []
