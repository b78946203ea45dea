"""A real service process on a free port, as `make run` starts it, for browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_service(data_dir: Path, port: int, log_path: Path, **env) -> subprocess.Popen:
    """Start ``python -m service`` (not waiting for it); its output goes to ``log_path``."""
    environ = {**os.environ, "REALCHECK_PORT": str(port), "REALCHECK_DATA_DIR": str(data_dir),
               "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in env.items()}}
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=environ,
                                stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited: see {log_path}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start within {timeout_s:.0f} s") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def live_service(data_dir: Path, port: int | None = None, **env):
    """Start ``python -m service``; yields its base URL; stops it afterwards."""
    port = port or free_port()
    log_path = Path(data_dir).parent / f"service-{port}.log"
    proc = spawn_service(data_dir, port, log_path, **env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, log_path)
        yield url
    finally:
        stop(proc)


def make_token(data_dir: Path, sub: str, role: str = "user", port: int | None = None,
               email: str | None = None, **env) -> str:
    """A token from the service's own CLI (``python -m service token``)."""
    environ = {**os.environ, "REALCHECK_DATA_DIR": str(data_dir), **{k: str(v) for k, v in env.items()}}
    if port:
        environ["REALCHECK_PORT"] = str(port)
    args = [sys.executable, "-m", "service", "token", "--sub", sub, "--role", role]
    if email:
        args += ["--email", email]
    out = subprocess.run(args, cwd=REPO, env=environ, check=True, capture_output=True, text=True)
    return out.stdout.strip()
