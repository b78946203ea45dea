"""Fixtures: the real app on a temporary data folder, tokens from its own issuer, images.

Every test that takes ``database_url`` (and so every test using ``settings``, ``app`` or
``client``) runs twice: on SQLite (the embedded default) and on a real PostgreSQL server that
the session starts once (``tests/support/postgres.py``), with a fresh database per test.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import Settings
from tests.support.paths import IN_CI, require_shared_data, sample_images
from tests.support.postgres import binaries_missing, postgres_server

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the whole session (started on first use)."""
    missing = binaries_missing()
    if missing:
        message = f"PostgreSQL binaries missing: {', '.join(missing)} (.ci/run installs them)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(request, backend):
    """Empty (SQLite in the data folder) or the URL of a new PostgreSQL database."""
    if backend == "sqlite":
        yield ""
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)  # a database is ~8 MB on disk: do not keep hundreds of them


@pytest.fixture
def settings(tmp_path: Path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, database_url=database_url)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app)


@pytest.fixture
def issuer(settings) -> LocalIssuer:
    """Signs with the same key file the app uses (``<data_dir>/keys``)."""
    return LocalIssuer(settings.data_dir / "keys", settings.issuer, settings.token_ttl_s)


@pytest.fixture
def auth(issuer):
    """``auth("alice", "moderator")`` -> headers with a bearer token for that user."""
    def make(sub: str = "alice", role: str = "user", **kw) -> dict:
        return {"Authorization": "Bearer " + issuer.issue(sub, role, **kw)}
    return make


@pytest.fixture
def face_bytes() -> bytes:
    """A real face photo (JPEG) from the shared data."""
    require_shared_data()
    return sample_images(1, source="tpdne-unsplash", label="real")[0].read_bytes()


@pytest.fixture
def fake_face_bytes() -> bytes:
    require_shared_data()
    return sample_images(1, source="tpdne-unsplash", label="fake")[0].read_bytes()


def encode(image: np.ndarray, ext: str = ".png", params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.fixture
def noise_png() -> bytes:
    """A faceless image (random noise), generated."""
    rng = np.random.default_rng(0)
    return encode(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
