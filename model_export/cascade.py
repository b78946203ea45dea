"""Choose the service's view cascade (`service.detection.cascade`) on val, and measure it.

The cascade scores every face's first view with the first-stage detectors and scores the rest
(the other views, and the first view by the other detectors) only where that first score lies
within a margin of a verdict boundary. Chosen on val, after the ensemble's threshold and band
(which stay those of the all-views ensemble):

* for each non-empty subset of the members as the first stage:
  * the first view's combination: a logistic fit of those members' first-view logits on val;
  * the margin: the smallest (on a 0.05-logit grid) at which at least `MIN_AGREEMENT` of the val
    faces get the verdict the all-views ensemble gives them, and every real source still has at
    most the threshold rule's share of its val faces called fake;
* the first stage kept: the subset with the least expected model CPU per face on val (each
  member's CPU per row, timed on its shipped INT8 file by `row_costs`, times the rows it scores:
  the first view, plus every view it has not scored yet for the share of faces sent on).

The figures that follow are what the service answers: `served` gives the cascade's logits for
faces scored both ways.
"""

from __future__ import annotations

import statistics
import time
from itertools import combinations

import numpy as np

from model_export import metrics
from service.detection.cascade import Cascade, boundaries

FIRST_VIEW = 0  # the centre view (the spec's first crop)
MIN_AGREEMENT = 0.995
MARGINS = np.round(np.arange(0.0, 3.0001, 0.05), 2)
COST_ROWS, COST_RUNS = 3, 40  # `row_costs`: a batch of one face's views, timed this often
RULE = (
    f"the first_members score each face's first view (the centre); every other view, and the "
    f"first view by the other members, are scored only when the first-view logit (a logistic "
    f"combination fitted on val) lies within margin_logit of a verdict boundary (band low edge "
    f"or threshold). margin_logit: the smallest on a 0.05 grid with >= {MIN_AGREEMENT:.1%} of "
    f"val faces given the all-views verdict and every real source's val share called fake "
    f"within the threshold rule. first_members: of every subset of the members, the one with "
    f"the least expected model CPU per val face (row_cpu_ms: each member's CPU per row, timed on "
    f"its INT8 file with one thread; candidates: each subset's margin, share sent on and cost)"
)


class NoCascade(Exception):
    """No margin keeps the verdicts for this first stage."""


def verdicts(logit: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """0 = real, 1 = uncertain, 2 = fake (one step per boundary passed)."""
    return np.sum([np.asarray(logit) >= e for e in edges], axis=0)


def choose(first_val: np.ndarray, full_val: np.ndarray, y_val, s_val, threshold: float,
           band, max_fpr: float, names: list[str], first: tuple[int, ...] | None = None
           ) -> Cascade:
    """The cascade for members ``names`` with the members ``first`` (indices, default all) as
    its first stage: first-view logits (n, members), all-views logits (n,)."""
    first = tuple(range(len(names))) if first is None else tuple(first)
    w, b = metrics.fit_logistic(first_val[:, first], np.asarray(y_val, np.float64))
    weights = np.zeros(len(names))
    weights[list(first)] = w
    mask = tuple(i in first for i in range(len(names)))
    edges = boundaries(threshold, band)
    t = np.log(threshold / (1 - threshold))
    reals = {s: (s_val == s) & (y_val == 0) for s in np.unique(s_val[y_val == 0])}
    want = verdicts(full_val, edges)
    for m in MARGINS:
        c = Cascade(FIRST_VIEW, tuple(float(x) for x in weights), b, float(m), edges, mask)
        served, _ = c.served_logit(first_val, full_val)
        ok_fpr = all((served[k] >= t).mean() <= max(max_fpr, (full_val[k] >= t).mean())
                     for k in reals.values())
        if (verdicts(served, edges) == want).mean() >= MIN_AGREEMENT and ok_fpr:
            return c
    raise NoCascade(f"no margin keeps the verdicts with {[names[i] for i in first]} first")


def expected_rows_cost(c: Cascade, share: float, costs: list[float], views: int) -> float:
    """Model CPU per face: the first stage on the first view, then, for ``share`` of the faces,
    every member on every view it has not scored (``costs``: each member's CPU per row)."""
    mask = c.first_mask
    costs = np.asarray(costs, np.float64)
    return float(costs[mask].sum() + share * ((views - 1) * costs[mask].sum()
                                              + views * costs[~mask].sum()))


def choose_stage(first_val: np.ndarray, full_val: np.ndarray, y_val, s_val, threshold: float,
                 band, max_fpr: float, names: list[str], costs: list[float], views: int
                 ) -> tuple[Cascade, dict]:
    """The cheapest first stage (see the module's docstring): (cascade, every candidate's
    margin, share of val faces sent on and expected CPU per face)."""
    best, candidates = None, {}
    for r in range(1, len(names) + 1):
        for first in combinations(range(len(names)), r):
            key = "+".join(names[i] for i in first)
            try:
                c = choose(first_val, full_val, y_val, s_val, threshold, band, max_fpr, names,
                           first)
            except NoCascade:
                candidates[key] = None
                continue
            share = float(c.needs_all_views(c.first_logit(first_val)).mean())
            cost = expected_rows_cost(c, share, costs, views)
            candidates[key] = {"margin_logit": c.margin, "all_views_share": share,
                               "cpu_ms_per_face": cost}
            if best is None or cost < best[0]:
                best = (cost, c)
    if best is None:
        raise SystemExit("no cascade margin keeps the verdicts: ship without a cascade")
    return best[1], candidates


def row_costs(sessions: list, input_size: int) -> list[float]:
    """Each session's CPU ms per row: the median of `COST_RUNS` runs of a `COST_ROWS`-row batch
    (process CPU time, so the sessions should have one thread and the machine be quiet)."""
    x = np.random.default_rng(0).normal(size=(COST_ROWS, 3, input_size, input_size)
                                        ).astype(np.float32)
    out = []
    for sess in sessions:
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(3):
            sess.run(None, feed)
        runs = []
        for _ in range(COST_RUNS):
            c = time.process_time()
            sess.run(None, feed)
            runs.append(time.process_time() - c)
        out.append(statistics.median(runs) * 1000 / COST_ROWS)
    return out


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


def card(c: Cascade, names: list[str], fig: dict, costs: list[float] | None = None,
         candidates: dict | None = None) -> dict:
    first = [n for n, on in zip(names, c.first_mask) if on]
    out = {"first_view": c.first_view, "first_members": first,
           "weights": {n: w for n, w, on in zip(names, c.weights, c.first_mask) if on},
           "bias": c.bias, "margin_logit": c.margin, "rule": RULE}
    if costs is not None:
        out["row_cpu_ms"] = dict(zip(names, costs))
    if candidates is not None:
        out["candidates"] = candidates
    return {**out, "metrics": fig}


def served(c: Cascade, first: np.ndarray, full: np.ndarray) -> np.ndarray:
    return c.served_logit(first, full)[0]
