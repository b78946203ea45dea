"""Run the whole benchmark of issue 2: ``python -m bench.run_bench [--quick] [--json F] [--markdown]``.

In one run, on loopback, with a pool of distinct face photos (`bench.images.image_pool`), none
sent twice to one server:

1. raw ONNX Runtime: the service's own preparation and models in this process, per image and
   batched at several batch sizes (`bench.raw`), on the pool's first images (a stratified
   sample: the same number from each source);
2. the real service (``python -m service``, its defaults or REALCHECK_* from the environment)
   at 1, 8 and 32 concurrent clients, then near-duplicates (re-encoded copies of pictures it
   checked: the face check against flagged items), then its cache paths (same bytes again;
   sha256 lookup);
3. the same service with batching off (``REALCHECK_BATCH_MAX_SIZE=1``, ``..._WAIT_MS=0``);
4. the seed-style one-request-one-inference server (`bench.baseline_app`) at 1, 8, 32 clients.

Every server is a separate process with a temporary data folder; the load generator is this
process. ``--json`` writes every figure; ``--markdown`` prints the table for docs/performance.md
(``--from-json F --markdown`` renders a saved run again).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import cv2
import numpy as np
import onnxruntime as ort

from bench import load, report
from bench.images import (
    MULTIPART_TYPE,
    REPO,
    SOURCES,
    BenchImage,
    image_pool,
    multipart_body,
    unique_variant,
)
from bench.raw import measure_raw
from bench.servers import cpu_model, start_server
from service.auth.tokens import LocalIssuer
from service.settings import Settings

PARTS = ("raw", "service", "near", "cache", "batch1", "seed")
BATCHING_OFF = {"REALCHECK_BATCH_MAX_SIZE": "1", "REALCHECK_BATCH_MAX_WAIT_MS": "0"}


@dataclass(frozen=True)
class Profile:
    per_source: int  # raw figures: images per data source (8 sources), the pool's first ones
    duration_s: float  # per load scenario, after its warm-up
    cache_duration_s: float
    near_duration_s: float
    raw_seconds_per_batch: float
    max_requests: int  # per scenario
    pool_per_source: int | None = None  # None: as many as the smallest source has (252)
    #: spare pictures per source after the balanced pool (`image_pool`'s ``spill``): at 50 img/s
    #: and more a server checks all 2,016 of the balanced pool before its last scenario ends
    pool_spill: int = 0


FULL = Profile(per_source=16, duration_s=15.0, cache_duration_s=4.0, near_duration_s=8.0,
               raw_seconds_per_batch=1.5, max_requests=5000, pool_spill=252)
QUICK = Profile(per_source=4, duration_s=3.0, cache_duration_s=1.5, near_duration_s=1.5,
                raw_seconds_per_batch=0.3, max_requests=400, pool_per_source=60)
#: the near-duplicate scenario copies this many of the first pictures a server checked
NEAR_ORIGINALS = 64
NEAR_QUALITY = 90


class UniqueImages:
    """Request factory: the pool's pictures in turn, each sent once; None when all were sent.

    One factory per server, for its warm-ups and every unique-image scenario, so no picture
    reaches a server twice (a second copy would be a near-duplicate of the first's check)."""

    def __init__(self, images: list[BenchImage], path: str, keep: int = NEAR_ORIGINALS,
                 cycle: bool = False):
        self.images = images
        self.path = path
        self.cycle = cycle  # for a server that keeps nothing between requests (the seed-style)
        self.counter = itertools.count()
        self.kept: list[tuple[bytes, str]] = []  # (multipart body, image sha256) for the cache runs
        self.sent: list[BenchImage] = []  # the first pictures sent, for the near-duplicate runs
        self.keep = keep

    @property
    def used(self) -> int:
        """How many pictures were sent so far."""
        return min(self.asked, len(self.images))

    @property
    def asked(self) -> int:
        return self._asked

    _asked = 0

    def __call__(self):
        n = next(self.counter)
        self._asked = n + 1
        if n >= len(self.images) and not self.cycle:
            return None  # the pool is used up: the client stops
        image = self.images[n % len(self.images)]
        body = multipart_body(image.data)
        if len(self.kept) < self.keep:
            self.kept.append((body, hashlib.sha256(image.data).hexdigest()))
            self.sent.append(image)
        return "POST", self.path, body, MULTIPART_TYPE


class NearCopies:
    """Request factory: copies of pictures the server checked, re-encoded (JPEG q90) and each
    made unique by a comment: near-duplicates, as a picture met again on another page is."""

    def __init__(self, originals: list[BenchImage], path: str):
        self.path = path
        self.copies = [_reencode(im.data) for im in originals]
        self.nonce = uuid.uuid4().hex[:12]
        self.counter = itertools.count()
        self.flagged_share: float | None = None  # of the originals, set by the bench

    def __call__(self):
        n = next(self.counter)
        data = unique_variant(self.copies[n % len(self.copies)], f"realcheck-near {self.nonce} {n}")
        return "POST", self.path, multipart_body(data), MULTIPART_TYPE


def _reencode(jpeg: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, NEAR_QUALITY])
    if not ok:
        raise RuntimeError("could not re-encode a benchmark image")
    return buf.tobytes()


