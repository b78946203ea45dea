"""The OpenAPI document is the API: Schemathesis fuzzes the running service against it.

Every operation is called with schema-valid and schema-violating requests, as an admin (who may
call everything), with every Schemathesis check: no server error, every status, content type
and body as documented, valid data accepted, invalid data refused, authentication enforced.
Bounded by ``tests/fuzz/schemathesis.toml`` (a few cases per operation, a fixed seed).
"""

from __future__ import annotations

import subprocess
import sys

from service.routes import ROUTES, openapi_document
from tests.support.live import free_port, live_service, make_token
from tests.support.paths import REPO

CONFIG = REPO / "tests" / "fuzz" / "schemathesis.toml"


def test_every_operation_documents_its_requests_and_answers():
    doc = openapi_document()
    ops = {(method.upper(), path): op for path, item in doc["paths"].items()
           for method, op in item.items()}
    assert len(ops) == len(ROUTES)
    assert "201" in ops["POST", "/v1/checks"]["responses"]
    assert "200" not in ops["POST", "/v1/checks"]["responses"]
    login = doc["components"]["schemas"]["Credentials"]
    assert set(login["required"]) == {"email", "password"}
    assert ops["POST", "/v1/auth/login"]["requestBody"]["content"]["application/json"]["schema"] \
        == {"$ref": "#/components/schemas/Credentials"}
    names = {p["name"] for p in ops["GET", "/v1/checks"]["parameters"]}
    assert {"sha256", "page_url", "limit", "offset", "before"} <= names
    also = {(r.method, r.path): r.also for r in ROUTES}
    assert also["POST", "/v1/checks"] == (202, "JobAnswer")  # a video check starts a job
    for (method, path), op in ops.items():
        success = [code for code in op["responses"] if code.startswith("2")]
        assert len(success) == 1 + (also[method, path] is not None), (method, path)
        for code in success:
            content = op["responses"][code]["content"]
            if "application/json" in content:
                assert content["application/json"]["schema"], f"{method} {path} has no schema"
        for code, response in op["responses"].items():
            if code[0] in "45":
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}


def test_schemathesis_finds_nothing(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    # A sign-in budget of one a minute: the fuzzer's sign-ins get 429 (documented, for valid
    # and invalid requests alike) instead of each costing seconds of scrypt.
    env = {"REALCHECK_AUTH_ATTEMPTS_PER_MINUTE": 1}
    with live_service(data, port, **env) as url:
        token = make_token(data, "fuzz-admin", "admin", port=port)
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
             url + "/openapi.json", "--checks", "all", "--seed", "1", "--workers", "1",
             "--header", f"Authorization: Bearer {token}", "--no-color",
             "--output-truncate", "false"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-20000:]
    assert " passed" in out and "failures" not in out.split("SUMMARY")[-1], out[-5000:]
