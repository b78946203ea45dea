"""Content Credentials (C2PA) and unsigned hints beside the detectors' score, through the app."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from service.app import create_app
from service.provenance.hints import read_hints
from service.settings import Settings
from tests.support.api import post_check
from tests.support.c2pa_signing import (
    SigningCA,
    strip,
    tamper,
    with_exif_software,
    with_xmp,
)


@pytest.fixture(scope="module")
def ca() -> SigningCA:
    return SigningCA.make("Test Generator Inc")


@pytest.fixture
def settings(tmp_path, ca) -> Settings:
    """The app trusts the test CA (and only it)."""
    anchors = tmp_path / "trust.pem"
    anchors.write_text(ca.root_pem)
    return Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0,
                    c2pa_trust_anchors=str(anchors))


async def test_signed_ai_image_says_so_beside_the_score(client, auth, ca, face_bytes):
    alice = auth("alice")
    signed = ca.sign(face_bytes)
    check = await post_check(client, alice, signed)
    p = check["provenance"]
    assert p["c2pa"]["state"] == "valid"
    assert p["c2pa"]["signed_by"] == "Test Generator Inc"
    assert p["c2pa"]["claim_generator"].startswith("TestDiffusion 2.1")
    assert p["c2pa"]["actions"][0]["action"] == "c2pa.created"
    assert p["c2pa"]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert p["ai_generated"] is True
    assert p["summary"] == "AI-generated, per its Content Credentials, signed by Test Generator Inc"
    # Beside, not instead of, the detectors' answer.
    assert check["detectors"]["score"] == check["score"] and 0 <= check["score"] <= 1
    # The hash-first lookup answers with the same provenance, without the bytes.
    resp = await client.get("/v1/checks", params={"sha256": check["sha256"]}, headers=alice)
    assert resp.status == 200
    assert (await resp.json())["provenance"] == p
    # And the stored check keeps it.
    resp = await client.get(f"/v1/checks/{check['id']}", headers=alice)
    assert (await resp.json())["provenance"] == p


async def test_composite_and_camera_source_types(client, auth, ca, face_bytes):
    composite = await post_check(client, auth(), ca.sign(face_bytes, "compositeWithTrainedAlgorithmicMedia"))
    assert composite["provenance"]["ai_generated"] is True
    camera = await post_check(client, auth(), ca.sign(face_bytes, "digitalCapture", "TestCamera"))
    c = camera["provenance"]
    assert c["c2pa"]["state"] == "valid" and c["ai_generated"] is False
    assert c["summary"] == ("Content Credentials signed by Test Generator Inc;"
                            " they do not declare AI generation")


async def test_a_signer_off_the_trust_list_is_untrusted(client, auth, face_bytes):
    stranger = SigningCA.make("Unknown Studio")
    check = await post_check(client, auth(), stranger.sign(face_bytes))
    p = check["provenance"]
    assert p["c2pa"]["state"] == "untrusted"
    assert "signingCredential.untrusted" in p["c2pa"]["failures"]
    assert p["c2pa"]["ai_generated"] is True and p["ai_generated"] is False
    assert "not on the trust list" in p["summary"]


async def test_a_tampered_image_is_shown_as_such(client, auth, ca, face_bytes):
    check = await post_check(client, auth(), tamper(ca.sign(face_bytes)))
    p = check["provenance"]
    assert p["c2pa"]["state"] == "invalid"
    assert any("mismatch" in f for f in p["c2pa"]["failures"])
    assert p["ai_generated"] is False
    assert p["summary"].startswith("Content Credentials present but invalid")


async def test_a_stripped_copy_has_no_credentials(client, auth, ca, face_bytes):
    check = await post_check(client, auth(), strip(ca.sign(face_bytes)))
    assert check["provenance"] == {"c2pa": None, "hints": None, "ai_generated": False,
                                   "summary": None}


async def test_unsigned_hints_are_labelled_unverified(client, auth, face_bytes):
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
           '22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/'
           'Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
           'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
           'trainedAlgorithmicMedia" xmp:CreatorTool="Some Editor 3"/></rdf:RDF></x:xmpmeta>')
    data = with_exif_software(with_xmp(face_bytes, xmp), "Midjourney v6")
    check = await post_check(client, auth(), data)
    p = check["provenance"]
    assert p["c2pa"] is None and p["ai_generated"] is False  # never from unsigned hints
    assert p["hints"]["verified"] is False and p["hints"]["ai_generated"] is True
    assert p["hints"]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert p["hints"]["software"] == ["Midjourney v6", "Some Editor 3"]
    assert p["summary"].startswith("Unverified metadata suggests AI generation")


def test_png_generator_text_chunks_are_hints():
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    text = b"parameters\x00a portrait, Steps: 20, Sampler: Euler"
    chunk = (len(text).to_bytes(4, "big") + b"tEXt" + text
             + zlib.crc32(b"tEXt" + text).to_bytes(4, "big"))
    at = png.index(b"IDAT") - 4
    hints = read_hints(png[:at] + chunk + png[at:], "png")
    assert hints["generator_metadata"] == ["Stable Diffusion web UI parameters"]
    assert hints["ai_generated"] is True and hints["verified"] is False
    assert read_hints(png, "png") is None


async def test_without_a_trust_list_no_signer_is_trusted(aiohttp_client, tmp_path, auth, ca,
                                                         face_bytes):
    client = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "data",
                                                      rate_limit_per_minute=0)))
    check = await post_check(client, auth(), ca.sign(face_bytes))
    assert check["provenance"]["c2pa"]["state"] == "untrusted"


def test_a_trust_list_without_certificates_is_refused(tmp_path):
    bad = tmp_path / "trust.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        from service.provenance.credentials import load_trust_anchors
        load_trust_anchors(str(bad))
