"""Micro-batching: the MicroBatcher on its own, then through the app with the real models."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import numpy as np
import pytest

from service.app import create_app
from service.detection.batcher import MicroBatcher
from service.keys import ISSUER
from service.settings import Settings
from tests.support.paths import require_shared_data, sample_images


class Recorder:
    """A model stand-in: doubles its input and records the size of every batch it runs."""

    def __init__(self, fail_on: float | None = None):
        self.batches: list[int] = []
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.batches.append(len(x))
        if self.fail_on is not None and (x == self.fail_on).any():
            raise ValueError("poisoned batch")
        return [x * 2.0, x[:, 0] + 1.0]


@pytest.fixture
def pool():
    with ThreadPoolExecutor(1) as p:
        yield p


@pytest.fixture
async def make_batcher(pool):
    made = []

    def make(run, **kw) -> MicroBatcher:
        b = MicroBatcher(run, pool, **kw)
        b.start()
        made.append(b)
        return b

    yield make
    for b in made:
        await b.stop()


def rows(value: float, n: int = 1) -> np.ndarray:
    return np.full((n, 2), value, np.float32)


async def test_concurrent_submits_share_runs(make_batcher):
    run = Recorder()
    batcher = make_batcher(run, max_batch=4, max_wait_ms=50)
    results = await asyncio.gather(*[batcher.submit(rows(i)) for i in range(10)])
    assert run.batches == [4, 4, 2]
    assert batcher.batches == 3 and batcher.rows == 10
    for i, (doubled, plus_one) in enumerate(results):
        assert doubled.shape == (1, 2) and (doubled == 2.0 * i).all()
        assert plus_one.tolist() == [i + 1.0]


async def test_batches_stay_within_max_batch(make_batcher):
    """Requests carry several rows (views of faces); a batch never mixes past max_batch."""
    run = Recorder()
    batcher = make_batcher(run, max_batch=4, max_wait_ms=50)
    sizes = [3, 3, 1, 6, 2, 2]
    results = await asyncio.gather(*[batcher.submit(rows(i, n)) for i, n in enumerate(sizes)])
    assert run.batches == [3, 4, 6, 4]  # the 6-row request is alone and runs whole
    assert sum(run.batches) == sum(sizes)
    for i, (n, (doubled, plus_one)) in enumerate(zip(sizes, results)):
        assert doubled.shape == (n, 2) and (doubled == 2.0 * i).all()
        assert (plus_one == i + 1.0).all()


async def test_a_failure_reaches_every_caller_of_the_batch(make_batcher):
    run = Recorder(fail_on=-1.0)
    batcher = make_batcher(run, max_batch=8, max_wait_ms=50)
    outcomes = await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(-1)),
                                    batcher.submit(rows(2)), return_exceptions=True)
    assert run.batches == [3]
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert batcher.batches == 0
    doubled, _ = await batcher.submit(rows(5))  # the batcher carries on
    assert (doubled == 10.0).all()


async def test_a_batch_waits_for_requests_being_prepared(make_batcher):
    run = Recorder()
    batcher = make_batcher(run, max_batch=8, max_wait_ms=1000)

    async def prepared_later():  # as Detector.analyze: announce, decode, then submit
        with batcher.preparing_one():
            await asyncio.sleep(0.05)
        return await batcher.submit(rows(2))

    later = asyncio.ensure_future(prepared_later())
    await asyncio.sleep(0)
    assert batcher.preparing == 1
    started = time.perf_counter()
    first = await batcher.submit(rows(1))
    await later
    assert run.batches == [2]
    assert time.perf_counter() - started < 0.8, "it ran as soon as nothing more was coming"
    assert (first[0] == 2.0).all() and batcher.preparing == 0


async def test_a_lone_request_does_not_wait(make_batcher):
    batcher = make_batcher(Recorder(), max_batch=8, max_wait_ms=2000)
    started = time.perf_counter()
    await batcher.submit(rows(1))
    assert time.perf_counter() - started < 1.0


async def test_waiting_is_bounded_by_max_wait(make_batcher):
    run = Recorder()
    batcher = make_batcher(run, max_batch=8, max_wait_ms=100)
    with batcher.preparing_one():  # a request that takes far longer to prepare
        started = time.perf_counter()
        await batcher.submit(rows(1))
        assert time.perf_counter() - started < 1.5
    assert run.batches == [1]


async def test_stop_fails_the_waiting_requests(pool):
    gate = threading.Event()

    def blocked(x):
        gate.wait(5)
        return [x]

    batcher = MicroBatcher(blocked, pool, max_batch=1, max_wait_ms=0)
    batcher.start()
    waiting = [asyncio.ensure_future(batcher.submit(rows(i))) for i in range(3)]
    await asyncio.sleep(0.05)
    await batcher.stop()
    gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_each_request_says_which_model_scores_its_rows(make_batcher):
    """The view cascade's rounds: a request may name, per row, the models that score it; in a
    batch shared with requests that name none, their rows go to every model."""
    seen: list[np.ndarray | None] = []

    def run(x, need=None):
        seen.append(None if need is None else need.copy())
        return [x * 2.0]

    batcher = make_batcher(run, max_batch=16, max_wait_ms=200)
    some = np.array([[True, False, True], [False, True, True]])
    with batcher.preparing_one(), batcher.preparing_one():  # two more requests on their way
        first = asyncio.ensure_future(batcher.submit(rows(1, 2), some))
        second = asyncio.ensure_future(batcher.submit(rows(2)))
        a, b = await asyncio.gather(first, second)
    assert a[0].tolist() == [[2.0, 2.0], [2.0, 2.0]] and b[0].tolist() == [[4.0, 4.0]]
    assert len(seen) == 1
    assert seen[0].tolist() == [*some.tolist(), [True, True, True]]
    await batcher.submit(rows(3))  # no request names any: the run gets no `need`
    assert seen[-1] is None


# --- through the app ---------------------------------------------------------------------------


def distinct_faces(n: int) -> list[bytes]:
    require_shared_data()
    paths = (sample_images(n // 2, source="tpdne-unsplash", label="fake")
             + sample_images(n - n // 2, source="gan-faces-extra", label="fake"))
    return [p.read_bytes() for p in paths]


async def check_all(client, headers, images: list[bytes]) -> list[dict]:
    async def one(data):
        form = aiohttp.FormData()
        form.add_field("image", data, filename="f.jpg", content_type="image/jpeg")
        resp = await client.post("/v1/checks", data=form, headers=headers)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    return await asyncio.gather(*[one(d) for d in images])


async def test_concurrent_checks_are_batched(aiohttp_client, tmp_path, auth):
    images = distinct_faces(6)
    batched = await aiohttp_client(create_app(Settings(
        data_dir=tmp_path / "data", batch_max_wait_ms=500, rate_limit_per_minute=0)))
    together = await check_all(batched, auth(), images)
    health = await (await batched.get("/health")).json()
    b = health["batching"]
    # the cascade's rows: a face's first view, then its other views; a face sent on has its first
    # view submitted again for the members outside the first stage
    cascade = health["models"]["cascade"]
    again = int(set(cascade["first_members"]) != {m["name"] for m in health["models"]["members"]})
    rows = sum(f["views"] + (again if f["views"] > 1 else 0)
               for c in together for f in c["faces"])
    assert b["rows_run"] == rows
    assert 1 <= b["batches_run"] < len(images)

    # The same images one at a time on another app: every caller got its own rows back.
    alone_app = await aiohttp_client(create_app(Settings(
        data_dir=tmp_path / "alone", batch_max_size=1, rate_limit_per_minute=0)))
    headers = {"Authorization": "Bearer " + alone_app.app[ISSUER].issue("alice")}
    alone = [(await check_all(alone_app, headers, [d]))[0] for d in images]
    assert len({c["score"] for c in alone}) > 1, "distinct images, distinct scores"
    for t, a in zip(together, alone):
        assert t["sha256"] == a["sha256"] and len(t["faces"]) == len(a["faces"])
        assert abs(t["score"] - a["score"]) < 2e-3
