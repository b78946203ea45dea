"""ROC and confusion-matrix PNGs drawn with OpenCV (no matplotlib needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model_export import metrics

COLORS = [(40, 40, 40), (200, 90, 30), (40, 160, 40), (30, 30, 200), (160, 40, 160), (0, 150, 200)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def roc_png(path: Path, curves: dict, title: str) -> None:
    """``curves``: label -> (y, score). Draws each ROC curve with its AUC in the legend."""
    W, H, L, B, T, R = 560, 520, 60, 50, 40, 20
    img = np.full((H, W, 3), 255, np.uint8)
    pw, ph = W - L - R, H - T - B

    def pt(fpr, tpr):
        return int(L + fpr * pw), int(T + (1 - tpr) * ph)

    for g in np.linspace(0, 1, 6):
        cv2.line(img, pt(g, 0), pt(g, 1), (230, 230, 230), 1)
        cv2.line(img, pt(0, g), pt(1, g), (230, 230, 230), 1)
        cv2.putText(img, f"{g:.1f}", (pt(g, 0)[0] - 10, H - B + 18), FONT, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{g:.1f}", (L - 32, pt(0, g)[1] + 4), FONT, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, pt(0, 1), pt(1, 0), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (170, 170, 170), 1, cv2.LINE_AA)
    for k, (label, (y, s)) in enumerate(curves.items()):
        fpr, tpr, _ = metrics.roc_curve(y, s)
        pts = np.array([pt(f, t) for f, t in zip(fpr, tpr)], np.int32)
        color = COLORS[k % len(COLORS)]
        cv2.polylines(img, [pts], False, color, 2 if k == 0 else 1, cv2.LINE_AA)
        auc = metrics.roc_auc(y, s)
        y0 = T + ph - 12 - 18 * (len(curves) - 1 - k)
        cv2.putText(
            img,
            f"{label}: AUC {auc:.3f}",
            (L + pw // 2 - 40, y0),
            FONT,
            0.45,
            color,
            1,
            cv2.LINE_AA,
        )
    cv2.putText(img, title, (L, 25), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        img,
        "false positive rate (reals called fake)",
        (L + 80, H - 12),
        FONT,
        0.45,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    cv2.putText(img, "TPR", (8, T + ph // 2), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def confusion_png(path: Path, conf: dict, title: str) -> None:
    """2x2 confusion matrix (rows: true real/fake, columns: predicted real/fake)."""
    W, H = 420, 360
    img = np.full((H, W, 3), 255, np.uint8)
    cells = [[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]]
    rows = [conf["tn"] + conf["fp"], conf["fn"] + conf["tp"]]
    x0, y0, c = 130, 70, 120
    for i in range(2):
        for j in range(2):
            frac = cells[i][j] / max(1, rows[i])
            shade = int(255 - 180 * frac)
            color = (255, shade, shade) if i == j else (shade, shade, 255)
            p0 = (x0 + j * c, y0 + i * c)
            cv2.rectangle(img, p0, (p0[0] + c, p0[1] + c), color, -1)
            cv2.rectangle(img, p0, (p0[0] + c, p0[1] + c), (0, 0, 0), 1)
            cv2.putText(img, str(cells[i][j]), (p0[0] + 30, p0[1] + 55), FONT, 0.7, (0, 0, 0), 2)
            cv2.putText(
                img, f"{100 * frac:.1f}%", (p0[0] + 32, p0[1] + 85), FONT, 0.5, (0, 0, 0), 1
            )
    cv2.putText(img, "pred real", (x0 + 20, y0 - 10), FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "pred fake", (x0 + c + 20, y0 - 10), FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "true real", (20, y0 + 65), FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "true fake", (20, y0 + c + 65), FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(img, title, (10, 30), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)
