"""A near-duplicate index over 256-bit hashes: multi-index hashing (Norouzi et al.).

The 256 bits are cut into 16 chunks of 16 bits. If two hashes differ in at most ``r`` bits,
then by the pigeonhole principle at least one chunk differs in at most ``r // 16`` bits, so a
search only visits the rows whose chunk value is that close to the query's in some chunk
(17 buckets per chunk for PDQ's customary r = 31), then checks those candidates' full
distance. Each chunk keeps its rows sorted by value with a 65,536-entry offset table (a CSR
layout: 4 bytes per row per chunk), so memory is about 96 bytes per hash.

Rows added since the last build are scanned directly; the tables are rebuilt when that tail
grows past 1/16 of the indexed rows. Removed rows are tombstoned.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from itertools import combinations

import numpy as np

CHUNKS = 16
CHUNK_BITS = 16
WORDS = 4  # 256 bits as four uint64 words
MIN_TAIL = 1024


def to_words(hex_hash: str) -> np.ndarray:
    """A 64-hex-digit hash as four big-endian uint64 words."""
    return np.frombuffer(bytes.fromhex(hex_hash), dtype=">u8").astype(np.uint64)


def _chunk_values(words: np.ndarray) -> np.ndarray:
    """(n, 4) words -> (n, 16) uint16 chunk values, chunk 0 being the top 16 bits."""
    shifts = np.array([48, 32, 16, 0], dtype=np.uint64)
    parts = (words[:, :, None] >> shifts) & np.uint64(0xFFFF)
    return parts.reshape(len(words), CHUNKS).astype(np.uint16)


def _flip_masks(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most ``radius`` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(CHUNK_BITS), k)]
    return np.array(masks, dtype=np.int64)


class HashIndex:
    def __init__(self, capacity: int = 1024):
        self._words = np.zeros((capacity, WORDS), dtype=np.uint64)
        self._keys: list[Hashable | None] = []
        self._n = 0
        self._built = 0  # rows covered by the chunk tables
        self._order = np.zeros((CHUNKS, 0), dtype=np.uint32)
        self._starts = np.zeros((CHUNKS, (1 << CHUNK_BITS) + 1), dtype=np.int64)
        self._masks: dict[int, np.ndarray] = {}
        self._live = 0

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        return self._words.nbytes + self._order.nbytes + self._starts.nbytes

    def add(self, hex_hash: str, key: Hashable) -> None:
        self.add_many([(hex_hash, key)])

    def add_many(self, entries: Iterable[tuple[str, Hashable]]) -> None:
        entries = list(entries)
        if not entries:
            return
        words = np.stack([to_words(h) for h, _ in entries])
        self._append(words, [k for _, k in entries])

    def add_words(self, words: np.ndarray, keys: list[Hashable]) -> None:
        """Bulk form: ``words`` is (n, 4) uint64 (as from `to_words`)."""
        self._append(np.asarray(words, dtype=np.uint64), list(keys))

    def _append(self, words: np.ndarray, keys: list) -> None:
        need = self._n + len(words)
        if need > len(self._words):
            grown = np.zeros((max(need, 2 * len(self._words)), WORDS), dtype=np.uint64)
            grown[: self._n] = self._words[: self._n]
            self._words = grown
        self._words[self._n:need] = words
        self._keys.extend(keys)
        self._n = need
        self._live += len(keys)
        if self._n - self._built > max(MIN_TAIL, self._built // 16):
            self.build()

    def remove(self, key: Hashable) -> int:
        """Tombstone every row stored under ``key``; how many."""
        gone = 0
        for i, k in enumerate(self._keys):
            if k == key:
                self._keys[i] = None
                gone += 1
        self._live -= gone
        return gone

    def build(self) -> None:
        """(Re)build the chunk tables over every row (tombstones included)."""
        n = self._n
        values = _chunk_values(self._words[:n])  # (n, 16)
        order = np.empty((CHUNKS, n), dtype=np.uint32)
        starts = np.empty((CHUNKS, (1 << CHUNK_BITS) + 1), dtype=np.int64)
        for j in range(CHUNKS):
            order[j] = np.argsort(values[:, j], kind="stable")
            counts = np.bincount(values[:, j], minlength=1 << CHUNK_BITS)
            starts[j, 0] = 0
            np.cumsum(counts, out=starts[j, 1:])
        self._order, self._starts, self._built = order, starts, n

    def search(self, hex_hash: str, max_distance: int) -> list[tuple[int, Hashable]]:
        """Every stored (distance, key) within ``max_distance`` bits, nearest first."""
        q = to_words(hex_hash)
        rows = self._candidates(q, max_distance)
        if rows.size == 0:
            return []
        dist = np.bitwise_count(self._words[rows] ^ q).sum(axis=1, dtype=np.int32)
        near = np.flatnonzero(dist <= max_distance)
        # A row near the query in several chunks is a candidate several times: dedupe the hits.
        hits = sorted({(int(dist[i]), int(rows[i])) for i in near})
        return [(d, self._keys[r]) for d, r in hits if self._keys[r] is not None]

    def _candidates(self, q: np.ndarray, max_distance: int) -> np.ndarray:
        tail = np.arange(self._built, self._n, dtype=np.int64)
        if self._built == 0:
            return tail
        radius = max_distance // CHUNKS
        masks = self._masks.get(radius)
        if masks is None:
            masks = self._masks[radius] = _flip_masks(radius)
        qv = _chunk_values(q[None, :])[0].astype(np.int64)  # (16,)
        probes = qv[:, None] ^ masks[None, :]  # (16, m): bucket values to visit per chunk
        chunk = np.arange(CHUNKS)[:, None]
        begin = self._starts[chunk, probes].ravel()
        end = self._starts[chunk, probes + 1].ravel()
        lengths = end - begin
        total = int(lengths.sum())
        if total == 0:
            return tail
        # Positions into the flattened (16, built) order table, bucket by bucket.
        flat_begin = begin + np.repeat(np.arange(CHUNKS, dtype=np.int64) * self._built,
                                       probes.shape[1])
        offsets = np.repeat(flat_begin - np.cumsum(lengths) + lengths, lengths)
        positions = offsets + np.arange(total, dtype=np.int64)
        found = self._order.ravel()[positions]
        return np.concatenate([found, tail]) if tail.size else found
