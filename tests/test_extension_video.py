"""Checking videos with the browser extension, in real headless Chromium, against the real service
and its bundled models.

The videos are made here from ../shared/data faces with PyAV (the library the service decodes
with) and played by local pages: a plain MP4 file (the service fetches it), a MediaSource stream
(frames drawn on a canvas) and a video of another site that serves browsers only (the service
may not fetch it: frames from screenshots of the tab). The panel must say which way was taken,
show the capture's and the job's progress, and end with a timeline per face track that matches
the service's check. Every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.extension import EXTENSION_DIR, Site, launch, wait_until
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import require_shared_data, sample_images

pytestmark = pytest.mark.browser

TIMEOUT_S = 60  # per wait: a video job on the shared 2-core machine
LABELS = {"real": "REAL", "fake": "FAKE", "uncertain": "UNSURE", "no_face": "NO FACE"}
CAPTURE_SECONDS = 3  # the extension's capture length option in these tests

# Records, in the page's own world, every text the panel showed about the path and progress
# (the overlay's shadow root is open), so a test can tell what was shown between two polls.
PANEL_LOG = """<script>
window.panelLog = [];
function watchPanel(root) {
  new MutationObserver(() => {
    const panel = root.querySelector('.panel');
    if (!panel) return;
    const text = [...panel.querySelectorAll('.video-path, .video-progress')]
      .map((e) => e.textContent).join(' | ');
    if (text && window.panelLog[window.panelLog.length - 1] !== text) window.panelLog.push(text);
  }).observe(root, {childList: true, subtree: true, characterData: true});
}
new MutationObserver(() => {
  const host = document.querySelector('realcheck-overlay');
  if (host && !host.dataset.watched) { host.dataset.watched = '1'; watchPanel(host.shadowRoot); }
}).observe(document.documentElement, {childList: true});
</script>"""

# A MediaSource player, as video sites have: the whole WebM appended to one SourceBuffer.
MSE_PLAYER = """<video id="v" width="480" height="320" muted playsinline></video><script>
(async () => {
  const data = await (await fetch('%s')).arrayBuffer();
  const source = new MediaSource();
  const video = document.getElementById('v');
  video.src = URL.createObjectURL(source);
  source.addEventListener('sourceopen', () => {
    const buffer = source.addSourceBuffer('video/webm; codecs="vp8"');
    buffer.addEventListener('updateend', () => { source.endOfStream(); video.play(); }, {once: true});
    buffer.appendBuffer(data);
  }, {once: true});
})();
</script>"""


class BrowsersOnly(SimpleHTTPRequestHandler):
    """Another site's videos, served only to a browser's media element (as hotlink-protected
    sites do): the service's own fetch is refused with 403."""

    def do_GET(self):
        if self.headers.get("Sec-Fetch-Dest") != "video":
            self.send_error(403, "browsers only")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def make_videos(folder: Path) -> dict[str, str]:
    """The test videos (faces gliding across the picture), by name."""
    import cv2

    from tests.support.videos import Appearance, encode

    real = [cv2.imread(str(p)) for p in sample_images(3, source="tpdne-unsplash", label="real")]
    fake = [cv2.imread(str(p)) for p in sample_images(3, source="tpdne-unsplash", label="fake")]
    specs = {
        # a file the service fetches: one face, then a second joins
        "file.mp4": ([Appearance(real[0], 0.0, 4.0, (20, 60), (280, 80), 160),
                      Appearance(fake[0], 1.5, 4.0, (300, 20), (60, 150), 150)], "mp4", 4.0),
        # a stream played through MediaSource: longer than the capture
        "stream.webm": ([Appearance(fake[1], 0.0, 5.0, (30, 70), (290, 90), 170)], "webm", 5.0),
        # another site's video (tab screenshots; it loops)
        "other.webm": ([Appearance(real[1], 0.0, 4.0, (40, 60), (260, 100), 170)], "webm", 4.0),
        # the cancel test's video, and the longer job it waits behind
        "short.mp4": ([Appearance(real[2], 0.0, 2.0, (10, 40), (300, 120), 150)], "mp4", 2.0),
        "blocker.mp4": ([Appearance(fake[2], 0.0, 8.0, (300, 40), (10, 120), 150)], "mp4", 8.0),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (faces, kind, seconds) in specs.items():
        (folder / name).write_bytes(encode(faces, kind=kind, seconds=seconds, fps=5, size=(480, 320)))
    return {name: name for name in specs}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("playwright")
    pytest.importorskip("av")
    require_shared_data()
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("extension-video")
    make_videos(tmp / "media")
    other = ThreadingHTTPServer(("127.0.0.1", 0), partial(BrowsersOnly, directory=str(tmp / "media")))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = free_port()
    data = tmp / "svc"
    try:
        with live_service(data, port=port, REALCHECK_RATE_LIMIT_PER_MINUTE=0,
                          REALCHECK_FETCH_ALLOW_PRIVATE=1) as service_url:
            token = make_token(data, "alice", port=port)
            with Site(service_url, tmp / "media") as site, sync_playwright() as pw:
                context, worker, ext_id = launch(pw, tmp / "profile")
                try:
                    yield {"site": site, "context": context, "worker": worker, "ext_id": ext_id, "pw": pw,
                           "token": token, "service_url": service_url,
                           # another origin (localhost, not 127.0.0.1): the page cannot read its pixels
                           "other_url": f"http://localhost:{other.server_address[1]}"}
                finally:
                    context.close()
    finally:
        other.shutdown()


@pytest.fixture
def ext(stack):
    stack["worker"].evaluate("""async (s) => {
        await chrome.storage.local.clear();
        await chrome.storage.local.set(s);
    }""", {"serviceUrl": stack["site"].proxy_url, "token": stack["token"], "videoSeconds": CAPTURE_SECONDS})
    yield stack
    for page in stack["context"].pages:
        page.close()


def open_page(stack, name: str, body: str):
    page = stack["context"].new_page()
    page.goto(stack["site"].add_page(name, "<!doctype html><html><head><meta charset='utf-8'>"
                                           f"<title>{name}</title>{PANEL_LOG}</head>"
                                           f"<body style='margin:16px'><h1>{name}</h1>{body}</body></html>"))
    page.bring_to_front()
    page.wait_for_function("document.querySelector('video').currentTime > 0.1", timeout=TIMEOUT_S * 1000)
    return page


def start_menu_check(stack, page) -> None:
    """What right-click → "Check video with Realcheck" does (the native menu cannot be clicked
    headless): the worker's own onClicked handler, not awaited (the test watches the panel)."""
    src = page.evaluate("document.querySelector('video').currentSrc")
    stack["worker"].evaluate("""async ([url, srcUrl]) => {
        const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
        globalThis.videoCheck = realcheck.onMenuClick(
            {menuItemId: realcheck.VIDEO_MENU_ID, srcUrl, frameId: 0, mediaType: 'video', pageUrl: url}, tab);
    }""", [page.url, src])


def menu_answer(stack) -> dict:
    return stack["worker"].evaluate("globalThis.videoCheck")


def panel_js(expression: str) -> str:
    return ("(() => { const p = document.querySelector('realcheck-overlay')?.shadowRoot"
            f".querySelector('.panel'); return p ? ({expression}) : null; }})()")


def wait_panel(page, expression: str):
    page.wait_for_function(panel_js(expression), timeout=TIMEOUT_S * 1000)
    return page.evaluate(panel_js(expression))


def cancel_from_panel(stack, page, when: str) -> None:
    """Start the menu check, click the panel's Cancel once ``when`` holds, and see it end
    cancelled."""
    start_menu_check(stack, page)
    wait_panel(page, when)
    page.locator("realcheck-overlay .video-cancel").click()
    answer = wait_until(lambda: menu_answer(stack), TIMEOUT_S, "the video check to end")
    assert answer["state"] == "error" and answer["error"]["code"] == "cancelled", answer
    assert wait_panel(page, "p.querySelector('h2').textContent") == "Cancelled"


def api(stack, path: str, method: str = "GET"):
    req = urllib.request.Request(stack["service_url"] + path, method=method,
                                 headers={"Authorization": f"Bearer {stack['token']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def frame_parts(body: bytes) -> tuple[int, dict]:
    """The number of ``frame`` parts of a multipart body and its text fields."""
    fields = dict(re.findall(rb'name="(\w+)"\r\n\r\n([^\r]*)\r\n', body))
    return body.count(b'name="frame"'), {k.decode(): v.decode() for k, v in fields.items()}


def check_result_panel(stack, page, answer: dict) -> dict:
    """The panel's result matches the service's check: the verdict, one timeline per track with a
    thumbnail and P(fake) for each frame the face was seen in, the decisive frame marked, and the
    decisive frame's heatmap."""
    check = api(stack, f"/v1/checks/{answer['checkId']}")
    assert check["media"] == "video" and check["video"]["tracks"], check
    tracks = check["video"]["tracks"]
    # thumbnails and heatmaps are fetched by the worker: wait until every one has loaded
    images = "[...p.querySelectorAll('.timeline img, .track .heatmap')]"
    wait_panel(page, f"{images}.length > 0 && {images}.every((i) => i.naturalWidth > 0)")
    shown = page.evaluate(panel_js("""{
        pill: p.querySelector('header .pill').textContent,
        tracks: [...p.querySelectorAll('.track')].map((t) => ({
            id: Number(t.dataset.track),
            frames: [...t.querySelectorAll('.timeline li')].map((li) => ({
                index: Number(li.dataset.frame), score: li.querySelector('.frame-score').textContent,
                decisive: li.classList.contains('decisive'), thumb: li.querySelector('img').naturalWidth,
                box: Boolean(li.querySelector('.box'))})),
            heatmap: t.querySelector('.heatmap')?.naturalWidth ?? 0})),
        text: p.innerText}"""))
    assert shown["pill"] == LABELS[check["verdict"]] == LABELS[answer["state"]]
    assert [t["id"] for t in shown["tracks"]] == [t["id"] for t in tracks]
    for seen, track in zip(shown["tracks"], tracks):
        assert [f["index"] for f in seen["frames"]] == [f["frame_index"] for f in track["timeline"]]
        assert [f["score"] for f in seen["frames"]] == [f"{f['score']:.2f}" for f in track["timeline"]]
        assert [f["index"] for f in seen["frames"] if f["decisive"]] == [track["decisive"]["frame_index"]]
        assert all(f["thumb"] > 0 and f["box"] for f in seen["frames"]) and seen["heatmap"] > 0
    assert "null" not in shown["text"] and "undefined" not in shown["text"] and "NaN" not in shown["text"]
    return check


# ---------------------------------------------------------------------------------------------


def test_video_modules(ext):
    """The worker's pure video helpers, loaded in an extension page: the sampling plan comes
    from the service's /health only, frames fit the service's limits, and the tab screenshot's
    crop follows the screenshot's own scale (devicePixelRatio 2 here) and the viewport."""
    page = ext["context"].new_page()
    page.goto(f"chrome-extension://{ext['ext_id']}/options/options.html")
    result = page.evaluate("""async () => {
        const v = await import('/lib/video.js');
        const health = {video: {sample_rate: 2, sample_seconds: 60, max_frames: 120, max_side: 4096,
                                max_pixels: 8294400}};
        const view = {width: 1280, height: 800};
        const err = (f) => { try { f(); return null; } catch (e) { return e.code; } };
        return {
            plan: v.samplingPlan(health, {videoSeconds: 10}),
            short: v.samplingPlan({video: {...health.video, max_frames: 5}}, {videoSeconds: 10}),
            capped: v.samplingPlan({video: {...health.video, sample_seconds: 4}}, {videoSeconds: 30}),
            none: err(() => v.samplingPlan({status: 'ok'}, {videoSeconds: 10})),
            fit: [v.fitSize(3840, 2160, 1280), v.fitSize(300, 200, 1280),
                  v.fitSize(4000, 4000, 4096, 1000000)],
            crop: [
                v.cropBox({left: 100, top: 50, width: 480, height: 270}, view, {width: 2560, height: 1600}),
                v.cropBox({left: -100, top: 600, width: 400, height: 300}, view, view),
                v.cropBox({left: 1200, top: 0, width: 400, height: 300}, view, view),
            ],
        };
    }""")
    assert result["plan"] == {"fps": 2, "seconds": 10, "maxFrames": 20, "maxSide": 1280, "maxPixels": 1638400}
    assert result["short"]["maxFrames"] == 5, "never more frames than the service takes"
    assert result["capped"]["seconds"] == 4 and result["capped"]["maxFrames"] == 8
    assert result["none"] == "no_video", "no sampling rate from the service: no number of our own"
    assert result["fit"] == [{"width": 1280, "height": 720}, {"width": 300, "height": 200},
                             {"width": 1000, "height": 1000}]
    assert result["crop"][0] == {"x": 200, "y": 100, "width": 960, "height": 540}, "device pixels at DPR 2"
    assert result["crop"][1] == {"x": 0, "y": 600, "width": 300, "height": 200}, "clipped to the viewport"
    assert result["crop"][2] is None, "mostly off screen: no frame"


def test_a_video_file_is_fetched_by_the_service(ext):
    site = ext["site"]
    mark = len(site.seen)
    page = open_page(ext, "file", "<video width='480' height='320' muted autoplay loop playsinline"
                                  " src='/img/file.mp4'></video>")
    start_menu_check(ext, page)
    answer = wait_until(lambda: menu_answer(ext), TIMEOUT_S * 2, "the video check to end")
    assert answer["ok"] and answer["path"] == "file" and answer["state"] in LABELS, answer
    assert page.evaluate("document.querySelector('video').getAttribute('data-realcheck')") == answer["state"]

    sent = [s for s in site.requests_since(mark) if s.is_upload]
    assert len(sent) == 1, "one request: the video's address, not its bytes"
    assert json.loads(sent[0].body) == {"url": f"{site.pages_url}/img/file.mp4", "page_url": page.url}
    assert sent[0].status == 202
    polls = [s for s in site.requests_since(mark) if s.path.startswith("/v1/jobs/")]
    assert polls and all(s.method == "GET" and s.status == 200 for s in polls)

    log = page.evaluate("window.panelLog")
    assert log[0].startswith("The video's address was sent: the service fetches the file itself.")
    job_words = ("Waiting for the service", "Reading the video", "Scoring frames")
    assert any(w in t for t in log for w in job_words), log
    assert wait_panel(page, "p.querySelector('.video-path').textContent") == \
        "The service fetched the video file."
    check = check_result_panel(ext, page, answer)
    assert check["video"]["source"] == "file" and check["video"]["capture"] is None
    assert len(check["video"]["tracks"]) >= 1

    # Checked again (another visit): the service knows the video's bytes and answers at once.
    mark = len(site.seen)
    page.reload()
    page.wait_for_function("document.querySelector('video').currentTime > 0.1", timeout=TIMEOUT_S * 1000)
    start_menu_check(ext, page)
    again = wait_until(lambda: menu_answer(ext), TIMEOUT_S, "the second check to end")
    assert again["checkId"] == answer["checkId"] and again["state"] == answer["state"], again
    assert [s.status for s in site.requests_since(mark) if s.is_upload] == [201]
    assert not [s for s in site.requests_since(mark) if s.path.startswith("/v1/jobs/")], "no job to follow"
    check_result_panel(ext, page, again)


def test_a_stream_is_captured_from_a_canvas_and_sent_as_frames(ext):
    site = ext["site"]
    plan = json.loads(urllib.request.urlopen(ext["service_url"] + "/health").read())["video"]
    want = round(CAPTURE_SECONDS * plan["sample_rate"])
    mark = len(site.seen)
    page = open_page(ext, "stream", MSE_PLAYER % "/img/stream.webm")
    assert page.evaluate("document.querySelector('video').currentSrc").startswith("blob:")
    start_menu_check(ext, page)
    answer = wait_until(lambda: menu_answer(ext), TIMEOUT_S * 2, "the video check to end")
    assert answer["ok"] and answer["path"] == "frames" and answer["capture"] == "canvas", answer

    sent = [s for s in site.requests_since(mark) if s.is_upload]
    assert len(sent) == 1 and sent[0].status == 202
    count, fields = frame_parts(sent[0].body)
    assert count == want, f"{count} frames for {CAPTURE_SECONDS} s at the service's {plan['sample_rate']}/s"
    assert float(fields["fps"]) == plan["sample_rate"] and fields["capture"] == "canvas"
    assert fields["page_url"] == page.url and "source_url" not in fields, "a blob: URL is no source address"

    log = page.evaluate("window.panelLog")
    captured = [t for t in log if "frames (" in t and "of playing time" in t]
    shown = " ".join(captured)
    assert f"1 of {want} frames" in shown and f"{want - 1} of {want} frames" in shown, log
    assert any(t.startswith(f"{want} frames captured from the playing video (canvas).") for t in log), log
    assert wait_panel(page, "p.querySelector('.video-path').textContent") == \
        f"{want} frames captured from the playing video (canvas)."
    check = check_result_panel(ext, page, answer)
    assert check["video"]["source"] == "frames" and check["video"]["capture"] == "canvas"
    assert check["video"]["frames_sampled"] == want


def launch_hidpi(pw, profile: Path):
    """Chromium with the extension on a screen of two device pixels per CSS pixel (the page's
    own devicePixelRatio stays 1 under Playwright's viewport: only the screenshot's size tells)."""
    ext = str(EXTENSION_DIR)
    context = pw.chromium.launch_persistent_context(
        str(profile), executable_path=chromium_path(), headless=False,
        viewport={"width": 1280, "height": 800},
        args=[*CHROMIUM_ARGS, "--force-device-scale-factor=2", f"--disable-extensions-except={ext}",
              f"--load-extension={ext}"])
    workers = context.service_workers
    worker = workers[0] if workers else context.wait_for_event("serviceworker", timeout=TIMEOUT_S * 1000)
    return context, worker


def multipart_frames(body: bytes) -> list[bytes]:
    boundary = body.split(b"\r\n", 1)[0]
    parts = [p.split(b"\r\n\r\n", 1) for p in body.split(boundary)[1:-1]]
    return [data[:-2] for head, data in parts if b'name="frame"' in head]


def test_another_sites_video_is_captured_from_tab_screenshots(ext, tmp_path):
    import cv2
    import numpy as np

    site = ext["site"]
    context, worker = launch_hidpi(ext["pw"], tmp_path / "profile")
    try:
        hidpi = {**ext, "context": context, "worker": worker}
        worker.evaluate("(s) => chrome.storage.local.set(s)",
                        {"serviceUrl": site.proxy_url, "token": ext["token"],
                         "videoSeconds": CAPTURE_SECONDS})
        mark = len(site.seen)
        src = f"{ext['other_url']}/other.webm"
        page = open_page(hidpi, "other", "<video width='480' height='320' muted autoplay loop playsinline"
                                         f" src='{src}'></video>")
        start_menu_check(hidpi, page)
        first = wait_until(lambda: menu_answer(hidpi), TIMEOUT_S, "the video check to end")
        assert first["path"] == "file" and first["state"] == "error", first
        assert "HTTP 403" in first["error"]["message"], "the service could not fetch it"
        refused = [s.status for s in site.requests_since(mark) if s.is_upload]
        assert len(refused) == 1 and 400 <= refused[0] < 500, refused

        # The panel offers to capture it instead: the page may not read its pixels, so the tab's
        # screenshots are cropped to the video (and the extension's own badge is not in them).
        mark = len(site.seen)
        page.locator("realcheck-overlay .video-capture-instead").click()
        wait_panel(page, "p.querySelector('.track, .reason')")
        answer = page.evaluate(panel_js("p.querySelector('.video-path').textContent"))
        checked = page.evaluate(panel_js("p.querySelectorAll('.track').length"))
    finally:
        context.close()
    sent = [s for s in site.requests_since(mark) if s.is_upload]
    assert len(sent) == 1 and sent[0].status == 202, answer
    count, fields = frame_parts(sent[0].body)
    assert fields["capture"] == "tab" and fields["source_url"] == src
    assert answer == f"{count} frames captured from the playing video (screen)."
    frames = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR)
              for f in multipart_frames(sent[0].body)]
    assert len(frames) == count
    for image in frames:
        assert image.shape[:2] == (640, 960), "the video's 480x320 CSS pixels at two device pixels each"
        edges = np.concatenate([image[:3].reshape(-1, 3), image[-3:].reshape(-1, 3),
                                image[:, :3].reshape(-1, 3), image[:, -3:].reshape(-1, 3)])
        assert edges.mean() < 180, "only the video's picture, none of the (white) page around it"
    check = api(ext, "/v1/checks?limit=1")["items"][0]
    assert check["video"]["capture"] == "tab"
    assert len(check["video"]["tracks"]) >= 1, "the face was in the crop"
    assert checked == len(check["video"]["tracks"])


class HeldTableLock:
    """Another PostgreSQL client holding ``LOCK TABLE <table> IN EXCLUSIVE MODE`` in an open
    transaction, as a long migration or a stuck replica would: the service still reads the
    table, but every write to it waits until ``release()``."""

    def __init__(self, url: str, table: str):
        import asyncpg

        self.table = table
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn = self._call(asyncpg.connect(url))
        self._call(self.conn.execute(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE"))

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    def waiting(self) -> int:
        """How many other sessions wait for this table (the service's writes)."""
        return self._call(self.conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
            self.table))

    def release(self) -> None:
        if self.conn is not None:
            self._call(self.conn.execute("ROLLBACK"))
            self._call(self.conn.close())
            self.conn = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def pg_ext(ext, postgres, tmp_path):
    """The extension against a service of its own on a new PostgreSQL database (and its own
    pages origin and proxy), so a test can hold a lock on one of the service's tables."""
    url = postgres.create_database()
    port = free_port()
    env = {"REALCHECK_DATABASE_URL": url, "REALCHECK_RATE_LIMIT_PER_MINUTE": 0,
           "REALCHECK_FETCH_ALLOW_PRIVATE": 1}
    try:
        with live_service(tmp_path / "svc", port=port, **env) as service_url:
            token = make_token(tmp_path / "svc", "alice", port=port, **env)
            with Site(service_url, ext["site"].image_dir) as site:
                ext["worker"].evaluate("(s) => chrome.storage.local.set(s)",
                                       {"serviceUrl": site.proxy_url, "token": token})
                yield {**ext, "site": site, "token": token, "service_url": service_url,
                       "database_url": url}
                for page in ext["context"].pages:
                    page.close()  # before its service stops
    finally:
        postgres.drop_database(url)


def test_cancel_stops_the_job(pg_ext):
    """Cancel while the job waits for the service's only job slot. The slot is held by a
    blocker video that cannot finish: the test holds a lock on the ``checks`` table, so the
    blocker, once scored, waits to store its check (and keeps the slot) until released."""
    ext = pg_ext
    site = ext["site"]
    lock = HeldTableLock(ext["database_url"], "checks")
    try:
        blocker = urllib.request.Request(
            ext["service_url"] + "/v1/checks", method="POST",
            data=(Path(site.image_dir) / "blocker.mp4").read_bytes(),
            headers={"Authorization": f"Bearer {ext['token']}", "Content-Type": "video/mp4"})
        with urllib.request.urlopen(blocker, timeout=30) as resp:
            assert resp.status == 202
            blocker_job = json.loads(resp.read())["job"]
        wait_until(lock.waiting, TIMEOUT_S, "the blocker to wait for the lock on checks")
        assert api(ext, f"/v1/jobs/{blocker_job['id']}")["job"]["status"] == "running"

        mark = len(site.seen)
        page = open_page(ext, "cancel", "<video width='480' height='320' muted autoplay loop"
                                        " playsinline src='/img/short.mp4'></video>")
        cancel_from_panel(
            ext, page, "p.querySelector('.video-progress')?.textContent === 'Waiting for the service…'")
        deletes = [s for s in site.requests_since(mark) if s.method == "DELETE"]
        assert len(deletes) == 1 and deletes[0].status == 200 and deletes[0].path.startswith("/v1/jobs/")
        job = api(ext, deletes[0].path)["job"]
        assert job["status"] == "cancelled" and job["check_id"] is None

        # The blocker still holds the slot; cancelled too, it ends without a check.
        assert api(ext, f"/v1/jobs/{blocker_job['id']}")["job"]["status"] == "running"
        assert api(ext, f"/v1/jobs/{blocker_job['id']}", method="DELETE")["job"]["status"] == "cancelled"
    finally:
        lock.release()
    wait_until(lambda: not any(api(ext, f"/v1/jobs/{j}")["job"]["status"] in ("queued", "running")
                               for j in (blocker_job["id"], job["id"])), TIMEOUT_S, "both jobs to end")
    assert api(ext, f"/v1/jobs/{blocker_job['id']}")["job"]["check_id"] is None


def test_cancel_during_the_capture_sends_nothing(ext):
    site = ext["site"]
    mark = len(site.seen)
    page = open_page(ext, "cancel-capture", MSE_PLAYER % "/img/stream.webm")
    cancel_from_panel(ext, page, "/^1 of \\d+ frames/.test(p.querySelector('.video-progress')?.textContent)")
    assert page.evaluate(panel_js("p.querySelector('.video-path').textContent")) == \
        "Frames from the playing video (canvas): none was sent."
    assert not [s for s in site.requests_since(mark) if s.is_upload], "nothing was sent"


def test_a_paused_stream_waits_for_play(ext):
    """The capture takes frames only while the video plays: a player that refuses to start
    on its own leaves the panel asking for play, and the frames come once it plays."""
    site = ext["site"]
    held = MSE_PLAYER.replace("video.play();", "") % "/img/stream.webm" + (
        "<button id='go'>Play</button><script>"
        "const v = document.getElementById('v'); let allowed = false;"
        "v.addEventListener('play', () => { if (!allowed) v.pause(); });"
        "document.getElementById('go').onclick = () => { allowed = true; v.play(); };</script>")
    page = ext["context"].new_page()
    page.goto(site.add_page("paused", f"<!doctype html><body>{held}</body>"))
    page.wait_for_function("document.querySelector('video').readyState >= 2", timeout=TIMEOUT_S * 1000)
    mark = len(site.seen)
    start_menu_check(ext, page)
    assert wait_panel(page, "p.querySelector('.video-waiting')?.textContent") == \
        "Press play: frames are taken while the video plays."
    assert page.evaluate("document.querySelector('video').paused")
    assert not [s for s in site.requests_since(mark) if s.is_upload]
    page.click("#go")
    answer = wait_until(lambda: menu_answer(ext), TIMEOUT_S * 2, "the video check to end")
    assert answer["ok"] and answer["path"] == "frames" and answer["state"] in LABELS, answer
    rate = json.loads(urllib.request.urlopen(ext["service_url"] + "/health").read())["video"]["sample_rate"]
    sent = [s for s in site.requests_since(mark) if s.is_upload]
    assert len(sent) == 1 and frame_parts(sent[0].body)[0] == round(CAPTURE_SECONDS * rate)
