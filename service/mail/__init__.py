"""Email: the outbox table, the message texts, and the background SMTP sender."""
