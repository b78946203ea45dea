"""Takes docs/extension-video.png: a streamed video (MediaSource) checked by the extension, its
panel open with the capture's path, the verdict and a timeline strip per face track.

Starts the real service (bundled models), a local page playing a WebM made from ../shared/data
faces with PyAV through MediaSource, and headless Chromium with the extension, as
tests/test_extension_video.py does.

Run from the repository root: ``.venv/bin/python extension/tools/screenshot_video.py [out.png]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.extension import Site, launch, wait_until  # noqa: E402
from tests.support.live import free_port, live_service, make_token  # noqa: E402
from tests.support.paths import sample_images  # noqa: E402
from tests.support.videos import Appearance, encode  # noqa: E402
from tests.test_extension_video import MSE_PLAYER  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=str(REPO / "docs" / "extension-video.png"))
    args = parser.parse_args()
    import cv2
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="realcheck-video-shot-"))
    (tmp / "media").mkdir()
    fake = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="fake")[0]))
    real = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="real")[0]))
    clip = encode([Appearance(fake, 0.0, 8.0, (20, 60), (150, 80), 150),
                   Appearance(real, 3.0, 8.0, (320, 40), (300, 120), 150)],
                  kind="webm", seconds=8.0, fps=5, size=(480, 320))
    (tmp / "media" / "clip.webm").write_bytes(clip)
    port = free_port()
    with live_service(tmp / "svc", port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0) as service_url:
        token = make_token(tmp / "svc", "alice", port=port)
        with Site(service_url, tmp / "media") as site, sync_playwright() as pw:
            context, worker, _ = launch(pw, tmp / "profile")
            try:
                worker.evaluate("(s) => chrome.storage.local.set(s)",
                                {"serviceUrl": site.proxy_url, "token": token, "videoSeconds": 6})
                page = context.new_page()
                page.goto(site.add_page("video", (
                    "<!doctype html><meta charset='utf-8'><title>A streamed video</title>"
                    "<body style='font:15px system-ui;margin:16px;background:#f4f4f5'>"
                    "<h1 style='font-size:20px'>A streamed video</h1>" + MSE_PLAYER % "/img/clip.webm")))
                page.wait_for_function("document.querySelector('video').currentTime > 0.1")
                src = page.evaluate("document.querySelector('video').currentSrc")
                answer = worker.evaluate("""async ([url, srcUrl]) => {
                    const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
                    const info = {menuItemId: realcheck.VIDEO_MENU_ID, srcUrl, frameId: 0};
                    return realcheck.onMenuClick(info, tab);
                }""", [page.url, src])
                print(answer)
                root = "document.querySelector('realcheck-overlay').shadowRoot"
                wait_until(lambda: page.evaluate(
                    f"[...{root}.querySelectorAll('.panel img')].every((i) => i.naturalWidth > 0)"),
                    60, "the panel's images")
                page.screenshot(path=args.out)
                print("wrote", args.out)
            finally:
                context.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
