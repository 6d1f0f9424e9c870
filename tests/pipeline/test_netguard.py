"""The outbound address and URL policy (pipeline/netguard): pure checks, no network."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from pipeline import netguard
from pipeline.netguard import Policy, Refused, address_problem, check_url, origin


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 address
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1%eth0", "link-local (cloud metadata)"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.100.100.200", "not globally routable"),  # shared address space (a cloud's metadata)
    ],
)
def test_non_public_addresses_are_named(address: str, problem: str) -> None:
    assert address_problem(address) == problem


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("file:///etc/passwd", "refusing to read file URL"),
        ("gopher://cdn.example/x", "refusing to read gopher URL"),
        ("//cdn.example/x", "schemeless"),
        ("http:///x", "has no host"),
        ("http://evil.example/x", "'evil.example' is not in CLIPLINE_ALLOWED_HOSTS"),
        ("http://cdn.example:99999/x", "Port out of range"),
        ("http://cdn.example:-1/x", "Port could not be cast"),
        ("http://cdn.example:0/x", "port 0"),
        ("http://cdn.example/a\tb.ts", "control character"),
        ("http://cdn.example/a\nb.ts", "control character"),
        ("http://[::1/x", "Invalid IPv6"),
        ("http://xn--abc.example/x", "cannot be encoded"),
    ],
)
def test_urls_the_policy_refuses(url: str, match: str) -> None:
    with pytest.raises(Refused, match=match):
        check_url(url, Policy(frozenset({"cdn.example"})))


def test_allowed_hosts_match_without_case_and_an_empty_allowlist_allows_any_host() -> None:
    check_url("HTTPS://CDN.Example:8443/a.m3u8", Policy(frozenset({"cdn.example"})))
    check_url("http://anything.example/a.m3u8", Policy())


def test_refusals_do_not_carry_signed_query_strings() -> None:
    with pytest.raises(Refused) as caught:
        check_url("http://evil.example/a.ts?sig=s3cr3t", Policy(frozenset({"cdn.example"})))
    assert "s3cr3t" not in str(caught.value) and "s3cr3t" not in caught.value.url


def test_origin_of_a_url_with_a_bad_port_does_not_raise() -> None:
    # the redirect loop asks for a hop's origin before check_url refuses the hop
    assert origin("http://cdn.example:99999/x") == ("", "", None)
    assert origin("http://[::1/x") == ("", "", None)


def test_origin_fills_in_the_default_port() -> None:
    assert netguard.origin("HTTP://A.example/x") == netguard.origin("http://a.example:80/y")
    assert netguard.origin("http://a.example/x") != netguard.origin("https://a.example/x")
    assert netguard.origin("http://localhost:1/x") != netguard.origin("http://127.0.0.1:1/x")


def test_the_policy_comes_from_the_settings() -> None:
    from pipeline.settings import load_settings

    s = load_settings({"CLIPLINE_ALLOWED_HOSTS": "a.example", "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true"})
    assert Policy.of(s) == Policy(frozenset({"a.example"}), True)
    assert Policy.of(load_settings({})) == Policy(frozenset(), False)  # production default: refused


def test_a_resolver_that_does_not_answer_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hanging(*args: object, **kwargs: object) -> list[object]:
        release.wait(10)
        raise OSError("gave up")

    monkeypatch.setattr(netguard.socket, "getaddrinfo", hanging)
    policy = Policy(allowed_hosts=frozenset(), allow_private=True)
    started = time.monotonic()
    try:
        with netguard.deadline(0.3), netguard.client(policy, 30) as client:
            with pytest.raises(httpx.ConnectTimeout, match="cannot resolve slow.example"):
                client.get("http://slow.example/playlist.m3u8")
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_a_resolver_error_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(netguard.socket, "getaddrinfo", failing)
    policy = Policy(allowed_hosts=frozenset(), allow_private=True)
    with netguard.client(policy, 5) as client, pytest.raises(httpx.ConnectError, match="nowhere.example"):
        client.get("http://nowhere.example/")
