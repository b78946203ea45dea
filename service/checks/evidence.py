"""Evidence beside the detectors, computed from the image bytes: provenance and PDQ hashes.

It runs in a pool of its own, so neither a flood of checks nor a slow manifest starves the
detectors' pools (and the other way round).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from service.detection.preprocess import ImageError, decode_image
from service.pdq.hashing import Fingerprint, fingerprint
from service.provenance.credentials import CredentialReader
from service.provenance.inspect import inspect

log = logging.getLogger("service.evidence")


class Evidence:
    def __init__(self, reader: CredentialReader, *, max_image_pixels: int, workers: int = 2):
        self.reader = reader
        self.max_image_pixels = max_image_pixels
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="evidence")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    async def gather(self, data: bytes) -> tuple[dict | None, Fingerprint | None]:
        """(provenance, PDQ fingerprint); either is None if it could not be computed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._gather, data)

    def _gather(self, data: bytes) -> tuple[dict | None, Fingerprint | None]:
        try:
            provenance = inspect(data, self.reader)
        except Exception as e:  # a manifest the library chokes on must not fail the check
            log.warning("provenance not read: %s", e)
            provenance = {"c2pa": None, "hints": None, "ai_generated": False, "summary": None,
                          "error": "the provenance could not be read"}
        try:
            fp = fingerprint(decode_image(data, self.max_image_pixels))
        except ImageError:
            fp = None  # the detectors report the bad image
        return provenance, fp
