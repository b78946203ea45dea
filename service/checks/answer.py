"""The shape of a check's answer: the verdict shown to the user at the top level, and what the
detectors themselves said in ``detectors`` (plain functions, shared by checks, moderation and
share pages).
"""

from __future__ import annotations


def detectors_view(result: dict) -> dict:
    """What the detectors themselves said about an image (never changed by moderators).

    ``models`` holds each detector's score of the decisive face (the face that set the verdict),
    so every figure here is about one and the same face. An image without a face is not judged:
    verdict ``no_face`` and no score.
    """
    face_found = bool(result.get("face_found"))
    faces = result.get("faces") or []
    decisive = result.get("decisive_face") if face_found else None
    face = faces[decisive] if decisive is not None and decisive < len(faces) else None
    trained = {name: m.get("trained") for name, m in (result.get("models") or {}).items()
               if isinstance(m, dict)}
    if not face_found:
        return {"verdict": "no_face", "label": None, "score": None, "confidence": None,
                "decisive_face": None, "models": {}}
    return {
        "verdict": result["verdict"], "label": result["label"], "score": result["score"],
        "confidence": result["confidence"], "decisive_face": decisive,
        "models": {name: {"score": score, "trained": trained.get(name)}
                   for name, score in (face or {}).get("models", {}).items()},
    }


def apply_verdict(check: dict, override: dict | None) -> dict:
    """Sets the check's top level: the verdict shown to the user.

    The detectors' verdict, unless moderators decided on the image: then their verdict, with
    confidence 100 and no score (no detector produced it). ``decided_by`` says which.
    """
    det = check["detectors"]
    check["moderation"] = override
    if override is None:
        check.update({k: det[k] for k in ("verdict", "label", "score", "confidence")})
        check["decided_by"] = "detectors"
        if det["verdict"] == "no_face":
            check["note"] = "no face found: not judged"
    else:
        check.update({"verdict": override["verdict"],
                      "label": "FAKE" if override["verdict"] == "fake" else "REAL",
                      "score": None, "confidence": 100.0, "decided_by": "moderator",
                      "note": "decided by a moderator: " + override["verdict"]})
    return check
