"""Small real videos made from face photos, encoded with PyAV (the library the service decodes
with): faces that move across the picture, appear and disappear."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

#: container and codec of each kind the service reads
KINDS = {"mp4": ("mp4", "libx264"), "mov": ("mov", "libx264"), "webm": ("webm", "libvpx"),
         "webm-vp9": ("webm", "libvpx-vp9")}

#: quick, good-quality settings (libvpx's defaults take seconds for a few frames)
OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast"},
           "libvpx": {"b:v": "2M", "deadline": "realtime", "cpu-used": "16", "threads": "1"},
           "libvpx-vp9": {"b:v": "2M", "deadline": "realtime", "cpu-used": "8", "threads": "1"}}


@dataclass
class Appearance:
    """One face on screen from ``start`` to ``end`` seconds, gliding from ``at`` to ``to``
    (top-left corners, pixels) at ``side`` pixels."""

    face: np.ndarray
    start: float
    end: float
    at: tuple[int, int]
    to: tuple[int, int]
    side: int = 140

    def corner(self, t: float) -> tuple[int, int]:
        f = 0.0 if self.end <= self.start else (t - self.start) / (self.end - self.start)
        return (round(self.at[0] + (self.to[0] - self.at[0]) * f),
                round(self.at[1] + (self.to[1] - self.at[1]) * f))


def frame_at(t: float, faces: list[Appearance], size=(480, 320)) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    canvas = np.stack([90 + 40 * xx / w, 110 + 30 * yy / h, np.full_like(xx, 120.0)], -1)
    canvas = canvas.astype(np.uint8)
    for a in faces:
        if a.start <= t < a.end:
            x, y = a.corner(t)
            face = cv2.resize(a.face, (a.side, a.side), interpolation=cv2.INTER_AREA)
            # the part on screen (a face may glide off the frame's edge)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + a.side, w), min(y + a.side, h)
            if x0 < x1 and y0 < y1:
                canvas[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas


def encode(faces: list[Appearance], *, kind: str = "mp4", seconds: float = 3.0, fps: int = 10,
           size=(480, 320), audio: bool = False, grey: bool = False) -> bytes:
    """The video as bytes (``kind``: mp4, mov, webm, webm-vp9; ``grey``: black and white)."""
    fmt, codec = KINDS[kind]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = OPTIONS[codec]
        for i in range(round(seconds * fps)):
            image = frame_at(i / fps, faces, size)
            if grey:
                image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def audio_only(seconds: float = 1.0, kind: str = "mp4") -> bytes:
    """An MP4 (M4A-like) holding one AAC audio stream and no picture."""
    buf = io.BytesIO()
    rate = 16000
    with av.open(buf, mode="w", format=KINDS[kind][0]) as out:
        stream = out.add_stream("aac", rate=rate)
        samples = np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(rate * seconds)))
        pcm = (samples * 0.3).astype(np.float32)[None, :]
        step = 1024
        for start in range(0, pcm.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start:start + step]),
                                               format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()
