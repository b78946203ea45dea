"""Choose the service's view cascade (`service.detection.cascade`) on val, and measure it.

The cascade scores every face's first view with every detector and scores the other views only
where that first score lies within a margin of a verdict boundary. Chosen on val, after the
ensemble's threshold and band (which stay those of the all-views ensemble):

* the first view's combination: a logistic fit of the members' first-view logits on val;
* the margin: the smallest (on a 0.05-logit grid) at which at least `MIN_AGREEMENT` of the val
  faces get the verdict the all-views ensemble gives them, and every real source still has at
  most the threshold rule's share of its val faces called fake.

The figures that follow are what the service answers: `served` gives the cascade's logits for
faces scored both ways.
"""

from __future__ import annotations

import numpy as np

from model_export import metrics
from service.detection.cascade import Cascade, boundaries

FIRST_VIEW = 0  # the centre view (the spec's first crop)
MIN_AGREEMENT = 0.995
MARGINS = np.round(np.arange(0.0, 3.0001, 0.05), 2)
RULE = (
    f"every detector scores each face's first view (the centre); the other views are scored "
    f"only when the first-view logit (a logistic combination fitted on val) lies within "
    f"margin_logit of a verdict boundary (band low edge or threshold). margin_logit: the smallest "
    f"on a 0.05 grid with >= {MIN_AGREEMENT:.1%} of val faces given the all-views verdict and "
    f"every real source's val share called fake within the threshold rule"
)


def verdicts(logit: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """0 = real, 1 = uncertain, 2 = fake (one step per boundary passed)."""
    return np.sum([np.asarray(logit) >= e for e in edges], axis=0)


def choose(first_val: np.ndarray, full_val: np.ndarray, y_val, s_val, threshold: float,
           band, max_fpr: float, names: list[str]) -> Cascade:
    """The cascade for members ``names``: first-view logits (n, members), all-views logits (n,)."""
    w, b = metrics.fit_logistic(first_val, np.asarray(y_val, np.float64))
    edges = boundaries(threshold, band)
    t = np.log(threshold / (1 - threshold))
    reals = {s: (s_val == s) & (y_val == 0) for s in np.unique(s_val[y_val == 0])}
    want = verdicts(full_val, edges)
    for m in MARGINS:
        c = Cascade(FIRST_VIEW, tuple(float(x) for x in w), b, float(m), edges)
        served, _ = c.served_logit(first_val, full_val)
        ok_fpr = all((served[k] >= t).mean() <= max(max_fpr, (full_val[k] >= t).mean())
                     for k in reals.values())
        if (verdicts(served, edges) == want).mean() >= MIN_AGREEMENT and ok_fpr:
            return c
    raise SystemExit("no cascade margin keeps the verdicts: ship without a cascade")


def figures(c: Cascade, first: np.ndarray, full: np.ndarray, y) -> dict:
    """Agreement with the all-views verdicts, the share scored on all views, and how verdicts
    changed (by class)."""
    served, more = c.served_logit(first, full)
    a, b = verdicts(full, c.edges), verdicts(served, c.edges)
    names = ("real", "uncertain", "fake")
    changed = {f"{names[i]}->{names[j]}": int(((a == i) & (b == j)).sum())
               for i in range(3) for j in range(3) if i != j and ((a == i) & (b == j)).any()}
    out = {"faces": int(len(full)), "all_views_share": float(more.mean()),
           "verdict_agreement": float((a == b).mean()), "changed": changed}
    if y is not None:
        y = np.asarray(y)
        t = c.edges[-1]
        out["reals_called_fake_all_views"] = float((full[y == 0] >= t).mean())
        out["reals_called_fake_served"] = float((served[y == 0] >= t).mean())
    return out


def card(c: Cascade, names: list[str], fig: dict) -> dict:
    return {"first_view": c.first_view, "weights": dict(zip(names, c.weights)), "bias": c.bias,
            "margin_logit": c.margin, "rule": RULE, "metrics": fig}


def served(c: Cascade, first: np.ndarray, full: np.ndarray) -> np.ndarray:
    return c.served_logit(first, full)[0]
