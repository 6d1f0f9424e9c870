"""Standard Webhooks signatures: the specification's test vector, and a receiver's library agrees."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks

from pipeline import webhook_signing as ws
from pipeline.settings import SettingsError, load_settings

# The test vector published with the Standard Webhooks specification (and its libraries' tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_test_vector() -> None:
    key = ws.secret_key(VECTOR_SECRET)
    assert ws.sign(key, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = ws.headers(key, VECTOR_ID, VECTOR_BODY, now_s=VECTOR_TS + 0.9)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert ws.verify(key, headers, VECTOR_BODY, now_s=VECTOR_TS + 10) == VECTOR_ID


@pytest.mark.parametrize(
    "secret",
    [ws.new_secret(), "a plain secret, no base64", "whsec_c2VjcmV0"],
    ids=["a new secret", "plain", "whsec"],  # the same ids in every test process (the first is random)
)
def test_the_standardwebhooks_library_verifies_what_we_sign(secret: str) -> None:
    body = '{"event": "job.finished", "job_id": "j-1", "text": "第一句歌词"}'.encode()
    headers = ws.headers(ws.secret_key(secret), "dlv-1", body)
    receiver = standardwebhooks.Webhook(ws.secret_for_receivers(secret))
    assert receiver.verify(body, headers)["job_id"] == "j-1"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        receiver.verify(body + b" ", headers)


def test_a_plain_secret_is_its_utf8_bytes_and_whsec_is_base64() -> None:
    assert ws.secret_key("abc") == b"abc"
    assert ws.secret_key("whsec_" + base64.b64encode(b"\x00\x01key").decode()) == b"\x00\x01key"
    assert ws.secret_for_receivers("abc") == "whsec_" + base64.b64encode(b"abc").decode()
    with pytest.raises(ValueError, match="no base64"):
        ws.secret_key("whsec_not base64!")
    with pytest.raises(ValueError, match="empty"):
        ws.secret_key("")


def test_replays_outside_the_tolerance_and_tampering_are_refused() -> None:
    key = ws.secret_key(VECTOR_SECRET)
    headers = ws.headers(key, VECTOR_ID, VECTOR_BODY, now_s=VECTOR_TS)
    # Given a callback captured at VECTOR_TS, when it is replayed 6 minutes later, then it is refused
    with pytest.raises(ws.SignatureInvalid, match="tolerance"):
        ws.verify(key, headers, VECTOR_BODY, now_s=VECTOR_TS + 360)
    with pytest.raises(ws.SignatureInvalid, match="tolerance"):
        ws.verify(key, headers, VECTOR_BODY, now_s=VECTOR_TS - 360)
    # ... and moving its timestamp forward breaks the signature
    moved = dict(headers, **{"webhook-timestamp": str(VECTOR_TS + 360)})
    with pytest.raises(ws.SignatureInvalid, match="no webhook-signature"):
        ws.verify(key, moved, VECTOR_BODY, now_s=VECTOR_TS + 360)
    with pytest.raises(ws.SignatureInvalid, match="no webhook-signature"):
        ws.verify(key, headers, VECTOR_BODY + b" ", now_s=VECTOR_TS)
    with pytest.raises(ws.SignatureInvalid, match="missing"):
        ws.verify(key, {"webhook-id": VECTOR_ID}, VECTOR_BODY, now_s=VECTOR_TS)
    with pytest.raises(ws.SignatureInvalid, match="whole Unix seconds"):
        ws.verify(key, dict(headers, **{"webhook-timestamp": "soon"}), VECTOR_BODY, now_s=VECTOR_TS)


def test_several_signatures_in_one_header_any_may_match() -> None:
    key = ws.secret_key(VECTOR_SECRET)
    headers = ws.headers(key, VECTOR_ID, VECTOR_BODY, now_s=VECTOR_TS)
    rotated = dict(headers, **{"webhook-signature": "v1,b2xkLWtleQ== " + headers["webhook-signature"]})
    assert ws.verify(key, rotated, VECTOR_BODY, now_s=VECTOR_TS) == VECTOR_ID
    # Header names are case-insensitive, as HTTP's are
    assert ws.verify(key, {k.upper(): v for k, v in headers.items()}, VECTOR_BODY, now_s=VECTOR_TS)


def test_the_library_signs_the_vector_the_same_way() -> None:
    stamp = datetime.fromtimestamp(VECTOR_TS, tz=UTC)
    lib = standardwebhooks.Webhook(VECTOR_SECRET).sign(VECTOR_ID, stamp, VECTOR_BODY.decode())
    assert lib == VECTOR_SIGNATURE


def test_the_deprecated_signature_is_unchanged() -> None:
    # Kept for one release: hex HMAC-SHA256 of the body keyed with the secret string (value from openssl dgst)
    expected = "sha256=add853b103fbcc936a194f9eb15e29c4ff08af6e47d5d1bca4f20218e31e4fff"
    assert ws.legacy_signature("k", b"{}") == expected


def test_a_secret_that_cannot_be_a_key_is_refused_at_start() -> None:
    refused = "CLIPLINE_WEBHOOK_SECRET starts with whsec_ but is no base64"
    with pytest.raises(SettingsError, match=refused) as err:
        load_settings({"CLIPLINE_WEBHOOK_SECRET": "whsec_not base64!"})
    assert "not base64!" not in str(err.value)  # a secret's value is never said
    assert load_settings({"CLIPLINE_WEBHOOK_SECRET": "any plain string"}).webhook_secret == "any plain string"
