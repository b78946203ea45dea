"""The heatmap PNG: each face's activation map laid over the image's thumbnail."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np

from service.detection import preprocess as pp


def render_heatmap(thumbnail_jpeg: bytes, width: int, height: int, regions, grids) -> bytes:
    """PNG of the thumbnail, dimmed, with each face region coloured by its activation map.

    The map is scaled within each face (red = the areas that pushed the score most towards
    fake, blue = least), so it shows where the detectors looked even when the whole face is
    confidently fake or real; the face's score itself is in the check's answer.
    """
    image = pp.decode_image(thumbnail_jpeg)
    th, tw = image.shape[:2]
    sx, sy = tw / max(1, width), th / max(1, height)
    out = (image.astype(np.float32) * 0.55).astype(np.uint8)
    for (x0, y0, x1, y1), grid in zip(regions, grids):
        a0, b0 = int(x0 * sx), int(y0 * sy)
        a1, b1 = max(a0 + 1, int(round(x1 * sx))), max(b0 + 1, int(round(y1 * sy)))
        cam = cv2.resize(np.asarray(grid, np.float32), (a1 - a0, b1 - b0),
                         interpolation=cv2.INTER_CUBIC)
        lo, hi = float(cam.min()), float(cam.max())
        rel = (cam - lo) / (hi - lo) if hi - lo > 1e-6 else np.full_like(cam, 0.5)
        colour = cv2.applyColorMap((rel * 255).astype(np.uint8), cv2.COLORMAP_JET)
        patch = image[b0:b1, a0:a1].astype(np.float32)
        out[b0:b1, a0:a1] = (0.5 * patch + 0.5 * colour[: b1 - b0, : a1 - a0]).astype(np.uint8)
        cv2.rectangle(out, (a0, b0), (a1 - 1, b1 - 1), (255, 255, 255), 1)
    ok, buf = cv2.imencode(".png", out)
    return buf.tobytes()


def render_stored(row) -> bytes:
    """The heatmap of a row of the ``images`` table (thumbnail, cams, width, height, result)."""
    regions = json.loads(row["result"])["regions"]
    grids = np.load(io.BytesIO(row["cams"]), allow_pickle=False)  # see detector.grids_to_bytes
    return render_heatmap(row["thumbnail"], row["width"], row["height"], regions, grids)
