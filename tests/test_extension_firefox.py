"""The browser extension in real headless Firefox ESR (Debian's firefox-esr) against the real
service, driven over WebDriver BiDi (tests/support/firefox.py): it loads, checks an image from
the context menu with its panel (every face, heatmap, report), scans per origin with hash
lookups before pixels, never scans the service's own pages, takes the sign-in token over, and
shares a result."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.accounts import outbox_confirmation_code
from tests.support.extension import EXTENSION_DIR, Site, copy_images, page_html
from tests.support.firefox import Firefox
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import require_shared_data, sample_images

pytestmark = pytest.mark.browser

FINAL = ("real", "fake", "uncertain", "no_face")
LABELS = {"real": "REAL", "fake": "FAKE", "uncertain": "UNSURE", "no_face": "NO FACE"}
ROOT = "document.querySelector('realcheck-overlay')?.shadowRoot"


@pytest.fixture(scope="module")
def firefox_stack(tmp_path_factory):
    require_shared_data()
    tmp = tmp_path_factory.mktemp("firefox")
    faces = sample_images(6, source="tpdne-unsplash", label="real") + \
        sample_images(6, source="tpdne-unsplash", label="fake")
    names = copy_images(faces[::2] + faces[1::2], tmp / "images")
    port = free_port()
    with live_service(tmp / "svc", port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0) as service_url:
        token = make_token(tmp / "svc", "fiona", port=port, email="fiona@example.org")
        with Site(service_url, tmp / "images") as site:
            yield {"site": site, "token": token, "names": names, "tmp": tmp,
                   "service_url": service_url}


async def options_page(ff: Firefox) -> str:
    ctx = await ff.open(ff.base + "/options/options.html")
    await ff.wait(ctx, "document.getElementById('serviceUrl').value !== ''", what="the options page")
    return ctx


async def set_settings(ff: Firefox, ext: str, values: dict) -> None:
    await ff.eval(ext, f"chrome.storage.local.set({json.dumps(values)})")


async def menu_check(ff: Firefox, ext: str, page_url: str, src: str) -> dict:
    """What the context menu entry does: the page's script checks the image and opens the panel."""
    return await ff.eval(ext, f"""(async () => {{
        const tab = (await chrome.tabs.query({{}})).find((t) => t.url === {json.dumps(page_url)});
        return chrome.tabs.sendMessage(tab.id, {{type: 'realcheck:menu-check', srcUrl: {json.dumps(src)}}},
                                       {{frameId: 0}});
    }})()""")


def stored_token_is(token: str) -> str:
    return f"(async () => (await chrome.storage.local.get('token')).token === {json.dumps(token)})()"


def state_of(src: str) -> str:
    return f"document.querySelector('img[src=\"{src}\"]')?.getAttribute('data-realcheck')"


