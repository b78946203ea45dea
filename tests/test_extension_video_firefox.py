"""A streamed video checked by the extension in real headless Firefox ESR (over WebDriver BiDi,
tests/support/firefox.py) against the real service: frames drawn from the playing MediaSource
video on a canvas at the service's sampling rate, sent as one frame sequence, the job followed to
the panel's timelines."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.extension import EXTENSION_DIR, Site
from tests.support.firefox import Firefox
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import require_shared_data, sample_images
from tests.test_extension_video import MSE_PLAYER, frame_parts

pytestmark = pytest.mark.browser

ROOT = "document.querySelector('realcheck-overlay')?.shadowRoot"
LABELS = {"real": "REAL", "fake": "FAKE", "uncertain": "UNSURE", "no_face": "NO FACE"}
SECONDS = 2


async def test_a_stream_is_captured_and_checked_in_firefox(tmp_path):
    pytest.importorskip("av")
    require_shared_data()
    import cv2

    from tests.support.videos import Appearance, encode

    face = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="fake", split="val")[0]))
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.webm").write_bytes(encode([Appearance(face, 0.0, 4.0, (30, 60), (280, 90), 170)],
                                             kind="webm", seconds=4.0, fps=5, size=(480, 320)))
    port = free_port()
    with live_service(tmp_path / "svc", port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0) as service_url:
        token = make_token(tmp_path / "svc", "fiona", port=port)
        rate = json.loads(urllib.request.urlopen(service_url + "/health").read())["video"]["sample_rate"]
        with Site(service_url, media) as site:
            async with Firefox(tmp_path / "profile", EXTENSION_DIR) as ff:
                ext = await ff.open(ff.base + "/options/options.html")
                await ff.wait(ext, "document.getElementById('serviceUrl').value !== ''")
                await ff.eval(ext, "chrome.storage.local.set(" + json.dumps(
                    {"serviceUrl": site.proxy_url, "token": token, "videoSeconds": SECONDS}) + ")")
                url = site.add_page("ff-video", "<!doctype html><meta charset='utf-8'><title>Stream</title>"
                                                + MSE_PLAYER % "/img/clip.webm")
                page = await ff.open(url)
                src = await ff.wait(page, "document.querySelector('video').currentTime > 0.1"
                                          " && document.querySelector('video').currentSrc",
                                    what="the stream playing")
                assert src.startswith("blob:")
                mark = len(site.seen)
                answer = await ff.eval(ext, f"""(async () => {{
                    const tab = (await chrome.tabs.query({{}})).find((t) => t.url === {json.dumps(url)});
                    return chrome.tabs.sendMessage(tab.id, {{type: 'realcheck:menu-check-video',
                                                             srcUrl: {json.dumps(src)}}}, {{frameId: 0}});
                }})()""")
                assert answer["ok"] and answer["path"] == "frames" and answer["capture"] == "canvas", answer
                sent = [s for s in site.requests_since(mark) if s.is_upload]
                assert len(sent) == 1 and sent[0].status == 202
                count, fields = frame_parts(sent[0].body)
                assert count == round(SECONDS * rate) and float(fields["fps"]) == rate
                await ff.wait(page, f"[...{ROOT}.querySelectorAll('.panel .timeline img')]"
                                    ".every((i) => i.naturalWidth > 0)", what="the timeline's thumbnails")
                panel = await ff.eval(page, f"""(() => {{ const p = {ROOT}.querySelector('.panel');
                    return {{pill: p.querySelector('header .pill').textContent,
                             path: p.querySelector('.video-path').textContent,
                             frames: p.querySelectorAll('.timeline li').length,
                             decisive: p.querySelectorAll('.timeline li.decisive').length,
                             tracks: p.querySelectorAll('.track').length}}; }})()""")
    assert panel["pill"] == LABELS[answer["state"]]
    assert panel["path"] == f"{count} frames captured from the playing video (canvas)."
    assert panel["tracks"] >= 1 and panel["decisive"] == panel["tracks"] <= panel["frames"]
