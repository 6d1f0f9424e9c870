"""Outside audit, fixed since: the submit form read JSON with json.loads, not the API's reader."""

from __future__ import annotations

from pathlib import Path

from .harness import api, csrf_of, settings_for


def test_submit_form_refuses_json_nested_too_deep_like_the_api(tmp_path: Path) -> None:
    """A pasted request nested deeper than the JSON reader goes made the submit form answer 500
    (json.loads' RecursionError is not caught) where POST /jobs answers 422 ``(body)``."""
    text = "[" * 100_000 + "]" * 100_000  # 200 kB, well under CLIPLINE_API_MAX_BODY_BYTES
    with api(settings_for(tmp_path)) as client:
        through_api = client.post("/jobs", content=text, headers={"Content-Type": "application/json"})
        assert through_api.status_code == 422 and through_api.json()["error"]["field"] == "(body)"
        form = client.post("/ui/submit", data={"request": text, "csrf": csrf_of(client)})
        assert form.status_code == 422, form.text[:300]
        assert form.headers["content-type"].startswith("text/html")
