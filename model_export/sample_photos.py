"""Public photographs from outside ``../shared/data``: scikit-image's sample images.

The scikit-image wheel (BSD-3-Clause code; the images are public domain or freely licensed,
listed in its ``skimage/data/README.txt``) carries a few dozen classic test pictures. Two show a
person (the astronaut Eileen Collins, NASA; the "cameraman"); the others show no human face: a
cat, a cup of coffee, coins, a rocket, the moon, a logo, microscopy, text, textures. The face
finder and the detectors never saw any of them, so they test what the training data cannot: faces
where there are none. The wheel is fetched with ``pip download`` (not installed), and each image
is checked against its SHA-256 below.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

REQUIREMENT = "scikit-image==0.26.0"
CACHE = Path(__file__).resolve().parent / "cache" / "wheels"
#: image -> the first 16 hex digits of its SHA-256
WITH_FACES = {"astronaut.png": "88431cd9653ccd53", "camera.png": "b0793d2adda0fa6a"}
WITHOUT_FACES = {
    "brick.png": "7966caf324f6ba84", "cell.png": "8d23a7fb81f7cc87",
    "chelsea.png": "596aa1e7cb875eb7", "coffee.png": "cc02f8ca188b167c",
    "coins.png": "f8d773fc9cfa6f4d", "color.png": "7d2df993de2b4fa2",
    "grass.png": "b6b6022426b38936", "gravel.png": "c48615b451bf1e60",
    "horse.png": "c7fb60789fe394c4", "hubble_deep_field.jpg": "3a19c5dd8a927a93",
    "ihc.png": "f8dd1aa387ddd1f4", "logo.png": "f2c57fe8af089f08",
    "moon.png": "78739619d11f7eb9", "motorcycle_left.png": "db18e9c415761740",
    "page.png": "341a6f0a61557662", "retina.jpg": "38a07f36f27f095e",
    "rocket.jpg": "c2dd0de7c538df8d", "text.png": "bd84aa3a6e3c9887",
    "clock_motion.png": "f029226b28b642e8", "microaneurysms.png": "a1e1be59aa447f8c",
}


def wheel(cache: Path = CACHE) -> Path:
    """The scikit-image wheel for this platform, downloaded once into ``cache``."""
    found = sorted(cache.glob("scikit_image-0.26.0-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", REQUIREMENT, "-d", str(cache)], check=True)
        found = sorted(cache.glob("scikit_image-0.26.0-*.whl"))
    if not found:
        raise SystemExit(f"pip download {REQUIREMENT} gave no wheel in {cache}")
    return found[0]


def images(names: dict[str, str], cache: Path = CACHE) -> dict[str, bytes]:
    """name -> file bytes, each checked against its pinned hash."""
    out = {}
    with zipfile.ZipFile(wheel(cache)) as z:
        for name, digest in names.items():
            data = z.read(f"skimage/data/{name}")
            if hashlib.sha256(data).hexdigest()[:16] != digest:
                raise SystemExit(f"{name} in the scikit-image wheel is not the pinned file")
            out[name] = data
    return out
