"""Secrets in URLs: the one function that blanks them before text leaves the process. Pure.

Signed CDN and object-store URLs carry credentials in their query string
(``?sig=``, ``X-Amz-Signature``, ``X-Amz-Credential``, CloudFront's ``Policy``,
``Signature`` and ``Key-Pair-Id``, Akamai's ``hdnts``, plain ``token``/``key``)
and sometimes a password in the authority (``user:pass@host``). Anyone who reads
a log line, a report or a callback holding such a URL can fetch the source until
it expires. ``text`` replaces each such value with ``REDACTED`` wherever a URL
appears in a string, keeping the rest (scheme, host, path, other parameters),
so an operator can still tell which segment failed.

It is applied at the edges: the structlog processor (every log line), the
construction of ``SourceError`` messages (errors stored on clip and job
records), the report and the callback's ``error``.
"""

from __future__ import annotations

import re
from typing import Any

MARK = "REDACTED"

#: Query parameter names (case-insensitive) whose values are credentials.
SECRET_PARAMS = (
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "token",
    "access_token",
    "auth",
    "auth_token",
    "key",
    "api_key",
    "apikey",
    "policy",
    "key-pair-id",
    "hdnts",
    "hmac",
    "secret",
    "password",
)
_NAMES = "|".join(re.escape(n) for n in SECRET_PARAMS)
# A parameter after ? or & (also URL-encoded &amp; in HTML-ish text); its value runs to the next
# delimiter that cannot be part of a query value in a log line (a closing parenthesis ends it too).
_PARAM = re.compile(rf"(?i)([?&;](?:amp;)?(?:{_NAMES})=)[^&;#\s\"'<>()\\]*")
# user:password@ in an authority. A scheme starts where no scheme character precedes it and is never given
# back (from every letter of a long ``a.a.a...`` word the pattern was retried to its end: quadratic).
_USERINFO = re.compile(r"(?i)((?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://[^/\s:@\"']*+:)[^/\s@\"']*+@")


def text(value: str) -> str:
    """``value`` with every credential in a URL's query string or authority replaced by REDACTED."""
    if "=" not in value and "@" not in value:
        return value
    value = _PARAM.sub(rf"\g<1>{MARK}", value)
    return _USERINFO.sub(rf"\g<1>{MARK}@", value)


def deep(obj: Any) -> Any:
    """``text`` applied to every string inside dicts, lists and tuples (a copy; other values as they are)."""
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, dict):
        return {k: deep(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(deep(v) for v in obj)
    return obj
