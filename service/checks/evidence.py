"""Evidence beside the detectors: provenance from the image bytes, PDQ hashes from its pixels.

It runs in a pool of its own, so neither a flood of checks nor a slow manifest starves the
detectors' pools (and the other way round). The pixels are the detectors' own: `prepare` hands
its decoded image over (`Gathering.pixels`, in the prepare thread), so an image is decoded once,
and the hash runs while the faces are sought and scored.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from service.pdq.hashing import Fingerprint, fingerprint
from service.provenance.credentials import CredentialReader
from service.provenance.inspect import inspect
from service.threads import named_pool

log = logging.getLogger("service.evidence")

UNREAD = {"c2pa": None, "hints": None, "ai_generated": False, "summary": None,
          "error": "the provenance could not be read"}


def provenance(data: bytes, reader: CredentialReader) -> dict:
    """The ``provenance`` object of an image's bytes (blocking)."""
    try:
        return inspect(data, reader)
    except Exception as e:  # a manifest the library chokes on must not fail the check
        log.warning("provenance not read: %s", e)
        return dict(UNREAD)


class Gathering:
    """One image's evidence under way: provenance from the start, the hash once the pixels come."""

    def __init__(self, pool: ThreadPoolExecutor, reader: CredentialReader, data: bytes):
        self._pool = pool
        self._provenance = pool.submit(provenance, data, reader)
        self._fingerprint: Future | None = None

    def pixels(self, image: np.ndarray) -> None:
        """The decoded image (read-only; called in the prepare thread): hash it in the pool."""
        try:
            self._fingerprint = self._pool.submit(fingerprint, image)
        except RuntimeError:  # the pool is shut down (the service is stopping): no hash
            self._fingerprint = None

    async def result(self) -> tuple[dict | None, Fingerprint | None]:
        """(provenance, PDQ fingerprint); the fingerprint is None if no pixels came."""
        found = await asyncio.wrap_future(self._provenance)
        fp = await asyncio.wrap_future(self._fingerprint) if self._fingerprint is not None else None
        return found, fp

    def cancel(self) -> None:
        for future in (self._provenance, self._fingerprint):
            if future is not None:
                future.cancel()


class Evidence:
    def __init__(self, reader: CredentialReader, *, workers: int = 2):
        self.reader = reader
        self.pool = named_pool(workers, "evidence")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def start(self, data: bytes) -> Gathering:
        """Start on an image: hand `Gathering.pixels` to the detectors' ``on_decoded``."""
        return Gathering(self.pool, self.reader, data)
