"""Views where they matter: a face is scored on one view first, on all views only near a verdict.

The first-stage detectors (``first_members``: a subset of the ensemble chosen on val for its
cost, `model_export.cascade`) score every face's first view (the centre of the aligned square).
Those logits, combined with weights fitted on val for that one view, give a first P(fake). Only a
face whose first logit lies within ``margin`` (logit units) of a verdict boundary (the uncertain
band's low edge or the fake threshold) is scored on the other views too, and by the other
detectors on every view, and then judged exactly as without the cascade: the ensemble's
combination of each detector's mean-over-views logit. A face far from both boundaries keeps its
first verdict; the margin is chosen on val (`model_export.evaluate`) so that those verdicts
rarely differ from the all-views ones, and the figures in ``models/ensemble.json`` are measured
with the cascade, as the service answers.

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
    weights: tuple[float, ...]  # per member, on its first-view logit (0 outside the first stage)
    bias: float
    margin: float  # logit units around each boundary where all views are scored
    edges: tuple[float, ...]  # the verdict boundaries in logit units
    first_members: tuple[bool, ...] = ()  # per member: scores the first view; () = every one

    @property
    def first_mask(self) -> np.ndarray:
        return np.asarray(self.first_members or (True,) * len(self.weights), bool)

    @classmethod
    def from_card(cls, card: dict | None, members: list[str], threshold: float,
                  band: tuple[float, float]) -> Cascade | None:
        """The ``cascade`` entry of ``ensemble.json``, or None (every view of every face).
        Its ``weights`` name the first-stage members (a card without ``first_members``: all)."""
        if not card:
            return None
        first = card.get("first_members", members)
        unknown = set(first) - set(members)
        if unknown or set(card["weights"]) != set(first):
            raise ValueError(f"cascade: first-stage members {sorted(first)} do not match the "
                             f"weights {sorted(card['weights'])} or the ensemble {members}")
        return cls(int(card["first_view"]),
                   tuple(float(card["weights"][m]) if m in first else 0.0 for m in members),
                   float(card["bias"]), float(card["margin_logit"]), boundaries(threshold, band),
                   tuple(m in first for m in members))

    def first_logit(self, member_logits: np.ndarray) -> np.ndarray:
        """(..., members) first-view logits -> (...) the first combined logit. Members outside
        the first stage are ignored (their logits may be NaN: not scored)."""
        z = np.where(self.first_mask, np.asarray(member_logits, np.float64), 0.0)
        return z @ np.asarray(self.weights) + self.bias

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