async def test_the_extension_works_in_firefox(firefox_stack, tmp_path):
    stack = firefox_stack
    site: Site = stack["site"]
    names = stack["names"]
    async with Firefox(tmp_path / "profile", EXTENSION_DIR) as ff:
        ext = await options_page(ff)
        await set_settings(ff, ext, {"serviceUrl": site.proxy_url, "token": stack["token"],
                                     "scanAll": False, "scanSites": []})

        # The options page checks the service and the token, and shows its thresholds.
        await ff.goto(ext, ff.base + "/options/options.html")
        await ff.wait(ext, "document.getElementById('serviceUrl').value !== ''")
        await ff.eval(ext, "document.getElementById('test').click()")
        status = await ff.wait(ext, """(() => { const s = document.getElementById('status');
            return s.dataset.state === 'ok' && s.textContent; })()""", what="a signed-in status")
        assert status == "Signed in as fiona@example.org"
        await ff.wait(ext, "document.getElementById('service-thresholds').dataset.state === 'ok'")

        # Scanning off: nothing leaves. The context menu checks one image, lookup first.
        mark = len(site.seen)
        url = site.add_page("ff-menu", page_html("Menu", names[:2]))
        page = await ff.open(url)
        await ff.eval(page, "new Promise((r) => setTimeout(r, 1000))")
        assert await ff.eval(page, state_of(f"/img/{names[0]}")) is None
        assert site.requests_since(mark) == []
        src = await ff.eval(page, f"document.querySelector('img[src=\"/img/{names[0]}\"]').src")
        answer = await menu_check(ff, ext, url, src)
        assert answer["ok"] and answer["state"] in FINAL, answer
        sent = [s for s in site.requests_since(mark) if s.is_lookup or s.is_upload]
        assert (sent[0].is_lookup, sent[1].is_upload) == (True, True)
        first_sha = hashlib.sha256((stack["tmp"] / "images" / names[0]).read_bytes()).hexdigest()
        assert sent[0].hashes == [first_sha]
        assert await ff.eval(page, state_of(f"/img/{names[1]}")) is None
        await ff.wait(page, f"{ROOT}?.querySelector('.panel .heatmap')?.naturalWidth > 0",
                      what="the heatmap in the panel")
        panel = await ff.eval(page, f"""(() => {{ const p = {ROOT}.querySelector('.panel');
            const r = p.getBoundingClientRect();
            return {{pill: p.querySelector('header .pill').textContent,
                     faces: p.querySelectorAll('ol.faces li').length,
                     text: p.innerText, inside: r.top >= 0 && r.bottom <= innerHeight,
                     boxes: {ROOT}.querySelectorAll('.face-box:not([hidden])').length}}; }})()""")
        assert panel["pill"] == LABELS[answer["state"]]
        assert panel["faces"] == panel["boxes"] == 1 and panel["inside"]
        assert "Report a wrong verdict" in panel["text"] and "undefined" not in panel["text"]

        # Report, then share a link and open it: anyone can read it, until it is revoked.
        await ff.eval(page, f"{ROOT}.querySelector('.report-open').click()")
        await ff.eval(page, f"""(() => {{ const t = {ROOT}.querySelector('.panel textarea');
            t.value = 'my own photo';
            {ROOT}.querySelector('.panel form.report button[type=submit]').click(); }})()""")
        shown = await ff.wait(page, f"""(() => {{
            const s = {ROOT}.querySelector('.report-status')?.textContent;
            return s && s !== 'Sending…' && s; }})()""", what="the report's answer")
        assert shown.startswith("Reported"), shown
        await ff.eval(page, f"{ROOT}.querySelector('.share-open').click()")
        link = await ff.wait(page, f"{ROOT}.querySelector('.share-url')?.value", what="the share link")
        reader = await ff.open(link)
        shown = await ff.eval(reader, "document.getElementById('verdict').textContent")
        assert shown == LABELS[answer["state"]]
        await ff.wait(reader, "document.querySelector('img.heatmap')?.naturalWidth > 0")
        assert await ff.eval(reader, "document.querySelectorAll('#faces tr.face-row').length") == 1
        await ff.eval(page, f"{ROOT}.querySelector('.share-revoke').click()")
        await ff.wait(page, f"{ROOT}.querySelector('.share-status')?.textContent.includes('revoked')")
        await ff.reload(reader)
        assert "revoked" in await ff.eval(reader, "document.body.textContent")
        assert not await ff.eval(reader, "Boolean(document.getElementById('result'))")

        # Scanning on for the pages' origin: every image in view, hashes first (batched), then
        # the unknown pixels; the second visit sends no pixels.
        scan = names[2:8]
        await ff.close(page)  # its unchecked image would be scanned too
        await set_settings(ff, ext, {"scanSites": [site.pages_url]})
        mark = len(site.seen)
        url = site.add_page("ff-scan", page_html("Scan", scan))
        page2 = await ff.open(url)
        srcs = [f"/img/{n}" for n in scan]
        await ff.wait(page2, f"{json.dumps(srcs)}.every((s) => {json.dumps(list(FINAL))}.includes("
                             f"document.querySelector(`img[src=\"${{s}}\"]`)?.getAttribute('data-realcheck')))",
                      timeout_s=60, what="every image badged")
        sent = site.requests_since(mark)
        assert sum(len(s.hashes) for s in sent) == 6 and sum(s.is_upload for s in sent) == 6
        assert sum(s.is_lookup for s in sent) < 6, "lookups are batched"
        mark = len(site.seen)
        page3 = await ff.open(url)
        await ff.wait(page3, f"{json.dumps(srcs)}.every((s) => document.querySelector(`img[src=\"${{s}}\"]`)"
                             ".getAttribute('data-realcheck'))", timeout_s=60)
        assert not any(s.is_upload for s in site.requests_since(mark)), "pixels sent twice"

        # The service's own pages are never scanned, even with scanning on everywhere.
        await set_settings(ff, ext, {"scanAll": True})
        mark = len(site.seen)
        own = await ff.open(site.proxy_url + "/help")
        foreign = json.dumps(f"{site.pages_url}/img/{names[8]}")
        await ff.eval(own, f"""(() => {{ const i = new Image(160, 160); i.src = {foreign};
                                        document.body.append(i); }})()""")
        await ff.eval(own, "new Promise((r) => setTimeout(r, 1500))")
        assert await ff.eval(own, "document.images[0].getAttribute('data-realcheck')") is None
        assert not any(s.is_lookup or s.is_upload for s in site.requests_since(mark))

        # The service's sign-in page hands its token over (and a new one after a switch).
        await set_settings(ff, ext, {"token": "", "scanAll": False})
        site.signin_token = stack["token"]
        await ff.open(site.proxy_url + "/signin")
        await ff.wait(ext, stored_token_is(stack["token"]), what="the token to be taken over")

        # On the real service's /signin: sign out, then in as someone else in the same tab.
        await set_settings(ff, ext, {"serviceUrl": stack["service_url"], "token": ""})
        signin = await ff.open(stack["service_url"] + "/signin")
        for n, email in enumerate(("first@example.org", "second@example.org")):
            if n:
                await ff.eval(signin, "document.getElementById('signout').click()")
                assert await ff.eval(signin, "document.getElementById('auth-submit').textContent") \
                    == "Sign in"
            await ff.eval(signin, f"""(() => {{ document.getElementById('tab-register').click();
                document.getElementById('email').value = {json.dumps(email)};
                document.getElementById('password').value = 'correct horse battery';
                document.getElementById('auth-submit').click(); }})()""")
            # Asked to register: the code comes by mail, and its link opens in this tab.
            await ff.wait(signin, "!document.getElementById('auth-notice').classList.contains('hidden')")
            db = stack["tmp"] / "svc" / "realcheck.sqlite3"
            code = None
            for _ in range(300):
                code = outbox_confirmation_code(db, email)
                if code:
                    break
                await ff.eval(signin, "new Promise((r) => setTimeout(r, 100))")
            assert code, f"no confirmation mail for {email}"
            await ff.eval(signin, f"location.hash = {json.dumps('#confirm=' + code)}")
            await ff.wait(signin, "!document.getElementById('code-field').classList.contains('hidden')")
            await ff.eval(signin, """(() => {
                document.getElementById('password').value = 'correct horse battery';
                document.getElementById('auth-submit').click(); })()""")
            token = await ff.wait(signin, "!document.getElementById('token-card').classList"
                                          ".contains('hidden') && document.getElementById('token').value")
            await ff.wait(ext, stored_token_is(token), what=f"the extension to take {email}'s token")
