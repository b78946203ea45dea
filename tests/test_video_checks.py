"""Video checks through the real app: real MP4 (H.264), WebM (VP8, VP9) and MOV files made from
the shared face photos, with faces that move, appear and disappear; frame sequences; jobs.

Each video is a few seconds at 10 frames per second, sampled at the default 2 per second, so
the suite stays quick. Waits are on the job's status, never on fixed times.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time

import aiohttp
import cv2
import numpy as np
import pytest

from service.app import create_app
from service.keys import DB
from service.settings import Settings
from service.video import combine
from tests.support.paths import require_shared_data, sample_images
from tests.support.videos import Appearance, encode

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def faces(label: str, n: int = 1) -> list[np.ndarray]:
    require_shared_data()
    return [cv2.imread(str(p)) for p in sample_images(n, source="tpdne-unsplash", label=label)]


def two_people() -> list[Appearance]:
    """A real face from 0 to 2 s moving right; a fake one from 1 s to the end (3 s)."""
    return [Appearance(faces("real")[0], 0.0, 2.0, (20, 40), (110, 70)),
            Appearance(faces("fake")[0], 1.0, 3.0, (300, 110), (280, 130))]


@functools.cache
def clip(name: str, kind: str = "mp4") -> bytes:
    """Each test video is encoded once per session (both database backends use it)."""
    if name == "two-people":
        return encode(two_people(), kind=kind)
    if name == "one-fake":
        return encode([Appearance(faces("fake")[0], 0.0, 2.0, (60, 40), (200, 90))], kind=kind,
                      seconds=2.0)
    if name == "one-fake-grey":
        return encode([Appearance(faces("fake")[0], 0.0, 2.0, (60, 40), (200, 90))], kind=kind,
                      seconds=2.0, grey=True)
    if name == "off-edge":  # a real face gliding to the frame's left edge, then 43 % past it
        face = faces("real")[0]
        return encode([Appearance(face, 0.0, 2.0, (170, 90), (-60, 90)),
                       Appearance(face, 2.0, 3.0, (-60, 90), (-60, 90))], kind=kind, seconds=3.0)
    if name == "empty":
        return encode([], kind=kind, seconds=1.5)
    seconds = {"long": 3.0, "short": 2.5}[name]
    return encode([Appearance(faces("real")[0], 0.0, 3.0, (20, 40), (200, 70))], kind=kind,
                  seconds=seconds)


async def wait_job(client, headers, location: str, timeout_s: float = 120.0) -> dict:
    """Poll the job until it has ended (the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while True:
        resp = await client.get(location, headers=headers)
        assert resp.status == 200, await resp.text()
        job = (await resp.json())["job"]
        seen.append(job["status"])
        if job["status"] in ("done", "failed", "cancelled"):
            job["seen"] = seen
            return job
        assert time.monotonic() < deadline, f"the job did not end: {job}"
        await asyncio.sleep(0.05)  # a poll interval, not a wait for a result


async def start(client, headers, data: bytes, content_type: str = "video/mp4"):
    return await client.post("/v1/checks", data=data,
                             headers={**headers, "Content-Type": content_type})


async def run_to_end(client, headers, resp) -> dict:
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    location = resp.headers["Location"]
    assert location == f"/v1/jobs/{body['job']['id']}"
    assert body["job"]["status"] == "queued" and body["job"]["check_id"] is None
    job = await wait_job(client, headers, location)
    assert job["status"] == "done", job
    return job


def expected_track(timeline: list[dict], threshold: float, band, min_frames: int = 3) -> dict:
    judged = [p["score"] for p in timeline if not (p["too_small"] or p["cut_off"])]
    return combine.combine_track(judged, threshold=threshold, band=tuple(band), trim=0.1,
                                 min_frames=min_frames, max_disagreement=0.34)


async def thresholds(client) -> tuple[float, tuple[float, float]]:
    t = (await (await client.get("/health")).json())["thresholds"]
    return t["label_threshold"], (t["real_below"], t["fake_from"])


async def test_mp4_tracks_timeline_storage_and_moderation(client, auth):
    user, mod = auth("alice"), auth("mo", "moderator")
    data = clip("two-people")
    job = await run_to_end(client, user, await start(client, user, data))
    assert job["progress"]["done"] == job["progress"]["total"] == 6
    check = job["check"]
    assert check["media"] == "video" and check["id"] == job["check_id"]
    video = check["video"]
    assert video["source"] == "file" and video["format"] == "mp4" and video["codec"] == "h264"
    assert video["duration_s"] == pytest.approx(3.0) and video["fps_sampled"] == 2.0
    assert video["frames_sampled"] == 6 and (video["width"], video["height"]) == (480, 320)
    tracks = video["tracks"]
    # The real face is on screen at samples 0.0-1.5 s, the fake one at 1.0-2.5 s.
    spans = sorted((t["start_s"], t["end_s"], t["frames_seen"]) for t in tracks)
    assert spans == [(0.0, 1.5, 4), (1.0, 2.5, 4)], tracks
    threshold, band = await thresholds(client)
    for t in tracks:
        assert [p["t"] for p in t["timeline"]] == [p["frame_index"] / 2 for p in t["timeline"]]
        rule = expected_track(t["timeline"], threshold, band)
        assert (t["score"], t["verdict"]) == (rule["score"], rule["verdict"])
        assert t["decisive"]["frame_index"] in [p["frame_index"] for p in t["timeline"]]
    worst = max(tracks, key=lambda t: (combine.SEVERITY[t["verdict"]], t["score"]))
    assert (check["verdict"], check["score"]) == (worst["verdict"], worst["score"])
    assert len(check["faces"]) == 2 and check["faces"][check["decisive_face"]]["track"] == worst["id"]
    assert check["pdq"]["hash"] and len(check["pdq"]["hash"]) == 64

    # Stored: the check, its heatmaps (the video's and each track's), its frames.
    got = await (await client.get(f"/v1/checks/{check['id']}", headers=user)).json()
    assert got["video"] == video and got["verdict"] == check["verdict"]
    for query in ("", "?track=0", "?track=1"):
        resp = await client.get(f"/v1/checks/{check['id']}/heatmap.png{query}", headers=user)
        assert resp.status == 200 and (await resp.read())[:8] == b"\x89PNG\r\n\x1a\n"
    resp = await client.get(f"/v1/checks/{check['id']}/heatmap.png?track=7", headers=user)
    assert resp.status == 404
    for i in range(6):
        resp = await client.get(f"/v1/checks/{check['id']}/frames/{i}.jpg", headers=user)
        assert resp.status == 200 and resp.content_type == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
        assert max(image.shape[:2]) == 160
    for bad in ("6", "-1", "x"):
        resp = await client.get(f"/v1/checks/{check['id']}/frames/{bad}.jpg", headers=user)
        assert resp.status == 404
    other = auth("bob")
    assert (await client.get(job_url(job), headers=other)).status == 404
    assert (await client.get(f"/v1/checks/{check['id']}/frames/0.jpg", headers=other)).status == 404

    # The same bytes again: answered from the store at once (201), the same check.
    again = await start(client, user, data)
    assert again.status == 201
    assert (await again.json())["id"] == check["id"]
    # Someone else's upload of it too, as their own check.
    theirs = await start(client, other, data)
    assert theirs.status == 201 and (await theirs.json())["video"]["tracks"] == tracks

    # A finished job cannot be cancelled.
    resp = await client.delete(job_url(job), headers=user)
    assert resp.status == 409 and (await resp.json())["error"] == "job_finished"

    # Fake or uncertain: in the moderation queue, where a decision overrides the detectors.
    items = await (await client.get("/v1/moderation/items", params={"state": "all"},
                                    headers=mod)).json()
    flagged = [i for i in items["items"] if i["sha256"] == check["sha256"]]
    if check["verdict"] in ("fake", "uncertain"):
        assert len(flagged) == 1
        item = flagged[0]
        image = await client.get(item["image_url"], headers=mod)
        assert image.status == 200 and image.content_type == "image/jpeg"
        full = await (await client.get(f"/v1/moderation/items/{item['id']}", headers=mod)).json()
        assert full["media"] == "video" and full["video"]["tracks"] == tracks
        frame = await client.get(full["frame_url"].format(frame_index=3), headers=mod)
        assert frame.status == 200 and frame.content_type == "image/jpeg"
        heat = await client.get(full["track_heatmap_url"].format(track=1), headers=mod)
        assert heat.status == 200 and heat.content_type == "image/png"
        assert (await client.get(item["heatmap_url"], headers=mod)).status == 200
        decided = await client.post(f"/v1/moderation/items/{item['id']}/decision", headers=mod,
                                    json={"decision": "real", "version": item["version"]})
        assert decided.status == 200, await decided.text()
        now = await (await client.get(f"/v1/checks/{check['id']}", headers=user)).json()
        assert now["verdict"] == "real" and now["decided_by"] != "detectors"
        assert now["detectors"]["verdict"] == check["verdict"]
        # A still of the video's decisive frame, as a player shows it (decoded: the clip's
        # codec and noise, not the clean picture it was encoded from), is a near-duplicate of
        # the decided video, with the same faces (service.pdq.faces).
        import av

        t = check["faces"][check["decisive_face"]]["t"]
        with av.open(io.BytesIO(data)) as container:
            shown = next(f for f in container.decode(video=0) if f.time >= t - 1e-3)
            image = shown.to_ndarray(format="bgr24")
        still = await client.post("/v1/checks", data=png(image),
                                  headers={**other, "Content-Type": "image/png"})
        answer = await still.json()
        assert answer["verdict"] == "real" and answer["moderation"]["match"] is not None, answer
    else:
        assert flagged == []


def job_url(job: dict) -> str:
    return f"/v1/jobs/{job['id']}"


@pytest.mark.parametrize("kind,field,ctype", [("webm", "video", "video/webm"),
                                              ("webm-vp9", "image", "application/octet-stream"),
                                              ("mov", "video", "video/quicktime")])
async def test_webm_vp8_vp9_and_mov_through_multipart(client, auth, kind, field, ctype, backend):
    if backend == "postgresql" and kind != "webm":
        pytest.skip("the formats are the decoder's concern: one backend is enough")
    user = auth("alice")
    form = aiohttp.FormData()
    form.add_field(field, clip("one-fake", kind), filename="clip", content_type=ctype)
    form.add_field("page_url", "https://example.com/watch")
    job = await run_to_end(client, user, await client.post("/v1/checks", data=form,
                                                           headers=user))
    check = job["check"]
    assert check["video"]["format"] == ("mov" if kind == "mov" else "webm")
    assert check["video"]["codec"] == {"webm": "vp8", "webm-vp9": "vp9", "mov": "h264"}[kind]
    assert check["page_url"] == "https://example.com/watch"
    (track,) = check["video"]["tracks"]
    assert (track["start_s"], track["end_s"], track["frames_seen"]) == (0.0, 1.5, 4)


async def test_no_face_in_any_frame(client, auth):
    user = auth("alice")
    job = await run_to_end(client, user, await start(client, user, clip("empty")))
    check = job["check"]
    assert check["verdict"] == "no_face" and check["score"] is None and check["faces"] == []
    assert check["video"]["tracks"] == [] and check["video"]["frames_sampled"] == 3
    # A job left running by a process that stopped is reported lost, not running for ever.
    db = client.server.app[DB]
    me = await (await client.get("/v1/me", headers=user)).json()
    await db.execute("INSERT INTO jobs (id, user_id, kind, status, created_at, updated_at)"
                     " VALUES ('job_gone', ?, 'video', 'running', 1.0, 1.0)", (me["id"],))
    lost = (await (await client.get("/v1/jobs/job_gone", headers=user)).json())["job"]
    assert lost["status"] == "failed" and lost["error"]["code"] == "job_lost"
    # Deleting the account removes the video with its frames, and the jobs.
    assert await db.fetchval("SELECT COUNT(*) FROM video_frames") == 3
    resp = await client.delete(f"/v1/admin/users/{me['id']}", headers=auth("root", "admin"))
    assert resp.status == 200, await resp.text()
    for table in ("video_frames", "images", "jobs"):
        assert await db.fetchval(f"SELECT COUNT(*) FROM {table}") == 0, table


async def test_a_black_and_white_video_carries_a_warning(client, auth):
    """As a black-and-white picture does (`test_service_checks`): the detectors learned no
    black-and-white fake and catch far fewer fakes without colour. The same clip in colour
    carries no warning."""
    user = auth("alice")
    grey = (await run_to_end(client, user, await start(client, user, clip("one-fake-grey"))))
    colour = (await run_to_end(client, user, await start(client, user, clip("one-fake"))))
    assert grey["check"]["face_found"] and colour["check"]["face_found"]
    assert "black-and-white picture" in grey["check"]["warning"]
    assert "black-and-white" not in (colour["check"].get("warning") or "")


async def test_frames_where_the_face_runs_off_the_edge_are_not_judged(client, auth):
    """A face gliding off the frame: the frames where too much of its aligned square lies
    outside the picture (the ensemble's edge rule) are on the track's timeline, marked
    ``cut_off``, and left out of its verdict, as a still image's face would be."""
    user = auth("alice")
    job = await run_to_end(client, user, await start(client, user, clip("off-edge")))
    (track,) = job["check"]["video"]["tracks"]
    marks = [p["cut_off"] for p in track["timeline"]]
    assert True in marks and False in marks, track["timeline"]
    assert marks.index(True) > marks.index(False), "cut off once it reaches the edge"
    assert track["frames_judged"] == marks.count(False)
    threshold, band = await thresholds(client)
    rule = expected_track(track["timeline"], threshold, band)
    assert (track["score"], track["verdict"]) == (rule["score"], rule["verdict"])


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


async def test_frame_sequence_scores_each_frame_as_the_image_path_does(client, auth):
    """A captured sequence (what the extension sends): every frame's score in the timeline is
    the score the same still gets as an image check (one face path, not a copy)."""
    from tests.support.videos import frame_at

    user = auth("alice")
    people = [Appearance(faces("real")[0], 0.0, 10.0, (40, 40), (120, 80))]
    stills = [png(frame_at(i / 2, people)) for i in range(4)]
    form = aiohttp.FormData()
    for data in stills:
        form.add_field("frame", data, filename="f.png", content_type="image/png")
    form.add_field("fps", "2")
    form.add_field("capture", "canvas")
    form.add_field("source_url", "https://example.com/stream")
    resp = await client.post("/v1/checks", data=form, headers=user)
    job = await run_to_end(client, user, resp)
    assert job["kind"] == "frames"
    check = job["check"]
    assert check["video"]["source"] == "frames" and check["video"]["capture"] == "canvas"
    assert check["video"]["duration_s"] == 2.0 and check["source_url"] == "https://example.com/stream"
    (track,) = check["video"]["tracks"]
    for point, data in zip(track["timeline"], stills):
        image = await client.post("/v1/checks", data=data,
                                  headers={**user, "Content-Type": "image/png"})
        assert image.status == 201
        (face,) = (await image.json())["faces"]
        assert point["score"] == face["score"] and point["box"] == face["box"]


async def test_cancel_a_queued_job_and_images_are_not_held_up(aiohttp_client, tmp_path, auth,
                                                              database_url):
    """One job runs at a time: the second waits, and is cancelled while it waits; an image
    check meanwhile is answered (the video pool is apart from the images' pools)."""
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0,
                        database_url=database_url, video_max_jobs=1, video_sample_rate=6.0)
    client = await aiohttp_client(create_app(settings))
    user = auth("alice")
    first = await start(client, user, clip("long"))
    second = await start(client, user, clip("short"))
    assert first.status == second.status == 202
    first_url, second_url = first.headers["Location"], second.headers["Location"]
    cancelled = await client.delete(second_url, headers=user)
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["job"]["status"] == "cancelled"
    image = await client.post("/v1/checks", data=png(faces("fake")[0]),
                              headers={**user, "Content-Type": "image/png"})
    assert image.status == 201
    done = await wait_job(client, user, first_url)
    assert done["status"] == "done" and done["progress"]["done"] == 18
    ended = await wait_job(client, user, second_url)
    assert ended["status"] == "cancelled" and ended["check_id"] is None
    assert (await client.delete(second_url, headers=user)).status == 409
    listed = await (await client.get("/v1/checks", headers=user)).json()
    assert [c.get("media") for c in listed["items"]].count("video") == 1
