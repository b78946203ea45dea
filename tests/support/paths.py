"""Where the test inputs live: the repository, the shared face data beside it."""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("REALCHECK_SHARED_DATA", REPO.parent / "shared" / "data"))
IN_CI = os.environ.get("CI") == "true"
#: a DFDC frame and the face swap made from it, in neither of which the face path finds a face
#: (their PDQ hashes are 12 bits apart)
FACELESS_SWAP = ("dfdc-faces/real/lobyiumwce.jpg", "dfdc-faces/fake/kvjaqgihat.jpg")


def require_shared_data() -> Path:
    """The labelled faces (``../shared/data``); in CI their absence is a failure, else a skip."""
    if not (SHARED_DATA / "manifest.csv").exists():
        if IN_CI:
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} is not here")
    return SHARED_DATA


@lru_cache(maxsize=1)
def manifest() -> list[dict]:
    with open(require_shared_data() / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def sample_images(n: int, *, label: str | None = None, source: str | None = None,
                  split: str = "test") -> list[Path]:
    """The first ``n`` images matching, in manifest order (deterministic)."""
    rows = [r for r in manifest() if r["split"] == split
            and (label is None or r["label"] == label)
            and (source is None or r["source"] == source)]
    return [SHARED_DATA / r["path"] for r in rows[:n]]
