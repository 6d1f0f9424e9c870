"""HTTP reads of playlists, segments, keys, API records and audio: guarded, bounded, translated.

Every request goes through ``netguard`` (scheme, host allowlist and address
policy on every hop; fetch follows redirects itself, at most
``netguard.MAX_REDIRECTS``, and drops ``x-api-key``/``Authorization``/``Cookie``
when a redirect leaves the first URL's origin) and through ``Limits``: a
timeout per connect or read, a deadline for the whole request (redirects
included) and a cap on the bytes read. A limit that ends a request names its
setting in the error.

httpx exceptions and status codes become Source* errors here, so the rest of
the code branches on type: 5xx/429/timeouts/refused connections and the
deadline or size cap -> SourceUnavailable (transient: retry, then fallback),
404/410 -> SourceNotFound, 401/403 -> SourceForbidden, a URL or address the
policy refuses, a URL httpx cannot send to (``hop``: a control character, an
invalid IDNA label, a port out of range; the first URL or a redirect's) and
anything else -> SourceInvalid. Messages go through ``redact`` (in
SourceError), so signed query strings never reach a record.

Bodies are read raw and decoded by ``codings`` a bounded step at a time (gzip
and deflate only, asked for in Accept-Encoding; any other coding, or several
stacked, is SourceInvalid): the byte cap counts the bytes as sent and as
decoded, so it bounds memory and the bytes produced whatever the server sends.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import codings, hop, netguard
from .errors import SourceError, SourceForbidden, SourceInvalid, SourceNotFound, SourceUnavailable
from .settings import Settings

_clients: dict[tuple[netguard.Policy, float], httpx.Client] = {}
_clients_lock = threading.Lock()

#: Headers that carry credentials: never sent to another origin than the first URL's.
CREDENTIAL_HEADERS = frozenset({"x-api-key", "authorization", "cookie"})
#: An AES-128 key is 16 bytes; a "key" of more than this is not read.
MAX_KEY_BYTES = 4096


@dataclass(frozen=True)
class Limits:
    """How long and how much one request may take; the setting names go into the errors."""

    timeout_s: float  # one connect or one read
    deadline_s: float  # the whole request, redirects included
    max_bytes: int
    deadline_setting: str = "CLIPLINE_HTTP_DEADLINE_S"
    max_bytes_setting: str = "CLIPLINE_MAX_SEGMENT_BYTES"


def segment_limits(s: Settings) -> Limits:
    return Limits(s.http_timeout_s, s.http_deadline_s, s.max_segment_bytes)


def key_limits(s: Settings) -> Limits:
    return Limits(s.http_timeout_s, s.http_deadline_s, MAX_KEY_BYTES, max_bytes_setting="the AES key cap")


def playlist_limits(s: Settings) -> Limits:
    return Limits(
        s.http_timeout_s,
        s.http_deadline_s,
        s.max_playlist_bytes,
        max_bytes_setting="CLIPLINE_MAX_PLAYLIST_BYTES",
    )


def api_limits(s: Settings) -> Limits:
    return Limits(
        s.http_timeout_s,
        s.http_deadline_s,
        s.max_api_response_bytes,
        max_bytes_setting="CLIPLINE_MAX_API_RESPONSE_BYTES",
    )


def audio_limits(s: Settings) -> Limits:
    return Limits(
        s.http_timeout_s,
        s.audio_deadline_s,
        s.max_audio_bytes,
        deadline_setting="CLIPLINE_AUDIO_DEADLINE_S",
        max_bytes_setting="CLIPLINE_MAX_AUDIO_BYTES",
    )


@dataclass(frozen=True)
class Body:
    """A response read whole: the URL it finally came from (after redirects), its status and bytes."""

    url: str
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def client(policy: netguard.Policy, timeout_s: float) -> httpx.Client:
    """One pooled client per process and policy, shared by its threads (httpx clients are thread-safe,
    cheap to keep and costly to build: each loads the CA bundle into a new SSL context, ~20 ms of CPU).
    Per thread, every short-lived download thread (``segments``) built one and never reused a connection.
    The deadline stays per thread: ``netguard`` reads it on the calling thread at each socket wait."""
    key = (policy, timeout_s)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = netguard.client(policy, timeout_s)
            c.event_hooks = {"response": [hop.note_location]}
        return c


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def raise_for_status(resp: httpx.Response, *, video_id: str = "", url: str = "") -> None:
    code, url = resp.status_code, url or str(resp.request.url)
    if code < 400:
        return
    msg = f"{url} answered HTTP {code}"
    if code in (404, 410):
        raise SourceNotFound(msg, video_id=video_id, url=url)
    if code in (401, 403):
        raise SourceForbidden(msg, video_id=video_id, url=url)
    if code == 429 or code >= 500 or code == 408:
        raise SourceUnavailable(msg, video_id=video_id, url=url, retry_after_s=_retry_after(resp))
    raise SourceInvalid(msg, video_id=video_id, url=url)


def translate(
    exc: httpx.HTTPError, url: str, video_id: str = "", limits: Limits | None = None
) -> SourceError:
    if isinstance(exc, httpx.TimeoutException):
        left = netguard.remaining_s()
        if limits is not None and left is not None and left <= 0.05:
            return SourceUnavailable(
                f"{url}: the deadline of {limits.deadline_s:g} s ({limits.deadline_setting}) ran out",
                video_id=video_id,
                url=url,
            )
        return SourceUnavailable(f"{url}: timed out ({type(exc).__name__})", video_id=video_id, url=url)
    if isinstance(exc, httpx.TransportError):
        return SourceUnavailable(f"{url}: {type(exc).__name__}: {exc}", video_id=video_id, url=url)
    return SourceInvalid(f"{url}: {type(exc).__name__}: {exc}", video_id=video_id, url=url)


@contextmanager
def _open(
    url: str,
    *,
    policy: netguard.Policy,
    limits: Limits,
    headers: dict[str, str] | None = None,
    video_id: str = "",
    method: str = "GET",
) -> Iterator[tuple[httpx.Response, str]]:
    """The response (streaming, status checked) to ``method`` ``url``, redirects followed, each hop checked;
    yields (response, the URL named in errors)."""
    sent = {"Accept-Encoding": codings.ACCEPT_ENCODING, **(headers or {})}
    hops: list[str] = []
    c = client(policy, limits.timeout_s)
    with netguard.deadline(limits.deadline_s):
        try:
            first = netguard.origin(url)  # never raises: check_url refuses a URL it cannot read
            for _ in range(netguard.MAX_REDIRECTS + 1):
                resp = hop.send(c, method, url, sent, policy, hops, video_id)
                try:
                    if resp.is_redirect:
                        target = hop.follow(url, resp.headers["location"], hops, video_id)
                        hops.append(url)
                        url = target
                        if netguard.origin(url) != first:
                            sent = {k: v for k, v in sent.items() if k.lower() not in CREDENTIAL_HEADERS}
                        continue
                    raise_for_status(resp, video_id=video_id, url=hop.named(url, hops))
                    yield resp, hop.named(url, hops)
                    return
                finally:
                    resp.close()
            raise SourceInvalid(
                f"{hop.named(url, hops)}: more than {netguard.MAX_REDIRECTS} redirects",
                video_id=video_id,
                url=url,
            )
        except netguard.Refused as exc:
            raise SourceInvalid(f"{hop.named(url, hops)}: {exc}", video_id=video_id, url=url) from exc
        except httpx.HTTPError as exc:
            raise translate(exc, hop.named(url, hops), video_id, limits) from exc


def _too_big(named: str, limits: Limits, video_id: str, what: str) -> SourceUnavailable:
    return SourceUnavailable(
        f"{named}: {what}, more than the cap of {limits.max_bytes} bytes ({limits.max_bytes_setting})",
        video_id=video_id,
        url=named,
    )


def _raw(resp: httpx.Response, named: str, limits: Limits, video_id: str) -> Iterator[bytes]:
    """The body as sent (before any Content-Encoding is undone), refused as soon as it passes the cap."""
    got = 0
    for chunk in resp.iter_raw(64 * 1024):
        got += len(chunk)
        if got > limits.max_bytes:
            raise _too_big(named, limits, video_id, f"more than {limits.max_bytes} bytes came")
        yield chunk


def _chunks(
    resp: httpx.Response, named: str, limits: Limits, video_id: str, *, whole: bool = True
) -> Iterator[bytes]:
    """The body decoded, refused as soon as it (as sent or decoded, or its Content-Length) passes the cap.
    ``whole``: all of it will be read (else its Content-Length, a bound the reader stops before, is not
    held against the cap)."""
    how = codings.coding(resp.headers, named, video_id)
    announced = resp.headers.get("content-length", "")
    if whole and announced.isdigit() and int(announced) > limits.max_bytes:
        raise _too_big(named, limits, video_id, f"the body is {announced} bytes")
    got = 0
    for chunk in codings.decoded(_raw(resp, named, limits, video_id), how, named, video_id):
        got += len(chunk)
        if got > limits.max_bytes:
            raise _too_big(named, limits, video_id, f"more than {limits.max_bytes} bytes came")
        yield chunk


def get(
    url: str,
    *,
    policy: netguard.Policy,
    limits: Limits,
    headers: dict[str, str] | None = None,
    video_id: str = "",
) -> Body:
    """GET ``url`` whole (at most ``limits.max_bytes``)."""
    with _open(url, policy=policy, limits=limits, headers=headers, video_id=video_id) as (resp, named):
        content = b"".join(_chunks(resp, named, limits, video_id))
        return Body(str(resp.url), resp.status_code, content)


def head(url: str, *, policy: netguard.Policy, limits: Limits, video_id: str = "") -> httpx.Headers:
    """The headers a HEAD of ``url`` answers (redirects followed, each hop checked)."""
    with _open(url, policy=policy, limits=limits, video_id=video_id, method="HEAD") as (resp, _named_url):
        return resp.headers


def download(
    url: str,
    dest: Path,
    *,
    policy: netguard.Policy,
    limits: Limits,
    video_id: str = "",
    byte_range: tuple[int, int] | None = None,
    up_to: bool = False,
) -> int:
    """Stream ``url`` to ``dest`` (temp name, then rename); returns the body bytes read.

    ``byte_range`` (first, last byte, inclusive) asks for that part only, of the file's own bytes
    (no Content-Encoding asked for); a server that ignores ``Range`` (200) is read up to the range's
    end and no further, and refused when that end lies past the cap. ``up_to``: the range is a
    bound, not a promise (a segment's first bytes): a body that ends sooner is kept.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    headers = None
    if byte_range:
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}", "Accept-Encoding": "identity"}
    nbytes = 0
    try:
        with _open(url, policy=policy, limits=limits, headers=headers, video_id=video_id) as (resp, named):
            skip, want = 0, None
            if byte_range is not None:
                want = byte_range[1] - byte_range[0] + 1
                if want > limits.max_bytes:
                    raise _too_big(named, limits, video_id, f"the playlist asks for a range of {want} bytes")
                if resp.status_code != 206:
                    skip = byte_range[0]
                    if skip + want > limits.max_bytes:
                        where = f"bytes {byte_range[0]}-{byte_range[1]} end {skip + want} bytes into its body"
                        raise _too_big(named, limits, video_id, f"the server ignored Range: {where}")
            # A server that ignores Range sends the whole resource: its Content-Length is not the range's;
            # it is read up to the range's end (within the cap, checked above), the bytes skipped included.
            whole = byte_range is None or resp.status_code == 206
            body = _chunks(resp, named, limits, video_id, whole=whole)
            kept = 0
            with open(tmp, "wb") as fh:
                for chunk in body:
                    nbytes += len(chunk)
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if want is not None:
                        chunk = chunk[: want - kept]
                    fh.write(chunk)
                    kept += len(chunk)
                    if want is not None and kept >= want:
                        break
            if byte_range is not None and kept != want and not (up_to and kept):
                raise SourceInvalid(
                    f"{named}: bytes {byte_range[0]}-{byte_range[1]} asked, {kept} bytes came",
                    video_id=video_id,
                    url=url,
                )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return nbytes