def expect_fresh_check(status: int, body: dict) -> str | None:
    if status != 201:
        return f"HTTP {status}: {body.get('error')}: {body.get('message')}"
    if body.get("cached") is not False:
        return "a unique image was answered from the cache"
    return None


def expect_cached_check(status: int, body: dict) -> str | None:
    if status not in (200, 201):
        return f"HTTP {status}: {body.get('error')}: {body.get('message')}"
    if body.get("cached") is not True:
        return "a re-sent image was scored again instead of answered from the store"
    return None


def expect_prediction(status: int, body: dict) -> str | None:
    # None: no face found (not judged), as the service's ``no_face``
    if status != 200 or body.get("result") not in ("REAL", "FAKE", None):
        return f"HTTP {status}: {body}"
    return None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _line(s: dict) -> str:
    return (f"{s['img_per_s']:7.1f} img/s  p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  "
            f"n={s['requests']} err={s['errors']}  other CPU {100 * s.get('other_cpu_share', 0):.0f} %")


async def _load_series(run: dict, server, name: str, headers: dict, factory, check, clients_list,
                       profile: Profile, duration_s: float | None = None) -> None:
    for clients in clients_list:
        s = await load.measure(server, headers, factory, check, clients=clients,
                               duration_s=duration_s or profile.duration_s,
                               max_requests=profile.max_requests, warmup=max(2, clients))
        s["name"] = name
        if isinstance(factory, UniqueImages):
            s["pool_used"] = factory.used
            s["pool_exhausted"] = factory.asked > len(factory.images) and not factory.cycle
        if isinstance(factory, NearCopies):
            s["near_originals"] = len(factory.copies)
            s["near_flagged_share"] = factory.flagged_share
        run["scenarios"].append(s)
        log(f"  {name:13s} {clients:3d} clients: {_line(s)}")
        if s["errors"]:
            log(f"    errors: {s['error_samples']}")
        if s.get("pool_exhausted"):
            log(f"    the pool's {len(factory.images)} pictures are used up: this scenario "
                "stopped early (see --duration)")


def _headers(server) -> dict:
    issuer = LocalIssuer(server.data_dir / "keys", server.url, 3600)
    return {"Authorization": "Bearer " + issuer.issue("bench", "user")}


async def _warm(server, headers, factory, check, n: int = 3) -> None:
    await load.run_load(server.url, headers, factory, check, clients=1, duration_s=60, max_requests=n)


async def _flagged_share(server, headers: dict, hashes: list[str]) -> float:
    """The share of these checked images whose verdict made them flagged items (fake or
    uncertain): their copies get the face check against the item."""
    flagged = 0
    async with aiohttp.ClientSession() as session:
        for h in hashes:
            async with session.get(f"{server.url}/v1/checks?sha256={h}", headers=headers) as r:
                body = await r.json()
            flagged += body.get("verdict") in ("fake", "uncertain")
    return round(flagged / max(1, len(hashes)), 3)


async def bench_service(run, images, profile, clients_list, parts, keep) -> None:
    env = {}
    with start_server("service", env, keep) as server:
        _record_health(run, server)
        headers = _headers(server)
        unique = UniqueImages(images, "/v1/checks")
        await _warm(server, headers, unique, expect_fresh_check)
        if "service" in parts:
            await _load_series(run, server, "service", headers, unique, expect_fresh_check,
                               clients_list, profile)
        need = NEAR_ORIGINALS if "near" in parts else 8 if "cache" in parts else 0
        while len(unique.kept) < min(need, len(images)):
            await _warm(server, headers, unique, expect_fresh_check, 1)
        if "near" in parts:
            near = NearCopies(unique.sent, "/v1/checks")
            near.flagged_share = await _flagged_share(server, headers,
                                                      [h for _, h in unique.kept])
            near_clients = [c for c in (1, max(clients_list)) if c in clients_list] or clients_list
            await _load_series(run, server, "near", headers, near, expect_fresh_check,
                               near_clients, profile, profile.near_duration_s)
        if "cache" in parts:
            bodies = [("POST", "/v1/checks", b, MULTIPART_TYPE) for b, _ in unique.kept]
            lookups = [("GET", f"/v1/checks?sha256={h}", None, None) for _, h in unique.kept]
            cache_clients = [c for c in (1, max(clients_list)) if c in clients_list] or clients_list
            await _load_series(run, server, "cache-post", headers, load.cycle_requests(bodies),
                               expect_cached_check, cache_clients, profile, profile.cache_duration_s)
            await _load_series(run, server, "cache-lookup", headers, load.cycle_requests(lookups),
                               expect_cached_check, [max(clients_list)], profile,
                               profile.cache_duration_s)


async def bench_batch1(run, images, profile, clients_list, keep) -> None:
    with start_server("service", BATCHING_OFF, keep) as server:
        _record_health(run, server)
        headers = _headers(server)
        unique = UniqueImages(images, "/v1/checks")
        await _warm(server, headers, unique, expect_fresh_check)
        await _load_series(run, server, "batch1", headers, unique, expect_fresh_check,
                           clients_list, profile)


