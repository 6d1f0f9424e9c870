"""Audit W: the 中文 page shows English words the page itself puts there (README "中文 / English")."""

from __future__ import annotations

import re
from pathlib import Path

from tests.http_edges.harness import api, closed_port, completed_job, csrf_of, settings_for

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def test_the_chinese_unavailable_page_names_the_service_in_chinese(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    With the database down, the Chinese jobs page says "暂时无法连接 the database，请稍后再试。": the
    handler (api_errors.install.unavailable) fills the translated sentence with an English phrase
    ("the database" / "the broker"), so the Chinese page is half English. Right: the service's name in
    the page's language (数据库 / 消息队列), or one neutral name both languages share."""
    settings = settings_for(tmp_path, db_url=f"postgresql+psycopg://clipline@127.0.0.1:{closed_port()}/x")
    with api(settings) as client:
        answer = client.get("/", headers=ZH)
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("text/html"), answer.text[
        :200
    ]
    body = re.search(r"<main[^>]*>(.*)</main>", answer.text, re.S)
    assert body is not None
    assert "the database" not in body.group(1), body.group(1).strip()


def test_a_refused_retry_is_said_in_the_pages_language_then_the_services_words(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    README: "a refusal (409) is shown on the page". On a Chinese page, Retry of a COMPLETED job (e.g.
    two operators, or a stale tab) shows the service's English message ("job ... is COMPLETED ...")
    as the page's alert: routes.job_action passes str(JobStateConflict) as the error, not a label.
    Right: the refusal in the page's language (the service's words may follow)."""
    settings = settings_for(tmp_path)
    completed_job(settings, "audit-w-done")
    with api(settings) as client:
        answer = client.post(
            "/ui/jobs/audit-w-done/retry",
            data={"csrf": csrf_of(client), "confirmed": "yes"},
            headers=ZH,
        )
    assert answer.status_code == 409, answer.text[:300]
    alert = re.search(r'id="action-error">(.*?)</p>', answer.text, re.S)
    assert alert is not None
    assert re.search(r"[\u4e00-\u9fff]", alert.group(1)), (
        f"the Chinese page's alert is English: {alert.group(1)!r}"
    )
