"""Share links of checks: the owner makes or revokes one; anyone with the link sees the page."""

from __future__ import annotations

import html
import re
import time

from aiohttp import web

from service.auth.identity import caller
from service.checks import limits, shares
from service.errors import not_found
from service.handlers.common import heatmap_response
from service.handlers.pages import page_response
from service.keys import CHECKS, DB, DETECTOR, SETTINGS

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{40,64}$")
HEADLINES = {"real": "Looks real", "fake": "Looks generated", "uncertain": "Can't tell",
             "no_face": "No face found: not judged"}
PILLS = {"real": "REAL", "fake": "FAKE", "uncertain": "UNSURE", "no_face": "NO FACE"}


async def _owned(request: web.Request) -> dict:
    """The caller's own check (moderators cannot share other people's checks)."""
    user = caller(request)
    check = await request.app[CHECKS].get(request.match_info["check_id"])
    if check is None or check["user_id"] != user.id:
        raise not_found("no such check")
    return check


def _share_json(request: web.Request, share: dict | None) -> dict | None:
    if share is None:
        return None
    base = request.app[SETTINGS].public_url.rstrip("/")
    return {"url": f"{base}/s/{share['token']}", "token": share["token"],
            "created_at": share["created_at"]}


async def create_share(request: web.Request) -> web.Response:
    check = await _owned(request)
    share, created = await shares.create(request.app[DB], check["id"])
    return web.json_response(_share_json(request, share), status=201 if created else 200)


async def get_share(request: web.Request) -> web.Response:
    check = await _owned(request)
    return web.json_response({"share": _share_json(request, await shares.active(request.app[DB],
                                                                                 check["id"]))})


async def revoke_share(request: web.Request) -> web.Response:
    check = await _owned(request)
    return web.json_response({"revoked": await shares.revoke(request.app[DB], check["id"])})


async def _shared_check(request: web.Request) -> dict | None:
    token = request.match_info["token"]
    if not TOKEN_RE.match(token):
        return None
    check_id = await shares.resolve(request.app[DB], token)
    return await request.app[CHECKS].get(check_id) if check_id else None


def _gone() -> web.Response:
    raise not_found("this share link was revoked or never existed")


def _pct(p) -> str:
    return "–" if p is None else f"{p * 100:.0f} %"


