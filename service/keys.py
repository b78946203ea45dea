"""Typed application keys shared by the modules (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", "Settings")
DB = web.AppKey("db", "Database")  # service.store: SQLite or PostgreSQL
HTTP = web.AppKey("http", aiohttp.ClientSession)
ISSUER = web.AppKey("issuer", "LocalIssuer | None")
VERIFIER = web.AppKey("verifier", "TokenVerifier")
DETECTOR = web.AppKey("detector", "Detector")
RATE_LIMITER = web.AppKey("rate_limiter", "RateLimiter")
CHECKS = web.AppKey("checks", "CheckService")
FETCH_HTTP = web.AppKey("fetch_http", aiohttp.ClientSession)
MAIL = web.AppKey("mail", "MailSender")
POOLS = web.AppKey("pools", "Pools")
AUTH_LIMITER = web.AppKey("auth_limiter", "RateLimiter")
LOGIN_THROTTLE = web.AppKey("login_throttle", "LoginThrottle")
NEAR = web.AppKey("near", "NearDuplicates")
VIDEO = web.AppKey("video", "VideoChecks")
JOBS = web.AppKey("jobs", "JobService")
