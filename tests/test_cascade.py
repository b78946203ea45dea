"""The view cascade: each face is scored on its centre view first, on every view only near a
verdict boundary (`service.detection.cascade`, chosen by `model_export.cascade`).

The service must do exactly what ``models/ensemble.json`` says: the tests recompute every face's
answer from all of its views' logits (the members run directly on ``prepare``'s rows) and check
which answer the service gave, on real and fake photographs from ``../shared/data``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model_export import cascade as cascade_mod
from service.detection import preprocess as pp
from service.detection.cascade import Cascade, boundaries
from service.detection.detector import Detector, prepare
from service.detection.models import load_ensemble
from tests.support.paths import REPO, require_shared_data, sample_images

SOURCES = ("celebrity-press", "snapshots", "london-canada", "utkface", "tpdne-unsplash",
           "dfdc-faces", "sdfd-sd21", "gan-faces-extra")


@pytest.fixture(scope="module")
def ensemble():
    return load_ensemble(REPO / "models", "cpu", 1)


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for s in SOURCES for p in sample_images(4, source=s)]


def make_detector(ensemble) -> Detector:
    return Detector(ensemble, max_batch=16, max_wait_ms=2, max_image_pixels=40_000_000)


def all_views(detector: Detector, data: bytes):
    """(prep, (faces, views, members) logits) with every view scored."""
    prep = prepare(data, detector.spec, detector.max_image_pixels, detector.finder)
    k = detector.views_per_face
    logits = detector.run_models(prep.x)[0] if prep.face_found else np.zeros((0, 3))
    return prep, logits.reshape(len(prep.boxes), k, -1)


async def test_the_service_follows_the_shipped_cascade(ensemble, photos):
    cascade = ensemble.cascade
    assert cascade is not None, "models/ensemble.json ships a cascade"
    card = json.loads((REPO / "models" / "ensemble.json").read_text())["cascade"]
    assert cascade.margin == card["margin_logit"] > 0
    detector = make_detector(ensemble)
    detector.start()
    try:
        kinds = set()
        for data in photos:
            result, grids, _ = await detector.analyze(data)
            prep, logits = all_views(detector, data)
            assert len(result["faces"]) == len(logits) == len(grids)
            for face, lo, small, grid in zip(result["faces"], logits, prep.too_small, grids):
                first = cascade.first_logit(lo[cascade.first_view])
                near = bool(cascade.needs_all_views(first)) and not small
                if near:  # judged as without a cascade: the ensemble on every view's mean
                    want = pp.sigmoid(ensemble.combine(lo.mean(0)))
                else:  # far from every boundary: the first view alone
                    want = pp.sigmoid(first)
                    assert all(abs(first - e) >= cascade.margin for e in cascade.edges) or small
                assert face["views"] == (detector.views_per_face if near else 1)
                assert face["score"] == pytest.approx(float(want), abs=2e-4)
                # a detector outside the first stage runs only on the faces sent on
                ran = [face["models"][m.name] is not None for m in ensemble.members]
                assert ran == [near or on for on in cascade.first_mask]
                if not near:  # its heatmap is in the first stage's logit units
                    mean = float(grid.astype(np.float32).mean())
                    assert float(pp.sigmoid(mean)) == pytest.approx(face["score"], abs=1e-3)
                kinds.add(near)
        assert kinds == {True, False}, "the sample has faces of both kinds"
        assert not cascade.first_mask.all(), "the shipped first stage skips a detector"
    finally:
        await detector.stop()


async def test_a_wide_margin_scores_every_view_as_without_a_cascade(ensemble, photos):
    wide = dataclasses.replace(ensemble, cascade=dataclasses.replace(ensemble.cascade,
                                                                       margin=1e9))
    none = dataclasses.replace(ensemble, cascade=None)
    answers = []
    for ens in (wide, none):
        detector = make_detector(ens)
        detector.start()
        try:
            answers.append([await detector.analyze(d) for d in photos[::4]])
        finally:
            await detector.stop()
    for (a, ga, _), (b, gb, _) in zip(*answers):
        assert [f["views"] for f in a["faces"]] == [f["views"] for f in b["faces"]]
        assert all(f["views"] == 3 for f in a["faces"])
        assert [f["score"] for f in a["faces"]] == [f["score"] for f in b["faces"]]
        assert np.array_equal(ga, gb)


def test_score_many_matches_one_image_at_a_time(ensemble, photos):
    """The benchmarks' path (`score_many`, the rounds of several images at once) gives every
    image the rows and logits that scoring it alone gives."""
    detector = make_detector(ensemble)
    preps = [prepare(d, detector.spec, detector.max_image_pixels, detector.finder)
             for d in photos[:12]]
    together = detector.score_many(preps)
    for p, (lo, *_) in zip(preps, together):
        [(alone, *_)] = detector.score_many([p])
        if lo is None:
            assert alone is None and not p.face_found
            continue
        assert np.array_equal(np.isnan(lo), np.isnan(alone))
        assert np.allclose(lo, alone, atol=1e-3, equal_nan=True)
    detector.prepare_pool.shutdown()
    detector.infer_pool.shutdown()


def test_the_margin_is_the_smallest_that_keeps_the_val_verdicts():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 2, n)
    src = np.where(y == 1, "fake", np.where(rng.random(n) < 0.5, "a", "b"))
    full = rng.normal(np.where(y == 1, 1.0, -1.0), 1.2)
    first = np.stack([full + rng.normal(0, 0.4, n), full + rng.normal(0, 0.4, n)], 1)
    t, band = 0.8, (0.2, 0.8)
    c = cascade_mod.choose(first, full, y, src, t, band, 0.025, ["a", "b"])
    assert c.edges == boundaries(t, band)
    fig = cascade_mod.figures(c, first, full, y)
    assert fig["verdict_agreement"] >= cascade_mod.MIN_AGREEMENT
    assert 0 < fig["all_views_share"] < 1
    smaller = dataclasses.replace(c, margin=round(c.margin - 0.05, 2))
    assert cascade_mod.figures(smaller, first, full, y)["verdict_agreement"] < \
        cascade_mod.MIN_AGREEMENT
    # only faces near a boundary are scored on every view
    far = np.array([c.edges[0] - c.margin - 0.01, c.edges[1] + c.margin + 0.01,
                    (c.edges[0] + c.edges[1]) / 2])
    near = np.array([e + d for e in c.edges for d in (-0.99 * c.margin, 0.99 * c.margin)])
    assert not Cascade.needs_all_views(c, far).any() or c.margin > (c.edges[1] - c.edges[0]) / 2
    assert Cascade.needs_all_views(c, near).all()


def test_the_first_stage_is_the_cheapest_that_keeps_the_verdicts():
    """Three members: two informative and cheap, one expensive that adds nothing to the first
    view. The expensive one is left out of the first stage, and the choice is the candidate with
    the least expected CPU per face."""
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.integers(0, 2, n)
    src = np.where(y == 1, "fake", np.where(rng.random(n) < 0.5, "a", "b"))
    full = rng.normal(np.where(y == 1, 1.0, -1.0), 1.2)
    first = np.stack([full + rng.normal(0, 0.4, n), full + rng.normal(0, 0.4, n),
                      rng.normal(0, 1.0, n)], 1)
    names, costs = ["a", "b", "slow"], [1.0, 1.0, 5.0]
    c, candidates = cascade_mod.choose_stage(first, full, y, src, 0.8, (0.2, 0.8), 0.025, names,
                                             costs, 3)
    assert tuple(c.first_mask) == (True, True, False) and c.weights[2] == 0.0
    kept = min((v["cpu_ms_per_face"], k) for k, v in candidates.items() if v)[1]
    assert kept == "a+b"
    share = candidates["a+b"]["all_views_share"]
    # a and b score every view of the faces sent on; slow scores those faces' three views only
    assert candidates["a+b"]["cpu_ms_per_face"] == pytest.approx(2 + share * (2 * 2 + 3 * 5))
    # the card names the first stage, and the service reads it back as chosen
    card = cascade_mod.card(c, names, {}, costs, candidates)
    assert card["first_members"] == ["a", "b"] and set(card["weights"]) == {"a", "b"}
    back = Cascade.from_card(card, names, 0.8, (0.2, 0.8))
    assert back == c
    # a member outside the first stage cannot sway the first score, even unscored (NaN)
    z = first[:5].copy()
    z[:, 2] = np.nan
    assert np.allclose(c.first_logit(z), c.first_logit(first[:5]))
    with pytest.raises(ValueError):
        Cascade.from_card({**card, "first_members": ["a"]}, names, 0.8, (0.2, 0.8))


def test_the_shipped_cascade_keeps_the_verdicts_it_was_chosen_for():
    ens = json.loads((REPO / "models" / "ensemble.json").read_text())
    m = ens["cascade"]["metrics"]
    assert m["val"]["verdict_agreement"] >= cascade_mod.MIN_AGREEMENT
    assert m["test"]["verdict_agreement"] >= 0.99
    assert m["test"]["reals_called_fake_served"] <= 0.05
    # the served figures are the cascade's; the all-views ones stay beside them
    assert ens["metrics"]["test"]["fpr"] == pytest.approx(m["test"]["reals_called_fake_served"],
                                                          abs=1e-4)
    assert "test_all_views" in ens["metrics"]
    # the first stage is the cheapest candidate whose margin keeps the verdicts
    kept = "+".join(ens["cascade"]["first_members"])
    cands = {k: v for k, v in ens["cascade"]["candidates"].items() if v}
    assert kept == min(cands, key=lambda k: cands[k]["cpu_ms_per_face"])
    assert cands[kept]["margin_logit"] == ens["cascade"]["margin_logit"]
    assert cands[kept]["all_views_share"] == pytest.approx(m["val"]["all_views_share"], abs=1e-4)


def test_cascade_ab_compares_two_cascades_on_the_same_images(capsys):
    """`bench.cascade_ab` against the shipped cascade itself (HEAD's): every verdict is the
    same and both are timed each round."""
    require_shared_data()
    from bench import cascade_ab

    cascade_ab.main(["--other", "HEAD", "--rounds", "2", "--per-source", "1"])
    out = capsys.readouterr().out
    assert "8 images" in out and "same verdict on 100.0% of the faces" in out
    assert out.count(", ") >= 4  # two rounds for each side, and their ratios
