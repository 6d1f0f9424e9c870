"""Outbound requests against a hostile loopback server: every hop checked, every download bounded.

The server answers as ``127.0.0.1`` and as ``localhost`` (two host names, one socket), so
``CLIPLINE_ALLOWED_HOSTS=localhost`` makes 127.0.0.1 "another host".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest

from pipeline import clipstage, fetch, netguard, planning, webhooks
from pipeline.errors import SourceInvalid, SourceUnavailable
from pipeline.settings import Settings, load_settings
from pipeline.sources import SourceResolver

from .conftest import Stack, build_request, new_job_id
from .hostile import HostileServer
from .test_stages import make_ctx

pytestmark = pytest.mark.integration

OPEN = netguard.Policy(allow_private=True)
LOCALHOST_ONLY = netguard.Policy(frozenset({"localhost"}), allow_private=True)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def settings(**env: str) -> Settings:
    return load_settings({"CLIPLINE_HTTP_TIMEOUT_S": "2", "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true", **env})


def limits(**kw: Any) -> fetch.Limits:
    return fetch.Limits(**({"timeout_s": 2.0, "deadline_s": 10.0, "max_bytes": 2**20} | kw))


def redirect(hostile: HostileServer, to: str, *, host: str = "127.0.0.1", code: int = 302) -> str:
    return hostile.url(f"redirect?code={code}&to={quote(to, safe='')}", host=host)


# -- every hop -------------------------------------------------------------------------------------
def test_a_redirect_to_a_host_outside_the_allowlist_is_refused_before_it_is_fetched(
    hostile: HostileServer,
) -> None:
    # Given a playlist on an allowed host that redirects to another host
    target = hostile.url("/files/other-host.m3u8?case=allowlist", host="127.0.0.1")
    start = redirect(hostile, target, host="localhost")
    # When it is fetched with CLIPLINE_ALLOWED_HOSTS=localhost
    with pytest.raises(SourceInvalid) as caught:
        fetch.get(start, policy=LOCALHOST_ONLY, limits=limits())
    # Then the hop is refused, named with the redirect that led to it, and never requested
    message = str(caught.value)
    assert "CLIPLINE_ALLOWED_HOSTS" in message and "'127.0.0.1'" in message
    assert "redirected from http://localhost:" in message
    assert not hostile.requests_to("/files/other-host.m3u8")


def test_a_redirect_within_the_allowlist_is_followed_and_names_the_final_url(hostile: HostileServer) -> None:
    hostile.put("same.m3u8", b"#EXTM3U\n")
    body = fetch.get(
        redirect(hostile, hostile.url("/files/same.m3u8", host="localhost"), host="localhost", code=301),
        policy=LOCALHOST_ONLY,
        limits=limits(),
    )
    assert body.content == b"#EXTM3U\n" and body.url.endswith("/files/same.m3u8")


def test_a_redirect_loop_ends(hostile: HostileServer) -> None:
    with pytest.raises(SourceInvalid, match="more than 5 redirects"):
        fetch.get(hostile.url("/loop"), policy=OPEN, limits=limits())


def test_a_redirect_to_another_scheme_is_refused(hostile: HostileServer) -> None:
    with pytest.raises(SourceInvalid, match="refusing to read file URL"):
        fetch.get(redirect(hostile, "file:///etc/passwd"), policy=OPEN, limits=limits())


@pytest.mark.parametrize("target", ["http://127.0.0.1:99999/x.ts", "http://cdn.example:-1/x.ts"])
def test_a_redirect_to_a_url_no_request_can_be_sent_to_is_refused_naming_it(
    hostile: HostileServer, target: str
) -> None:
    with pytest.raises(SourceInvalid, match="cannot be parsed"):
        fetch.get(redirect(hostile, target), policy=OPEN, limits=limits())


def test_the_api_key_is_not_sent_to_another_host_on_a_redirect(hostile: HostileServer) -> None:
    hostile.put("api-other.json", b"{}")
    hostile.put("api-same.json", b"{}")
    key = {"x-api-key": "k-secret"}
    fetch.get(redirect(hostile, hostile.url("/files/api-other.json", host="localhost")), policy=OPEN,
              limits=limits(), headers=key)  # fmt: skip
    fetch.get(
        redirect(hostile, hostile.url("/files/api-same.json")), policy=OPEN, limits=limits(), headers=key
    )
    (other,) = hostile.requests_to("/files/api-other.json")
    (same,) = hostile.requests_to("/files/api-same.json")
    assert "x-api-key" not in {k.lower() for k in other.headers}  # localhost is not 127.0.0.1's origin
    assert {k.lower(): v for k, v in same.headers.items()}["x-api-key"] == "k-secret"


def test_loopback_is_refused_at_connect_unless_private_networks_are_allowed(hostile: HostileServer) -> None:
    hostile.put("private.txt", b"inside")
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(SourceInvalid, match=r"a loopback address.*CLIPLINE_ALLOW_PRIVATE_NETWORKS"):
            fetch.get(hostile.url(f"/files/private.txt?via={host}", host=host), policy=netguard.Policy(),
                      limits=limits())  # fmt: skip
    assert not hostile.requests_to("/files/private.txt")
    assert fetch.get(hostile.url("/files/private.txt"), policy=OPEN, limits=limits()).content == b"inside"


def test_the_connect_guard_checks_what_a_name_resolves_to(hostile: HostileServer) -> None:
    # "localhost" passes every name check; the address it resolves to is what is refused.
    guard = netguard._Backend(netguard.Policy())
    with pytest.raises(netguard.Refused, match="loopback"):
        guard.connect_tcp("localhost", hostile.port)


# -- every download ends -----------------------------------------------------------------------------
def test_a_dripping_segment_ends_at_the_deadline_naming_it(hostile: HostileServer, tmp_path: Path) -> None:
    # Each byte comes well within the read timeout; only the total deadline can end this.
    with pytest.raises(SourceUnavailable, match=r"deadline of 1.5 s \(CLIPLINE_HTTP_DEADLINE_S\)"):
        fetch.download(
            hostile.url("/drip?n=100&every=0.2"),
            tmp_path / "seg.ts",
            policy=OPEN,
            limits=limits(timeout_s=5.0, deadline_s=1.5),
        )
    assert not (tmp_path / "seg.ts").exists()


def test_an_endless_segment_ends_at_the_size_cap(hostile: HostileServer, tmp_path: Path) -> None:
    s = settings(CLIPLINE_MAX_SEGMENT_BYTES="300000")
    with pytest.raises(SourceUnavailable, match=r"cap of 300000 bytes \(CLIPLINE_MAX_SEGMENT_BYTES\)"):
        fetch.download(
            hostile.url("/endless"), tmp_path / "s.ts", policy=OPEN, limits=fetch.segment_limits(s)
        )
    assert not list(tmp_path.iterdir())


def test_a_10_gb_segment_is_refused_by_its_content_length(hostile: HostileServer, tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match=r"the body is 10737418240 bytes.*CLIPLINE_MAX_SEGMENT_BYTES"):
        fetch.download(
            hostile.url("/huge"), tmp_path / "s.ts", policy=OPEN, limits=fetch.segment_limits(settings())
        )


def test_a_huge_playlist_ends_at_the_playlist_cap(hostile: HostileServer) -> None:
    s = settings(CLIPLINE_MAX_PLAYLIST_BYTES="100000")
    with pytest.raises(SourceUnavailable, match="CLIPLINE_MAX_PLAYLIST_BYTES"):
        fetch.get(hostile.url("/playlist-huge"), policy=OPEN, limits=fetch.playlist_limits(s))


def test_a_huge_video_api_answer_ends_at_the_api_cap(hostile: HostileServer) -> None:
    s = settings(
        TWELVELABS_API_URL=hostile.url("/api-huge?"),
        TWELVELABS_INDEX_ID="i",
        CLIPLINE_MAX_API_RESPONSE_BYTES="50000",
    )
    resolver = SourceResolver(s, None, None)  # type: ignore[arg-type]  # _ask_api touches neither
    with pytest.raises(SourceUnavailable, match="CLIPLINE_MAX_API_RESPONSE_BYTES"):
        resolver._ask_api("v1")


# -- callbacks ---------------------------------------------------------------------------------------
def test_a_callback_to_a_refused_address_fails_at_once_and_a_redirect_is_not_followed(
    hostile: HostileServer,
) -> None:
    blocked = SimpleNamespace(settings=load_settings({"CLIPLINE_WEBHOOK_TIMEOUT_S": "2"}))
    error, refused = webhooks._post(blocked, hostile.url("/hook?case=blocked"), b"{}", {})  # type: ignore[arg-type]
    assert refused and error is not None and "loopback" in error
    assert not hostile.requests_to("/hook?case=blocked")

    ctx = SimpleNamespace(settings=settings(CLIPLINE_WEBHOOK_TIMEOUT_S="2"))
    error, refused = webhooks._post(ctx, redirect(hostile, hostile.url("/hook?case=moved")), b"{}", {})  # type: ignore[arg-type]
    assert error == "receiver answered HTTP 302" and not refused
    assert not hostile.requests_to("/hook?case=moved")


# -- end to end: a clip whose segment redirects off the allowlist falls back -----------------------
def test_a_segment_redirected_to_a_disallowed_host_falls_back_naming_the_hop(
    stack: Stack, hostile: HostileServer
) -> None:
    # Given a playlist on localhost (allowed) whose segments redirect to 127.0.0.1 (not allowed)
    cdn_playlist = fetch.get(stack.cdn.hls_url("v_b"), policy=OPEN, limits=limits()).text
    lines = []
    for ln in cdn_playlist.splitlines():
        if ln and not ln.startswith("#"):
            ln = redirect(hostile, stack.cdn.url(f"hls/v_b/{ln}"), host="localhost")
        lines.append(ln)
    playlist_path = hostile.put("redirecting.m3u8", ("\n".join(lines) + "\n").encode())
    ctx = make_ctx(stack, CLIPLINE_ALLOWED_HOSTS="localhost", CLIPLINE_HTTP_TIMEOUT_S="2")
    job_id = new_job_id("hop")
    request = build_request(
        job_id, stack.cdn, [("v_b", 4200, 5200, True)], line_ms=lambda i: 1000, audio=False
    )
    request["lines"][0]["clip"]["hls_url"] = hostile.url(playlist_path, host="localhost")
    planning.fanned_out(ctx, planning.plan(ctx, request))
    # When the clip is cut
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=4)
    # Then it goes to fallback at once (permanent), the reason naming the refused hop
    assert isinstance(step, clipstage.Fallback), step
    assert "host '127.0.0.1' is not in CLIPLINE_ALLOWED_HOSTS" in step.reason, step.reason
    assert "redirected from http://localhost:" in step.reason, step.reason
    done = clipstage.run_fallback(ctx, job_id, 0, step.reason)
    assert isinstance(done, clipstage.Done) and done.record.outcome in ("local", "placeholder")
    assert "CLIPLINE_ALLOWED_HOSTS" in json.dumps(done.record.reason)
