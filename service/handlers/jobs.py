"""HTTP handlers for jobs: a long check's progress and result, and cancelling it."""

from __future__ import annotations

from aiohttp import web

from service.auth.identity import caller
from service.errors import ApiError, not_found
from service.keys import CHECKS, JOBS


async def _own_job(request: web.Request, *, moderators: bool) -> dict:
    """The caller's job, or with ``moderators`` any job when the caller is one (moderators
    read every check; only the owner cancels, as only the owner shares or reports a check)."""
    user = caller(request)
    job = await request.app[JOBS].get(request.match_info["job_id"])
    # Another user's job answers 404, as another user's check does.
    if job is None or (job["user_id"] != user.id and not (moderators and user.has("moderator"))):
        raise not_found("no such job")
    return job


async def get_job(request: web.Request) -> web.Response:
    """``{"job": ...}``: status, progress; when done, the check itself."""
    job = await _own_job(request, moderators=True)
    job.pop("user_id", None)
    if job["status"] == "done" and job["check_id"]:
        check = await request.app[CHECKS].get(job["check_id"])
        if check is not None:
            check.pop("user_id", None)
        job["check"] = check
    return web.json_response({"job": job})


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a queued or running job; 409 ``job_finished`` once it has ended."""
    job = await _own_job(request, moderators=False)
    cancelled = await request.app[JOBS].cancel(job["id"])
    job = await request.app[JOBS].get(job["id"])
    if not cancelled:
        raise ApiError(409, "job_finished", f"the job has already ended ({job['status']})",
                       job_status=job["status"])
    job.pop("user_id", None)
    return web.json_response({"job": job})
