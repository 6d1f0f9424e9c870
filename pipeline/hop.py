"""One hop of a fetch: its URL checked by the network policy, then sent by httpx, or refused naming it.

httpx refuses some URLs only when it builds or sends the request: a control character (``InvalidURL``),
an invalid IDNA label (``UnicodeError``, raised as late as the send), a port out of range (``ValueError``
from ``urllib``), in the first URL or in a redirect's ``Location`` (which httpx turns into the next
request inside ``send``, even when it follows no redirects). Each becomes a permanent ``SourceInvalid``
naming the URL (redacted, with the redirects that led there), never a bare exception.
"""

from __future__ import annotations

from urllib.parse import urljoin

import httpx

from . import netguard
from .errors import SourceInvalid

#: The request extension a redirect's Location is noted in (``note_location``, a response hook).
LOCATION = "clipline.location"


def note_location(resp: httpx.Response) -> None:
    """A client's response hook: note a redirect's Location on its request, for ``send``'s errors."""
    if resp.has_redirect_location:
        resp.request.extensions[LOCATION] = resp.headers["location"]


def named(url: str, hops: list[str]) -> str:
    """The URL a failure happened on, with the redirects that led there."""
    return f"{url} (redirected from {' -> '.join(hops)})" if hops else url


def unrequestable(url: str, hops: list[str], exc: Exception, video_id: str) -> SourceInvalid:
    why = f"{type(exc).__name__}: {exc}"
    return SourceInvalid(
        f"{named(url, hops)}: not a URL a request can be sent to ({why})", video_id=video_id, url=url
    )


def follow(url: str, location: str, hops: list[str], video_id: str) -> str:
    """The redirect's target; SourceInvalid when ``location`` cannot be joined to ``url``."""
    try:
        return urljoin(url, location)
    except ValueError as exc:
        raise unrequestable(location, [*hops, url], exc, video_id) from exc


def send(
    c: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str],
    policy: netguard.Policy,
    hops: list[str],
    video_id: str,
) -> httpx.Response:
    """The streaming response to one hop; ``netguard.Refused`` when the policy forbids the URL,
    SourceInvalid when httpx cannot send to it (or to the Location it answers)."""
    try:
        netguard.check_url(url, policy)
        request = c.build_request(method, url, headers=headers)
    except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError (an invalid IDNA label) is a ValueError
        raise unrequestable(url, hops, exc, video_id) from exc
    try:
        return c.send(request, stream=True)
    except (httpx.InvalidURL, httpx.RemoteProtocolError, ValueError) as exc:
        location = request.extensions.get(LOCATION)
        if location is None:  # not the Location: the URL itself (a protocol error stays transient)
            if isinstance(exc, httpx.RemoteProtocolError):
                raise
            raise unrequestable(url, hops, exc, video_id) from exc
        # the response came and was noted: only building the redirect's request was left to fail
        # (httpx reports a Location it cannot parse as a RemoteProtocolError)
        try:  # the redirect's target, named as fetch would have followed it
            target = urljoin(url, location)
        except ValueError:
            target = location
        raise unrequestable(target, [*hops, url], exc, video_id) from exc
