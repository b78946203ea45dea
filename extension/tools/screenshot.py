"""Takes docs/extension.png: a test page badged by the extension, with one result's panel open.

Starts the real service (bundled models), a local page of face images from ../shared/data and
headless Chromium with the extension, exactly as tests/test_extension_browser.py does. With
untrained models every score sits near 0.5 and the service calls each face UNSURE, so unless
``--service-thresholds`` is given the badges use custom thresholds at the page's score terciles,
which shows every badge colour; the thresholds used are printed.

Run from the repository root: ``.venv/bin/python extension/tools/screenshot.py [out.png]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.extension import Site, copy_images, launch, page_html  # noqa: E402
from tests.support.live import free_port, live_service, make_token  # noqa: E402
from tests.support.paths import sample_images  # noqa: E402

BROKEN = ("data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='160' height='160'>"
          "<rect width='160' height='160' fill='%23d4d4d8'/></svg>")


def scores(service_url: str, token: str, folder: Path, names: list[str]) -> list[float]:
    out = []
    for name in names:
        req = urllib.request.Request(service_url + "/v1/checks", data=(folder / name).read_bytes(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "image/jpeg"})
        with urllib.request.urlopen(req) as resp:
            out.append(json.load(resp)["score"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=str(REPO / "docs" / "extension.png"))
    parser.add_argument("--service-thresholds", action="store_true",
                        help="badge with the service's own verdicts")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="realcheck-shot-"))
    faces = sample_images(5, source="tpdne-unsplash", label="real") + sample_images(
        5, source="tpdne-unsplash", label="fake")
    names = copy_images(faces[::2] + faces[1::2], tmp / "images")
    port = free_port()
    with live_service(tmp / "svc", port=port) as service_url:
        token = make_token(tmp / "svc", "alice", port=port)
        values = {"serviceUrl": service_url, "token": token, "scanSites": ["127.0.0.1"]}
        if not args.service_thresholds:
            ranked = sorted(scores(service_url, token, tmp / "images", names))
            third = len(ranked) // 3
            values.update(useServiceThresholds=False, realAt=(ranked[third - 1] + ranked[third]) / 2,
                          fakeAt=(ranked[-third - 1] + ranked[-third]) / 2)
            print(f"scores {ranked}; REAL below {values['realAt']:.4f}, FAKE from {values['fakeAt']:.4f}")
        with Site(service_url, tmp / "images") as site, sync_playwright() as pw:
            context, worker, _ = launch(pw, tmp / "profile")
            worker.evaluate("(s) => chrome.storage.local.set(s)", values)
            extra = (f"<div class='grid' style='margin-top:10px'><img src=\"{BROKEN}\" width='160'"
                     " height='160'></div>")
            page = context.new_page()
            page.goto(site.add_page("demo", page_html("Realcheck: a page of faces", names, extra=extra)))
            page.wait_for_function("""() => [...document.images].every((i) =>
                ['real', 'fake', 'uncertain', 'error'].includes(i.getAttribute('data-realcheck')))""",
                                   timeout=60_000)
            # Open the panel on a FAKE image where a face was found (its face is outlined).
            fakes = page.evaluate("""() => [...document.querySelectorAll('img[data-realcheck=fake]')]
                .map((i) => i.src)""") or [page.evaluate("document.images[0].src")]
            for src in fakes:
                worker.evaluate("""async ([url, srcUrl]) => {
                    const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
                    return realcheck.onMenuClick({menuItemId: realcheck.MENU_ID, srcUrl, frameId: 0}, tab);
                }""", [page.url, src])
                page.wait_for_function("""() => document.querySelector('realcheck-overlay').shadowRoot
                    .querySelector('.panel .heatmap')?.naturalWidth > 0""", timeout=30_000)
                page.wait_for_timeout(300)  # the panel is placed on the next frame
                if page.locator("realcheck-overlay .face-box").is_visible():
                    break
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            bottom = page.evaluate("""() => Math.max(...[...document.images,
                document.querySelector('realcheck-overlay').shadowRoot.querySelector('.panel')]
                .map((e) => e.getBoundingClientRect().bottom + scrollY))""")
            page.screenshot(path=args.out, full_page=True,
                            clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 16})
            context.close()
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
