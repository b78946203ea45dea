"""Realcheck: deepfake-face detection service."""

__version__ = "0.1.0"
