"""Draw weights that make the lower face's look say nothing about the label.

The generated faces in training smile with their teeth far more often than the real ones (37 % of
the GAN faces and 30 % of the TPDNE faces fall in the "teeth" group below, 11-20 % of each real
source), and detectors trained on them call real smiling portraits fake (`docs/models.md`).
Hiding the mouth did not help: a smile shows in the whole face. This removes the correlation
itself instead: the training faces are grouped by the look of their lower face (mouth and
cheeks: a small grey patch, normalised for brightness and contrast, so skin tone and lighting do
not decide the group), and each face's draw weight is scaled so that under the sampler every group
holds the same share of fakes. A group's own share of draws stays as it was.

The groups are fitted on the training faces alone (k-means on a PCA of the patches, fixed seed),
so a held-out source never shapes them.
"""

from __future__ import annotations

import cv2
import numpy as np

#: parts of the service's aligned square (y0, y1, x0, x1 as fractions of its side) and the size
#: (width, height) of their grey patch: the lower face (mouth and cheeks), the whole face
REGIONS = {"lower": ((0.62, 1.0, 0.15, 0.85), (16, 10)),
           "face": ((0.0, 1.0, 0.0, 1.0), (16, 16))}
COMPONENTS = 12


def patches(faces: np.ndarray, region: str = "lower", chunk: int = 2000) -> np.ndarray:
    """(n, w * h) normalised grey patches of one region of aligned BGR faces (n, s, s, 3)."""
    box, size = REGIONS[region]
    n = faces.shape[1]
    y0, y1, x0, x1 = (round(f * n) for f in box)
    grey = np.array([0.114, 0.587, 0.299], np.float32)
    out = []
    for k in range(0, len(faces), chunk):
        g = np.asarray(faces[k:k + chunk, y0:y1, x0:x1]).astype(np.float32) @ grey
        g = np.stack([cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in g])
        g = g.reshape(len(g), -1)
        out.append((g - g.mean(1, keepdims=True)) / (g.std(1, keepdims=True) + 1e-3))
    return np.concatenate(out) if out else np.zeros((0, size[0] * size[1]), np.float32)


def kmeans(x: np.ndarray, k: int, seed: int = 0, rounds: int = 50) -> np.ndarray:
    """Centres of ``k`` groups of the rows of ``x`` (Lloyd's algorithm from random rows)."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), k, replace=False)].astype(np.float64)
    for _ in range(rounds):
        near = assign(x, centres)
        new = np.stack([x[near == j].mean(0) if (near == j).any() else centres[j]
                        for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def assign(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None]
    return d.argmin(1)


def groups(patches: np.ndarray, k: int, seed: int = 0, fit: np.ndarray | None = None
           ) -> np.ndarray:
    """Each row's group: k-means on the first `COMPONENTS` principal components, both fitted on
    the rows ``fit`` selects (default: all)."""
    fitted = patches if fit is None else patches[fit]
    mean = fitted.mean(0)
    _, _, vt = np.linalg.svd(fitted - mean, full_matrices=False)
    x = (patches - mean) @ vt[:COMPONENTS].T
    return assign(x, kmeans(x if fit is None else x[fit], k, seed))


def balanced(p: np.ndarray, labels: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Draw weights ``p`` rescaled so that every group of both classes has the overall share of
    fakes, each group's total weight unchanged (a group of one class is left as it is)."""
    p = np.asarray(p, np.float64)
    fake_share = p[labels == 1].sum() / p.sum()
    out = p.copy()
    for g in np.unique(group):
        m = group == g
        fakes, reals = m & (labels == 1), m & (labels == 0)
        if not (fakes.any() and reals.any()):
            continue  # one class only: nothing to balance
        total = p[m].sum()
        out[fakes] *= fake_share * total / p[fakes].sum()
        out[reals] *= (1.0 - fake_share) * total / p[reals].sum()
    return out / out.sum()


def fake_share_by_group(p: np.ndarray, labels: np.ndarray, group: np.ndarray) -> dict[int, float]:
    return {int(g): float(p[(group == g) & (labels == 1)].sum() / p[group == g].sum())
            for g in np.unique(group)}


def main(argv=None) -> None:
    """Group every judged face of the cache (groups fitted on the training split) and print
    each source's and class's share of each group; ``--grid DIR`` writes 24 faces of each."""
    import argparse
    from pathlib import Path

    from model_export import common
    from model_export.data import Cache

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--region", default="lower", choices=list(REGIONS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=Path, help="write group{k}.png of 24 faces each here")
    a = ap.parse_args(argv)
    cache = Cache(common.SPEC)
    rows = np.flatnonzero(cache.found & (cache.face_side >= cache.meta["spec"]["min_face"]))
    group = groups(patches(cache.serve[rows], a.region), a.groups, a.seed,
                   fit=cache.splits[rows] == "train")
    labels, sources = cache.labels[rows], cache.sources[rows]
    table = {}
    for s in sorted(set(sources)):
        for lab in (0, 1):
            m = (sources == s) & (labels == lab)
            if m.any():
                share = np.bincount(group[m], minlength=a.groups) / m.sum()
                table[f"{s} {'fake' if lab else 'real'}"] = [round(100 * v, 1) for v in share]
    print(f"% of each source's faces in each of {a.groups} groups ({a.region} face)")
    for name, share in table.items():
        print(f"{name:22s}", " ".join(f"{v:5.1f}" for v in share))
    if a.grid:
        a.grid.mkdir(parents=True, exist_ok=True)
        for k in range(a.groups):
            members = rows[group == k]
            pick = np.sort(members[np.linspace(0, len(members) - 1, 24).astype(int)])
            faces = np.asarray(cache.serve[pick])
            grid = np.concatenate([np.concatenate(list(faces[r * 6:(r + 1) * 6]), 1)
                                   for r in range(4)], 0)
            cv2.imwrite(str(a.grid / f"group{k}.png"), grid)


if __name__ == "__main__":
    main()
