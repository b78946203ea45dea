"""How the video combining rule does on videos made from held-out faces (issue 13, item 2).

No labelled videos exist here, so the clips are made from the **test split** of
``../shared/data`` (faces the detectors never trained on): each clip is one face photo moving
and zooming over a background for 4 s at 10 frames/s, H.264-encoded at CRF 28, with what real
footage does to a face between samples: a blurred frame (motion), a darker one, and a hand
(a skin-coloured block) over part of the face. The clip is then checked by the service's own
pipeline in-process (PyAV decoding, the face finder, the detectors, `service.video.tracks` and
`service.video.combine`): the same code as a video check, without HTTP.

Each clip's main track is then scored by several rules from the same per-frame scores: the
service's trimmed mean of logits, a plain mean of probabilities, the median, the most fake frame
(max), and one frame (the first sampled: what checking a thumbnail would give). Reported per
rule: AUC over the clips, accuracy at the model card's threshold, and how many clips the
service's rule calls uncertain.

    .venv/bin/python -m bench.video_rule [--per-label 20] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from fractions import Fraction

import av
import cv2
import numpy as np

from bench.images import SHARED_DATA
from bench.video_bench import manifest
from service.detection.detector import Detector
from service.detection.faces import FaceFinder
from service.detection.models import load_ensemble
from service.settings import Settings
from service.video import sampling
from service.video.analyze import Rules, assemble, score_frames
from service.video.decode import Limits, probe, video_frames

SOURCES = {"real": ("tpdne-unsplash", "dfdc-faces", "celebrity-press", "london-canada"),
           "fake": ("tpdne-unsplash", "dfdc-faces", "sdfd-sd21", "gan-faces-extra")}


def pick(label: str, n: int) -> list:
    """``n`` test-split photos of ``label``, taken in turn from each source (deterministic)."""
    root = SHARED_DATA
    by_source = {s: [r for r in manifest() if r["label"] == label and r["source"] == s]
                 for s in SOURCES[label]}
    out, i = [], 0
    while len(out) < n and any(len(v) > i for v in by_source.values()):
        for rows in by_source.values():
            if len(rows) > i and len(out) < n:
                out.append(root / rows[i]["path"])
        i += 1
    return out


def make_clip(photo: np.ndarray, seed: int, seconds: float = 4.0, fps: int = 10,
              size=(480, 360)) -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([60 + 80 * xx / w, 80 + 60 * yy / h, np.full_like(xx, 100.0)], -1).astype(np.uint8)
    n = round(seconds * fps)
    odd = {int(k): kind for k, kind in zip(rng.choice(np.arange(5, n), 3, replace=False),
                                           ("blur", "dark", "hand"))}
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "28", "preset": "veryfast"}
        for i in range(n):
            f = i / max(1, n - 1)
            side = round(190 + 50 * f)
            x, y = round(30 + 180 * f), round(40 + 40 * np.sin(3 * f))
            canvas = bg.copy()
            canvas[y:y + side, x:x + side] = cv2.resize(photo, (side, side),
                                                        interpolation=cv2.INTER_AREA)
            kind = odd.get(i)
            if kind == "blur":
                canvas = cv2.blur(canvas, (15, 1))
            elif kind == "dark":
                canvas = (canvas * 0.45).astype(np.uint8)
            elif kind == "hand":
                canvas[y + side // 2:y + side, x + side // 4:x + 3 * side // 4] = (120, 150, 200)
            frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / max(1, len(pos) * len(neg))


RULES = {
    "trimmed mean of logits (service)": None,  # the service's own track score
    "mean of probabilities": statistics.fmean,
    "median": statistics.median,
    "most fake frame (max)": max,
    "first sampled frame only": lambda s: s[0],
}


async def run(per_label: int) -> dict:
    s = Settings()
    ens = load_ensemble(s.models_dir, "cpu", 0)
    detector = Detector(ens, max_batch=16, max_wait_ms=5, max_image_pixels=s.max_image_pixels,
                        finder=FaceFinder(s.models_dir))
    detector.start()
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    limits = Limits(600.0, 3840 * 2160, 4096)
    rules = Rules(s.video_trim, s.video_min_track_frames, s.video_max_disagreement)
    clips = []
    try:
        for label in ("real", "fake"):
            for k, path in enumerate(pick(label, per_label)):
                data = make_clip(cv2.imread(str(path)), seed=k + (1000 if label == "fake" else 0))
                info = probe(data, "mp4", limits)
                plan = sampling.plan(info.duration_s, s.video_sample_rate, s.video_max_frames,
                                     s.video_sample_seconds)

                async def nothing(_):
                    return None

                frames = await score_frames(video_frames(data, "mp4", plan, limits), detector,
                                            pool, nothing)
                result = assemble(frames, detector, rules, {"source": "file", "fps_sampled": 2.0})
                tracks = result.result["video"]["tracks"]
                if not tracks:
                    clips.append({"label": label, "path": str(path), "track": None})
                    continue
                main = max(tracks, key=lambda t: t["frames_seen"])
                clips.append({"label": label, "path": str(path), "track": main,
                              "frame_scores": [p["score"] for p in main["timeline"]
                                               if not p["too_small"]]})
                print(f"{label} {path.name}: {main['verdict']} {main['score']}"
                      f" frames {len(main['timeline'])}", file=sys.stderr)
    finally:
        await detector.stop()
        pool.shutdown()
    found = [c for c in clips if c["track"] is not None and c["frame_scores"]]
    table = {}
    for name, fn in RULES.items():
        scores = [(c["label"], c["track"]["score"] if fn is None else fn(c["frame_scores"]))
                  for c in found]
        pos = [v for lab, v in scores if lab == "fake"]
        neg = [v for lab, v in scores if lab == "real"]
        correct = sum((v >= ens.threshold) == (lab == "fake") for lab, v in scores)
        table[name] = {"auc": round(auc(pos, neg), 3),
                       "accuracy": round(correct / max(1, len(scores)), 3)}
    verdicts = [c["track"]["verdict"] for c in found]
    return {"clips": len(clips), "with_a_face": len(found), "threshold": ens.threshold,
            "band": list(ens.band), "models_version": ens.version, "rules": table,
            "service_verdicts": {v: verdicts.count(v) for v in ("real", "fake", "uncertain")},
            "service_correct_when_sure": sum(
                (c["track"]["verdict"] == c["label"]) for c in found
                if c["track"]["verdict"] != "uncertain"),
            "service_sure": sum(c["track"]["verdict"] != "uncertain" for c in found)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-label", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    began = time.perf_counter()
    out = asyncio.run(run(args.per_label))
    out["wall_s"] = round(time.perf_counter() - began, 1)
    print(f"{out['clips']} clips ({out['with_a_face']} with a face track), threshold"
          f" {out['threshold']}, models {out['models_version']}")
    print("| rule | AUC | accuracy at the threshold |")
    print("| --- | --- | --- |")
    for name, r in out["rules"].items():
        print(f"| {name} | {r['auc']:.3f} | {r['accuracy']:.1%} |")
    print(f"service verdicts: {out['service_verdicts']}; right on {out['service_correct_when_sure']}"
          f" of {out['service_sure']} it was sure of")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
