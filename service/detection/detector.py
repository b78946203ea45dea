"""From image bytes to a verdict: decode, find faces, score each face with the ensemble.

Blocking work (decoding, face finding, cropping) runs in a thread pool; model runs go through
the `MicroBatcher` on a single inference thread, in at most two rounds per image: the first
stage's detectors on every face's first view, then every view by every detector for the faces
whose first score is near a verdict boundary (`cascade`). An image with several faces is as fake
as its most fake face. An image where no face is found is not judged (``verdict: "no_face"``),
and a face whose aligned square is smaller than the card's ``min_face`` pixels is shown but not
judged (``too_small``, verdict ``uncertain``): the detectors were not trained to read such faces.
Nor is a face whose aligned square runs off the picture by more than the ensemble card's
``edge.max_outside`` (``cut_off``): the part outside is filled by repeating the picture's edge,
and beyond that share the scores drift with the cut (`model_export.edge`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from service.detection import preprocess as pp
from service.detection.batcher import MicroBatcher
from service.detection.faces import FaceFinder
from service.detection.models import Ensemble, ModelsError
from service.threads import named_pool

CAM_GRID = 32  # side of the stored activation-map grid per face
UNFAMILIAR_NOTE = ("unlike the faces the detectors learned from: their score is not trusted "
                   "here (UNSURE)")
UNCONFIRMED_NOTE = ("not every detector finds it fake on its own: a fake score here is not "
                    "trusted (UNSURE, not FAKE)")
COLOURLESS_NOTE = ("a black-and-white picture: every black-and-white picture the detectors "
                   "learned from was a real photo, and they catch far fewer fakes without colour, "
                   "so a REAL or UNSURE here says even less than usual")
CUT_OFF_NOTE = ("the face runs off the picture's edge: too much of what the detectors read is "
                "missing to judge it")
HELD_BACK = (UNFAMILIAR_NOTE, UNCONFIRMED_NOTE)  # verdicts answered UNSURE, and why
#: how a verdict ranks when an image's decisive face (or a video's track) is chosen, then by score
SEVERITY = {"fake": 2, "uncertain": 1, "real": 0}
THUMBNAIL_SIDE = 640


@dataclass
class Prepared:
    width: int
    height: int
    boxes: list[tuple[int, int, int, int]]
    regions: list[tuple[int, int, int, int]]  # axis-aligned bounds of each aligned square
    quads: list[list[list[float]]]  # each aligned square's corners in image pixels
    too_small: list[bool]
    x: np.ndarray  # (faces * views, 3, S, S); empty when no face was found
    thumbnail: bytes
    colourless: bool = False  # black and white (`preprocess.colourless`)
    outside: list[float] | None = None  # each aligned square's share outside the picture

    def cut_off(self, i: int, max_outside: float | None) -> bool:
        """Does face ``i``'s aligned square run off the picture by more than ``max_outside``?"""
        return (max_outside is not None and self.outside is not None
                and self.outside[i] > max_outside)

    @property
    def face_found(self) -> bool:
        return bool(self.boxes)


def make_thumbnail(image: np.ndarray) -> bytes:
    """The stored picture moderators see (and near-duplicates' faces are compared on): a JPEG
    of at most THUMBNAIL_SIDE pixels a side, shrunk by halvings (`preprocess.shrink_fast`: a
    fifth of the area filter's CPU on the bench's larger images, about one grey level apart)."""
    image = pp.shrink_fast(image, THUMBNAIL_SIDE)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def prepare(data: bytes, spec: pp.InputSpec, max_pixels: int, finder: FaceFinder,
            on_decoded: Callable[[np.ndarray], None] | None = None) -> Prepared:
    """Decode, find every face and cut its aligned views (blocking; run it in a thread).

    ``on_decoded(image)`` gets the decoded pixels, made read-only, before the faces are sought:
    work beside the detectors (the evidence step's PDQ hash) shares this one decode."""
    image = pp.decode_image(data, max_pixels)
    if on_decoded is not None:
        image.flags.writeable = False
        on_decoded(image)
    return prepare_image(image, spec, finder)


