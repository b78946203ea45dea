"""The evidence step beside the detectors: the PDQ hash of the pixels `prepare` decodes (one
decode per image) and C2PA read only from bytes that can hold a manifest. Neither may change
what a check answers: the hash is the hash of the image's own decode, and every manifest (valid,
tampered, off the trust list, broken, remote) reads as c2pa reads it without the byte scan."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from service.detection.preprocess import decode_image
from service.pdq.hashing import fingerprint
from service.provenance import credentials
from service.provenance.credentials import CredentialReader, may_hold_manifest
from service.store import Database
from tests.support.api import post_check
from tests.support.c2pa_signing import SigningCA, strip, tamper, with_xmp
from tests.support.paths import require_shared_data, sample_images

FORMATS = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif"}
REMOTE_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
              '22-rdf-syntax-ns#"><rdf:Description xmlns:dcterms="http://purl.org/dc/terms/"'
              ' dcterms:provenance="https://example.com/manifest.c2pa"/></rdf:RDF></x:xmpmeta>')


@pytest.fixture(scope="module")
def ca() -> SigningCA:
    return SigningCA.make("Evidence Test Inc")


def _framed(path) -> bytes:
    """A face photo on a white page (PNG): its hash has a trimmed part too."""
    image = cv2.imread(str(path))
    return cv2.imencode(".png", cv2.copyMakeBorder(image, 40, 60, 30, 30, cv2.BORDER_CONSTANT,
                                                  value=(255, 255, 255)))[1].tobytes()


async def test_the_hash_is_that_of_the_images_own_decode(client, auth, app):
    """The check's PDQ hashes (answered and stored) equal those of the bytes decoded apart."""
    require_shared_data()
    paths = sample_images(2, source="celebrity-press") + sample_images(1, source="utkface")
    images = [p.read_bytes() for p in paths] + [_framed(paths[0])]
    noise = np.random.default_rng(3).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    images.append(cv2.imencode(".png", noise)[1].tobytes())  # no face: hashed all the same
    from service.keys import DB

    db: Database = app[DB]
    for data in images:
        want = fingerprint(decode_image(data))
        check = await post_check(client, auth(), data)
        assert check["pdq"] == want.public()
        row = await db.fetchone("SELECT pdq, pdq_extra FROM images WHERE sha256 = ?",
                                (check["sha256"],))
        assert row["pdq"] == want.hash
        assert row["pdq_extra"].split() == [want.trimmed or "-", *want.windows]
    assert check["face_found"] is False and check["pdq"]["hash"]


def _image(ext: str) -> bytes:
    image = (np.random.default_rng(5).random((48, 64, 3)) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _png_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    chunk = len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def _app11(jpeg: bytes, body: bytes) -> bytes:
    return jpeg[:2] + b"\xff\xeb" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def _cases(ca: SigningCA, stranger: SigningCA) -> dict[str, tuple[bytes, str]]:
    out = {}
    for ext, mime in FORMATS.items():
        plain = _image(ext)
        out[f"plain {ext}"] = (plain, mime)
        out[f"signed {ext}"] = (ca.sign(plain, mime=mime), mime)
        out[f"untrusted {ext}"] = (stranger.sign(plain, mime=mime), mime)
    face = _image(".jpg")
    signed = ca.sign(face)
    out["tampered .jpg"] = (tamper(signed), "image/jpeg")
    out["stripped .jpg"] = (strip(signed), "image/jpeg")
    out["remote manifest named in XMP .jpg"] = (with_xmp(face, REMOTE_XMP), "image/jpeg")
    out["broken caBX chunk .png"] = (_png_chunk(_image(".png"), b"caBX", b"not a box"), "image/png")
    out["broken APP11 segment .jpg"] = (_app11(face, b"JP\x00\x00\x00\x00\x00\x01broken"),
                                        "image/jpeg")
    out["manifest cut short .jpg"] = (signed[:len(signed) * 2 // 3], "image/jpeg")
    out["plain .bmp"] = (_image(".bmp"), "image/bmp")
    return out


def test_the_scan_skips_only_files_without_a_manifest(ca, monkeypatch):
    """Every case reads exactly as c2pa reads it without the scan; only files where c2pa finds
    nothing are skipped."""
    reader = CredentialReader(ca.root_pem)
    cases = _cases(ca, SigningCA.make("Stranger Inc"))
    scanned = {name: reader.read(data, mime) for name, (data, mime) in cases.items()}
    skipped = {name for name, (data, mime) in cases.items() if not may_hold_manifest(data, mime)}
    monkeypatch.setattr(credentials, "may_hold_manifest", lambda data, mime: True)
    unscanned = {name: reader.read(data, mime) for name, (data, mime) in cases.items()}
    assert scanned == unscanned
    assert skipped == {"plain .jpg", "plain .png", "plain .webp", "plain .gif", "stripped .jpg"}
    for ext in FORMATS:
        assert scanned[f"signed {ext}"]["state"] == "valid", ext
        assert scanned[f"untrusted {ext}"]["state"] == "untrusted", ext
    assert scanned["tampered .jpg"]["state"] == "invalid"
    assert scanned["remote manifest named in XMP .jpg"]["state"] == "invalid"
    assert scanned["broken caBX chunk .png"]["state"] == "invalid"
