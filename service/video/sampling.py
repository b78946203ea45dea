"""Which moments of a video are scored: a steady rate over the first seconds, within a budget.

The span is the video's duration, cut to the ``video_sample_seconds`` setting. Frames are taken
at ``video_sample_rate`` per second from the first picture on; when that would be more than
``video_max_frames``, the rate is lowered so that the budget still covers the whole span (a
long video is sampled more sparsely, never only at its start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    rate: float  # sampled frames per second (after the budget)
    count: int  # frames to score (an upper bound when the duration is unknown)
    span_s: float  # seconds covered from the first picture

    def time(self, k: int) -> float:
        return k / self.rate


def plan(duration_s: float | None, rate: float, max_frames: int, max_seconds: float) -> Plan:
    span = max_seconds if duration_s is None else min(duration_s, max_seconds)
    span = max(span, 0.0)
    wanted = max(1, math.ceil(span * rate - 1e-9))
    if wanted <= max_frames:
        return Plan(rate, wanted, span)
    return Plan(max_frames / span, max_frames, span)