def prepare_image(image: np.ndarray, spec: pp.InputSpec, finder: FaceFinder) -> Prepared:
    """`prepare` of an image already decoded (BGR): a video's frames take this path."""
    h, w = image.shape[:2]
    found = finder.find(image)
    boxes, regions, quads, small, outside, views = [], [], [], [], [], []
    for face in found:
        aligned, frame = pp.align_face(image, face.keypoints, spec)
        quad = pp.frame_quad(frame, spec.face_size)
        x0, y0 = np.clip(quad.min(0), 0, [w, h])
        x1, y1 = np.clip(quad.max(0), 0, [w, h])
        boxes.append(face.int_box())
        regions.append((int(x0), int(y0), int(round(x1)), int(round(y1))))
        quads.append([[round(float(a), 1), round(float(b), 1)] for a, b in quad])
        small.append(pp.frame_side(frame, spec.face_size) < spec.min_face)
        outside.append(pp.outside_share(quad, w, h))
        views.append(pp.face_views(aligned, spec))
    s = spec.input_size
    x = pp.to_input(np.concatenate(views), spec) if views else np.zeros((0, 3, s, s), np.float32)
    return Prepared(w, h, boxes, regions, quads, small, x, make_thumbnail(image),
                    colourless=bool(found) and pp.colourless(image), outside=outside)


def verdict_for(p: float | None, threshold: float, band: tuple[float, float]) -> dict:
    """Verdict, label and a 0..100 confidence for the label.

    The confidence is 50 at the threshold and grows linearly to 100 at P(fake) = 1 for FAKE
    and at P(fake) = 0 for REAL: how far the score lies past the threshold towards the label,
    not a measured probability that the label is right (the extension shows it with FAKE only:
    fakes of generators the detectors never saw often score as real).
    """
    if p is None:
        return {"verdict": "no_face", "label": None, "confidence": None}
    label = "FAKE" if p >= threshold else "REAL"
    if label == "FAKE":
        conf = 50.0 + 50.0 * (p - threshold) / max(1e-9, 1.0 - threshold)
    else:
        conf = 50.0 + 50.0 * (threshold - p) / max(1e-9, threshold)
    lo, hi = band
    verdict = "uncertain" if lo <= p < hi else label.lower()
    return {"verdict": verdict, "label": label, "confidence": round(min(100.0, conf), 1)}


def face_cam(view_cams: np.ndarray, spec: pp.InputSpec, views: list[int] | None = None
             ) -> np.ndarray:
    """Views' activation maps placed back on the face square, averaged, on a CAM_GRID grid.
    ``views``: which of the spec's crops ``view_cams`` are (default: all, in order)."""
    size, s = spec.face_size, spec.input_size
    origins = pp.crop_origins(size, s, spec.crops)
    origins = origins if views is None else [origins[v] for v in views]
    acc = np.zeros((size, size), np.float32)
    cnt = np.zeros((size, size), np.float32)
    for cam, (x, y) in zip(view_cams, origins):
        acc[y:y + s, x:x + s] += cv2.resize(cam.astype(np.float32), (s, s),
                                            interpolation=cv2.INTER_LINEAR)
        cnt[y:y + s, x:x + s] += 1.0
    mean = acc / np.maximum(cnt, 1.0)
    if (cnt == 0).any():  # parts no view covered take the face's mean
        mean[cnt == 0] = float(mean[cnt > 0].mean())
    return cv2.resize(mean, (CAM_GRID, CAM_GRID), interpolation=cv2.INTER_AREA)


def _cam_shape(ensemble: Ensemble) -> tuple[int, int]:
    """The activation-map grid every member's maps are brought to: the finest of them."""
    shapes = []
    for m in ensemble.members:
        dims = next(o.shape for o in m.session.get_outputs() if o.name == m.cam_name)[1:]
        if not all(isinstance(d, int) for d in dims):  # dynamic in the file: ask the model
            s = m.spec.input_size
            dims = m.run(np.zeros((1, 3, s, s), np.float32))[1].shape[1:]
        shapes.append(tuple(int(d) for d in dims))
    return max(h for h, _ in shapes), max(w for _, w in shapes)


