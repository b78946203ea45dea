"""Debian's Firefox ESR driven over WebDriver BiDi (its remote-debugging port), from Python.

No driver binary and no download: Firefox speaks BiDi itself. ``Firefox`` starts it headless on
a fresh profile, installs the unpacked extension (``webExtension.install``, as a temporary
add-on), and offers the few commands the tests need: open a tab, evaluate JavaScript there,
wait for a condition. Values cross as JSON (the page stringifies, Python parses).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.live import free_port

EXTENSION_ID = "realcheck@realcheck.example"  # browser_specific_settings.gecko.id
EXTENSION_UUID = "5f0c2a4e-8d1b-4c3e-9a7f-2b6d1e0c9a11"  # fixed moz-extension:// host
PREFS = {
    "extensions.webextensions.uuids": json.dumps({EXTENSION_ID: EXTENSION_UUID}),
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.auto": False,
    "app.update.enabled": False,
    "browser.aboutwelcome.enabled": False,
    "extensions.autoDisableScopes": 0,
    "extensions.enabledScopes": 5,
    "extensions.originControls.grantByDefault": True,
    "network.captive-portal-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "dom.min_background_timeout_value": 10,
}


def firefox_path() -> str:
    """Path of the system Firefox ESR; fails when CI promised one (REALCHECK_REQUIRE_BROWSER=1)."""
    path = (os.environ.get("REALCHECK_FIREFOX") or shutil.which("firefox-esr")
            or shutil.which("firefox") or "/usr/bin/firefox-esr")
    if not os.path.exists(path):
        if os.environ.get("REALCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail("firefox-esr is required (apt-get install firefox-esr) but missing")
        pytest.skip("firefox-esr is not installed (apt-get install firefox-esr)")
    return path


class BidiError(RuntimeError):
    pass


class Firefox:
    def __init__(self, profile: Path, extension_dir: Path):
        self.profile = Path(profile)
        self.extension_dir = Path(extension_dir)
        self.proc: subprocess.Popen | None = None
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future] = {}
        self.http: aiohttp.ClientSession | None = None
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.base = f"moz-extension://{EXTENSION_UUID}"

    async def __aenter__(self) -> "Firefox":
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
        port = free_port()
        self.log = open(self.profile.parent / "firefox.log", "wb")
        self.proc = subprocess.Popen(
            [firefox_path(), "--headless", "--no-remote", "--profile", str(self.profile),
             f"--remote-debugging-port={port}", "--remote-allow-hosts=127.0.0.1",
             "--remote-allow-system-access", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"})
        self.http = aiohttp.ClientSession()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{port}/session",
                                                     max_msg_size=64 * 1024 * 1024)
                break
            except aiohttp.ClientError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Firefox did not open BiDi: see {self.log.name}") from None
                await asyncio.sleep(0.2)
        self.reader = asyncio.create_task(self._read())
        await self.send("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        await self.send("webExtension.install",
                        {"extensionData": {"type": "path", "path": str(self.extension_dir)}})
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.ws is not None:
                await asyncio.wait_for(self.send("session.end", {}), 5)
        except Exception:
            pass
        if self.reader:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.http:
            await self.http.close()
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self.waiting.pop(data.get("id"), None)
            if fut is None or fut.done():
                continue
            if data.get("type") == "error":
                fut.set_exception(BidiError(f"{data.get('error')}: {data.get('message')}"))
            else:
                fut.set_result(data.get("result"))
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(BidiError("the BiDi connection closed"))

    async def send(self, method: str, params: dict, timeout_s: float = 60) -> dict:
        msg_id = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[msg_id] = fut
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        return await asyncio.wait_for(fut, timeout_s)

    # -- tabs and scripts -----------------------------------------------------------------------

    async def open(self, url: str) -> str:
        """A new tab showing ``url`` (loaded); its context id."""
        context = (await self.send("browsingContext.create", {"type": "tab"}))["context"]
        await self.goto(context, url)
        return context

    async def goto(self, context: str, url: str) -> None:
        await self.send("browsingContext.navigate", {"context": context, "url": url, "wait": "complete"})

    async def reload(self, context: str) -> None:
        await self.send("browsingContext.reload", {"context": context, "wait": "complete"})

    async def close(self, context: str) -> None:
        await self.send("browsingContext.close", {"context": context})

    async def eval(self, context: str, js: str):
        """The JSON value of the JavaScript expression ``js`` (awaited) in the tab's page."""
        result = await self.send("script.evaluate", {
            "expression": f"(async () => JSON.stringify(await ({js}) ?? null))()",
            "target": {"context": context}, "awaitPromise": True, "resultOwnership": "none"})
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"{details.get('text')} in {js[:200]}")
        return json.loads(result["result"]["value"])

    async def wait(self, context: str, js: str, timeout_s: float = 30, what: str = ""):
        """Polls ``js`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.eval(context, js)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what or js}")
            await asyncio.sleep(0.1)
