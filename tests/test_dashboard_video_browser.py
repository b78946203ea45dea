"""A video in the moderation queue, in real headless Chromium against the real service: the
moderator sees a timeline strip per face track (a thumbnail and P(fake) for every sampled frame
the face was seen in, the decisive frame outlined) and decides on the video as on an image."""

import asyncio

import aiohttp
import cv2
import pytest

from tests.support.paths import require_shared_data, sample_images
from tests.test_dashboard_browser import browser, new_page, server, wait_until  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def backend() -> str:
    """SQLite only: storing videos on PostgreSQL is the service tests' (tests/test_video_checks.py);
    this one is about the page."""
    return "sqlite"


def two_faces_video() -> bytes:
    """A fake face crossing the picture and a real one joining it halfway (two tracks)."""
    from tests.support.videos import Appearance, encode

    require_shared_data()
    fake = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="fake")[0]))
    real = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="real")[0]))
    return encode([Appearance(fake, 0.0, 4.0, (10, 60), (150, 80), 150),
                   Appearance(real, 2.0, 4.0, (320, 40), (300, 120), 150)],
                  kind="webm", seconds=4.0, fps=5, size=(480, 320))


async def checked_and_reported(base: str, headers: dict, video: bytes) -> tuple[dict, str]:
    """A user checks the video (a job, followed to its end) and reports the verdict as wrong."""
    async with aiohttp.ClientSession(base) as http:
        form = aiohttp.FormData()
        form.add_field("video", video, filename="clip.webm", content_type="video/webm")
        form.add_field("page_url", "https://videos.example/watch?v=1")
        resp = await http.post("/v1/checks", data=form, headers=headers)
        assert resp.status == 202, await resp.text()
        job = (await resp.json())["job"]
        deadline = asyncio.get_running_loop().time() + 120
        while job["status"] in ("queued", "running"):
            assert asyncio.get_running_loop().time() < deadline, job
            await asyncio.sleep(0.2)
            job = (await (await http.get(f"/v1/jobs/{job['id']}", headers=headers)).json())["job"]
        assert job["status"] == "done", job
        check = job["check"]
        resp = await http.post(f"/v1/checks/{check['id']}/report", json={"note": "the left one is fake"},
                               headers=headers)
        assert resp.status == 201, await resp.text()
        return check, (await resp.json())["flag_id"]


async def test_a_moderator_sees_each_tracks_timeline_and_decides_on_the_video(browser, server,  # noqa: F811
                                                                             auth, issuer):
    pytest.importorskip("av")
    base = str(server.make_url("")).rstrip("/")
    check, flag_id = await checked_and_reported(base, auth("alice", email="alice@example.com"),
                                                two_faces_video())
    tracks = check["video"]["tracks"]
    assert check["media"] == "video" and len(tracks) >= 1, check["video"]

    page, errors = await new_page(browser)
    await page.goto(base + "/dashboard")
    await page.fill("#token-input", issuer.issue("mo", "moderator", email="mo@example.com"))
    await page.click("#token-submit")
    await page.locator(f'#items .item[data-id="{flag_id}"]').wait_for()
    await page.wait_for_selector("#video .track")
    assert await page.text_content(".detail-head h2") == "Flagged video"
    await wait_until(page, "Array.from(document.querySelectorAll('#video img'))"
                           ".every(i => i.naturalWidth > 0)")
    shown = await page.evaluate("""() => Array.from(document.querySelectorAll('#video .track')).map((t) => ({
        id: Number(t.dataset.track),
        head: t.querySelector('.track-head').textContent,
        frames: Array.from(t.querySelectorAll('.timeline li')).map((li) => ({
            index: Number(li.dataset.frame), score: li.querySelector('.frame-score').textContent,
            decisive: li.classList.contains('decisive'), thumb: li.querySelector('img').naturalWidth,
            box: Boolean(li.querySelector('.box')),
            cls: li.className})),
        heatmaps: t.querySelectorAll('.track-heat img').length}))""")
    health = await (await page.request.get(base + "/health")).json()
    t = health["thresholds"]
    assert [s["id"] for s in shown] == [x["id"] for x in tracks]
    for seen, track in zip(shown, tracks):
        timeline = track["timeline"]
        assert [f["index"] for f in seen["frames"]] == [f["frame_index"] for f in timeline]
        assert [f["score"] for f in seen["frames"]] == [f"{round(f['score'] * 100)}%" for f in timeline]
        assert [f["index"] for f in seen["frames"] if f["decisive"]] == [track["decisive"]["frame_index"]]
        assert all(f["thumb"] > 0 and f["box"] for f in seen["frames"]), "the track's face outlined"
        for f, frame in zip(seen["frames"], timeline):  # colours follow the service's thresholds
            score = frame["score"]
            want = "hi" if score >= t["fake_from"] else "lo" if score < t["real_below"] else None
            assert (want in f["cls"].split()) if want else not {"hi", "lo"} & set(f["cls"].split()), (f, t)
        assert f"{track['frames_seen']} frames" in seen["head"]
        assert seen["heatmaps"] == (len(tracks) > 1), "a heatmap per track when there are several"
    assert check["video"]["rule"] in await page.text_content("#video-rule"), "the service's combining rule"
    text = await page.text_content("#video")
    assert "null" not in text and "undefined" not in text and "NaN" not in text

    await page.keyboard.press("f")  # decided on like an image
    await page.wait_for_selector("#queue-empty")
    async with aiohttp.ClientSession(base) as http:
        mod = {"Authorization": "Bearer " + issuer.issue("mo", "moderator")}
        decided = await (await http.get(f"/v1/moderation/items/{flag_id}", headers=mod)).json()
        again = await (await http.get(f"/v1/checks/{check['id']}",
                                      headers=auth("alice", email="alice@example.com"))).json()
    assert decided["state"] == "confirmed_fake" and decided["decision"]["by"] == "mo"
    assert again["moderation"]["verdict"] == "fake", "the decision applies to the video's check"
    assert errors == []
