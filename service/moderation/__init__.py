"""Moderation: the flagged queue (``queue``): items, reports, decisions and their history."""
