"""C2PA manifests (Content Credentials) read with ``c2pa-python``, reduced to what users need.

``state`` is ``valid`` (intact and signed by a certificate that chains to the trust list),
``untrusted`` (intact, but the signer is not on the trust list) or ``invalid`` (the image or
its manifest changed after signing, or the manifest is broken).
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import c2pa

AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")

#: Bytes without which c2pa finds no manifest in a file of that type (`may_hold_manifest`). Every
#: embedded manifest store is a JUMBF superbox (``jumb``) inside the format's own container:
#: JPEG APP11 segments (marker FF EB, which entropy-coded data cannot contain), a PNG ``caBX``
#: chunk, a RIFF (WebP) ``C2PA`` chunk, a GIF ``C2PA_GIF`` application extension, an ISO-BMFF
#: (MP4, MOV) ``uuid`` box with the C2PA UUID. A remote manifest is named by XMP's
#: ``dcterms:provenance`` (read as ``invalid`` here: remote fetching is off). A container marker
#: with a broken box inside still goes to c2pa, which calls it invalid.
_JUMBF, _XMP_REMOTE = b"jumb", b"provenance"
_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
MANIFEST_MARKERS = {
    "image/jpeg": (b"\xff\xeb", _JUMBF, _XMP_REMOTE),
    "image/png": (b"caBX", _JUMBF, _XMP_REMOTE),
    "image/webp": (b"C2PA", _JUMBF, _XMP_REMOTE),
    "image/gif": (b"C2PA", _JUMBF, _XMP_REMOTE),
    "video/mp4": (_BMFF_UUID, _JUMBF, _XMP_REMOTE),
    "video/quicktime": (_BMFF_UUID, _JUMBF, _XMP_REMOTE),
}


def may_hold_manifest(data: bytes, mime: str | None) -> bool:
    """False only when c2pa would find no manifest in ``data`` (none of the type's markers is
    there); a type without a list of markers always goes to c2pa. A byte search (about 0.05 ms
    for a 100 KB JPEG) instead of c2pa's parse of the whole file through Python callbacks."""
    markers = MANIFEST_MARKERS.get(mime or "")
    return markers is None or any(m in data for m in markers)
ACTION_LABELS = ("c2pa.actions", "c2pa.actions.v2")
_STATES = {"Trusted": "valid", "Invalid": "invalid"}


def is_ai_source_type(value: str | None) -> bool:
    return bool(value) and value.rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES


def load_trust_anchors(path: str) -> str:
    """The PEM certificates of the configured trust list ('' for none)."""
    if not path:
        return ""
    text = Path(path).read_text()
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{path}: no PEM certificate in the C2PA trust list")
    return text


class CredentialReader:
    """Reads manifests against one trust list; one c2pa Context per thread."""

    def __init__(self, trust_anchors_pem: str = ""):
        verify = {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False}
        self._config = {"verify": verify}
        if trust_anchors_pem:
            self._config["trust"] = {"trust_anchors": trust_anchors_pem}
        self._local = threading.local()
        self._context()  # fail at start-up, not on the first image, if the settings are refused

    def _context(self) -> c2pa.Context:
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._local.context = c2pa.Context(c2pa.Settings.from_dict(self._config))
        return ctx

    def read(self, data: bytes, mime: str | None) -> dict | None:
        """The active manifest's summary, or None when the image carries no manifest."""
        if not may_hold_manifest(data, mime):
            return None
        try:
            reader = c2pa.Reader(mime, io.BytesIO(data), context=self._context())
        except c2pa.C2paError.ManifestNotFound:
            return None
        except c2pa.C2paError.NotSupported:
            return None
        except c2pa.C2paError as e:
            return {"state": "invalid", "error": _short(str(e)), "signer": None,
                    "signed_by": None, "claim_generator": None, "actions": [],
                    "digital_source_type": None, "ai_generated": False, "failures": []}
        with reader:
            store = json.loads(reader.json())
        return summarize(store)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        return " ".join(str(x) for x in (info[0]["name"], info[0].get("version")) if x)
    return manifest.get("claim_generator")


def _actions(manifest: dict) -> list[dict]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if assertion.get("label") not in ACTION_LABELS:
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = agent.get("name")
            out.append({"action": action.get("action"),
                        "digital_source_type": action.get("digitalSourceType"),
                        "software_agent": agent})
    return out


def summarize(store: dict) -> dict:
    """A manifest store (``Reader.json()``) -> the provenance fields of a check."""
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "") or {}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [f.get("code") for f in results.get("failure") or []]
    failures += [f.get("code") for f in store.get("validation_status") or []
                 if f.get("code") not in failures]
    state = _STATES.get(store.get("validation_state"), "untrusted")
    if not manifest:
        state = "invalid"
    sig = manifest.get("signature_info") or {}
    actions = _actions(manifest)
    source_types = [a["digital_source_type"] for a in actions if a["digital_source_type"]]
    source = next((t for t in source_types if is_ai_source_type(t)),
                  source_types[0] if source_types else None)
    return {
        "state": state,
        "signer": {"issuer": sig.get("issuer"), "common_name": sig.get("common_name"),
                   "time": sig.get("time")} if sig else None,
        "signed_by": sig.get("issuer") or sig.get("common_name"),
        "claim_generator": _claim_generator(manifest),
        "actions": actions,
        "digital_source_type": source,
        "ai_generated": is_ai_source_type(source),
        "failures": [f for f in failures if f],
    }
