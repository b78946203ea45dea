"""The benchmark's images: face photos from ``../shared/data``.

`image_pool` gives the "unique images" scenarios genuinely new pictures: distinct files, each
sent at most once to a server, so no request is a near-duplicate of an earlier check (which the
service would compare face by face with a flagged item: `service.moderation.near`).
`unique_variant` inserts a JPEG comment segment (``FF FE``) right after the start-of-image
marker: decoders skip comments, so the pixels and the decoding work are exactly those of the
original file, while the bytes (and the hash) differ; it makes the near-duplicate scenario's
copies and the small fixed sets of other benches (`sample_images`) unique per request.
"""

from __future__ import annotations

import csv
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The same folder and selection rule as tests/support/paths.py (which needs pytest to import).
SHARED_DATA = Path(os.environ.get("REALCHECK_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = ("dfdc-faces", "tpdne-unsplash", "gan-faces-extra", "sdfd-sd21", "utkface",
           "celebrity-press", "snapshots", "london-canada")
BOUNDARY = "realcheck-bench-7f3a9c1e"
#: sources whose ``group`` holds one picture in several files: a DFDC face swap is made from a
#: frame of its group's real video, and keeps that frame's PDQ hash
ONE_PER_GROUP = ("dfdc-faces",)
POOL_SEED = 20261130


@dataclass(frozen=True)
class BenchImage:
    path: Path
    source: str
    label: str
    data: bytes


def sample_images(per_source: int, split: str = "test") -> list[BenchImage]:
    """The first ``per_source`` JPEGs of ``split`` from each source, in manifest order."""
    manifest = SHARED_DATA / "manifest.csv"
    if not manifest.exists():
        raise SystemExit(f"no face data at {SHARED_DATA} (set REALCHECK_SHARED_DATA)")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    chosen: list[BenchImage] = []
    for source in SOURCES:
        picked = [r for r in rows if r["source"] == source][:per_source]
        for r in picked:
            data = (SHARED_DATA / r["path"]).read_bytes()
            if data[:3] != b"\xff\xd8\xff":
                continue  # comments can only be inserted into JPEGs; all sources are JPEG today
            chosen.append(BenchImage(SHARED_DATA / r["path"], source, r["label"], data))
    if not chosen:
        raise SystemExit(f"no JPEG images found in {manifest}")
    # Interleave the sources so any run of consecutive requests is a mix of sizes.
    by_source = [[im for im in chosen if im.source == s] for s in SOURCES]
    mixed = [im for group in zip(*by_source) for im in group]
    return mixed + [im for im in chosen if im not in mixed]


def image_pool(per_source: int | None = None, seed: int = POOL_SEED, spill: int = 0
               ) -> list[BenchImage]:
    """Distinct pictures, the same number from each source, interleaved by source.

    Every split's JPEGs (the test split alone holds only 40 london-canada photos, too few for a
    server's lifetime), at most one file per group in `ONE_PER_GROUP`, each source in a fixed
    shuffled order (``seed``), ``per_source`` of each (default: as many as the smallest source
    has). Interleaved: any ``k * len(SOURCES)`` consecutive images from the start hold ``k`` of
    each source, so the first images are a stratified sample of the whole pool.

    ``spill``: up to that many more of each source after those, interleaved over the sources that
    still have pictures (the mix then leans to the larger sources): spare pictures for a fast
    server, which would otherwise run out. The balanced part before them is unchanged.
    """
    manifest = SHARED_DATA / "manifest.csv"
    if not manifest.exists():
        raise SystemExit(f"no face data at {SHARED_DATA} (set REALCHECK_SHARED_DATA)")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].lower().endswith((".jpg", ".jpeg"))]
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {}
    for source in SOURCES:
        picked = sorted((r for r in rows if r["source"] == source), key=lambda r: r["path"])
        rng.shuffle(picked)
        if source in ONE_PER_GROUP:
            groups: dict[str, dict] = {}
            for r in picked:
                groups.setdefault(r["group"], r)
            picked = list(groups.values())
        by_source[source] = picked
    n = min(len(v) for v in by_source.values())
    if per_source is not None:
        n = min(n, per_source)
    if n == 0:
        raise SystemExit(f"a source without JPEG images in {manifest}")
    pool = []
    for i in range(n + spill):
        for source in SOURCES:
            if i >= len(by_source[source]):
                continue
            r = by_source[source][i]
            data = (SHARED_DATA / r["path"]).read_bytes()
            pool.append(BenchImage(SHARED_DATA / r["path"], source, r["label"], data))
    return pool


def unique_variant(jpeg: bytes, tag: str) -> bytes:
    """``jpeg`` with a comment segment holding ``tag``: same pixels, different bytes."""
    payload = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def multipart_body(data: bytes, filename: str = "face.jpg") -> bytes:
    """A ``multipart/form-data`` body with one ``image`` field, built once before timing."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
