"""Retake the moderation dashboard screenshot (docs/dashboard.png) against the real service.

    .venv/bin/python -m tests.support.dashboard_screenshot [docs/dashboard.png]

Starts ``python -m service`` with the bundled models on a throw-away data folder, has a few
users check faces from ``../shared/data`` (fake and real, several sources) and report two
verdicts, has a moderator decide two items (so the Fake and Real counts are not empty), then
signs in to /dashboard in headless Chromium (1440x900) as that moderator, selects the open item
with the highest P(fake), waits for its image and heatmap, and saves the screenshot.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.support.browser import CHROMIUM_ARGS
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import REPO, SHARED_DATA, sample_images

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}
MODERATOR = ("sam", "sam.moderator@newsroom.example")
USERS = [("alice", "alice.reader@mail.example"), ("ben", "ben.k@mail.example"),
         ("chloe", "chloe@factcheck.example")]
PAGES = ["https://news.example/politics/2024/rally-photo", "https://social.example/p/8812734",
         "https://blog.example/posts/ai-portraits", "https://forum.example/t/is-this-real/551"]


def faces() -> list[Path]:
    """Nine test-split faces, fake and real, from every source (deterministic)."""
    picks = [("fake", "sdfd-sd21", 2), ("fake", "gan-faces-extra", 2), ("fake", "tpdne-unsplash", 1),
             ("fake", "dfdc-faces", 1), ("real", "utkface", 1), ("real", "tpdne-unsplash", 1),
             ("real", "dfdc-faces", 1)]
    out = []
    for label, source, n in picks:
        out += sample_images(n, label=label, source=source)
    fakes, reals = out[:6], out[6:]
    return [fakes[0], reals[0], fakes[1], fakes[2], reals[1], fakes[3], fakes[4], reals[2], fakes[5]]


async def check(http: aiohttp.ClientSession, token: str, image: Path, page_url: str) -> dict:
    form = aiohttp.FormData()
    form.add_field("image", image.read_bytes(), filename=image.name, content_type="image/jpeg")
    form.add_field("page_url", page_url)
    async with http.post("/v1/checks", data=form, headers=bearer(token)) as resp:
        if resp.status != 201:
            raise RuntimeError(f"check of {image}: {resp.status} {await resp.text()}")
        return await resp.json()


async def report(http: aiohttp.ClientSession, token: str, check_id: str, note: str, page_url: str) -> str:
    async with http.post(f"/v1/checks/{check_id}/report", headers=bearer(token),
                         json={"note": note, "page_url": page_url}) as resp:
        if resp.status != 201:
            raise RuntimeError(f"report on {check_id}: {resp.status} {await resp.text()}")
        return (await resp.json())["flag_id"]


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


async def open_items(http: aiohttp.ClientSession, mod: str) -> list[dict]:
    async with http.get("/v1/moderation/items?state=open&sort=score&limit=100", headers=bearer(mod)) as r:
        r.raise_for_status()
        return (await r.json())["items"]


async def decide(http: aiohttp.ClientSession, mod: str, item: dict, decision: str, note: str) -> None:
    async with http.post(f"/v1/moderation/items/{item['id']}/decision", headers=bearer(mod),
                         json={"decision": decision, "note": note, "version": item["version"]}) as r:
        if r.status != 200:
            raise RuntimeError(f"decision on {item['id']}: {r.status} {await r.text()}")


async def populate(base: str, tokens: dict[str, str], mod: str) -> str:
    """Checks, reports and two decisions; returns the id of the open item to show."""
    images = faces()
    async with aiohttp.ClientSession(base) as http:
        checks = []
        for i, image in enumerate(images):
            user = USERS[i % len(USERS)][0]
            checks.append(await check(http, tokens[user], image, PAGES[i % len(PAGES)]))
        # the same images seen again by other users, on other pages
        for i in (0, 2, 3):
            user = USERS[(i + 1) % len(USERS)][0]
            await check(http, tokens[user], images[i], PAGES[(i + 2) % len(PAGES)])
        judged = [i for i in range(len(checks)) if checks[i]["score"] is not None]  # faces found
        by_score = sorted(judged, key=lambda i: checks[i]["score"])
        low, high = by_score[0], by_score[-1]
        await report(http, tokens[USERS[low % len(USERS)][0]], checks[low]["id"],
                     "Looks generated to me: the earrings do not match.", PAGES[low % len(PAGES)])
        await report(http, tokens[USERS[high % len(USERS)][0]], checks[high]["id"],
                     "This is a real photo of my colleague, taken at the office.", PAGES[high % len(PAGES)])

        items = await open_items(http, mod)
        if len(items) < 4:
            raise RuntimeError(f"only {len(items)} open items: expected more flagged faces")
        top = items[0]  # sorted by P(fake), highest first
        await decide(http, mod, items[1], "fake", "Generated: asymmetric ears and smeared background.")
        await decide(http, mod, items[-1], "real", "Confirmed with the photographer.")
        return top["id"]


async def wait_until(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll with page.evaluate: the dashboard's CSP forbids the eval of wait_for_function."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"timed out waiting for: {expression}")
        await asyncio.sleep(0.1)


async def shoot(base: str, mod: str, item_id: str, out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base + "/dashboard")
            await page.fill("#token-input", mod)
            await page.click("#token-submit")
            item = page.locator(f'#items .item[data-id="{item_id}"]')
            await item.wait_for()
            await item.click()
            await wait_until(page, f"document.querySelector('#items .item[aria-selected=true]')"
                                   f"?.dataset.id === '{item_id}'")
            await wait_until(page, "Array.from(document.querySelectorAll('#items .item img'))"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            await wait_until(page, "(() => { const m = document.querySelectorAll('.media img');"
                                   " return m.length === 2 && Array.from(m).every("
                                   "i => i.complete && i.naturalWidth > 0); })()")
            await page.wait_for_selector("#reports li b")
            await page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover highlight in the shot
            await asyncio.sleep(0.5)  # let transitions settle
            if errors:
                raise RuntimeError(f"errors on the page: {errors}")
            if await page.locator("#toast:not(.hidden)").count():
                raise RuntimeError("a toast is showing: " + (await page.text_content("#toast") or ""))
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out))
        finally:
            await browser.close()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "docs" / "dashboard.png"
    if not (SHARED_DATA / "manifest.csv").exists():
        print(f"the face data is missing: {SHARED_DATA}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="realcheck-shot-") as tmp:
        data = Path(tmp) / "svc"
        port = free_port()
        with live_service(data, port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0) as base:
            tokens = {sub: make_token(data, sub, "user", port=port, email=email) for sub, email in USERS}
            mod = make_token(data, MODERATOR[0], "moderator", port=port, email=MODERATOR[1])
            item_id = asyncio.run(populate(base, tokens, mod))
            asyncio.run(shoot(base, mod, item_id, out))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
