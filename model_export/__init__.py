"""Training, evaluation and export of the detectors (see docs/models.md)."""

import service  # noqa: F401  (sets OpenCV's pixel limit before any module here imports cv2)
