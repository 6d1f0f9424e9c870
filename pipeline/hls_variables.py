"""HLS variable substitution (``#EXT-X-DEFINE``, RFC 8216bis section 4.3). Pure, no IO.

A playlist may define variables (``NAME``/``VALUE``; ``QUERYPARAM``: the value of that query parameter of
the playlist's own URL (after its redirects), percent-decoded, which is how CDNs pass a signed token on to
every segment; ``IMPORT``: a media playlist takes a variable its master defined) and reference them as
``{$name}`` in URI lines and quoted-string or hexadecimal attribute values. The ``m3u8`` library does not
substitute, so the text is substituted here before it is parsed. As the RFC asks, a playlist is refused when
it references a variable no ``#EXT-X-DEFINE`` before it defined, defines one name twice, names a query
parameter its URL lacks, or imports what its master did not define (or imports in a master). Substitution is
one pass: a value holding ``{$other}`` is taken as it is. The substituted text is capped
(``MAX_SUBSTITUTED_CHARS``): a short value referenced by every line cannot blow a playlist up without bound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from .errors import SourceInvalid

DEFINE = "#EXT-X-DEFINE:"
#: A variable name (RFC 8216bis: ``[a-zA-Z0-9-_]``) and a reference to one.
NAME = re.compile(r"[a-zA-Z0-9_-]+")
REFERENCE = re.compile(r"\{\$([a-zA-Z0-9_-]+)\}")
#: An attribute of an attribute list: NAME=value, the value a quoted string or up to the next comma.
#: An attribute starts where no name character precedes it, and its name is never given back: one pass
#: over the line (an unanchored ``[A-Z0-9-]+=`` retried from every letter of a long name was quadratic).
ATTRIBUTE = re.compile(r'(?<![A-Z0-9-])([A-Z0-9-]++)=("[^"\r\n]*"|[^,]*)')
#: Where a tag line may hold references: its quoted strings and hexadecimal sequences.
SUBSTITUTED_IN_TAGS = re.compile(r'"[^"\r\n]*"|=0[xX][^,\s]*')
#: What a quoted-string may not hold (RFC 8216 section 4.2).
QUOTED_STRING_FORBIDS = frozenset('"\r\n')
#: The substituted text's cap, in characters: 50,000 segments with a 600-character signed URI each fit.
MAX_SUBSTITUTED_CHARS = 32 * 2**20


def _attributes(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in ATTRIBUTE.finditer(line[len(DEFINE) :]):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def _query_parameter(url: str, name: str) -> str:
    """The first value of the query parameter ``name`` of ``url``, percent-decoded (RFC 3986: a ``+`` stays
    a ``+``), as RFC 8216bis asks of ``QUERYPARAM``; the playlist is refused when there is none, it is
    empty, or it decodes to a character a quoted-string may not hold."""
    for pair in urlsplit(url).query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == name:
            decoded = unquote(value)
            if not decoded or set(decoded) & QUOTED_STRING_FORBIDS:
                raise SourceInvalid(
                    f"{url}: #EXT-X-DEFINE QUERYPARAM={name!r}: the query parameter is empty or holds a"
                    " quote or line break",
                    url=url,
                )
            return decoded
    raise SourceInvalid(
        f"{url}: #EXT-X-DEFINE QUERYPARAM={name!r}: the playlist's URL has no such query parameter", url=url
    )


class _Substitution:
    def __init__(self, url: str, imported: Mapping[str, str] | None) -> None:
        self.url, self.imported = url, imported
        self.defined: dict[str, str] = {}
        self.size = 0

    def define(self, line: str) -> None:
        attrs, url = _attributes(line), self.url
        if "NAME" in attrs:
            name, value = attrs["NAME"], attrs.get("VALUE")
            if value is None:
                raise SourceInvalid(f"{url}: #EXT-X-DEFINE NAME={name!r} without a VALUE", url=url)
        elif "QUERYPARAM" in attrs:
            name = attrs["QUERYPARAM"]
            value = _query_parameter(url, name)
        elif "IMPORT" in attrs:
            name = attrs["IMPORT"]
            if self.imported is None:
                raise SourceInvalid(
                    f"{url}: #EXT-X-DEFINE IMPORT={name!r} in a playlist not loaded from a master playlist"
                    " (or in a master playlist itself)",
                    url=url,
                )
            if name not in self.imported:
                raise SourceInvalid(
                    f"{url}: #EXT-X-DEFINE IMPORT={name!r}: the master playlist defines no such variable",
                    url=url,
                )
            value = self.imported[name]
        else:
            raise SourceInvalid(f"{url}: #EXT-X-DEFINE without NAME, QUERYPARAM or IMPORT", url=url)
        if not NAME.fullmatch(name):
            raise SourceInvalid(f"{url}: #EXT-X-DEFINE names an invalid variable {name!r}", url=url)
        if name in self.defined:
            raise SourceInvalid(f"{url}: #EXT-X-DEFINE defines the variable {name!r} twice", url=url)
        self.defined[name] = value

    def references(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.defined:
                raise SourceInvalid(
                    f"{self.url}: references the variable {{${name}}} with no #EXT-X-DEFINE of it before",
                    url=self.url,
                )
            return self.defined[name]

        return REFERENCE.sub(value, text)

    def line(self, line: str) -> str:
        if "{$" not in line:
            out = line
        elif line.startswith("#"):
            out = SUBSTITUTED_IN_TAGS.sub(lambda m: self.references(m.group(0)), line)
        else:
            out = self.references(line)
        self.size += len(out)
        if self.size > MAX_SUBSTITUTED_CHARS:
            raise SourceInvalid(
                f"{self.url}: its variables expand it past {MAX_SUBSTITUTED_CHARS} characters", url=self.url
            )
        return out


def substitute(
    text: str, url: str, imported: Mapping[str, str] | None = None, *, master: bool = False
) -> tuple[str, dict[str, str]]:
    """(the text with every reference replaced, the variables it defined). ``url``: the playlist's own
    URL (``QUERYPARAM``); ``imported``: its master's variables when it was loaded through one."""
    if DEFINE not in text and "{$" not in text:
        return text, {}
    sub = _Substitution(url, None if master else imported)
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(DEFINE):
            sub.define(line.rstrip("\r\n"))
            out.append(line)
        elif line.startswith("#") and not line.startswith("#EXT"):
            out.append(line)  # a comment
        else:
            out.append(sub.line(line))
    return "".join(out), sub.defined
