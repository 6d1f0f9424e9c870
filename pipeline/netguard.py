"""Where outbound HTTP may go: the policy, checked on every hop and at every connect.

Every request clipline makes on a caller's behalf (playlists, segments, byte
ranges, AES keys, the song, the video API, callbacks) goes through ``client``:

- each URL, the first and every redirect's target, must be http(s) and, when
  ``CLIPLINE_ALLOWED_HOSTS`` is set, name one of its hosts (``check_url``;
  fetch.py follows redirects itself so each hop is checked);
- at connect time the host is resolved once, every address it resolves to is
  checked (``address_problem``: no loopback, link-local/metadata, private,
  shared, multicast, unspecified or reserved address unless
  ``CLIPLINE_ALLOW_PRIVATE_NETWORKS``), and the socket connects to those very
  addresses, so a DNS answer that changes between check and connect (rebinding)
  cannot slip a private address in;
- every name resolution, socket connect and read is cut short at the request's
  deadline (``deadline``), so neither a server that drips one byte at a time
  nor a resolver that does not answer can hold a request past it.

Errors: ``Refused`` (the policy forbids the URL or address; permanent).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .errors import ClipLineError
from .problems import url_syntax_problem
from .redact import text as redact

if TYPE_CHECKING:
    from .settings import Settings

#: Redirects followed for one request.
MAX_REDIRECTS = 5


class Refused(ClipLineError):
    """The network policy forbids this URL or the address its host resolves to."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(redact(message))
        self.url = redact(url)


@dataclass(frozen=True)
class Policy:
    allowed_hosts: frozenset[str] = frozenset()
    allow_private: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(settings.allowed_host_set, settings.allow_private_networks)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what "the same server" means."""
    try:
        parts = urlsplit(url)
        scheme, port = parts.scheme.lower(), parts.port
    except ValueError:  # a port out of range, an unclosed bracket: check_url refuses it before any request
        return "", "", None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def check_url(url: str, policy: Policy) -> None:
    """Scheme http(s), a URL a request can be sent to (``problems.url_syntax_problem``) and, with an
    allowlist, an allowed host; raises Refused naming the problem or the setting."""
    if problem := url_syntax_problem(url):
        raise Refused(f"refusing to read {url!r}: {problem}", url=url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise Refused(f"refusing to read {parts.scheme or 'schemeless'} URL {url}", url=url)
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused(f"URL {url} has no host", url=url)
    if policy.allowed_hosts and host not in policy.allowed_hosts:
        raise Refused(f"host {host!r} is not in CLIPLINE_ALLOWED_HOSTS ({url})", url=url)


def address_problem(address: str) -> str | None:
    """What is wrong with connecting to ``address`` from a public service, or None when it is global.

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged as the IPv4 address they carry.
    """
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


# -- the request's deadline: every socket wait of this thread is cut short at it ----------------
_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Within the block, no connect or read of this thread waits past ``seconds`` from now."""
    saved = getattr(_local, "at", None)
    _local.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.at = saved


def remaining_s() -> float | None:
    at = getattr(_local, "at", None)
    return None if at is None else at - time.monotonic()


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    left = remaining_s()
    if left is None:
        return timeout
    if left <= 0:
        raise exc("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose reads and writes never wait past the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        return _Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


#: Name lookups running at once (each in a daemon thread that ends when the system resolver gives up);
#: a lookup that finds them all busy waits for one, within its own deadline.
MAX_LOOKUPS = 16
_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)


def resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """``host``'s addresses, each once, in the resolver's order; raises httpcore.ConnectTimeout when
    no answer came within ``timeout`` seconds (the lookup goes on in its thread, its answer unused)."""
    started = time.monotonic()
    if not _lookups.acquire(timeout=timeout):
        raise httpcore.ConnectTimeout(f"cannot resolve {host}: {MAX_LOOKUPS} lookups already waiting")
    answer: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)
        finally:
            _lookups.release()
            done.set()

    threading.Thread(target=lookup, name="clipline-resolve", daemon=True).start()
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
    if not done.wait(left):
        raise httpcore.ConnectTimeout(f"cannot resolve {host}: no answer within {timeout:g} s")
    if isinstance(answer[0], OSError):
        raise httpcore.ConnectError(f"cannot resolve {host}: {answer[0]}") from answer[0]
    return list(dict.fromkeys(str(info[4][0]) for info in answer[0]))


class _Backend(httpcore.SyncBackend):
    """Resolves the host once, checks every address, then connects to those addresses only."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port, _clamp(timeout, httpcore.ConnectTimeout))
        timeout = _clamp(timeout, httpcore.ConnectTimeout)  # what the lookup left of the deadline
        if not self.policy.allow_private:
            for address in addresses:
                problem = address_problem(address)
                if problem:
                    raise Refused(
                        f"{host} resolves to {address}, a {problem} address; outbound requests to such "
                        f"addresses are refused unless CLIPLINE_ALLOW_PRIVATE_NETWORKS is on",
                        url=f"//{host}:{port}",
                    )
        last: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
                continue
            return _Stream(stream)
        raise last or httpcore.ConnectError(f"{host} resolves to no address")


def client(policy: Policy, timeout_s: float) -> httpx.Client:
    """An httpx client whose every connection obeys ``policy`` and the thread's deadline.

    It never follows redirects and ignores proxy variables; callers follow redirects with
    ``check_url`` on each hop (fetch.py).
    """
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx has no public hook for the network backend; the pool's is swapped here (pinned by a test).
    transport._pool._network_backend = _Backend(policy)
    return httpx.Client(
        transport=transport, timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
    )
