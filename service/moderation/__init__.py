"""Moderation: the flagged queue, decisions, audit trail, users and FAQ administration."""
