"""An image's ``provenance`` object: Content Credentials, unsigned hints, and one line for people."""

from __future__ import annotations

from service.detection.preprocess import sniff_format
from service.provenance.credentials import CredentialReader
from service.provenance.hints import read_hints

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp"}


def summary(c2pa: dict | None, hints: dict | None) -> str | None:
    if c2pa is not None:
        by = c2pa.get("signed_by") or "an unnamed signer"
        if c2pa["state"] == "invalid":
            return ("Content Credentials present but invalid: the image or its manifest was"
                    " altered after signing")
        if c2pa["state"] == "valid":
            if c2pa["ai_generated"]:
                return f"AI-generated, per its Content Credentials, signed by {by}"
            return f"Content Credentials signed by {by}; they do not declare AI generation"
        declared = "; they declare AI generation" if c2pa["ai_generated"] else ""
        return f"Content Credentials signed by {by}, a signer not on the trust list{declared}"
    if hints is not None and hints["ai_generated"]:
        return "Unverified metadata suggests AI generation (anyone can write it)"
    if hints is not None:
        return "Unverified metadata only (anyone can write it)"
    return None


def inspect(data: bytes, reader: CredentialReader) -> dict:
    """Blocking (c2pa hashes the whole file): call it off the event loop."""
    fmt = sniff_format(data)
    c2pa = reader.read(data, MIME.get(fmt or ""))
    hints = read_hints(data, fmt)
    return {
        "c2pa": c2pa,
        "hints": hints,
        "ai_generated": bool(c2pa and c2pa["state"] == "valid" and c2pa["ai_generated"]),
        "summary": summary(c2pa, hints),
    }
