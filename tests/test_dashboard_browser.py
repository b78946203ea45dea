"""The dashboard and the sign-in page in real headless Chromium against the real service."""

import asyncio

import aiohttp
import pytest

from tests.support.accounts import confirmation_code
from tests.support.browser import CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def server(aiohttp_server, app):
    return await aiohttp_server(app)


async def wait_until(page, expression: str, timeout_s: float = 15.0) -> None:
    """Poll a JS expression with page.evaluate (CDP): the pages' CSP forbids the eval that
    Playwright's wait_for_function uses, and the test must not switch that CSP off."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        await asyncio.sleep(0.1)


async def new_page(browser):
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


async def flag(base: str, headers: dict, data: bytes, note: str) -> str:
    """A user checks an image and reports the verdict as wrong: one open item."""
    async with aiohttp.ClientSession(base) as http:
        form = aiohttp.FormData()
        form.add_field("image", data, filename="face.jpg", content_type="image/jpeg")
        form.add_field("page_url", "https://news.example/story")
        check = await (await http.post("/v1/checks", data=form, headers=headers)).json()
        resp = await http.post(f"/v1/checks/{check['id']}/report", json={"note": note}, headers=headers)
        return (await resp.json())["flag_id"]


async def test_a_moderator_signs_in_sees_the_item_and_decides_with_a_key(browser, server, auth, issuer,
                                                                         face_bytes):
    base = str(server.make_url("")).rstrip("/")
    flag_id = await flag(base, auth("alice", email="alice@example.com"), face_bytes, "my cousin, real")
    token = issuer.issue("mo", "moderator", email="mo@example.com")
    page, errors = await new_page(browser)

    await page.goto(base + "/dashboard")
    await page.fill("#token-input", "not a token")
    await page.click("#token-submit")
    await page.wait_for_selector("#token-error:not(.hidden)")
    assert "JWT" in await page.text_content("#token-error")

    await page.fill("#token-input", token)
    await page.click("#token-submit")
    item = page.locator(f'#items .item[data-id="{flag_id}"]')
    await item.wait_for()
    await wait_until(page,   # thumbnail fetched with the token and shown
        "document.querySelector('#items .item img').naturalWidth > 0")
    await page.wait_for_selector("#reports li b")
    assert "alice@example.com" in await page.text_content("#reports")
    assert "my cousin, real" in await page.text_content("#reports")
    await wait_until(page,   # image and heatmap in the detail pane
        "Array.from(document.querySelectorAll('.media img')).every(i => i.naturalWidth > 0)")
    assert await page.text_content("#who-role") == "moderator"
    # The score bar's colour follows the service's thresholds (from /health), not fixed numbers.
    health = await (await page.request.get(base + "/health")).json()
    t = health["thresholds"]
    score = float(await item.get_attribute("data-score")) if await item.get_attribute("data-score") \
        else None
    bar_class = await item.locator(".bar").get_attribute("class")
    if score is not None:
        want = "hi" if score >= t["fake_from"] else "lo" if score < t["real_below"] else ""
        assert bar_class.split()[1:] == ([want] if want else []), (score, bar_class, t)
    assert await page.locator("#nav button[data-view=users]").is_hidden()  # admins only

    await page.keyboard.press("n")  # write a note, then decide with the shortcut
    await page.keyboard.type("generated, see the ears")
    await page.keyboard.press("Escape")
    await page.keyboard.press("f")
    await page.wait_for_selector("#queue-empty")
    assert await item.count() == 0
    assert "clear" in await page.text_content("#queue-empty")

    async with aiohttp.ClientSession(base) as http:
        mod = {"Authorization": "Bearer " + token}
        decided = await (await http.get(f"/v1/moderation/items/{flag_id}", headers=mod)).json()
    assert decided["state"] == "confirmed_fake"
    assert decided["decision"]["by"] == "mo" and decided["decision"]["note"] == "generated, see the ears"

    await page.click("#states button[data-state=confirmed_fake]")  # it is under "Fake" now
    await item.wait_for()
    assert await page.text_content("#detail-state") == "Confirmed fake"
    assert errors == []


async def test_a_face_running_off_the_pictures_edge_is_marked_cut_off(browser, server, auth, issuer):
    """A picture cropped through the face: the service does not judge that face (UNSURE, so the
    picture is in the queue), and the detail pane says why."""
    import cv2

    from tests.support.cut import cut_through_face
    from tests.support.paths import require_shared_data, sample_images

    require_shared_data()
    image = cut_through_face(cv2.imread(str(sample_images(1, source="tpdne-unsplash",
                                                          label="real")[0])), 0.45)
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(base) as http:
        form = aiohttp.FormData()
        form.add_field("image", cv2.imencode(".png", image)[1].tobytes(), filename="cut.png",
                       content_type="image/png")
        check = await (await http.post("/v1/checks", data=form, headers=auth("alice"))).json()
    assert check["verdict"] == "uncertain" and check["faces"][0]["cut_off"] is True, check
    page, errors = await new_page(browser)
    await page.goto(base + "/dashboard")
    await page.fill("#token-input", issuer.issue("mo", "moderator"))
    await page.click("#token-submit")
    await page.wait_for_selector("#faces")
    await wait_until(page, "document.querySelector('#faces').textContent.includes('cut off')")
    assert "unconfirmed" not in await page.text_content("#faces")
    assert errors == []


async def test_a_stale_item_is_reloaded_instead_of_overwritten(browser, server, auth, issuer, face_bytes):
    base = str(server.make_url("")).rstrip("/")
    flag_id = await flag(base, auth("alice"), face_bytes, "wrong")
    page, errors = await new_page(browser)
    await page.goto(base + "/dashboard")
    await page.fill("#token-input", issuer.issue("mo", "moderator"))
    await page.click("#token-submit")
    await page.wait_for_selector("#faces")
    async with aiohttp.ClientSession(base) as http:  # another moderator decides first
        resp = await http.post(f"/v1/moderation/items/{flag_id}/decision", headers=auth("m2", "moderator"),
                               json={"decision": "real", "version": 1})
        assert resp.status == 200
    await page.keyboard.press("d")
    await page.wait_for_selector("#toast:not(.hidden)")
    assert "Another moderator" in await page.text_content("#toast")
    await wait_until(page, "document.querySelector('#detail-state').textContent === 'Real'")
    assert errors == []


async def test_sign_in_page_registers_shows_the_token_and_the_dashboard_uses_it(browser, server):
    base = str(server.make_url("")).rstrip("/")
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    await page.goto(base + "/signin")
    await page.click("#tab-register")
    await page.fill("#email", "new.person@example.com")
    await page.fill("#password", "short")
    await page.click("#auth-submit")  # the browser's own check (minlength) stops it
    assert await page.locator("#token-card").is_hidden()
    await page.fill("#password", "a long enough password")
    await page.click("#auth-submit")  # asks to register: a mail with a link follows
    await page.wait_for_selector("#auth-notice:not(.hidden)")
    assert "Check your email" in await page.text_content("#auth-notice")
    assert await page.locator("#token-card").is_hidden()
    code = await confirmation_code(server.app, "new.person@example.com")
    await page.goto(f"{base}/signin#confirm={code}")  # the link in the mail
    await page.wait_for_selector("#code-field:not(.hidden)")
    assert await page.input_value("#code") == code
    assert await page.evaluate("location.hash") == ""  # the code leaves the address bar
    await page.fill("#password", "a long enough password")
    await page.click("#auth-submit")
    await page.wait_for_selector("#token-card:not(.hidden)")
    token = await page.input_value("#token")
    assert token.count(".") == 2
    assert "new.person@example.com" in await page.text_content("#welcome")
    await page.click("#copy")
    assert await page.evaluate("navigator.clipboard.readText()") == token

    async with aiohttp.ClientSession(base) as http:
        me = await (await http.get("/v1/me", headers={"Authorization": "Bearer " + token})).json()
    assert me["email"] == "new.person@example.com" and me["role"] == "user"

    await page.click("#open-dashboard")  # signed in already: a user sees their settings
    await page.wait_for_selector("#view-settings:not(.hidden)")
    assert await page.locator("#nav button[data-view=queue]").is_hidden()
    await page.check("#me-alerts")
    await page.click("#settings-form button[type=submit]")
    await page.wait_for_selector("#toast:not(.hidden)")
    async with aiohttp.ClientSession(base) as http:
        me = await (await http.get("/v1/me", headers={"Authorization": "Bearer " + token})).json()
    assert me["email_alerts"] is True

    await page.goto(base + "/signin")  # wrong password: the service's message is shown
    await page.fill("#email", "new.person@example.com")
    await page.fill("#password", "not the password")
    await page.click("#auth-submit")
    await page.wait_for_selector("#auth-error:not(.hidden)")
    assert await page.text_content("#auth-error") == "wrong email or password"
    await context.close()
