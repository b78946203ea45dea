"""The text of each kind of email: (subject, body), plain text."""

from __future__ import annotations

from datetime import UTC, datetime

DECISION_WORDS = {
    "fake": "confirmed it is fake",
    "real": "decided it is real after all",
    "dismissed": "dismissed the report (the detectors' verdict stands)",
}

FOOTER = ("\n--\nRealcheck. You get this because email alerts are on for your account;"
          " turn them off in the dashboard under Settings.\n")


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fake_alert(check: dict, base_url: str) -> tuple[str, str]:
    lines = ["An image you checked came back FAKE.", ""]
    if check.get("moderation"):
        lines.append("Moderators have confirmed this image is fake.")
    else:
        lines.append(f"Probability that a face is generated: {check['score']:.0%}"
                     f" (confidence {check['confidence']:.0f}/100).")
    if check.get("page_url"):
        lines.append(f"Seen on: {check['page_url']}")
    if check.get("source_url"):
        lines.append(f"Image: {check['source_url']}")
    lines += [f"Checked: {when(check['created_at'])}", f"Check id: {check['id']}", "",
              "Think the verdict is wrong? Use \"Report a wrong verdict\" in the extension;"
              " a moderator will look at it.",
              f"Help: {base_url}/help"]
    return "Realcheck: an image you checked looks fake", "\n".join(lines) + FOOTER


def queue_alert(items: list, base_url: str, digest: bool) -> tuple[str, str]:
    n = len(items)
    subject = f"Realcheck: {n} new flagged item{'s' if n != 1 else ''} to review"
    head = "Digest of items" if digest else "Items"
    lines = [f"{head} that entered the moderation queue:", ""]
    for it in items:
        why = "reported by a user" if it["reason"] == "report" else \
            f"detectors: {it['detector_verdict'] or '?'}"
        score = f"{it['score']:.0%}" if it["score"] is not None else "?"
        lines.append(f"- P(fake) {score}, {why}: {base_url}/dashboard#item={it['id']}")
    lines += ["", f"Open the queue: {base_url}/dashboard"]
    footer = ("\n--\nRealcheck. You get this as a moderator; turn queue alerts off in the"
              " dashboard under Settings.\n")
    return subject, "\n".join(lines) + footer


def decision(decision: str, note: str | None, report: dict, base_url: str) -> tuple[str, str]:
    lines = [f"You reported a wrong verdict on {when(report['created_at'])}.",
             f"Moderators reviewed the image and {DECISION_WORDS[decision]}."]
    if note:
        lines += ["", f"Their note: {note}"]
    if report.get("page_url"):
        lines += ["", f"Page: {report['page_url']}"]
    if decision in ("fake", "real"):
        lines += ["", "From now on every check of this image answers with the moderators' verdict."]
    lines += ["", f"Help: {base_url}/help"]
    footer = "\n--\nRealcheck. You get this because you reported this image.\n"
    return "Realcheck: moderators decided on your report", "\n".join(lines) + footer


def confirm_registration(link: str, code: str, valid_h: int) -> tuple[str, str]:
    lines = ["Someone (we hope you) asked to create a Realcheck account with this address.", "",
             "To finish, open this link and enter the password you chose:", link, "",
             f"Or paste this code on the sign-in page: {code}",
             f"It is valid for {valid_h} hours.", "",
             "If this was not you, ignore this message: no account is created without it."]
    footer = "\n--\nRealcheck. You get this because this address was entered to create an account.\n"
    return "Realcheck: confirm your email address", "\n".join(lines) + footer


def registration_attempt(base_url: str) -> tuple[str, str]:
    lines = ["Someone tried to create a Realcheck account with this address, which already has",
             "an account. Nothing about your account was changed.", "",
             f"If it was you, sign in instead: {base_url}/signin",
             "If it was not you, there is nothing to do: they cannot use your account."]
    footer = "\n--\nRealcheck. You get this because this address has a Realcheck account.\n"
    return "Realcheck: someone tried to register with your address", "\n".join(lines) + footer
