"""A URL httpx cannot send to (a control character, an invalid IDNA label, a port out of range), given or in
a redirect's Location, is a SourceInvalid naming it (redacted), never a bare httpx or idna exception."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urljoin

import pytest

from pipeline import fetch, netguard
from pipeline.errors import SourceInvalid
from tests.loopback import serving

POLICY = netguard.Policy(allow_private=True)
LIMITS = fetch.Limits(timeout_s=5.0, deadline_s=20.0, max_bytes=2**20)
#: path -> where it redirects to
LOCATIONS = {
    "/to-bad-port": "http://127.0.0.1:99999/seg.ts?sig=secret",
    "/to-bad-idna": "http://xn--abc.example/seg.ts",
    "/to-a-tab": "/seg\t.ts",
}


class _Redirects(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(301)
        self.send_header("Location", LOCATIONS[self.path.split("?")[0]])
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(_Redirects) as url:
        yield url


@pytest.mark.parametrize("path", ["/to-bad-port", "/to-bad-idna", "/to-a-tab"])
def test_a_redirect_to_a_url_that_cannot_be_requested_is_refused_naming_it(base: str, path: str) -> None:
    with pytest.raises(SourceInvalid) as caught:
        fetch.get(f"{base}{path}?sig=secret", policy=POLICY, limits=LIMITS)
    message = str(caught.value)
    target = urljoin(f"{base}{path}", LOCATIONS[path]).split("?")[0]  # urllib drops a tab
    assert target in message, message
    assert f"(redirected from {base}{path}?sig=REDACTED)" in message, message
    assert "secret" not in message, message


@pytest.mark.parametrize(
    "url", ["http://example.com/a\tb?token=secret", "http://xn--abc.example/x", "http://example.com:99999/x"]
)
def test_a_first_url_that_cannot_be_requested_is_refused_naming_it(url: str) -> None:
    with pytest.raises(SourceInvalid) as caught:
        fetch.get(url, policy=POLICY, limits=LIMITS)
    assert url.split("?")[0] in str(caught.value) and "secret" not in str(caught.value), caught.value