def _faces_svg(check: dict, base: str) -> str:
    w, h = check.get("width") or 1, check.get("height") or 1
    parts = [f'<svg class="shot" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="The image, each face outlined and numbered">',
             f'<image href="{base}/image.jpg" x="0" y="0" width="{w}" height="{h}"/>']
    stroke = max(2, round(max(w, h) / 200))
    for i, f in enumerate(check.get("faces") or []):
        x, y, bw, bh = f["box"]
        parts.append(f'<rect class="face {html.escape(f["verdict"])}" x="{x}" y="{y}" width="{bw}" '
                     f'height="{bh}" stroke-width="{stroke}"/>'
                     f'<text class="face-n" x="{x + stroke}" y="{y - stroke}" '
                     f'font-size="{max(12, round(max(w, h) / 30))}">{i + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _faces_rows(check: dict) -> str:
    faces = check.get("faces") or []
    if not faces:
        return ('<tr><td colspan="4" class="muted">No face found: the detectors judge faces only, '
                "so this image was not judged.</td></tr>")
    rows = []
    for i, f in enumerate(faces):
        verdict = f["verdict"]
        note = (" (too small to judge well)" if f.get("too_small") else
                " (runs off the picture's edge: not judged)" if f.get("cut_off") else
                " (unlike the faces the detectors learned from: not called fake or real)"
                if f.get("unfamiliar") else
                " (not every detector finds it fake on its own: not called"
                " fake)" if f.get("confirmed") is False and f.get("note") else "")  # held back by it
        decisive = " · decided the verdict" if i == check.get("decisive_face") else ""
        models = ", ".join(f"{html.escape(k)} {_pct(v)}" for k, v in (f.get("models") or {}).items())
        rows.append(f'<tr class="face-row"><td>Face {i + 1}{decisive}</td>'
                    f'<td><span class="badge {html.escape(verdict)}">{PILLS.get(verdict, verdict)}'
                    f"</span>{note}</td><td class=\"num\">{_pct(f.get('score'))}</td>"
                    f"<td>{models}</td></tr>")
    return "".join(rows)


def _summary(check: dict) -> str:
    verdict = check["verdict"]
    mod = check.get("moderation")
    if mod:
        note = f" Their note: “{html.escape(mod['note'])}”." if mod.get("note") else ""
        det = check["detectors"]
        return (f"Decided by Realcheck's moderators: {verdict}.{note} The detectors alone said "
                f"{html.escape(str(det['verdict']))}"
                + (f" (P(fake) {det['score']:.2f})." if det.get("score") is not None else "."))
    if verdict == "no_face":
        return "No face was found in this image, so the detectors did not judge it."
    if verdict == "uncertain":
        return (f"The detectors cannot tell: P(fake) {check['score']:.2f} lies in their uncertain "
                "band. Treat the image with care.")
    if verdict == "real":  # no "% sure": fakes of generators they never saw often score as real
        return (f"The detectors say real: P(fake) {check['score']:.2f}, no sign of the fakes they "
                "know. That is not proof the face is genuine.")
    return (f"The detectors say {verdict}: P(fake) {check['score']:.2f}, "
            f"{check['confidence']:.0f} % sure of {check['label']}.")


async def share_page(request: web.Request) -> web.Response:
    check = await _shared_check(request)
    if check is None:
        return _gone()
    ensemble = request.app[DETECTOR].ensemble
    base = f"/s/{request.match_info['token']}"
    th = limits.thresholds(ensemble)
    limit_items = "".join(f"<li>{html.escape(t)}</li>" for t in limits.limits_text(ensemble))
    checked = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(check.get("created_at") or 0))
    return page_response(
        "share.html",
        verdict=html.escape(check["verdict"]),
        pill=PILLS.get(check["verdict"], check["verdict"]),
        headline=HEADLINES.get(check["verdict"], check["verdict"]),
        summary=_summary(check),
        image=_faces_svg(check, base) if _has_image(check) else
        '<p class="muted">The image is not shown: this result was found by its fingerprint.</p>',
        faces=_faces_rows(check),
        heatmap=(f'<img class="heatmap" src="{base}/heatmap.png" alt="Heatmap: where the detectors'
                 ' looked in each face">') if check.get("faces") and _has_image(check) else
                '<p class="muted">No heatmap: no face was found.</p>',
        checked=checked,
        models_version=html.escape(str(check.get("models_version") or "")),
        sha256=html.escape(check["sha256"]),
        fake_from=f"{th['fake_from']:.2f}", real_below=f"{th['real_below']:.2f}",
        limits=limit_items,
    )


def _has_image(check: dict | None) -> bool:
    """Whether the owner sent the image itself (a check answered from its SHA-256 alone shows
    the verdict, never the image)."""
    return check is not None and check.get("image_sent") is not False


async def share_image(request: web.Request) -> web.Response:
    check = await _shared_check(request)
    check = check if _has_image(check) else None
    row = await request.app[CHECKS].heatmap_inputs(check["sha256"]) if check else None
    if row is None or not row["thumbnail"]:
        raise not_found("this link was revoked or never existed")
    return web.Response(body=row["thumbnail"], content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=300",
                                 "Referrer-Policy": "no-referrer"})


async def share_heatmap(request: web.Request) -> web.Response:
    check = await _shared_check(request)
    check = check if _has_image(check) else None
    row = await request.app[CHECKS].heatmap_inputs(check["sha256"]) if check else None
    if row is None or not row["thumbnail"]:
        raise not_found("this link was revoked or never existed")
    return await heatmap_response(request, row)
