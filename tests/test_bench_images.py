"""The benchmark sends what it says: distinct pictures to a server, copies only where labelled.

`make bench` itself is not run here (minutes of CPU); these check its request factories and the
load generator's stop, on the real data and a real aiohttp server.
"""

from __future__ import annotations

import hashlib

import pytest
from aiohttp import web

from bench import load
from bench.images import ONE_PER_GROUP, SOURCES, image_pool
from bench.run_bench import NearCopies, UniqueImages, _reencode
from service.detection.preprocess import decode_image
from service.pdq.hashing import distance, fingerprint
from tests.support.paths import manifest, require_shared_data


def test_the_pool_holds_distinct_pictures_stratified_by_source():
    require_shared_data()
    pool = image_pool(30)
    assert len(pool) == 30 * len(SOURCES)
    assert len({hashlib.sha256(im.data).hexdigest() for im in pool}) == len(pool)
    # any prefix of k * 8 images holds k of each source: the raw sample is the first ones
    for k in (1, 4, 16):
        head = pool[:k * len(SOURCES)]
        assert sorted(im.source for im in head) == sorted(SOURCES * k)
    # one file per DFDC group (a swap and its frame are one picture)
    group = {r["path"]: r["group"] for r in manifest()}
    paths = [str(im.path).split("/data/", 1)[1] for im in pool if im.source in ONE_PER_GROUP]
    assert len({group[p] for p in paths}) == len(paths)
    # the same order every time (the runs compare), all of the smallest source by default
    assert [im.path for im in image_pool(30)] == [im.path for im in pool]
    smallest = min(sum(r["source"] == s for r in manifest()) for s in SOURCES if s not in
                   ONE_PER_GROUP)
    assert len(image_pool()) == smallest * len(SOURCES)
    # spare pictures come after the balanced part, which they leave as it was
    spilled = image_pool(30, spill=5)
    assert [im.path for im in spilled[:len(pool)]] == [im.path for im in pool]
    assert len(spilled) == 35 * len(SOURCES)
    assert len({hashlib.sha256(im.data).hexdigest() for im in spilled}) == len(spilled)


async def test_each_picture_reaches_a_server_once_and_the_load_stops_when_they_are_used(
        aiohttp_server):
    require_shared_data()
    seen: list[str] = []

    async def checks(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(hashlib.sha256(form["image"].file.read()).hexdigest())
        return web.json_response({"cached": False}, status=201)

    app = web.Application()
    app.router.add_post("/v1/checks", checks)
    server = await aiohttp_server(app)
    pool = image_pool(3)
    factory = UniqueImages(pool, "/v1/checks", keep=5)
    result = await load.run_load(str(server.make_url("")), {}, factory,
                                 lambda status, body: None, clients=4, duration_s=60,
                                 max_requests=1000)
    assert result.requests == len(pool) and result.errors == 0
    assert sorted(seen) == sorted(hashlib.sha256(im.data).hexdigest() for im in pool)
    assert factory() is None and factory.used == len(pool)
    assert len(factory.sent) == len(factory.kept) == 5


def test_near_copies_are_new_bytes_of_the_same_picture():
    require_shared_data()
    originals = image_pool(1)
    near = NearCopies(originals, "/v1/checks")
    bodies = [near()[2] for _ in range(2 * len(originals))]
    assert len(set(bodies)) == len(bodies)  # every request new to the cache
    for im in originals:
        copy = _reencode(im.data)
        assert copy != im.data
        a, b = (fingerprint(decode_image(x, 10**8)) for x in (im.data, copy))
        assert distance(a.hash, b.hash) <= 31  # a near-duplicate for the service's index


def test_the_seed_style_server_may_get_the_pool_again():
    """It keeps nothing between requests, so its scenarios cycle the pool instead of stopping."""
    require_shared_data()
    pool = image_pool(1)
    factory = UniqueImages(pool, "/predict", cycle=True)
    bodies = [factory()[2] for _ in range(2 * len(pool))]
    assert bodies[:len(pool)] == bodies[len(pool):]


def test_the_raw_figures_run_every_image_with_a_face():
    """The CPU-bound ceiling's inference figure covers each image's model work: every image
    with a face counts its views, whichever members scored them (the view cascade's first
    stage leaves the first member out), and the batched trials run whole passes."""
    from bench.raw import measure_raw
    from service.settings import Settings

    require_shared_data()
    images = image_pool(3)  # 24 pictures: most stop after the cascade's first round
    raw = measure_raw(images, Settings.from_env({}), seconds_per_batch=0.01, repeats=1,
                      rounds=1, batch_sizes=(1, 3))
    faced = round(raw["face_found_share"] * len(images))
    assert faced >= len(images) - 2
    # at least the centre view of each image with a face
    assert sum(rows > 0 for rows in raw["rows_by_image"]) == faced
    for trial in raw["batched"]:  # whole passes: each trial's rows are the set's
        assert trial["rows_per_batch"] / trial["batch_images"] == pytest.approx(
            raw["rows_per_image"], abs=0.01)
