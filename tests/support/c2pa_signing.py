"""Content Credentials for tests: a certificate authority made here, images signed with it
(c2pa's Builder), then tampered with or stripped."""

from __future__ import annotations

import datetime
import io
import json
from dataclasses import dataclass

import c2pa
import cv2
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _usage(**on) -> x509.KeyUsage:
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(**{**flags, **on})


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class SigningCA:
    """A root CA and one signing certificate issued by it (ES256, P-256)."""

    root_pem: str
    chain_pem: str  # the signing certificate, then the root
    key_pem: str
    org: str

    @classmethod
    def make(cls, org: str = "Test Generator Inc") -> "SigningCA":
        now = datetime.datetime.now(datetime.UTC)
        valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{org} Test Root", org)
        root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
                .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                               critical=False)
                .sign(root_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder().subject_name(_name(f"{org} Signer", org))
                .issuer_name(root_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_usage(digital_signature=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    root_key.public_key()), critical=False)
                .sign(root_key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return cls(_pem(root), _pem(leaf) + _pem(root), key_pem, org)

    def sign(self, data: bytes, source_type: str = "trainedAlgorithmicMedia",
             generator: str = "TestDiffusion", mime: str = "image/jpeg") -> bytes:
        """``data`` with an embedded manifest whose creation action declares ``source_type``."""
        manifest = {
            "claim_generator_info": [{"name": generator, "version": "2.1"}],
            "title": "generated.jpg",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": IPTC + source_type}]}}],
        }
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self.chain_pem.encode(),
                                   self.key_pem.encode(), None)
        out = io.BytesIO()
        with c2pa.Builder.from_json(json.dumps(manifest)) as builder:
            builder.sign(c2pa.Signer.from_info(info), mime, io.BytesIO(data), out)
        return out.getvalue()


def tamper(signed_jpeg: bytes) -> bytes:
    """Change pixels and keep the manifest: flip bits in the middle of the JPEG scan data."""
    start = signed_jpeg.rindex(b"\xff\xda")
    end = signed_jpeg.rindex(b"\xff\xd9")
    out = bytearray(signed_jpeg)
    for i in range(start + (end - start) // 2, start + (end - start) // 2 + 64):
        if out[i] not in (0xFF, 0xFE, 0x00) and out[i - 1] != 0xFF:
            out[i] ^= 0x01
    return bytes(out)


def strip(data: bytes) -> bytes:
    """Decode and re-encode: the pixels survive, the manifest and metadata do not."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def with_xmp(jpeg: bytes, xmp: str) -> bytes:
    """A JPEG with an (unsigned) XMP packet in an APP1 segment after SOI."""
    body = b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode()
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def with_exif_software(jpeg: bytes, software: str) -> bytes:
    """A JPEG with an EXIF APP1 segment whose IFD0 holds only a Software tag."""
    text = software.encode() + b"\x00"
    ifd = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"
           + b"\x01\x31\x00\x02" + len(text).to_bytes(4, "big") + (26).to_bytes(4, "big")
           + b"\x00\x00\x00\x00" + text)
    body = b"Exif\x00\x00" + ifd
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]