async def bench_seed(run, images, profile, clients_list, keep) -> None:
    with start_server("seed", {}, keep) as server:
        _record_health(run, server)
        # it stores nothing and caches nothing: sending the pool round again is harmless
        unique = UniqueImages(images, "/predict", cycle=True)
        await _warm(server, {}, unique, expect_prediction)
        await _load_series(run, server, "seed", {}, unique, expect_prediction, clients_list, profile)


def _record_health(run: dict, server) -> None:
    """Providers and models from the first server's ``/health`` (the service's, when it runs)."""
    if run["meta"].get("providers"):
        return
    h = server.health or {}
    models = h.get("models") or {}
    b = h.get("batching") or {}
    run["meta"].update({
        "providers": h.get("providers"), "models_version": models.get("version"),
        "trained": h.get("trained"), "health": h,
        "batching": f"max {b.get('max_batch')} rows, wait {b.get('max_wait_ms')} ms" if b else None,
    })


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "service", "models", "bench"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _counts(images: list[BenchImage]) -> str:
    counts: dict[str, int] = {}
    for im in images:
        counts[im.source] = counts.get(im.source, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def meta(args, images: list[BenchImage], sample: list[BenchImage], settings: Settings) -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "command": "python -m bench.run_bench " + " ".join(sys.argv[1:]) if sys.argv[1:]
        else "python -m bench.run_bench",
        "commit": _commit(),
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "onnxruntime": ort.__version__, "opencv": cv2.__version__,
        "loadavg_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": settings.device, "inference_threads": settings.inference_threads,
        "images": len(images), "images_detail": _counts(images), "pool": True,
        "raw_images": len(sample), "raw_images_detail": _counts(sample),
        "near_originals": NEAR_ORIGINALS, "near_quality": NEAR_QUALITY,
    }


async def run_all(args) -> dict:
    profile = QUICK if args.quick else FULL
    if args.duration:
        profile = Profile(**{**profile.__dict__, "duration_s": args.duration})
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    clients_list = [int(c) for c in args.clients.split(",")]
    settings = Settings.from_env()
    images = image_pool(args.pool_per_source or profile.pool_per_source,
                        spill=0 if args.pool_per_source else profile.pool_spill)
    # the raw sample: the pool's first images, the same number from each source
    sample = images[:len(SOURCES) * (args.per_source or profile.per_source)]
    run = {"meta": meta(args, images, sample, settings), "raw": None, "scenarios": [],
           "profile": profile.__dict__}
    started = time.monotonic()
    if "raw" in parts:
        log(f"raw ONNX Runtime (in this process, no server), {len(sample)} images ...")
        run["raw"] = measure_raw(sample, settings, seconds_per_batch=profile.raw_seconds_per_batch)
        r = run["raw"]
        log(f"  best batch {r['best']['batch_images']} images: {r['best']['img_per_s']:.1f} img/s; "
            f"single image prepare+infer median {r['single_image_ms']['median']:.1f} ms")
    if parts & {"service", "cache"}:
        log("service (python -m service) ...")
        await bench_service(run, images, profile, clients_list, parts, args.keep_data)
    if "batch1" in parts:
        log("service with batching off ...")
        await bench_batch1(run, images, profile, clients_list, args.keep_data)
    if "seed" in parts:
        log("seed-style one-request-one-inference server (bench/baseline_app.py) ...")
        await bench_seed(run, images, profile, clients_list, args.keep_data)
    run["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    run["targets"] = report.evaluate(run)
    run["meta"]["max_other_cpu_share"] = report.distortion(run)
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts (~1 minute), for debugging")
    p.add_argument("--duration", type=float, help="seconds per load scenario (default 15, quick 3)")
    p.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    p.add_argument("--only", help=f"comma-separated parts to run, of {','.join(PARTS)}")
    p.add_argument("--per-source", type=int,
                   help="raw figures: images per data source (default 16, quick 4)")
    p.add_argument("--pool-per-source", type=int,
                   help="distinct pictures per source for the servers (default: all, 252; quick 60)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--markdown", action="store_true", help="print the docs/performance.md table")
    p.add_argument("--from-json", metavar="FILE", help="no run: load FILE (with --markdown: render it)")
    p.add_argument("--keep-data", action="store_true", help="keep the servers' data folders and logs")
    args = p.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            run = json.load(f)
    else:
        run = asyncio.run(run_all(args))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(run, f, indent=2)
            log(f"figures written to {args.json}")
    for t in run.get("targets", []):
        met = "-" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        log(f"target {t['target']}: {t['value']:.2f} (goal {t['goal']}) {met}  [{t['detail']}]")
    if run["meta"].get("max_other_cpu_share", 0) > report.DISTORTED_ABOVE:
        log(f"WARNING: other processes used up to {100 * run['meta']['max_other_cpu_share']:.0f} % "
            "of the CPU during the run: the figures are distorted")
    if args.markdown:
        print(report.markdown(run))
    errors = sum(s["errors"] for s in run.get("scenarios", []))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
