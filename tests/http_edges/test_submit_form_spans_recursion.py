"""Outside audit, fixed since: json_spans walks the pasted text recursively."""

from __future__ import annotations

import json
from pathlib import Path

from .harness import api, csrf_of, one_line_request, settings_for


def test_submit_form_shows_problems_of_a_request_with_a_deeply_nested_field(tmp_path: Path) -> None:
    """A valid JSON request with 600 levels of nesting and any validation problem made the submit form
    answer 500, because json_spans overflows the stack locating the field, instead of listing it (422)."""
    text = json.dumps(one_line_request("nested-1"))[:-1] + ', "colour": ' + "[" * 600 + "]" * 600 + "}"
    assert json.loads(text)["colour"]  # valid JSON, readable by the API's own reader too
    with api(settings_for(tmp_path)) as client:
        through_api = client.post("/jobs", content=text, headers={"Content-Type": "application/json"})
        assert through_api.status_code == 422 and through_api.json()["error"]["field"] == "colour"
        form = client.post("/ui/submit", data={"request": text, "csrf": csrf_of(client)})
        assert form.status_code == 422, form.text[:300]
        assert "Extra inputs are not permitted" in form.text
