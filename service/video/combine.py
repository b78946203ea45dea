"""One verdict per face track, and the video's: the stated rule (no temporal model is trained).

A track's score is the **trimmed mean of its frames' logits**: each sampled frame's face score
P(fake) (the same ensemble score an image gets) is turned into its logit, the lowest and highest
``trim`` fraction of them are dropped, the rest averaged and turned back into a probability.
The logit mean weighs a confident frame more than a hesitant one; the trim keeps one odd frame
(motion blur, a hand over the face) from deciding alone. The image thresholds then give the
verdict. A track is ``uncertain`` when

* it is **too short**: fewer than ``min_frames`` frames with a face large enough to judge, or
* it is **inconsistent**: more than ``max_disagreement`` of its judged frames fall on the other
  side of the threshold from the track's own score, or
* it would be FAKE (or REAL, with the shipped gate, which holds back both) but most of its
  judged frames show a face the familiarity gate marks unfamiliar (`model_export.gate`): as for
  an image, that score is not trusted.

A video is as fake as its most fake track: tracks are ranked fake, then uncertain, then real,
and by score within each; the first sets the video's verdict and score. No face in any frame is
``no_face``.
"""

from __future__ import annotations

import math

from service.detection.detector import SEVERITY, verdict_for

#: scores are stored to 4 decimals: logits are bounded to what that can express
_P_MIN = 1e-4


def logit(p: float) -> float:
    p = min(max(p, _P_MIN), 1.0 - _P_MIN)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def trimmed_mean(values: list[float], trim: float) -> float:
    values = sorted(values)
    k = int(len(values) * trim)
    kept = values[k:len(values) - k] or values
    return sum(kept) / len(kept)


def combine_track(scores: list[float], *, threshold: float, band: tuple[float, float],
                  trim: float, min_frames: int, max_disagreement: float,
                  unfamiliar: list[bool | None] = (), confirmed: list[bool | None] = (),
                  gate_holds: tuple[str, ...] = ("fake",)) -> dict:
    """The track's score and verdict from its judged frames' scores (P(fake) each) and, with
    the familiarity gate, whether each of those frames' face is unfamiliar (``gate_holds``: the
    verdicts the gate holds back, `models.Gate.holds`); with the agreement rule, whether its
    members confirmed each frame's face as fake."""
    if not scores:
        return {"score": None, "verdict": "uncertain", "label": None, "confidence": None,
                "too_short": True, "consistent": None, "disagreement": None,
                "note": "no face of this track is large enough to judge"}
    p = sigmoid(trimmed_mean([logit(s) for s in scores], trim))
    top = verdict_for(p, threshold, band)
    fake = p >= threshold
    disagreement = sum((s >= threshold) != fake for s in scores) / len(scores)
    out = {"score": round(p, 4), **top, "too_short": len(scores) < min_frames,
           "consistent": disagreement <= max_disagreement,
           "disagreement": round(disagreement, 3), "note": None}
    if out["too_short"]:
        out["verdict"] = "uncertain"
        out["note"] = (f"seen in {len(scores)} judged frame(s), fewer than {min_frames}:"
                       " too short to judge")
    elif not out["consistent"]:
        out["verdict"] = "uncertain"
        out["note"] = (f"inconsistent: {disagreement:.0%} of its frames disagree with the"
                       " track's score")
    elif out["verdict"] in gate_holds and sum(bool(u) for u in unfamiliar) * 2 > len(scores):
        out["verdict"] = "uncertain"
        out["note"] = ("most of its frames show a face unlike those the detectors learned from:"
                       " its score is not trusted here")
    elif out["verdict"] == "fake" and sum(c is False for c in confirmed) * 2 > len(scores):
        out["verdict"] = "uncertain"
        out["note"] = ("in most of its frames not every detector finds the face fake on its"
                       " own: a fake score here is not trusted")
    return out


def most_fake(tracks: list[dict]) -> int | None:
    """Index of the track that sets the video's verdict (see the module's docstring)."""
    if not tracks:
        return None
    return max(range(len(tracks)), key=lambda i: (SEVERITY[tracks[i]["verdict"]],
                                                  tracks[i]["score"] if tracks[i]["score"]
                                                  is not None else -1.0))
