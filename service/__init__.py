"""Realcheck: deepfake-face detection service."""

import os as _os

from service.settings import DEFAULT_MAX_IMAGE_PIXELS as _DEFAULT_MAX_IMAGE_PIXELS

__version__ = "0.1.0"

#: the most pixels an image may declare (`preprocess.decode_image` refuses more from the header)
MAX_IMAGE_PIXELS = int(_os.environ.get("REALCHECK_MAX_IMAGE_PIXELS", _DEFAULT_MAX_IMAGE_PIXELS))
# OpenCV reads its decoders' own pixel limit once, when cv2 is first imported: set here, before
# any module of the service (or of model_export, through it) can import cv2
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
