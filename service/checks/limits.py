"""What clients and pages say about the detectors, read from the model cards (never retyped).

``thresholds`` is what the extension and the dashboard colour by; ``limits`` is the plain
statement of what the detectors cannot judge, per kind of image, from the measured test figures.
"""

from __future__ import annotations

#: the data sources of the test split, in words a reader understands
SOURCE_NAMES = {
    "dfdc-faces": "face swaps in videos (DFDC)",
    "gan-faces-extra": "faces from other GANs",
    "sdfd-sd21": "faces made with Stable Diffusion 2.1",
    "tpdne-unsplash": "StyleGAN2 faces and real photos",
    "utkface": "real portraits (UTKFace)",
}


def thresholds(ensemble) -> dict:
    """P(fake) cut-offs: FAKE from ``fake_from``, REAL below ``real_below``, UNSURE between;
    ``label_threshold`` splits the REAL/FAKE label inside the uncertain band."""
    lo, hi = ensemble.band
    return {"fake_from": hi, "real_below": lo, "label_threshold": ensemble.threshold,
            "source": "models/ensemble.json"}


def limits(ensemble) -> list[dict]:
    """Per kind of image: how well the detectors separate it on the test split (AUC), how many
    of its generated faces they catch, and how many of its real faces they call fake."""
    test = ((ensemble.card.get("metrics") or {}).get("test") or {})
    out = []
    for source, m in sorted((test.get("per_source") or {}).items(),
                            key=lambda kv: kv[1].get("auc") or 1.0):
        out.append({"source": source, "name": SOURCE_NAMES.get(source, source),
                    "auc": m.get("auc"), "caught": m.get("recall"),
                    "real_called_fake": m.get("fpr"), "n": m.get("n_own")})
    return out


def limits_text(ensemble) -> list[str]:
    """``limits`` as sentences, weakest first (or what is missing)."""
    lines = []
    if not ensemble.trained:
        lines.append("the detectors loaded now are untrained placeholders: their verdicts mean"
                     " nothing")
    if not limits(ensemble):
        lines.append("no measured figures: the model card has no test results")
    for m in limits(ensemble):
        parts = []
        if m["auc"] is not None:
            parts.append(f"separation (ROC AUC) {m['auc']:.2f}")
        if m["caught"] is not None:
            parts.append(f"{m['caught'] * 100:.0f} % of generated faces caught")
        if m["real_called_fake"] is not None:
            parts.append(f"{m['real_called_fake'] * 100:.1f} % of real faces called fake")
        lines.append(f"{m['name']}: " + ", ".join(parts))
    return lines
