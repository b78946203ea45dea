"""Takes docs/extension.png: a test page badged by the extension, with the panel of a group
photo open (every face numbered on the image and listed).

Starts the real service (bundled models), a local page of face images from ../shared/data (plus
a group photo made of three of them and a faceless image) and headless Chromium with the
extension, exactly as tests/test_extension_browser.py does. The badges use the service's own
verdicts; ``--spread`` uses custom thresholds at the page's score terciles instead (every badge
colour shows even when the scores bunch up); the thresholds used are printed.

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
    parser.add_argument("--spread", action="store_true",
                        help="badge with thresholds at the page's score terciles")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="realcheck-shot-"))
    faces = sample_images(5, source="tpdne-unsplash", label="real") + sample_images(
        5, source="tpdne-unsplash", label="fake")
    names = copy_images(faces[::2] + faces[1::2], tmp / "images")
    import cv2
    import numpy as np

    group = np.hstack([cv2.resize(cv2.imread(str(p)), (300, 300)) for p in faces[5:8]])
    cv2.imwrite(str(tmp / "images" / "group.jpg"), group)
    rng = np.random.default_rng(3)
    cv2.imwrite(str(tmp / "images" / "pattern.png"),
                cv2.GaussianBlur(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8), (9, 9), 0))
    port = free_port()
    with live_service(tmp / "svc", port=port) as service_url:
        token = make_token(tmp / "svc", "alice", port=port)
        values = {"serviceUrl": service_url, "token": token}
        if args.spread:
            ranked = sorted(scores(service_url, token, tmp / "images", names))
            third = len(ranked) // 3
            values.update(useServiceThresholds=False, realAt=(ranked[third - 1] + ranked[third]) / 2,
                          fakeAt=(ranked[-third - 1] + ranked[-third]) / 2)
            print(f"scores {ranked}; REAL below {values['realAt']:.4f}, FAKE from {values['fakeAt']:.4f}")
        with Site(service_url, tmp / "images") as site, sync_playwright() as pw:
            context, worker, _ = launch(pw, tmp / "profile")
            worker.evaluate("(s) => chrome.storage.local.set(s)", {**values, "scanSites": [site.pages_url]})
            extra = ("<div class='grid' style='margin-top:10px'><img src='/img/pattern.png' width='160'"
                     " height='160'><img src='/img/group.jpg' width='480' height='160'>"
                     f"<img src=\"{BROKEN}\" width='160' height='160'></div>")
            page = context.new_page()
            page.goto(site.add_page("demo", page_html("Realcheck: a page of faces", names, extra=extra)))
            page.wait_for_function("""() => [...document.images].filter((i) => !i.src.startsWith('data:'))
                .every((i) => ['real', 'fake', 'uncertain', 'no_face', 'error']
                .includes(i.getAttribute('data-realcheck')))""", timeout=60_000)
            # Open the panel on the group photo: every face numbered on the image and listed.
            for src in [page.evaluate("document.querySelector('img[src=\"/img/group.jpg\"]').src")]:
                worker.evaluate("""async ([url, srcUrl]) => {
                    const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
                    return realcheck.onMenuClick({menuItemId: realcheck.MENU_ID, srcUrl, frameId: 0}, tab);
                }""", [page.url, src])
                page.wait_for_function("""() => document.querySelector('realcheck-overlay').shadowRoot
                    .querySelector('.panel .heatmap')?.naturalWidth > 0""", timeout=30_000)
                page.wait_for_timeout(300)  # the panel is placed on the next frame
                if page.locator("realcheck-overlay .face-box").first.is_visible():
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