def _resize_maps(maps: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])


class Detector:
    """The ensemble plus its executors and batcher; `analyze` is the whole check."""

    def __init__(self, ensemble: Ensemble, *, max_batch: int, max_wait_ms: float,
                 max_image_pixels: int, prepare_workers: int = 2, finder: FaceFinder | None = None):
        specs = {m.spec for m in ensemble.members}
        if len(specs) != 1:
            raise ModelsError("all detectors of the ensemble must share one input spec")
        self.ensemble = ensemble
        self.spec = specs.pop()
        self.max_image_pixels = max_image_pixels
        self.finder = finder or FaceFinder()
        self.prepare_pool = named_pool(prepare_workers, "prepare")
        self.infer_pool = named_pool(1, "infer")
        self.batcher = MicroBatcher(self.run_models, self.infer_pool, max_batch, max_wait_ms)
        self.views_per_face = len(self.spec.crops)
        self.cam_hw = _cam_shape(ensemble)

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self.prepare_pool.shutdown(wait=True, cancel_futures=True)
        self.infer_pool.shutdown(wait=True, cancel_futures=True)

    def run_models(self, x: np.ndarray, need: np.ndarray | None = None) -> list[np.ndarray]:
        """The members on one batch: [(n, members) logits, (n, members, h, w) cams, (n,) the
        familiarity gate's distances]. ``need`` ((n, members) bool, default all): which member
        scores which row; a logit not scored is NaN and its map zeros; a distance not measured
        (no gate, or its member did not score the row) is NaN."""
        members = self.ensemble.members
        n = len(x)
        logits = np.full((n, len(members)), np.nan, np.float32)
        cams = np.zeros((n, len(members), *self.cam_hw), np.float32)
        gate = np.full(n, np.nan, np.float32)
        for j, m in enumerate(members):
            rows = np.arange(n) if need is None else np.flatnonzero(need[:, j])
            if not len(rows):
                continue
            lo, cam, dist = m.run(x if len(rows) == n else x[rows])
            logits[rows, j] = lo
            if cam.shape[1:] != self.cam_hw:
                cam = _resize_maps(cam, *self.cam_hw)
            cams[rows, j] = cam
            if dist is not None and self.ensemble.gate and self.ensemble.gate.member == j:
                gate[rows] = dist
        return [logits, cams, gate]

    # The cascade (`cascade`): which rows of ``prep.x`` each member scores, in two rounds at most.
    # A round is (rows, need): need[i, j] says whether member j scores row rows[i] (None: all).
    def first_round(self, prep: Prepared) -> tuple[np.ndarray, np.ndarray | None]:
        k, cascade = self.views_per_face, self.ensemble.cascade
        n = len(prep.boxes)
        if cascade is None:
            return np.arange(n * k), None
        mask = cascade.first_mask
        return np.arange(n) * k + cascade.first_view, None if mask.all() else np.tile(mask, (n, 1))

    def second_round(self, prep: Prepared, first_logits: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The faces whose first score lies near a verdict boundary (none without a cascade, or
        for faces too small to judge): their other views by every member, their first view by
        the members outside the first stage."""
        k, cascade = self.views_per_face, self.ensemble.cascade
        m = len(self.ensemble.members)
        rows, need = [], []
        if cascade is not None:
            near = cascade.needs_all_views(cascade.first_logit(first_logits)) & ~np.asarray(
                prep.too_small, bool)
            first = cascade.first_mask
            for i in np.flatnonzero(near):
                for v in range(k):
                    want = ~first if v == cascade.first_view else np.ones(m, bool)
                    if want.any():
                        rows.append(i * k + v)
                        need.append(want)
        return np.asarray(rows, np.int64), np.asarray(need, bool).reshape(-1, m)

    def merge(self, prep: Prepared, parts: list[tuple[np.ndarray, list[np.ndarray] | None]]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each round's scores put in place: (rows, members) logits, NaN where a member did not
        score a view, (rows, members, h, w) maps (zeros there) and (rows,) gate distances."""
        n, m = len(prep.x), len(self.ensemble.members)
        logits = np.full((n, m), np.nan, np.float32)
        cams = np.zeros((n, m, *self.cam_hw), np.float32)
        gate = np.full(n, np.nan, np.float32)
        for rows, out in parts:
            if out is None or not len(rows):
                continue
            lo, cam, dist = out
            r, j = np.nonzero(~np.isnan(lo))
            logits[rows[r], j] = lo[r, j]
            cams[rows[r], j] = cam[r, j]
            measured = ~np.isnan(dist)
            gate[rows[measured]] = dist[measured]
        return logits, cams, gate

    async def score(self, prep: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score a prepared image's faces through the batcher: (logits, cams, gate distances)
        for `summarize`."""
        rows, need = self.first_round(prep)
        parts = [(rows, await self.batcher.submit(prep.x[rows], need))]
        rows, need = self.second_round(prep, parts[0][1][0])
        if len(rows):
            parts.append((rows, await self.batcher.submit(prep.x[rows], need)))
        return self.merge(prep, parts)

    def score_many(self, preps: list[Prepared]) -> list[tuple]:
        """`score` for several prepared images at once, on the calling thread, each round one
        model run over all of them (the benchmarks' raw figures and the seed-style server)."""
        none = (np.zeros(0, np.int64), None)
        firsts = [self.first_round(p) if p.face_found else none for p in preps]
        out1 = self._run_split(preps, firsts)
        seconds = [self.second_round(p, o[0]) if p.face_found else none
                   for p, o in zip(preps, out1)]
        out2 = self._run_split(preps, seconds)
        return [self.merge(p, [(a[0], o1), (b[0], o2)]) if p.face_found else (None, None, None)
                for p, a, o1, b, o2 in zip(preps, firsts, out1, seconds, out2)]

    def _run_split(self, preps: list[Prepared], rounds: list[tuple[np.ndarray, np.ndarray | None]]
                   ) -> list[list[np.ndarray] | None]:
        """One model run over a round's rows of several images, handed back per image."""
        sizes = [len(rows) for rows, _ in rounds]
        if not any(sizes):
            return [None] * len(preps)
        x = np.concatenate([p.x[rows] for p, (rows, _) in zip(preps, rounds)])
        need = None
        if any(nd is not None for _, nd in rounds):
            m = len(self.ensemble.members)
            need = np.concatenate([np.ones((len(r), m), bool) if nd is None else nd
                                   for r, nd in rounds])
        outs = self.run_models(x, need)
        bounds = np.cumsum([0, *sizes])
        return [[o[a:b] for o in outs] for a, b in zip(bounds[:-1], bounds[1:])]

    async def analyze(self, data: bytes, on_decoded: Callable[[np.ndarray], None] | None = None
                      ) -> tuple[dict, np.ndarray, bytes]:
        """Score one image: (result, per-face activation grids, thumbnail JPEG). ``on_decoded``:
        see `prepare` (it runs in the prepare thread)."""
        loop = asyncio.get_running_loop()
        with self.batcher.preparing_one():
            prep = await loop.run_in_executor(
                self.prepare_pool, prepare, data, self.spec, self.max_image_pixels, self.finder,
                on_decoded)
        if not prep.face_found:
            return self.summarize(prep, None, None)
        return self.summarize(prep, *await self.score(prep))

    def summarize(self, prep: Prepared, logits: np.ndarray | None, cams: np.ndarray | None,
                  gate: np.ndarray | None = None):
        ens = self.ensemble
        k = self.views_per_face
        members = [m.name for m in ens.members]
        faces, grids = [], []
        for i, (box, region) in enumerate(zip(prep.boxes, prep.regions)):
            face_logits = logits[i * k:(i + 1) * k]  # (views, members), NaN: not scored
            scored = ~np.isnan(face_logits)
            views = [v for v in range(k) if scored[v].any()]
            if scored.all():  # every member on every view: the ensemble's rule
                member_logit = pp.combine_view_logits(face_logits.T)  # (members,)
                weights, bias = ens.weights, ens.bias
            else:  # the cascade's first stage on the first view, far from any verdict boundary
                member_logit = face_logits[views[0]].astype(np.float64)  # NaN: not run
                weights, bias = np.asarray(ens.cascade.weights), ens.cascade.bias
            p = float(pp.sigmoid(weights @ np.nan_to_num(member_logit, nan=0.0) + bias))
            # the heatmap in the same logit units as the score (its mean is the face's logit)
            view_cams = np.tensordot(cams[i * k + np.asarray(views)], weights,
                                     axes=([1], [0])) + bias
            grids.append(face_cam(view_cams, self.spec, views))
            per_model = {name: None if np.isnan(member_logit[j])
                         else round(float(pp.sigmoid(member_logit[j])), 4)
                         for j, name in enumerate(members)}
            face = {
                "box": list(box), "region": list(region), "quad": prep.quads[i],
                "score": round(p, 4), **verdict_for(p, ens.threshold, ens.band),
                "too_small": prep.too_small[i],
                "cut_off": prep.cut_off(i, ens.max_outside),
                "models": per_model, "views": len(views),
            }
            if ens.gate is not None:
                dist = np.nan if gate is None else float(gate[i * k + ens.gate.view])
                face["unfamiliar"] = None if np.isnan(dist) else dist > ens.gate.limit
            if ens.agreement is not None:
                face["confirmed"] = ens.agreement.confirmed(member_logit)
            if prep.too_small[i]:
                face["verdict"] = "uncertain"
                face["note"] = (f"face smaller than {self.spec.min_face} px: too small to judge")
            elif face["cut_off"]:
                face["verdict"] = "uncertain"
                face["note"] = CUT_OFF_NOTE
            elif face.get("unfamiliar") and face["verdict"] in ens.gate.holds:
                face["verdict"] = "uncertain"
                face["note"] = UNFAMILIAR_NOTE
            elif face.get("confirmed") is False and face["verdict"] == "fake":
                face["verdict"] = "uncertain"
                face["note"] = UNCONFIRMED_NOTE
            faces.append(face)
        judged = [i for i, f in enumerate(faces) if not (f["too_small"] or f["cut_off"])]
        pool = judged or list(range(len(faces)))
        # as fake as its most fake face: a face called FAKE outranks a higher score held back
        # (by the familiarity gate or the agreement rule), and a face held back (UNSURE)
        # outranks one called REAL, whatever their scores
        decisive = max(pool, key=lambda i: (SEVERITY[faces[i]["verdict"]], faces[i]["score"])
                       ) if faces else None
        if decisive is None:
            top = verdict_for(None, ens.threshold, ens.band)
            score = None
        else:
            score = faces[decisive]["score"]
            top = verdict_for(score, ens.threshold, ens.band)
            if not judged:
                top["verdict"] = "uncertain"
            elif faces[decisive].get("note") in HELD_BACK:
                top["verdict"] = "uncertain"
        result = {
            **top,
            "score": score,
            "face_found": prep.face_found,
            "faces": faces,
            "decisive_face": decisive,
            "models": {
                m.name: {"score": faces[decisive]["models"][m.name] if faces else None,
                         "trained": m.trained}
                for m in ens.members
            },
            "trained": ens.trained,
            "models_version": ens.version,
            "width": prep.width,
            "height": prep.height,
            "regions": [f["region"] for f in faces],
            "quads": [f["quad"] for f in faces],
        }
        if not prep.face_found:
            result["note"] = "no face found: not judged"
        elif not judged:
            result["note"] = ("every face is too small to judge" if all(prep.too_small) else
                              "no face can be judged: each is too small or runs off the "
                              "picture's edge")
        elif faces[decisive].get("note") in HELD_BACK:
            result["note"] = faces[decisive]["note"]
        warnings = []
        if not ens.trained:
            warnings.append("the detectors are untrained: this verdict means nothing")
        if prep.colourless:
            warnings.append(COLOURLESS_NOTE)
        if warnings:
            result["warning"] = "; ".join(warnings)
        side = CAM_GRID
        stacked = np.stack(grids) if grids else np.zeros((0, side, side), np.float32)
        return result, stacked.astype(np.float16), prep.thumbnail


def grids_to_bytes(grids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, grids, allow_pickle=False)
    return buf.getvalue()
