"""Command line: ``python -m service [serve]``, ``python -m service token --sub alice --role user``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web

from service.settings import ISSUER_FILE, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (the default)")
    tok = sub.add_parser("token", help="print a session token from the local issuer")
    tok.add_argument("--sub", required=True, help="user id")
    tok.add_argument("--role", default="user", choices=["user", "moderator", "admin"])
    tok.add_argument("--email")
    tok.add_argument("--ttl", type=int, help="seconds the token is valid")
    adm = sub.add_parser("create-admin", help="make the first admin account of a fresh install")
    adm.add_argument("--email", required=True)
    adm.add_argument("--password", help="else $REALCHECK_ADMIN_PASSWORD, else asked for")
    cp = sub.add_parser("copy-db", help="copy the SQLite database into an empty PostgreSQL database")
    cp.add_argument("--to", required=True, metavar="postgresql://...", help="the target database")
    cp.add_argument("--from", dest="source", metavar="PATH",
                    help="the SQLite file (default: the one REALCHECK_DATA_DIR holds)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "token":
        return print_token(settings, args)
    if args.command == "create-admin":
        return create_admin(settings, args)
    if args.command == "copy-db":
        return copy_db(settings, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from service.app import create_app

    try:
        loop = new_event_loop(settings.event_loop)
    except ImportError:
        print("configuration error: REALCHECK_EVENT_LOOP=uvloop, but uvloop is not installed",
              file=sys.stderr)
        return 2
    web.run_app(create_app(settings), host=settings.host, port=settings.port, loop=loop)
    return 0


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """The server's loop: uvloop's (libuv, in C: less CPU per request than asyncio's selector
    loop in Python, docs/performance.md) unless ``choice`` is "asyncio" or, with "auto", uvloop
    is not installed."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def recorded_issuer(settings: Settings) -> str:
    """The issuer written by the last service started on this data folder ("" if none)."""
    try:
        return (settings.data_dir / "keys" / ISSUER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def print_token(settings: Settings, args) -> int:
    from service.auth.tokens import LocalIssuer

    if settings.jwks_url:
        print("an external issuer is configured (REALCHECK_JWKS_URL): get tokens there",
              file=sys.stderr)
        return 2
    name = settings.issuer
    recorded = recorded_issuer(settings)
    if recorded and not any(f"REALCHECK_{v}" in os.environ
                            for v in ("HOST", "PORT", "PUBLIC_URL", "ISSUER")):
        name = recorded  # the issuer of the service last started on this data folder
    print(f"token for the service at {name} (REALCHECK_DATA_DIR={settings.data_dir})",
          file=sys.stderr)
    issuer = LocalIssuer(settings.data_dir / "keys", name, settings.token_ttl_s)
    print(issuer.issue(args.sub, args.role, email=args.email, ttl_s=args.ttl))
    return 0


def create_admin(settings: Settings, args) -> int:
    import asyncio
    import getpass
    import os

    from service.auth.bootstrap import BootstrapError
    from service.auth.bootstrap import create_admin as run

    password = args.password or os.environ.get("REALCHECK_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("password for the admin account: ")
    try:
        print(asyncio.run(run(settings, args.email, password)))
    except BootstrapError as e:
        print(f"create-admin: {e}", file=sys.stderr)
        return 2
    return 0


def copy_db(settings: Settings, args) -> int:
    import asyncio
    from pathlib import Path

    import asyncpg

    from service.store.copy import CopyError, copy_sqlite_to_postgres

    if not args.to.startswith(("postgresql://", "postgres://")):
        print("copy-db: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    source = Path(args.source) if args.source else settings.db_path
    try:
        copied = asyncio.run(copy_sqlite_to_postgres(source, args.to))
    except (CopyError, OSError, asyncpg.PostgresError) as e:
        print(f"copy-db: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(f"copied {sum(copied.values())} rows in {len(copied)} tables from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
