"""Server processes for the benchmark, and CPU accounting from ``/proc`` (Linux).

Each server is its own process on a free loopback port with its own temporary data folder, so
the load generator (this process) never shares a Python interpreter or GIL with it; they do
share the machine's cores, which `cpu_snapshot` measures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.images import REPO

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
COMMANDS = {
    # The real service, configured only through its REALCHECK_* environment.
    "service": [sys.executable, "-m", "service"],
    # The seed-style one-request-one-inference server (bench/baseline_app.py).
    "seed": [sys.executable, "-m", "bench.baseline_app"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    kind: str
    url: str
    port: int
    data_dir: Path
    proc: subprocess.Popen
    env: dict
    health: dict | None = None

    def cpu_seconds(self) -> float | None:
        return process_cpu(self.proc.pid)

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())


@contextmanager
def start_server(kind: str, env: dict[str, str], keep: bool = False, timeout_s: float = 90.0):
    """Start a server process; yields a `Server` once ``/health`` answers; stops it after."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"realcheck-bench-{kind}-"))
    port = free_port()
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "REALCHECK_HOST": "127.0.0.1",
               "REALCHECK_PORT": str(port), "REALCHECK_DATA_DIR": str(data_dir / "data"),
               "REALCHECK_RATE_LIMIT_PER_MINUTE": "0", **env}
    log_path = data_dir / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(COMMANDS[kind], cwd=REPO, env=environ, stdout=log,
                            stderr=subprocess.STDOUT)
    server = Server(kind, f"http://127.0.0.1:{port}", port, data_dir / "data", proc, env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {kind} server exited:\n{_tail(log_path)}")
            try:
                server.health = server.get_json("/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {kind} server did not start:\n{_tail(log_path)}") from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if keep:
            print(f"  kept {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def stat_cpu(path: Path) -> float:
    """User + system CPU seconds from a ``/proc/.../stat`` file (a process's or a thread's)."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), or None off Linux."""
    try:
        return stat_cpu(Path(f"/proc/{pid}/stat"))
    except OSError:
        return None


def machine_busy() -> float | None:
    """CPU seconds all cores have spent busy since boot, or None off Linux."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
