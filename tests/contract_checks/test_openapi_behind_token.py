"""README, "Over HTTP": "With `CLIPLINE_API_TOKEN` set, every call but health, metrics and the OpenAPI
document needs
`Authorization: Bearer <token>` ..., else 401"; SECURITY.md: "every call but `/healthz`, `/readyz`,
`/metrics` needs it", and the pages `clipline api` serves carry "a Content-Security-Policy without inline
script"."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from clipline.api import create_app
from pipeline.settings import load_settings


def test_fastapi_docs_pages_are_not_served_without_the_token(tmp_path: Path) -> None:
    """With CLIPLINE_API_TOKEN set, FastAPI's default /docs and /redoc pages (inline script, assets from a
    public CDN, no CSP) answer 200 to anyone without a token, though only health and metrics are open."""
    settings = load_settings(
        {
            "CLIPLINE_API_TOKEN": "s3cret-token",
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db",
            "CLIPLINE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F",  # nothing is contacted
            "CLIPLINE_REDIS_URL": "redis://127.0.0.1:1/0",
        }
    )
    client = TestClient(create_app(settings))
    # the contract's own reference points: a guarded call is refused, health is open
    assert client.get("/jobs").status_code == 401
    assert client.get("/healthz").status_code == 200
    answers = {path: client.get(path) for path in ("/docs", "/redoc")}
    seen = {p: (r.status_code, r.headers.get("content-security-policy")) for p, r in answers.items()}
    assert all(r.status_code in (401, 404) for r in answers.values()), seen
