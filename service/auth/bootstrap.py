"""``python -m service create-admin``: the first admin of a fresh install."""

from __future__ import annotations

from service import accounts, audit
from service.auth import passwords
from service.settings import Settings
from service.store import open_database


class BootstrapError(Exception):
    pass


async def create_admin(settings: Settings, email: str, password: str | None) -> str:
    """Create the admin account (or promote the account with that email); a line to print.

    Refused once any active admin exists: from then on admins promote people in the dashboard.
    With an external issuer (REALCHECK_JWKS_URL) passwords are not used: the account must exist
    already (it is created when that person first calls the service with their token).
    """
    address = passwords.normalize_email(email)
    if address is None:
        raise BootstrapError(f"not an email address: {email!r}")
    db = await open_database(settings)
    try:
        admin = await accounts.active_admin_email(db)
        if admin is not None:
            raise BootstrapError(f"an admin already exists ({admin}): admins promote"
                                 " other accounts in the dashboard")
        row = await accounts.by_email(db, address)
        if settings.jwks_url:
            if row is None:
                raise BootstrapError(f"no account has the email {address} yet: sign in once with"
                                     " the external provider, then run this again")
            password = None
        elif row is None or not row["password_hash"]:
            problem = passwords.password_problem(password) if password else "a password is required"
            if problem:
                raise BootstrapError(problem)
        password_hash = await passwords.hash_password(password) if password else None
        async with db.transaction() as tx:
            if row is None:
                user_id = await accounts.create(tx, address, password_hash, role="admin")
                done = f"created admin {address} ({user_id})"
            else:
                user_id = row["id"]
                await accounts.make_admin(tx, user_id)
                if password_hash and not row["password_hash"]:
                    await accounts.set_password_hash(tx, user_id, password_hash)
                done = f"made {address} ({user_id}) an admin"
            await audit.record(tx, "cli", "cli.create_admin", user_id,
                               {"email": address, "existing": row is not None})
        return done
    finally:
        await db.close()
