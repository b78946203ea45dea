"""Unsigned provenance hints: IPTC ``DigitalSourceType`` in XMP, and software tags (EXIF, XMP,
PNG text chunks). Anyone can write or strip these, so they are reported as unverified."""

from __future__ import annotations

import re
import struct
import zlib

from service.provenance.credentials import is_ai_source_type

_XMP_PACKET = re.compile(rb"<x:xmpmeta\b.*?</x:xmpmeta>", re.S)
_SOURCE_TYPE = re.compile(r"DigitalSourceType\s*(?:=\s*[\"']|>)\s*([^\"'<\s]+)")
_XMP_SOFTWARE = re.compile(
    r"(?:xmp:CreatorTool|tiff:Software|stEvt:softwareAgent)\s*(?:=\s*\"([^\"]*)\"|>([^<]*)<)")
#: PNG text keys that image generators write (their presence is a hint by itself)
_GENERATOR_KEYS = {"parameters": "Stable Diffusion web UI parameters", "prompt": "ComfyUI prompt",
                   "workflow": "ComfyUI workflow", "invokeai_metadata": "InvokeAI metadata"}
_AI_SOFTWARE = re.compile(r"midjourney|dall[-·]?e|stable.?diffusion|firefly|imagen|novelai|"
                          r"comfyui|automatic1111|invokeai|flux|ideogram|leonardo", re.I)
MAX_TEXT = 200


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip("\x00 \t\r\n")[:MAX_TEXT]


def _exif_software(tiff: bytes) -> str | None:
    """The Software tag (0x0131) of a TIFF/EXIF block's first IFD."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack(end + "H", tiff[ifd:ifd + 2])
    for i in range(min(count, 512)):
        at = ifd + 2 + 12 * i
        if at + 12 > len(tiff):
            return None
        tag, kind, n, value = struct.unpack(end + "HHII", tiff[at:at + 12])
        if tag == 0x0131 and kind == 2:
            raw = tiff[at + 8:at + 8 + n] if n <= 4 else tiff[value:value + n]
            return _text(raw) or None
    return None


def _jpeg_exif(data: bytes) -> bytes | None:
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xD9, 0xDA):
            return None
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\x00\x00":
            return data[i + 10:i + 2 + length]
        i += 2 + length
    return None


def _png_chunks(data: bytes):
    i = 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + length]
        yield kind, body
        if kind == b"IEND":
            return
        i += 12 + length


def _png_text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    key, _, rest = body.partition(b"\x00")
    try:
        if kind == b"tEXt":
            return key.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        if kind == b"iTXt":
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\x00")
            _tkey, _, text = rest.partition(b"\x00")
            text = zlib.decompress(text) if compressed else text
            return key.decode("latin-1"), text.decode("utf-8", "replace")
    except (zlib.error, IndexError, UnicodeDecodeError):
        return None
    return None


def read_hints(data: bytes, fmt: str | None) -> dict | None:
    """The unsigned hints of an image (None when it has none)."""
    software: list[str] = []
    generator: list[str] = []
    xmp_texts: list[str] = []
    if fmt == "jpeg":
        exif = _jpeg_exif(data)
        if exif and (name := _exif_software(exif)):
            software.append(name)
    elif fmt == "png":
        for kind, body in _png_chunks(data):
            if kind == b"eXIf" and (name := _exif_software(body)):
                software.append(name)
            elif kind in (b"tEXt", b"zTXt", b"iTXt") and (kv := _png_text(kind, body)):
                key, value = kv
                if key == "XML:com.adobe.xmp":
                    xmp_texts.append(value)
                elif key == "Software":
                    software.append(_text(value.encode()))
                elif key in _GENERATOR_KEYS:
                    generator.append(_GENERATOR_KEYS[key])
    elif fmt == "webp":
        at = data.find(b"EXIF", 12)
        if at > 0:
            (size,) = struct.unpack("<I", data[at + 4:at + 8])
            body = data[at + 8:at + 8 + size]
            if body.startswith(b"Exif\x00\x00"):
                body = body[6:]
            if name := _exif_software(body):
                software.append(name)
    xmp_texts += [m.group(0).decode("utf-8", "replace") for m in _XMP_PACKET.finditer(data)]
    source_type = None
    for xmp in xmp_texts:
        if source_type is None and (m := _SOURCE_TYPE.search(xmp)):
            source_type = m.group(1)[:MAX_TEXT]
        software += [_text((a or b).encode()) for a, b in _XMP_SOFTWARE.findall(xmp) if (a or b)]
    software = list(dict.fromkeys(s for s in software if s))
    if not (software or generator or source_type):
        return None
    ai = is_ai_source_type(source_type) or bool(generator) or any(
        _AI_SOFTWARE.search(s) for s in software)
    return {"verified": False, "digital_source_type": source_type, "software": software,
            "generator_metadata": generator, "ai_generated": ai}
