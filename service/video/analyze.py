"""A video's sampled frames through the image face path, linked into tracks, combined.

Each sampled frame goes through the same steps as an image (`detector.prepare_image`: the face
finder, alignment and views; then the detectors through the shared `MicroBatcher`, so a video's
faces are scored in the same micro-batches as the images checked meanwhile; then
`Detector.summarize` for each face's score). Decoding and face finding run in the video pool;
the next frame is decoded while the current one is scored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from service.detection.detector import COLOURLESS_NOTE, Detector, prepare_image
from service.detection.preprocess import shrink_fast
from service.pdq.hashing import HASH_SIDE, Fingerprint, fingerprint
from service.video import combine, tracks
from service.video.decode import small_jpeg


@dataclass(frozen=True)
class Rules:
    """How tracks are judged (settings ``video_*``)."""

    trim: float = 0.1
    min_frames: int = 3
    max_disagreement: float = 0.34


@dataclass
class Frame:
    index: int
    t: float
    width: int
    height: int
    faces: list[dict]
    grids: np.ndarray | None  # one activation grid per face
    thumbnail: bytes | None  # the detector's 640-px JPEG (kept while a track may need it)
    small: bytes  # the timeline's thumbnail
    pdq: Fingerprint | None
    colourless: bool = False  # black and white, with a face (`preprocess.colourless`)


@dataclass
class Analysis:
    result: dict
    frames: list[Frame]
    decisive: list[Frame | None] = field(default_factory=list)  # per track
    grids: list[np.ndarray | None] = field(default_factory=list)  # per track, decisive face


class _Source:
    """The frame iterator, stepped and closed under one lock (steps run in pool threads)."""

    def __init__(self, frames: Iterator):
        self.frames = frames
        self.lock = threading.Lock()

    def step(self, detector: Detector):
        with self.lock:
            try:
                index, t, image = next(self.frames)
            except StopIteration:
                return None
            prep = prepare_image(image, detector.spec, detector.finder)
            small = small_jpeg(image)
            try:  # on the frame shrunk as PDQ shrinks it (the same hash, a fifth of the work)
                fp = fingerprint(shrink_fast(image, HASH_SIDE), with_windows=False)
            except Exception:  # a hash is evidence beside the verdict, never its blocker
                fp = None
            return index, t, prep, small, fp

    def close(self) -> None:
        with self.lock:
            close = getattr(self.frames, "close", None)
            if close is not None:
                close()


async def score_frames(frames: Iterator, detector: Detector, executor: Executor,
                       on_frame: Callable[[int], Awaitable[None]]) -> list[Frame]:
    """Every sampled frame's faces and scores. ``on_frame(done)`` after each (progress; it may
    raise to stop the job)."""
    loop = asyncio.get_running_loop()
    source = _Source(frames)
    out: list[Frame] = []
    pending = loop.run_in_executor(executor, source.step, detector)
    try:
        while True:
            got = await pending
            if got is None:
                break
            pending = loop.run_in_executor(executor, source.step, detector)
            index, t, prep, small, fp = got
            faces, grids, thumb = [], None, None
            if prep.face_found:
                summary, grids, thumb = detector.summarize(prep, *await detector.score(prep))
                faces = summary["faces"]
            out.append(Frame(index, t, prep.width, prep.height, faces, grids, thumb, small, fp,
                             prep.colourless))
            await on_frame(len(out))
    finally:
        # The frame being decoded finishes in its thread; the decoder is closed after it.
        def closed(f):
            if not f.cancelled():
                f.exception()
            executor.submit(source.close)
        pending.add_done_callback(closed)
    return out


def _public_entry(e: dict) -> dict:
    return {"t": e["t"], "frame_index": e["frame_index"], "score": e["score"],
            "box": e["box"], "too_small": e["too_small"], "cut_off": bool(e.get("cut_off"))}


def assemble(frames: list[Frame], detector: Detector, rules: Rules, meta: dict) -> Analysis:
    """The video's result (the shape of an image's, plus ``media`` and ``video``)."""
    ens = detector.ensemble
    linked = tracks.link([(f.index, f.t, [{**face, "slot": i} for i, face in enumerate(f.faces)])
                          for f in frames])
    by_index = {f.index: f for f in frames}
    track_out, faces, decisive_frames, decisive_grids = [], [], [], []
    for tr in linked:
        judged = [e for e in tr.entries if not (e["too_small"] or e.get("cut_off"))]
        verdict = combine.combine_track(
            [e["score"] for e in judged], threshold=ens.threshold, band=ens.band,
            trim=rules.trim, min_frames=rules.min_frames, max_disagreement=rules.max_disagreement,
            unfamiliar=[e.get("unfamiliar") for e in judged],
            confirmed=[e.get("confirmed") for e in judged],
            gate_holds=ens.gate.holds if ens.gate else ())
        pick = max(judged or tr.entries, key=lambda e: e["score"])
        frame = by_index[pick["frame_index"]]
        track_out.append({
            "id": tr.id, "verdict": verdict["verdict"], "score": verdict["score"],
            "label": verdict["label"], "confidence": verdict["confidence"],
            "start_s": tr.entries[0]["t"], "end_s": tr.entries[-1]["t"],
            "frames_seen": len(tr.entries), "frames_judged": len(judged),
            "too_short": verdict["too_short"], "consistent": verdict["consistent"],
            "disagreement": verdict["disagreement"], "note": verdict["note"],
            "decisive": {"t": pick["t"], "frame_index": pick["frame_index"],
                         "score": pick["score"]},
            "timeline": [_public_entry(e) for e in tr.entries],
        })
        face = {k: pick[k] for k in ("box", "region", "quad", "models", "too_small")}
        for key in ("cut_off", "unfamiliar", "confirmed"):
            if key in pick:
                face[key] = pick[key]
        face.update(score=verdict["score"], verdict=verdict["verdict"], label=verdict["label"],
                    confidence=verdict["confidence"], track=tr.id, t=pick["t"],
                    frame_index=pick["frame_index"], frame_score=pick["score"])
        if verdict["note"]:
            face["note"] = verdict["note"]
        faces.append(face)
        decisive_frames.append(frame)
        decisive_grids.append(frame.grids[pick["slot"]] if frame.grids is not None else None)
    top = combine.most_fake(track_out)
    if top is None:
        head = {"verdict": "no_face", "label": None, "confidence": None, "score": None}
        models = {m.name: {"score": None, "trained": m.trained} for m in ens.members}
    else:
        t = track_out[top]
        head = {k: t[k] for k in ("verdict", "label", "confidence", "score")}
        models = {m.name: {"score": faces[top]["models"].get(m.name), "trained": m.trained}
                  for m in ens.members}
    width = meta.get("width") or (frames[0].width if frames else 0)
    height = meta.get("height") or (frames[0].height if frames else 0)
    result = {
        **head,
        "face_found": bool(faces),
        "faces": faces,
        "decisive_face": top,
        "models": models,
        "trained": ens.trained,
        "models_version": ens.version,
        "width": width,
        "height": height,
        # The stored heatmap is the decisive track's decisive frame: its face only.
        "regions": [faces[top]["region"]] if top is not None else [],
        "quads": [faces[top]["quad"]] if top is not None else [],
        "media": "video",
        "video": {
            "source": meta["source"], "capture": meta.get("capture"), "format": meta.get("format"),
            "codec": meta.get("codec"), "duration_s": meta.get("duration_s"),
            "fps_sampled": meta["fps_sampled"], "frames_sampled": len(frames),
            "width": width, "height": height, "tracks": track_out,
            "frame_thumbnails": bool(frames),
            "rule": (f"trimmed mean of frame logits (trim {rules.trim:g} each end); uncertain if"
                     f" fewer than {rules.min_frames} judged frames or more than"
                     f" {rules.max_disagreement:.0%} of frames disagree"),
        },
    }
    if top is None:
        result["note"] = ("no face found in any sampled frame: not judged" if frames
                          else "no frame could be sampled: not judged")
    elif all(t["too_short"] for t in track_out):
        result["note"] = "every face track is too short or too small to judge"
    warnings = []
    if not ens.trained:
        warnings.append("the detectors are untrained: this verdict means nothing")
    with_faces = [f for f in frames if f.faces]
    if with_faces and all(f.colourless for f in with_faces):
        warnings.append(COLOURLESS_NOTE)
    if warnings:
        result["warning"] = "; ".join(warnings)
    return Analysis(result, frames, decisive_frames, decisive_grids)
