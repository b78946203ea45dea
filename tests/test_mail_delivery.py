"""The outbox and its sender against a real SMTP server (aiosmtpd): sent once, through outages,
refusals and restarts; STARTTLS with credentials and implicit TLS."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import ssl
import time

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.app import create_app
from service.keys import DB, MAIL
from service.settings import Settings
from tests.support.db import execute as db_execute
from tests.support.db import query as db_query
from tests.support.live import free_port


class SmtpServer:
    """A real SMTP server on a fixed port that can be stopped and started again."""

    def __init__(self, port: int, **smtp_kwargs):
        self.port = port
        self.kwargs = smtp_kwargs
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: dict[str, str] = {}  # recipient prefix -> SMTP reply
        self.controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for prefix, reply in self.refuse.items():
            if address.startswith(prefix):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"

    def start(self) -> SmtpServer:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, count: int, timeout: float = 15.0) -> list:
        """Wait until ``count`` messages arrived, then a little longer to catch any duplicate."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} messages arrived"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        return self.messages


def mail_settings(data_dir, port: int, **kw) -> Settings:
    return Settings(data_dir=data_dir, rate_limit_per_minute=0, smtp_host="127.0.0.1",
                    smtp_port=port, smtp_from="alerts@realcheck.example", mail_poll_s=0.1,
                    mail_backoff_s=0.2, mail_backoff_max_s=0.5, smtp_timeout_s=5, **kw)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def smtp(smtp_port):
    server = SmtpServer(smtp_port).start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, smtp_port, database_url):
    return mail_settings(tmp_path / "data", smtp_port, database_url=database_url)


async def reported_and_decided(client, auth, data: bytes, reporters: list[str], decision="fake",
                               note="checked by a human") -> str:
    """Each reporter (sub = local part of the address) checks and reports; a moderator decides."""
    flag_id = None
    for address in reporters:
        headers = auth(address.split("@")[0], email=address)
        form = aiohttp.FormData()
        form.add_field("image", data, filename="f.jpg", content_type="image/jpeg")
        resp = await client.post("/v1/checks", data=form, headers=headers)
        assert resp.status == 201, await resp.text()
        check = await resp.json()
        resp = await client.post(f"/v1/checks/{check['id']}/report", json={}, headers=headers)
        flag_id = (await resp.json())["flag_id"]
    resp = await client.post(f"/v1/moderation/items/{flag_id}/decision", headers=auth("mo", "moderator"),
                             json={"decision": decision, "version": 1, "note": note})
    assert resp.status == 200, await resp.text()
    return flag_id


def outbox_rows(settings) -> list[dict]:
    return db_query(settings, "SELECT * FROM outbox ORDER BY id")


