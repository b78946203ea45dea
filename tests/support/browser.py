"""Headless Chromium (Debian's package) driven by Playwright; no browser download needed."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def chromium_path() -> str:
    """Path of the system Chromium; fails when CI promised one (REALCHECK_REQUIRE_BROWSER=1)."""
    path = os.environ.get("REALCHECK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        if os.environ.get("REALCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (apt-get install chromium) but missing")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'")
    return path
