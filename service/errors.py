"""JSON errors with stable codes, and the middleware that turns every failure into one."""

from __future__ import annotations

import logging
import math

from aiohttp import web

from service.keys import SETTINGS
from service.pools import PoolBusy
from service.store import BadValue, Duplicate

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": ...}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False, **details):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.close = close  # close the connection after answering (a body left unread)

    def response(self) -> web.Response:
        body = {"error": self.code, "message": self.message, **self.details}
        resp = web.json_response(body, status=self.status)
        if self.close:
            resp.force_close()
        retry = self.details.get("retry_after_s")
        if isinstance(retry, (int, float)):  # the HTTP header takes whole seconds
            resp.headers["Retry-After"] = str(max(1, math.ceil(retry)))
        return resp


def bad_request(code: str, message: str, **details) -> ApiError:
    return ApiError(400, code, message, **details)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


async def _send_and_close(request: web.Request, resp: web.Response) -> web.Response:
    """Send ``resp`` and close the connection right after it. ``resp.force_close()`` alone ends
    keep-alive, but aiohttp first reads and drops what is left of an unread body for up to
    ``lingering_time`` (10 s): a fake Content-Length would hold the socket that long for nothing.
    """
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    request.protocol.force_close()  # flushes what was written, then closes
    return resp


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return await _send_and_close(request, e.response()) if e.close else e.response()
    except BadValue as e:  # input the database cannot hold (NUL in text, a number out of range)
        return ApiError(400, "bad_value", f"a value in the request cannot be stored: {e}").response()
    except Duplicate as e:  # a unique key taken meanwhile, where no store module said what it means
        log.warning("unique violation on %s %s answered 409: %s", request.method, request.path, e)
        return ApiError(409, "conflict", "the request conflicts with a change made at the same"
                                         " time (that entry exists now): try again").response()
    except PoolBusy as e:  # a flood is queued on that work: refuse more rather than wait
        return ApiError(503, "busy", f"the service is busy ({e.name}); try again shortly",
                        retry_after_s=1).response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        message = e.reason
        if e.status == 413:
            limit = request.app[SETTINGS].max_body_bytes
            message = f"the request body is larger than the limit of {limit} bytes"
        resp = web.json_response({"error": code, "message": message}, status=e.status)
        for h in ("Allow", "Retry-After"):
            if h in e.headers:
                resp.headers[h] = e.headers[h]
        if e.status == 413:  # the rest of the body is not read: do not wait for it
            return await _send_and_close(request, resp)
        return resp
    except ConnectionResetError:  # the client went away mid-request: theirs, not a bug of ours
        log.info("client closed the connection during %s %s", request.method, request.path)
        resp = web.json_response({"error": "connection_reset", "message": "connection closed"},
                                 status=400)
        resp.force_close()
        return resp
    except Exception:  # a bug: answer JSON, log the trace, never leak it
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            {"error": "internal_error", "message": "the service failed on this request"},
            status=500,
        )