async def wait_until(condition, what, timeout: float = 20.0):
    """Poll ``condition()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


def rows_when(settings, predicate):
    """A condition for ``wait_until``: the outbox rows, once ``predicate(rows)`` holds."""
    def condition():
        rows = outbox_rows(settings)
        return rows if rows and predicate(rows) else None
    return condition


async def test_a_queued_message_is_sent_once(client, auth, smtp, face_bytes):
    await reported_and_decided(client, auth, face_bytes, ["ann@example.com"])
    (msg,) = await smtp.wait_for(1)
    assert smtp.envelopes == [("alerts@realcheck.example", ["ann@example.com"])]
    assert msg["From"] == "alerts@realcheck.example" and msg["Subject"].startswith("Realcheck:")
    assert msg["Message-ID"].startswith("<outbox-1-") and msg["Message-ID"].endswith("@realcheck.example>")
    await asyncio.sleep(0.5)  # more sender passes: still one
    assert len(smtp.messages) == 1
    row = await client.app[DB].fetchone("SELECT state, attempts, sent_at FROM outbox")
    assert (row["state"], row["attempts"]) == ("sent", 1) and row["sent_at"] > 0


async def test_an_smtp_outage_loses_nothing(client, auth, smtp_port, settings, face_bytes):
    await reported_and_decided(client, auth, face_bytes, ["ann@example.com", "bob@example.com"])
    deadline = time.monotonic() + 10
    while True:  # the sender has tried, failed, and kept the messages
        rows = outbox_rows(settings)
        if len(rows) == 2 and any(r["last_error"] for r in rows):
            break
        assert time.monotonic() < deadline, [dict(r) for r in rows]
        await asyncio.sleep(0.05)
    sender = client.app[MAIL]
    # Several retries during the outage; a row may be caught mid-try ('sending'), so wait for
    # the moment both rows rest between tries.
    rows = await wait_until(rows_when(settings, lambda rows: sender.outage_failures >= 3
                                      and {r["state"] for r in rows} == {"pending"}),
                            "three failed tries with both messages pending")
    assert {r["attempts"] for r in rows} == {0}
    assert "Connect" in rows[0]["last_error"] or "refused" in rows[0]["last_error"].lower()

    server = SmtpServer(smtp_port).start()  # the server comes back
    try:
        await server.wait_for(2)
        assert sorted(m["To"] for m in server.messages) == ["ann@example.com", "bob@example.com"]
        assert {r["state"] for r in outbox_rows(settings)} == {"sent"}
    finally:
        server.stop()


async def test_a_restart_resumes_sending_and_a_message_left_sending_goes_again(
        aiohttp_client, auth, smtp_port, settings, face_bytes):
    first = await aiohttp_client(create_app(settings))  # SMTP is down while it runs
    await reported_and_decided(first, auth, face_bytes, ["ann@example.com", "bob@example.com"])
    await first.close()
    assert [r["state"] for r in outbox_rows(settings)] == ["pending", "pending"]
    # Simulate a crash in the middle of sending bob's message: the row was left 'sending'.
    db_execute(settings,
               "UPDATE outbox SET state = 'sending', attempts = 1 WHERE recipient = 'bob@example.com'")

    server = SmtpServer(smtp_port).start()
    try:
        await aiohttp_client(create_app(settings))
        await server.wait_for(2)
        assert sorted(m["To"] for m in server.messages) == ["ann@example.com", "bob@example.com"]
        assert [r["state"] for r in outbox_rows(settings)] == ["sent", "sent"]
    finally:
        server.stop()


async def test_refusals_permanent_fail_at_once_temporary_retry_then_fail(
        aiohttp_client, auth, settings, smtp, face_bytes):
    settings = mail_settings(settings.data_dir, smtp.port, database_url=settings.database_url,
                             mail_max_attempts=2)
    client = await aiohttp_client(create_app(settings))
    smtp.refuse = {"gone": "550 5.1.1 no such mailbox", "busy": "451 4.3.0 try again later"}
    await reported_and_decided(client, auth, face_bytes,
                               ["gone@example.com", "busy@example.com", "ok@example.com"])
    await smtp.wait_for(1)
    deadline = time.monotonic() + 10
    while {r["recipient"]: r["state"] for r in outbox_rows(settings)} != {
            "gone@example.com": "failed", "busy@example.com": "failed", "ok@example.com": "sent"}:
        assert time.monotonic() < deadline, [dict(r) for r in outbox_rows(settings)]
        await asyncio.sleep(0.05)
    rows = {r["recipient"]: r for r in outbox_rows(settings)}
    assert rows["gone@example.com"]["attempts"] == 1 and "550" in rows["gone@example.com"]["last_error"]
    assert rows["busy@example.com"]["attempts"] == 2 and "451" in rows["busy@example.com"]["last_error"]
    assert [m["To"] for m in smtp.messages] == ["ok@example.com"]

    admin = auth("root", "admin")
    listing = await (await client.get("/v1/admin/outbox", params={"state": "failed"}, headers=admin)).json()
    assert {m["recipient"] for m in listing["items"]} == {"gone@example.com", "busy@example.com"}
    assert listing["counts"]["failed"] == 2 and listing["smtp_enabled"] is True
    smtp.refuse = {"gone": "550 5.1.1 no such mailbox"}  # busy is fine now
    busy_id = rows["busy@example.com"]["id"]
    resp = await client.post("/v1/admin/outbox/retry", json={"id": busy_id}, headers=admin)
    assert (await resp.json()) == {"requeued": 1}
    await smtp.wait_for(2)
    assert [m["To"] for m in smtp.messages] == ["ok@example.com", "busy@example.com"]
    audit = await (await client.get("/v1/admin/audit", params={"action": "mail.retry"}, headers=admin)).json()
    assert audit["items"][0]["detail"] == {"requeued": 1}


async def test_without_an_smtp_host_the_outbox_is_still_written(aiohttp_client, auth, settings, face_bytes):
    settings = Settings(data_dir=settings.data_dir, rate_limit_per_minute=0, mail_poll_s=0.1,
                        database_url=settings.database_url)
    client = await aiohttp_client(create_app(settings))
    await reported_and_decided(client, auth, face_bytes, ["ann@example.com"])
    await asyncio.sleep(0.4)
    listing = await (await client.get("/v1/admin/outbox", headers=auth("root", "admin"))).json()
    assert listing["smtp_enabled"] is False and listing["counts"]["pending"] == 1
    assert listing["items"][0]["recipient"] == "ann@example.com" and listing["items"][0]["attempts"] == 0


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


class Credentials:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (b"realcheck", b"s3cret")
        self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)


async def test_starttls_with_credentials(aiohttp_client, auth, settings, tmp_path, face_bytes):
    cert, context = self_signed(tmp_path)
    creds = Credentials()
    server = SmtpServer(free_port(), tls_context=context, require_starttls=True,
                        authenticator=creds, auth_require_tls=True).start()
    try:
        settings = mail_settings(settings.data_dir, server.port, database_url=settings.database_url,
                                 smtp_tls="starttls", smtp_user="realcheck",
                                 smtp_password="s3cret", smtp_ca_file=str(cert))
        client = await aiohttp_client(create_app(settings))
        await reported_and_decided(client, auth, face_bytes, ["ann@example.com"])
        (msg,) = await server.wait_for(1)
        assert msg["To"] == "ann@example.com" and creds.logins and all(ok for _, ok in creds.logins)
    finally:
        server.stop()


async def test_wrong_credentials_are_an_outage_not_a_lost_message(aiohttp_client, auth, settings, tmp_path,
                                                                  face_bytes):
    cert, context = self_signed(tmp_path)
    server = SmtpServer(free_port(), tls_context=context, require_starttls=True,
                        authenticator=Credentials(), auth_require_tls=True).start()
    try:
        settings = mail_settings(settings.data_dir, server.port, database_url=settings.database_url,
                                 smtp_tls="starttls", smtp_user="realcheck",
                                 smtp_password="wrong", smtp_ca_file=str(cert), mail_max_attempts=1)
        client = await aiohttp_client(create_app(settings))
        await reported_and_decided(client, auth, face_bytes, ["ann@example.com"])
        sender = client.app[MAIL]
        (row,) = await wait_until(rows_when(settings, lambda rows: sender.outage_failures >= 2
                                            and rows[0]["state"] == "pending"),
                                  "two refused logins with the message pending")
        assert row["attempts"] == 0 and "Authentication" in row["last_error"]
        assert server.messages == []
    finally:
        server.stop()


async def test_implicit_tls(aiohttp_client, auth, settings, tmp_path, face_bytes):
    cert, context = self_signed(tmp_path)
    server = SmtpServer(free_port(), ssl_context=context).start()
    try:
        settings = mail_settings(settings.data_dir, server.port, database_url=settings.database_url,
                                 smtp_tls="tls", smtp_ca_file=str(cert))
        client = await aiohttp_client(create_app(settings))
        await reported_and_decided(client, auth, face_bytes, ["ann@example.com"])
        (msg,) = await server.wait_for(1)
        assert msg["To"] == "ann@example.com"
    finally:
        server.stop()


async def test_an_address_the_server_cannot_carry_fails_that_message_only(aiohttp_client, auth, settings,
                                                                          face_bytes):
    """A non-ASCII address and a server without SMTPUTF8: that message fails, nobody's mail
    pauses (it used to be taken for an outage: pending forever, every message backing off)."""
    server = SmtpServer(free_port(), enable_SMTPUTF8=False).start()
    try:
        settings = mail_settings(settings.data_dir, server.port, database_url=settings.database_url)
        client = await aiohttp_client(create_app(settings))
        await reported_and_decided(client, auth, face_bytes, ["jürgen@exämple.org", "ann@example.com"])
        rows = await wait_until(rows_when(settings, lambda rows: len(rows) == 2 and all(
            r["state"] in ("sent", "failed") for r in rows)), "both messages settled")
        by_to = {r["recipient"]: r for r in rows}
        assert by_to["jürgen@exämple.org"]["state"] == "failed"
        assert by_to["jürgen@exämple.org"]["attempts"] == 1
        assert "SMTPUTF8" in by_to["jürgen@exämple.org"]["last_error"]
        assert by_to["ann@example.com"]["state"] == "sent"
        assert client.app[MAIL].outage_failures == 0 and client.app[MAIL].paused_until == 0
        assert [m["To"] for m in server.messages] == ["ann@example.com"]
    finally:
        server.stop()
