"""The roles, least to most powerful; each role may do what the ones before it may."""

ROLES = ("user", "moderator", "admin")
