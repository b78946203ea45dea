"""Binary classification metrics in plain NumPy (label 1 = fake, score = P(fake) or logit)."""

from __future__ import annotations

import numpy as np


def roc_auc(y, s) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def roc_curve(y, s):
    """(fpr, tpr, thresholds) with thresholds descending; predicted fake when score >= t."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(~y)[distinct]
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def at_threshold(y, p, t: float) -> dict:
    """Accuracy, precision, recall, F1, FPR and the confusion matrix for ``p >= t`` -> fake."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= t
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    tn = int((~pred & ~y).sum())
    fn = int((~pred & y).sum())
    n = max(1, tp + fp + tn + fn)
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if (tp + fp and tp + fn and prec + rec) else float("nan")
    return {
        "accuracy": (tp + tn) / n,
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "fpr": fp / (fp + tn) if fp + tn else float("nan"),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "n": tp + fp + tn + fn,
    }


def threshold_at_fpr(y, p, max_fpr: float) -> float:
    """Smallest threshold whose false-positive rate (reals called fake) is <= ``max_fpr``."""
    y = np.asarray(y).astype(bool)
    reals = np.sort(np.asarray(p, np.float64)[~y])[::-1]
    k = int(np.floor(max_fpr * len(reals)))  # at most k reals may be >= t
    if k >= len(reals):
        return float(reals[-1])
    return float(np.nextafter(reals[k], np.inf))


def rounded(obj, nd: int = 4):
    if isinstance(obj, float):
        return None if np.isnan(obj) else round(obj, nd)
    if isinstance(obj, dict):  # tiny error figures keep 3 significant digits instead
        return {
            k: float(f"{v:.3g}") if "err" in k and isinstance(v, float) else rounded(v, nd)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [rounded(v, nd) for v in obj]
    if isinstance(obj, np.floating):
        return rounded(float(obj), nd)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def source_mask(y, sources, source) -> np.ndarray:
    """Items scored for ``source``: its own when it has both classes, else its items plus every
    item of the other class from all sources (a one-class source is ranked against them)."""
    y = np.asarray(y)
    own = np.asarray(sources) == source
    classes = np.unique(y[own])
    if len(classes) == 2:
        return own
    return own | (y != classes[0])


def per_source_auc(y, s, sources) -> dict:
    y, s, sources = np.asarray(y), np.asarray(s), np.asarray(sources)
    out = {}
    for src in sorted(np.unique(sources)):
        m = source_mask(y, sources, src)
        out[str(src)] = roc_auc(y[m], s[m])
    return out


def threshold_per_real_source(y, p, sources, max_fpr: float) -> tuple[float, dict]:
    """Smallest threshold at which every real source has at most ``max_fpr`` of its reals
    called fake (``p >= t``); also each source's own threshold."""
    y, p, sources = np.asarray(y), np.asarray(p, np.float64), np.asarray(sources)
    own = {}
    for s in sorted(np.unique(sources[y == 0])):
        m = (sources == s) & (y == 0)
        own[str(s)] = threshold_at_fpr(np.zeros(int(m.sum())), p[m], max_fpr)
    return max(own.values()), own


def balanced_posterior(y, p) -> tuple[np.ndarray, np.ndarray]:
    """P(fake | score) with both classes weighted equally, as a non-decreasing step function of
    the score (isotonic regression by pool-adjacent-violators): (sorted scores, posterior)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, np.float64)
    order = np.argsort(p, kind="mergesort")
    ys, ps = y[order], p[order]
    w = np.where(ys, 0.5 / max(1, ys.sum()), 0.5 / max(1, (~ys).sum()))
    vals, wts, counts = [], [], []
    for v, wt in zip(ys.astype(np.float64), w):
        vals.append(v)
        wts.append(wt)
        counts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            tw = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / tw
            wts[-2] = tw
            counts[-2] += counts[-1]
            vals.pop()
            wts.pop()
            counts.pop()
    return ps, np.repeat(vals, counts)


def band_low(y, p, max_posterior: float) -> float:
    """Lowest score at which the class-balanced P(fake | score) exceeds ``max_posterior``:
    below it a REAL verdict is given; from it up to the fake threshold the answer is uncertain."""
    ps, post = balanced_posterior(y, p)
    above = np.flatnonzero(post > max_posterior)
    return float(ps[above[0]]) if len(above) else float(ps[-1])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50):
    """Logistic regression by Newton's method; returns (weights, bias)."""
    X = np.c_[x, np.ones(len(x))]
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        H = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
        w -= np.linalg.solve(H, g)
    return w[:-1], float(w[-1])
