"""``python -m service copy-db``: an install's SQLite data, copied into PostgreSQL, is the same
service afterwards (accounts sign in, checks, queue, decisions, audit, FAQ, mail), and new rows
continue after the copied ids."""

from __future__ import annotations

import os
import subprocess
import sys

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import Settings
from tests.support.accounts import PASSWORD, login, register
from tests.support.api import post_check
from tests.support.paths import REPO
from tests.test_accounts_signin import bearer


def copy_db(data_dir, url: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REALCHECK_")}
    environ["REALCHECK_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "service", "copy-db", "--to", url], cwd=REPO,
                          env=environ, capture_output=True, text=True, timeout=120)


async def test_sqlite_data_copied_into_postgresql(aiohttp_client, tmp_path, postgres, face_bytes):
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, rate_limit_per_minute=0)
    old = await aiohttp_client(create_app(settings))
    issuer = LocalIssuer(data_dir / "keys", settings.issuer, 3600)

    def auth(sub, role, **kw):
        return bearer(issuer.issue(sub, role, **kw))

    session = await (await register(old, email="ann@example.com")).json()
    ann = bearer(session["token"])
    assert (await old.patch("/v1/me", json={"email_alerts": True}, headers=ann)).status == 200
    check = await post_check(old, ann, face_bytes, page_url="https://ann.example/page")
    report = await (await old.post(f"/v1/checks/{check['id']}/report", json={"note": "no"},
                                   headers=ann)).json()
    mod, admin = auth("mo", "moderator", email="mo@example.com"), auth("root", "admin")
    resp = await old.post(f"/v1/moderation/items/{report['flag_id']}/decision", headers=mod,
                          json={"decision": "fake", "version": 1, "note": "copied"})
    assert resp.status == 200
    faq = await (await old.post("/v1/admin/faq", json={"question": "Q?", "answer": "A."},
                                headers=admin)).json()
    audit_before = (await (await old.get("/v1/admin/audit", headers=admin)).json())["items"]
    outbox_before = (await (await old.get("/v1/admin/outbox", headers=admin)).json())["items"]
    assert outbox_before, "the decision queued mail for ann"
    await old.close()

    url = postgres.create_database(migrated=False)
    done = copy_db(data_dir, url)
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout and "checks: 1 rows" in done.stdout

    new = await aiohttp_client(create_app(Settings(data_dir=data_dir, rate_limit_per_minute=0,
                                                   database_url=url)))
    resp = await login(new, email="ann@example.com", password=PASSWORD)
    assert resp.status == 200, "the password hash came along"
    mine = (await (await new.get("/v1/checks", headers=ann)).json())["items"]
    assert [c["id"] for c in mine] == [check["id"]]
    item = await (await new.get(f"/v1/moderation/items/{report['flag_id']}", headers=mod)).json()
    assert item["decision"]["note"] == "copied" and item["version"] == 2
    assert [r["note"] for r in item["reports"]] == ["no"]
    again = await post_check(new, ann, face_bytes)
    assert again["cached"] is True and again["moderation"]["verdict"] == "fake"
    heatmap = await new.get(check["heatmap_url"], headers=ann)
    assert heatmap.status == 200 and heatmap.content_type == "image/png", "image bytes came along"
    audit_after = (await (await new.get("/v1/admin/audit", headers=admin)).json())["items"]
    assert audit_after[-len(audit_before):] == audit_before
    outbox_after = (await (await new.get("/v1/admin/outbox", headers=admin)).json())["items"]
    assert outbox_after[-len(outbox_before):] == outbox_before
    assert all(m["id"] > outbox_before[0]["id"] for m in outbox_after[:-len(outbox_before)])
    # Auto-numbered ids continue after the copied ones.
    second = await (await new.post("/v1/admin/faq", json={"question": "Q2?", "answer": "B."},
                                   headers=admin)).json()
    assert second["id"] > faq["id"]
    newest = (await (await new.get("/v1/admin/audit", headers=admin)).json())["items"][0]
    assert newest["action"] == "faq.create" and newest["id"] > audit_before[0]["id"]
    await new.close()

    refused = copy_db(data_dir, url)  # never into a database that has rows
    assert refused.returncode == 2 and "not empty" in refused.stderr
