"""``web-ext lint`` (Firefox's add-on linter, from npm: extension/tools/package.json) on the
extension: no errors, and no warning but the one a manifest serving Chrome and Firefox cannot
avoid (Chrome needs ``background.service_worker``, which Firefox ignores for ``scripts``)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.extension import EXTENSION_DIR

TOOLS = EXTENSION_DIR / "tools"
WEB_EXT = TOOLS / "node_modules" / ".bin" / "web-ext"
UNAVOIDABLE = {"BACKGROUND_SERVICE_WORKER_IGNORED"}


def test_web_ext_lint_is_clean():
    if not WEB_EXT.exists():
        if os.environ.get("REALCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail("web-ext is missing: npm ci --prefix extension/tools")
        pytest.skip("web-ext is not installed (npm ci --prefix extension/tools)")
    out = subprocess.run([str(WEB_EXT), "lint", "--source-dir", str(EXTENSION_DIR),
                          "--ignore-files", "tools/**", "--self-hosted", "--output", "json"],
                         cwd=TOOLS, capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)
    assert report["errors"] == [], report["errors"]
    assert {w["code"] for w in report["warnings"]} <= UNAVOIDABLE, report["warnings"]
    assert report["notices"] == [], report["notices"]
