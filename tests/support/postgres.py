"""A real PostgreSQL server for tests and the benchmark, started from the binaries on PATH.

``initdb`` refuses to run as root, so as root the server's files belong to the ``postgres`` user
and its commands run through ``runuser``. The server listens on a free loopback port; each test
gets its own database (``create_database``), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.live import free_port

BINARIES = ("initdb", "pg_ctl", "postgres")
TEMPLATE = "realcheck_template"


def binaries_missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    user: str = "postgres"
    _template: bool = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, migrated: bool = True) -> str:
        """A new database, already at the current schema unless ``migrated`` is False (copied
        from a template migrated once: much faster than migrating each one); its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        template = "template0"
        if migrated:
            if not self._template:
                run_async(self._make_template())
                self._template = True
            template = TEMPLATE
        run_async(self._admin(f'CREATE DATABASE "{name}" TEMPLATE {template} STRATEGY FILE_COPY'))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Remove a database made by ``create_database`` (closing what is still connected)."""
        name = url.rsplit("/", 1)[1]
        run_async(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _make_template(self) -> None:
        from service.store.postgres import PostgresDatabase

        await self._admin(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
        db = await PostgresDatabase.open(self.url(TEMPLATE), min_size=1, max_size=1)
        await db.close()

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def run_async(coro):
    """Run a coroutine to the end on its own loop in a thread (safe from sync fixtures that
    must not touch the test's event loop)."""
    result: dict = {}

    def target():
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as e:  # handed to the caller
            result["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def postgres_server(port: int | None = None, fsync: bool = False):
    """Start a throwaway server (``fsync`` off by default: the tests kill services, never the
    database); yields a PostgresServer; stops it and removes its files afterwards."""
    missing = binaries_missing()
    if missing:
        raise RuntimeError(f"PostgreSQL binaries not on PATH: {', '.join(missing)}")
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="realcheck-pg-"))
    data = root / "data"
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        subprocess.run(_as_postgres(["initdb", "-D", str(data), "-A", "trust", "-U", user,
                                     "-E", "UTF8", "--locale=C", "--no-sync"]), check=True, **quiet)
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300"
                   f" -c fsync={'on' if fsync else 'off'} -c synchronous_commit={'on' if fsync else 'off'}"
                   " -c full_page_writes=off")
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-l", str(root / "server.log"),
                                     "-o", options, "-w", "-t", "60", "start"]), check=True, **quiet)
    except subprocess.CalledProcessError as e:
        log = root / "server.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {e.stderr!r} {detail}") from e
    try:
        yield PostgresServer(port=port, data_dir=data, user=user)
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       **quiet)
        shutil.rmtree(root, ignore_errors=True)
