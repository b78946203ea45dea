"""Building a message from an outbox row and handing it to the SMTP server (standard smtplib).

``deliver`` blocks; the sender runs it in a thread. ``classify`` tells a refusal of one message
from an outage of the server.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from service.settings import Settings


def message_id(row, settings: Settings) -> str:
    """Stable per outbox row, so a resend after a crash carries the same Message-ID."""
    domain = settings.smtp_from.rpartition("@")[2] or "realcheck.local"
    digest = hashlib.sha256(row["dedupe_key"].encode()).hexdigest()[:16]
    return f"<outbox-{row['id']}-{digest}@{domain}>"


def build_message(row, settings: Settings) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = row["recipient"]
    msg["Subject"] = row["subject"]
    msg["Date"] = formatdate(row["created_at"], localtime=False, usegmt=True)
    msg["Message-ID"] = message_id(row, settings)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Realcheck-Kind"] = row["kind"]
    msg.set_content(row["body"])
    return msg


def tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.smtp_ca_file:
        context.load_verify_locations(cafile=settings.smtp_ca_file)
    return context


class MessageNotSupported(Exception):
    """This server cannot take this message (a non-ASCII address without SMTPUTF8): the
    message fails, the server is fine."""


def deliver(settings: Settings, msg: EmailMessage) -> None:
    """Send one message; raises on any failure (see ``classify``)."""
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s
    if settings.smtp_tls == "tls":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context(settings))
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if settings.smtp_tls == "starttls":
            client.starttls(context=tls_context(settings))
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password)
        try:
            client.send_message(msg)
        except smtplib.SMTPNotSupportedError as e:  # raised before anything is sent
            raise MessageNotSupported(f"the server cannot take this message: {e}") from e


def classify(exc: BaseException) -> str:
    """``permanent``: the server refused this message for good (5xx on its recipients or data,
    or an address it cannot carry);
    ``refused``: refused for now (4xx), retried up to ``mail_max_attempts``; ``outage``:
    anything else (unreachable, TLS, credentials, sender refused), retried until it works.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return "permanent" if codes and all(c >= 500 for c in codes) else "refused"
    if isinstance(exc, MessageNotSupported):
        return "permanent"
    if isinstance(exc, smtplib.SMTPDataError):
        return "permanent" if exc.smtp_code >= 500 else "refused"
    return "outage"
