"""Callback signatures as the Standard Webhooks specification defines them (standardwebhooks.com). Pure.

Every callback carries three headers:

- ``webhook-id``: the delivery id, the same on every try of one delivery
  (a receiver drops a repeat by it);
- ``webhook-timestamp``: when this try was signed, in whole Unix seconds
  (a receiver refuses one outside its tolerance, 5 minutes by default: a
  captured callback cannot be replayed later);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

The key is ``CLIPLINE_WEBHOOK_SECRET``: in the specification's form
``whsec_<base64 of the key bytes>`` (what ``new_secret`` makes), or any other
string, whose UTF-8 bytes are then the key; give the receiver
``secret_for_receivers(secret)`` for its Standard Webhooks library either way.
The library's own test vector is pinned in ``tests/pipeline/test_webhook_signing.py``.

``X-Clipline-Signature`` (HMAC-SHA256 of the body alone, no timestamp) is still
sent for one release and is deprecated: it can be replayed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
LEGACY_SIGNATURE_HEADER = "X-Clipline-Signature"
#: How far a receiver lets ``webhook-timestamp`` stray from its clock (the specification's default).
TOLERANCE_S = 300


class SignatureInvalid(Exception):
    """A callback failed verification: a header is missing, its timestamp is out of tolerance, or no
    signature matches."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a configured secret: the decoded bytes of ``whsec_<base64>``, else the UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"CLIPLINE_WEBHOOK_SECRET starts with {SECRET_PREFIX} but is no base64") from exc
    else:
        key = secret.encode()
    if not key:
        raise ValueError("CLIPLINE_WEBHOOK_SECRET is empty")
    return key


def secret_for_receivers(secret: str) -> str:
    """The same key in the ``whsec_`` form that Standard Webhooks libraries take."""
    return SECRET_PREFIX + base64.b64encode(secret_key(secret)).decode()


def new_secret(nbytes: int = 32) -> str:
    """A fresh random secret in the ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def sign(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = msg_id.encode() + b"." + str(int(timestamp_s)).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, msg_id: str, body: bytes, *, now_s: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers of one try, signed now."""
    stamp = int(time.time() if now_s is None else now_s)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(key, msg_id, stamp, body)}


def legacy_signature(secret: str, body: bytes) -> str:
    """Deprecated ``X-Clipline-Signature``: ``sha256=<hex HMAC-SHA256 of the body>`` keyed with the secret
    string as it is configured (its UTF-8 bytes), as before Standard Webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(
    key: bytes,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now_s: float | None = None,
) -> str:
    """What a receiver does; returns the verified ``webhook-id``, raises SignatureInvalid.

    The timestamp check is the replay protection: a signature is only good
    within ``tolerance_s`` of the time it was made. Drop repeats by the id.
    """
    lower = {k.lower(): v for k, v in received.items()}
    msg_id, stamp, signatures = (lower.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (msg_id and stamp and signatures):
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp_s = int(stamp)
    except ValueError as exc:
        raise SignatureInvalid(f"webhook-timestamp {stamp!r} is not whole Unix seconds") from exc
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp_s) > tolerance_s:
        off = f"{now - timestamp_s:+.0f}"
        raise SignatureInvalid(f"webhook-timestamp is {off} s off (tolerance {tolerance_s} s)")
    expected = sign(key, msg_id, timestamp_s, body).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in signatures.split(" ")):
        raise SignatureInvalid("no webhook-signature matches the body")
    return msg_id
