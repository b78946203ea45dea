"""Draws the extension's toolbar icons (icons/icon{16,32,48,128}.png): a face outline and a tick.

Run from the repository root: ``.venv/bin/python extension/tools/make_icons.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ICONS = Path(__file__).resolve().parents[1] / "icons"
BIG = 512


def draw() -> np.ndarray:
    img = np.zeros((BIG, BIG, 4), np.uint8)
    blue = (216, 78, 29, 255)  # BGRA for #1d4ed8
    r = 96
    cv2.rectangle(img, (r, 0), (BIG - r, BIG), blue, -1)
    cv2.rectangle(img, (0, r), (BIG, BIG - r), blue, -1)
    for cx, cy in ((r, r), (BIG - r, r), (r, BIG - r), (BIG - r, BIG - r)):
        cv2.circle(img, (cx, cy), r, blue, -1, cv2.LINE_AA)
    white = (255, 255, 255, 255)
    cv2.ellipse(img, (230, 240), (130, 160), 0, 0, 360, white, 34, cv2.LINE_AA)
    green = (74, 222, 128, 255)  # #4ade80
    tick = np.array([[300, 360], [360, 420], [470, 290]], np.int32)
    cv2.polylines(img, [tick], False, (216, 78, 29, 255), 110, cv2.LINE_AA)
    cv2.polylines(img, [tick], False, green, 56, cv2.LINE_AA)
    return img


def main() -> None:
    ICONS.mkdir(exist_ok=True)
    big = draw()
    for size in (16, 32, 48, 128):
        small = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ICONS / f"icon{size}.png"), small)


if __name__ == "__main__":
    main()
