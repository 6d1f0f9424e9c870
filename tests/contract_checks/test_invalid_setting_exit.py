"""README, exit codes: 2 = "... a bad option, setting or `CLIPLINE_*` variable ...", `error.code`
`settings_invalid` under --json; "stderr carries one line for people, never a traceback for an expected
error"."""

from __future__ import annotations

from pathlib import Path

from .helpers import base_env, clipline, last_json


def test_a_setting_with_a_bad_value_exits_2_settings_invalid(tmp_path: Path) -> None:
    """A known variable with a value its setting refuses (`CLIPLINE_MAX_LINES=lots`) makes every command
    crash with a pydantic traceback, exit 1 and `internal_error`, instead of exit 2 `settings_invalid`."""
    env = base_env(CLIPLINE_MAX_LINES="lots", CLIPLINE_DATABASE_URL=f"sqlite:///{tmp_path}/jobs.db")
    res = clipline(env, "status", "some-job", "--json", timeout=60)
    out = last_json(res.stdout)
    assert (res.returncode, out["error"]["code"]) == (2, "settings_invalid"), (res.returncode, out)
    assert "Traceback" not in res.stderr, res.stderr[-600:]
    assert "CLIPLINE_MAX_LINES" in out["error"]["message"]
