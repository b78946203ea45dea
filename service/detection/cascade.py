"""Views where they matter: a face is scored on one view first, on all views only near a verdict.

Every detector scores every face's first view (the centre of the aligned square). Those logits,
combined with weights fitted on val for that one view, give a first P(fake). Only a face whose
first logit lies within ``margin`` (logit units) of a verdict boundary (the uncertain band's low
edge or the fake threshold) is scored on the other views too, and then judged exactly as
without the cascade: the ensemble's combination of each detector's mean-over-views logit. A
face far from both boundaries keeps its first verdict; the margin is chosen on val
(`model_export.evaluate`) so that those verdicts rarely differ from the all-views ones, and the
figures in ``models/ensemble.json`` are measured with the cascade, as the service answers.

Evaluation and serving share these functions; the service does the rest in `detector`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def logit(p: float) -> float:
    p = min(max(float(p), 1e-9), 1.0 - 1e-9)
    return float(np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class Cascade:
    first_view: int  # index into the spec's crops
    weights: tuple[float, ...]  # per member, on its first-view logit
    bias: float
    margin: float  # logit units around each boundary where all views are scored
    edges: tuple[float, ...]  # the verdict boundaries in logit units

    @classmethod
    def from_card(cls, card: dict | None, members: list[str], threshold: float,
                  band: tuple[float, float]) -> Cascade | None:
        """The ``cascade`` entry of ``ensemble.json``, or None (every view of every face)."""
        if not card:
            return None
        return cls(int(card["first_view"]), tuple(float(card["weights"][m]) for m in members),
                   float(card["bias"]), float(card["margin_logit"]), boundaries(threshold, band))

    def first_logit(self, member_logits: np.ndarray) -> np.ndarray:
        """(..., members) first-view logits -> (...) the first combined logit."""
        return np.asarray(member_logits, np.float64) @ np.asarray(self.weights) + self.bias

    def needs_all_views(self, first_logit: np.ndarray) -> np.ndarray:
        """True where the first logit is within the margin of a verdict boundary."""
        z = np.asarray(first_logit, np.float64)
        return np.any([np.abs(z - e) < self.margin for e in self.edges], axis=0)

    def served_logit(self, first_member_logits: np.ndarray, all_views_logit: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """What the service answers for faces scored both ways (evaluation): (logit, escalated)."""
        first = self.first_logit(first_member_logits)
        more = self.needs_all_views(first)
        return np.where(more, all_views_logit, first), more


def boundaries(threshold: float, band: tuple[float, float]) -> tuple[float, ...]:
    """The P(fake)s where a verdict changes (band low edge, threshold), in logit units."""
    return tuple(sorted({logit(band[0]), logit(threshold)}))
