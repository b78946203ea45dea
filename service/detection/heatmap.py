"""The heatmap PNG: each face's activation map laid over the image's thumbnail."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np

from service.detection import preprocess as pp


def _quad_of(region) -> np.ndarray:
    """A face's square as 4 corners: a stored quad, or the corners of an (x0, y0, x1, y1) box."""
    r = np.asarray(region, np.float64)
    if r.shape == (4, 2):
        return r
    x0, y0, x1, y1 = r
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def render_heatmap(thumbnail_jpeg: bytes, width: int, height: int, regions, grids) -> bytes:
    """PNG of the thumbnail, dimmed, with each face's aligned square coloured by its map.

    ``regions`` are the faces' squares, as quads (4 corners: faces are aligned, so the square
    turns with the head) or as (x0, y0, x1, y1) boxes. The map is scaled within each face
    (red = the areas that pushed the score most towards fake, blue = least), so it shows where the
    detectors looked even when the whole face is confidently fake or real; the face's score itself
    is in the check's answer.
    """
    image = pp.decode_image(thumbnail_jpeg)
    th, tw = image.shape[:2]
    sx, sy = tw / max(1, width), th / max(1, height)
    out = (image.astype(np.float32) * 0.55).astype(np.uint8)
    for region, grid in zip(regions, grids):
        quad = _quad_of(region) * [sx, sy]
        cam = np.asarray(grid, np.float32)
        lo, hi = float(cam.min()), float(cam.max())
        rel = (cam - lo) / (hi - lo) if hi - lo > 1e-6 else np.full_like(cam, 0.5)
        g = cam.shape[0]
        colour = cv2.applyColorMap((rel * 255).astype(np.uint8), cv2.COLORMAP_JET)
        src = np.float32([[0, 0], [g, 0], [g, g]])
        m = cv2.getAffineTransform(src, quad[:3].astype(np.float32))
        warped = cv2.warpAffine(colour, m, (tw, th), flags=cv2.INTER_CUBIC)
        mask = cv2.warpAffine(np.ones((g, g), np.uint8), m, (tw, th), flags=cv2.INTER_NEAREST) > 0
        blend = (0.5 * image.astype(np.float32) + 0.5 * warped).astype(np.uint8)
        out[mask] = blend[mask]
        cv2.polylines(out, [np.round(quad).astype(np.int32)], True, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".png", out)
    return buf.tobytes()


def render_stored(row) -> bytes:
    """The heatmap of a row of the ``images`` table (thumbnail, cams, width, height, result)."""
    result = json.loads(row["result"])
    regions = result.get("quads") or result.get("regions") or []
    grids = np.load(io.BytesIO(row["cams"]), allow_pickle=False)  # see detector.grids_to_bytes
    return render_heatmap(row["thumbnail"], row["width"], row["height"], regions, grids)
