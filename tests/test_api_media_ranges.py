"""Byte ranges of GET /jobs/{id}/video: what each Range header asks for (RFC 9110 section 14)."""

from __future__ import annotations

import pytest

from clipline.api_media import byte_range


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),  # a suffix longer than the object: all of it
        ("bytes=990-5000", (990, 999)),  # an end past the object: to its end
        ("bytes=999-999", (999, 999)),
        ("bytes=1000-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=5-2", None),  # invalid: ignored, the whole object is sent
        ("bytes=0-1,5-9", None),  # several ranges: not supported, the whole object is sent
        ("items=0-9", None),
        ("bytes=-", None),
    ],
)
def test_byte_range(header: str | None, want: object) -> None:
    assert byte_range(header, 1000) == want


def test_empty_object_has_no_satisfiable_range() -> None:
    assert byte_range("bytes=0-", 0) == "unsatisfiable"
    assert byte_range(None, 0) is None
