"""HTTP reads of playlists, segments, API records and audio, with failures translated.

httpx exceptions and status codes become Source* errors here, so the rest of
the code branches on type: 5xx/429/timeouts/refused -> SourceUnavailable
(transient), 404/410 -> SourceNotFound, 401/403 -> SourceForbidden, anything
else -> SourceInvalid. Every URL is checked against the scheme and the
optional host allowlist before it is requested.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .errors import SourceError, SourceForbidden, SourceInvalid, SourceNotFound, SourceUnavailable

_local = threading.local()


def client(timeout_s: float) -> httpx.Client:
    """One pooled client per thread (httpx clients are cheap to keep, costly to rebuild)."""
    c: httpx.Client | None = getattr(_local, "client", None)
    if c is None or getattr(_local, "timeout_s", None) != timeout_s:
        c = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True, trust_env=False)
        _local.client, _local.timeout_s = c, timeout_s
    return c


def check_url(url: str, allowed_hosts: frozenset[str] = frozenset()) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SourceInvalid(f"refusing to read {parts.scheme or 'schemeless'} URL {url!r}", url=url)
    if allowed_hosts and (parts.hostname or "").lower() not in allowed_hosts:
        raise SourceInvalid(f"host {parts.hostname!r} is not in CLIPLINE_ALLOWED_HOSTS", url=url)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def raise_for_status(resp: httpx.Response, *, video_id: str = "") -> None:
    code, url = resp.status_code, str(resp.request.url)
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


def translate(exc: httpx.HTTPError, url: str, video_id: str = "") -> SourceError:
    if isinstance(exc, httpx.TimeoutException):
        return SourceUnavailable(f"{url}: timed out ({type(exc).__name__})", video_id=video_id, url=url)
    if isinstance(exc, httpx.TransportError):
        return SourceUnavailable(f"{url}: {type(exc).__name__}: {exc}", video_id=video_id, url=url)
    return SourceInvalid(f"{url}: {type(exc).__name__}: {exc}", video_id=video_id, url=url)


def get(
    url: str,
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    video_id: str = "",
    allowed_hosts: frozenset[str] = frozenset(),
) -> httpx.Response:
    check_url(url, allowed_hosts)
    try:
        resp = client(timeout_s).get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise translate(exc, url, video_id) from exc
    raise_for_status(resp, video_id=video_id)
    return resp


def download(
    url: str,
    dest: Path,
    *,
    timeout_s: float,
    video_id: str = "",
    allowed_hosts: frozenset[str] = frozenset(),
    byte_range: tuple[int, int] | None = None,
    up_to: bool = False,
) -> int:
    """Stream ``url`` to ``dest`` (temp name, then rename); returns the body bytes read.

    ``byte_range`` (first, last byte, inclusive) asks for that part only; a server that
    ignores ``Range`` (200) is read up to the range's end and no further. ``up_to``: the
    range is a bound, not a promise (a segment's first bytes): a body that ends sooner is kept.
    """
    check_url(url, allowed_hosts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
    nbytes = 0
    try:
        with client(timeout_s).stream("GET", url, headers=headers) as resp:
            raise_for_status(resp, video_id=video_id)
            skip, want = 0, None
            if byte_range is not None:
                want = byte_range[1] - byte_range[0] + 1
                if resp.status_code != 206:
                    skip = byte_range[0]
            kept = 0
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_bytes(64 * 1024):
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
                    f"{url}: bytes {byte_range[0]}-{byte_range[1]} asked, {kept} bytes came",
                    video_id=video_id,
                    url=url,
                )
        os.replace(tmp, dest)
    except httpx.HTTPError as exc:
        raise translate(exc, url, video_id) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return nbytes
