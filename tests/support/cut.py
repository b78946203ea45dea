"""Pictures cropped through a face: the face's aligned square (as the service cuts it) runs off
the picture's left edge by a given share."""

from __future__ import annotations

import json

import cv2
import numpy as np

from service.detection import preprocess as pp
from service.detection.faces import FaceFinder
from tests.support.paths import REPO


def cut_through_face(image: np.ndarray, share: float) -> np.ndarray:
    """``image`` with a mirrored margin (so that the whole square lies inside it first), cropped
    on the left through its largest face's aligned square, ``share`` of the square's width."""
    image = cv2.copyMakeBorder(image, 60, 60, 60, 60, cv2.BORDER_REFLECT)
    card = json.loads((REPO / "models" / "resnet.card.json").read_text())
    face = max(FaceFinder().find(image), key=lambda f: f.box[2])
    quad = pp.frame_quad(pp.face_frame(face.keypoints, pp.InputSpec.from_card(card)),
                         card["face_size"])
    x0, x1 = quad[:, 0].min(), quad[:, 0].max()
    return np.ascontiguousarray(image[:, int(x0 + share * (x1 - x0)):])
