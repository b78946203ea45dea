"""Three real service processes on one PostgreSQL database under concurrent load, one of them
killed with SIGKILL in the middle: nothing it acknowledged is lost, nothing is stored twice,
every email goes out (once, but for the documented crash window), decisions stay consistent.

The replicas start together on an empty database (so they race to migrate it: the advisory lock
decides), share the signing key folder and the public URL as replicas behind a load balancer
do, and a real SMTP server (aiosmtpd) receives their mail.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import signal
import time

import aiohttp
import pytest

from service.auth.tokens import LocalIssuer
from service.settings import Settings
from tests.support.db import query
from tests.support.live import free_port, spawn_service, stop, wait_healthy
from tests.support.paths import require_shared_data, sample_images
from tests.test_mail_delivery import SmtpServer

PUBLIC_URL = "http://realcheck.test"
USERS = [f"user{i}" for i in range(9)]
MODERATORS = ["mod1", "mod2"]


@pytest.fixture
def images() -> list[bytes]:
    require_shared_data()
    paths = sample_images(3, source="tpdne-unsplash", label="fake") + \
        sample_images(2, source="tpdne-unsplash", label="real")
    return [p.read_bytes() for p in paths]


class Cluster:
    def __init__(self, urls, procs, issuer, settings: Settings):
        self.urls, self.procs, self.issuer, self.settings = urls, procs, issuer, settings
        self.dead: set[int] = set()
        self.failed: collections.Counter = collections.Counter()  # requests lost with a replica

    def headers(self, sub: str, role: str = "user") -> dict:
        token = self.issuer.issue(sub, role, email=f"{sub}@example.com")
        return {"Authorization": "Bearer " + token}

    def kill(self, index: int) -> None:
        self.dead.add(index)
        os.kill(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    async def call(self, session, preferred: int, method: str, path: str, *,
                   image: bytes | None = None, **kw) -> tuple[int, int, dict]:
        """(replica, status, body) from the preferred replica, or the next live one when it is
        down (what a load balancer does); a request lost with a replica is counted."""
        order = [preferred] + [i for i in range(len(self.urls)) if i != preferred]
        for index in order:
            if index in self.dead:
                continue
            if image is not None:
                kw["data"] = aiohttp.FormData()
                kw["data"].add_field("image", image, filename="f.jpg", content_type="image/jpeg")
            try:
                async with session.request(method, self.urls[index] + path, **kw) as resp:
                    return index, resp.status, await resp.json()
            except (TimeoutError, aiohttp.ClientError):
                self.failed[index] += 1
        raise AssertionError("no replica answered")

    def rows(self, sql: str, params=()) -> list[dict]:
        return query(self.settings, sql, params)


async def test_three_replicas_one_killed_mid_load(tmp_path, postgres, images):
    settings = Settings(database_url=postgres.create_database(migrated=False))
    data_dir = tmp_path / "shared"
    issuer = LocalIssuer(data_dir / "keys", PUBLIC_URL, 3600)  # the key every replica signs with
    smtp = SmtpServer(free_port()).start()
    env = {"REALCHECK_DATABASE_URL": settings.database_url, "REALCHECK_PUBLIC_URL": PUBLIC_URL,
           "REALCHECK_RATE_LIMIT_PER_MINUTE": 0, "REALCHECK_SMTP_HOST": "127.0.0.1",
           "REALCHECK_SMTP_PORT": smtp.port, "REALCHECK_SMTP_FROM": "alerts@realcheck.example",
           "REALCHECK_MAIL_POLL_S": 0.2, "REALCHECK_DATABASE_POOL_MAX": 5,
           "REALCHECK_INFERENCE_THREADS": 1}
    ports = [free_port() for _ in range(3)]
    logs = [tmp_path / f"replica-{p}.log" for p in ports]
    procs = [spawn_service(data_dir, port, log, **env) for port, log in zip(ports, logs)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for proc, url, log in zip(procs, urls, logs):
            await asyncio.to_thread(wait_healthy, proc, url, log, 180)
        cluster = Cluster(urls, procs, issuer, settings)
        versions = [r["version"] for r in cluster.rows("SELECT version FROM schema_version")]
        assert sorted(versions) == list(range(1, len(versions) + 1)), "each migration ran once"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
            acked = await checks_while_one_replica_dies(session, cluster, images)
            await nothing_acknowledged_is_lost(session, cluster, images, acked)
            await decisions_stay_consistent(session, cluster, acked)
        await every_mail_goes_out_once(cluster, smtp, acked)
    finally:
        for proc in procs:
            stop(proc)
        smtp.stop()


async def checks_while_one_replica_dies(session, cluster: Cluster, images) -> list[dict]:
    for i, sub in enumerate(USERS):  # alerts on: fake verdicts send mail from every replica
        _, status, _ = await cluster.call(session, i % 3, "PATCH", "/v1/me",
                                          json={"email_alerts": True}, headers=cluster.headers(sub))
        assert status == 200
    for i, sub in enumerate(MODERATORS):  # first sight: moderators get queue alerts
        _, status, _ = await cluster.call(session, i, "GET", "/v1/me",
                                          headers=cluster.headers(sub, "moderator"))
        assert status == 200
    acked: list[dict] = []
    jobs = [(sub, image) for image in images for sub in USERS]
    # mid-load: a third of the checks answered, some of them by the replica about to die (on two
    # cores one of three replicas can be slow to start, and a third can be answered without it)
    mid_load = asyncio.Event()

    async def check(n: int, sub: str, image: bytes) -> None:
        replica, status, body = await cluster.call(session, n % 3, "POST", "/v1/checks",
                                                   image=image, headers=cluster.headers(sub))
        assert status == 201, body
        acked.append({"replica": replica, "user": sub, **body})
        if len(acked) >= len(jobs) // 3 and any(a["replica"] == 0 for a in acked):
            mid_load.set()

    async def kill_replica_0() -> None:
        # a replica that never answers fails the test here instead of hanging it
        await asyncio.wait_for(mid_load.wait(), 300)
        cluster.kill(0)

    await asyncio.gather(kill_replica_0(), *(check(n, s, im) for n, (s, im) in enumerate(jobs)))
    assert len(acked) == len(jobs)
    assert any(a["replica"] == 0 for a in acked), "the killed replica had acknowledged checks"
    return acked


async def nothing_acknowledged_is_lost(session, cluster: Cluster, images, acked) -> None:
    stored = {r["id"]: r for r in cluster.rows("SELECT id, user_id, sha256 FROM checks")}
    for a in acked:  # every acknowledged check is stored, with its owner and image
        assert a["id"] in stored, a
        assert (stored[a["id"]]["user_id"], stored[a["id"]]["sha256"]) == (a["user"], a["sha256"])
    # A check the victim stored but never answered may exist; nothing else does.
    assert len(stored) - len(acked) <= cluster.failed[0]
    for sub in USERS:  # and every user sees all of theirs through the surviving replicas
        _, status, body = await cluster.call(session, 1, "GET", "/v1/checks?limit=200",
                                             headers=cluster.headers(sub))
        mine = {c["id"] for c in body["items"]}
        assert {a["id"] for a in acked if a["user"] == sub} <= mine
    shas = {hashlib.sha256(im).hexdigest() for im in images}
    counts = cluster.rows("SELECT sha256, COUNT(*) AS n FROM images GROUP BY sha256")
    assert {r["sha256"] for r in counts} == shas and {r["n"] for r in counts} == {1}
    flags = cluster.rows("SELECT sha256, COUNT(*) AS n FROM flags GROUP BY sha256")
    assert {r["n"] for r in flags} <= {1}, "one queue item per image"


async def decisions_stay_consistent(session, cluster: Cluster, acked) -> None:
    # Every user reports their check of every image: each image is in the queue.
    reports = [cluster.call(session, n % 2 + 1, "POST", f"/v1/checks/{a['id']}/report",
                            json={"note": "wrong"}, headers=cluster.headers(a["user"]))
               for n, a in enumerate(acked)]
    assert {status for _, status, _ in await asyncio.gather(*reports)} == {201}
    items = cluster.rows("SELECT id, version FROM flags WHERE state = 'open'")
    assert items
    # Two moderators on two replicas decide every item at the same version, three rounds.
    mods = [cluster.headers(m, "moderator") for m in MODERATORS]
    for _ in range(3):
        current = {r["id"]: r["version"] for r in cluster.rows("SELECT id, version FROM flags")}
        calls = [cluster.call(session, k + 1, "POST", f"/v1/moderation/items/{item}/decision",
                              headers=mods[k], json={"decision": ("fake", "real")[k],
                                                     "version": version})
                 for item, version in current.items() for k in (0, 1)]
        results = await asyncio.gather(*calls)
        by_item = collections.defaultdict(list)
        for (item, _), (_, status, _) in zip(((i, k) for i in current for k in (0, 1)), results):
            by_item[item].append(status)
        assert all(sorted(s) == [200, 409] for s in by_item.values()), by_item
        after = {r["id"]: r["version"] for r in cluster.rows("SELECT id, version FROM flags")}
        assert after == {item: v + 1 for item, v in current.items()}
    decided = cluster.rows("SELECT flag_id, COUNT(*) AS n FROM flag_events WHERE kind = 'decided'"
                           " GROUP BY flag_id")
    assert {r["n"] for r in decided} == {3} and len(decided) == len(items)


async def every_mail_goes_out_once(cluster: Cluster, smtp: SmtpServer, acked) -> None:
    deadline = time.monotonic() + 60
    while True:  # the survivors send everything, including what the victim had queued
        rows = cluster.rows("SELECT id, state FROM outbox")
        if rows and all(r["state"] == "sent" for r in rows) and len(smtp.messages) >= len(rows):
            break
        assert time.monotonic() < deadline, collections.Counter(r["state"] for r in rows)
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # more passes on both survivors: nothing is sent again
    kinds = collections.Counter(m["X-Realcheck-Kind"] for m in smtp.messages)
    assert {"decision", "queue_alert"} <= set(kinds), kinds
    assert ("fake_alert" in kinds) == any(a["verdict"] == "fake" for a in acked), kinds
    received = collections.Counter(m["Message-ID"] for m in smtp.messages)
    ids = {int(mid.split("-")[1]) for mid in received}
    assert ids == {r["id"] for r in rows}, "every queued message was delivered"
    # The one allowed repeat: a message the killed replica handed to SMTP but could not mark
    # sent before it died (the same Message-ID both times).
    repeats = sum(n - 1 for n in received.values())
    assert repeats <= 1, {m: n for m, n in received.items() if n > 1}
