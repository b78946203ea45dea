"""Video bytes to sampled frames, with PyAV (FFmpeg's libraries, bundled in PyAV's wheels: no
system FFmpeg is needed or used).

Only MP4, MOV and WebM are read, recognised by their magic bytes, and the demuxer is named
explicitly (never FFmpeg's guess): a playlist format such as HLS could otherwise make FFmpeg
open the addresses it lists. Everything here blocks: run it in the video pool.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np

from service.detection import preprocess as pp
from service.video.sampling import Plan

#: what a file format is read with (PyAV demuxer names) and its MIME type
DEMUXERS = {"mp4": "mp4", "mov": "mov", "webm": "matroska"}
MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
#: frames per second beyond which a stream's declared rate is absurd
MAX_FPS = 240.0
#: packets read to find the first picture before the file is called undecodable
PROBE_PACKETS = 600
#: ISO-BMFF brands of still images (HEIF, AVIF): not videos
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
#: side of the small JPEG kept for each sampled frame (the timeline strips)
SMALL_SIDE = 160


class VideoError(ValueError):
    """The bytes are not a video this service reads, or break a limit; ``code`` is the API's."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def sniff_video(data: bytes) -> str | None:
    """'mp4', 'mov' or 'webm' from the magic bytes, else None."""
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM (and Matroska, read by the same demuxer)
        return "webm"
    box = data[4:8]
    if box == b"ftyp":
        brand = data[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "mov" if brand == b"qt  " else "mp4"
    if box in _QUICKTIME_ATOMS and len(data) >= 16:
        return "mov"
    return None


@dataclass(frozen=True)
class Limits:
    max_duration_s: float
    max_pixels: int
    max_side: int


@dataclass
class VideoInfo:
    format: str
    codec: str
    width: int
    height: int
    duration_s: float | None
    fps: float | None


def _open(data: bytes, fmt: str):
    try:
        return av.open(io.BytesIO(data), mode="r", format=DEMUXERS[fmt], metadata_errors="ignore")
    except Exception as e:  # FFmpegError, and whatever a broken header makes the wrapper raise
        raise VideoError("bad_video", f"the {fmt.upper()} container cannot be read: {_short(e)}") from e


def _short(e: Exception) -> str:
    text = str(e) or e.__class__.__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _check_size(w: int, h: int, limits: Limits) -> None:
    if w <= 0 or h <= 0:
        raise VideoError("bad_video", "the video stream declares no picture size")
    if w * h > limits.max_pixels or max(w, h) > limits.max_side:
        raise VideoError("video_resolution",
                         f"the video is {w}x{h}: more than the limit of {limits.max_pixels} pixels"
                         f" or {limits.max_side} on a side")


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def probe(data: bytes, fmt: str, limits: Limits) -> VideoInfo:
    """Read the header and decode the first picture; refuse what breaks a limit. Quick: the
    rest of the file is not read."""
    if not data:
        raise VideoError("empty_body", "the video is empty")
    with _open(data, fmt) as container:
        if not container.streams.video:
            raise VideoError("bad_video", "the file holds no video stream (audio only?)")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        _check_size(ctx.width, ctx.height, limits)
        duration = _duration(container, stream)
        if duration is not None and (not math.isfinite(duration) or duration < 0):
            raise VideoError("bad_video", "the video declares an impossible duration")
        if duration is not None and duration > limits.max_duration_s:
            raise VideoError("video_too_long", f"the video lasts {duration:.1f} s: more than the"
                             f" limit of {limits.max_duration_s:g} s")
        fps = float(stream.average_rate) if stream.average_rate else None
        if fps is not None and fps > MAX_FPS:
            raise VideoError("too_many_frames",
                             f"the video declares {fps:.0f} frames per second (at most {MAX_FPS:g})")
        if stream.frames and stream.frames > limits.max_duration_s * MAX_FPS:
            raise VideoError("too_many_frames", f"the video declares {stream.frames} frames")
        try:
            first = _first_picture(container, stream)
        except VideoError:
            raise
        except Exception as e:
            raise VideoError("bad_video", f"the video cannot be decoded: {_short(e)}") from e
        if first is None:
            raise VideoError("bad_video", "no picture in the video can be decoded")
        _check_size(first.width, first.height, limits)
        return VideoInfo(fmt, stream.codec_context.name, first.width, first.height, duration, fps)


def _first_picture(container, stream):
    for n, packet in enumerate(container.demux(stream)):
        if n > PROBE_PACKETS:
            return None
        for frame in packet.decode():
            return frame
    return None


def _bgr(frame) -> np.ndarray:
    return frame.to_ndarray(format="bgr24")


def video_frames(data: bytes, fmt: str, plan: Plan, limits: Limits
                 ) -> Iterator[tuple[int, float, np.ndarray]]:
    """The sampled frames, in order: (sample index, time in s from the first picture, BGR).

    Every picture is decoded (inter-frame codecs need them) but only the sampled ones are
    converted. Sample k takes the first picture at or after ``plan.time(k)``, so a gap in the
    video skips the samples it covers. A picture larger than the limits, or more pictures than
    the declared duration can hold, ends the job with an error.
    """
    max_pictures = int(limits.max_duration_s * MAX_FPS)
    with _open(data, fmt) as container:
        if not container.streams.video:
            raise VideoError("bad_video", "the file holds no video stream (audio only?)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t0 = None
        k, seen, decoded = 0, 0, 0
        half = 0.5 / float(stream.average_rate) if stream.average_rate else 0.0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > max_pictures:
                    raise VideoError("too_many_frames", "the video holds more pictures than its"
                                     " duration allows")
                t = frame.time
                if t is None:
                    t = (decoded - 1) / float(stream.average_rate or 25)
                if t0 is None:
                    t0 = t
                t -= t0
                if t > limits.max_duration_s:
                    raise VideoError("video_too_long", "the video runs past the duration limit")
                if k >= plan.count or t > plan.span_s:
                    break
                if t + half < plan.time(k):
                    continue
                _check_size(frame.width, frame.height, limits)
                yield seen, round(t, 3), _bgr(frame)
                seen += 1
                while k < plan.count and plan.time(k) <= t + half:
                    k += 1
        except VideoError:
            raise
        except Exception as e:  # a corrupt packet deep in the file
            if seen == 0:
                raise VideoError("bad_video", f"the video cannot be decoded: {_short(e)}") from e
            # the sampled frames so far stand; the rest of the file is unreadable


def still_frames(frames: list[bytes], fps: float, max_pixels: int
                 ) -> Iterator[tuple[int, float, np.ndarray]]:
    """A captured frame sequence (JPEG/PNG stills at ``fps``), decoded one by one."""
    for i, data in enumerate(frames):
        try:
            image = pp.decode_image(data, max_pixels)
        except pp.ImageError as e:
            raise VideoError("bad_frame", f"frame {i}: {e.message}") from e
        yield i, round(i / fps, 3), image


def small_jpeg(image: np.ndarray, side: int = SMALL_SIDE) -> bytes:
    """A small JPEG of a frame (the timeline strip's thumbnail)."""
    ok, buf = cv2.imencode(".jpg", pp.shrink(image, side), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""
