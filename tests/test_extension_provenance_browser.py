"""The extension's panel shows an image's Content Credentials beside the detectors' answer, and
labels unsigned metadata as unverified (real headless Chromium, a live service trusting a CA
made here)."""

from __future__ import annotations

import pytest

from tests.support.c2pa_signing import SigningCA, with_xmp
from tests.support.extension import Site, launch, page_html
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import require_shared_data, sample_images

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       '22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/'
       '2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/'
       'digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>')


def test_the_panel_shows_credentials_and_unverified_hints(tmp_path):
    pytest.importorskip("playwright")
    require_shared_data()
    from playwright.sync_api import sync_playwright

    ca = SigningCA.make("Test Generator Inc")
    anchors = tmp_path / "trust.pem"
    anchors.write_text(ca.root_pem)
    faces = sample_images(2, source="tpdne-unsplash", label="fake", split="val")
    images = tmp_path / "images"
    images.mkdir()
    (images / "signed.jpg").write_bytes(ca.sign(faces[0].read_bytes()))
    (images / "hinted.jpg").write_bytes(with_xmp(faces[1].read_bytes(), XMP))
    port, data = free_port(), tmp_path / "svc"
    with live_service(data, port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0,
                      REALCHECK_C2PA_TRUST_ANCHORS=str(anchors)) as service_url:
        token = make_token(data, "alice", port=port)
        with Site(service_url, images) as site, sync_playwright() as pw:
            context, worker, _ = launch(pw, tmp_path / "profile")
            try:
                worker.evaluate("(s) => chrome.storage.local.set(s)",
                                {"serviceUrl": site.proxy_url, "token": token})
                page = context.new_page()
                page.goto(site.add_page("provenance", page_html("Provenance",
                                                                ["signed.jpg", "hinted.jpg"])))
                for name, kind, text in [
                        ("signed.jpg", "ai",
                         "AI-generated, per its Content Credentials, signed by Test Generator Inc."),
                        ("hinted.jpg", "unverified", "Unverified: metadata suggests AI generation")]:
                    src = page.evaluate(f"document.querySelector('img[src=\"/img/{name}\"]').src")
                    answer = worker.evaluate("""async ([url, srcUrl]) => {
                        const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
                        return realcheck.onMenuClick({menuItemId: realcheck.MENU_ID, srcUrl,
                            frameId: 0, mediaType: 'image', pageUrl: url}, tab);
                    }""", [page.url, src])
                    assert answer["ok"], answer
                    line = page.locator("realcheck-overlay .panel .provenance")
                    line.wait_for(timeout=TIMEOUT_MS)
                    assert line.get_attribute("data-provenance") == kind
                    assert line.inner_text().startswith(text)
                    # Beside the detectors' answer, not instead of it.
                    assert "P(fake) = " in page.locator("realcheck-overlay .panel .confidence").inner_text()
                    page.keyboard.press("Escape")
                    page.locator("realcheck-overlay .panel").wait_for(state="detached")
            finally:
                context.close()
