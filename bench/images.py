"""The benchmark's images: a fixed set of face photos from ``../shared/data``, made unique per request.

The service caches by SHA-256, so re-sending the same bytes measures the cache, not the models.
`unique_variant` inserts a JPEG comment segment (``FF FE``) right after the start-of-image
marker: decoders skip comments, so the pixels and the decoding work are exactly those of the
original file, while the bytes (and the hash) differ for every request.
"""

from __future__ import annotations

import csv
import os
import struct
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The same folder and selection rule as tests/support/paths.py (which needs pytest to import).
SHARED_DATA = Path(os.environ.get("REALCHECK_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = ("dfdc-faces", "tpdne-unsplash", "gan-faces-extra", "sdfd-sd21", "utkface",
           "celebrity-press", "snapshots", "london-canada")
BOUNDARY = "realcheck-bench-7f3a9c1e"


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
