"""Both languages carry every label, with the same fields; the language follows cookie, then header."""

from __future__ import annotations

import re
from importlib import resources
from string import Formatter
from typing import get_args

import pytest

from clipline.web import i18n
from clipline.web.job_page import STATES
from pipeline.models import JobStatus, Quality


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def test_every_label_exists_in_both_languages_with_the_same_fields() -> None:
    for key in i18n.keys():
        en, zh = i18n.text("en", key), i18n.text("zh", key)
        assert en.strip() and zh.strip(), key
        assert _fields(i18n.table("en")[key]) == _fields(i18n.table("zh")[key]), key


def test_templates_use_only_known_labels() -> None:
    known = set(i18n.keys())
    used: set[str] = set()
    folder = resources.files("clipline.web").joinpath("templates")
    for template in folder.iterdir():
        used |= set(
            re.findall(r"""\bt\(\s*["']([a-z][a-z0-9_.]*)["']""", template.read_text(encoding="utf-8"))
        )
    literal = {k for k in used if not k.endswith(".")}
    assert literal and literal <= known, sorted(literal - known)
    # Keys built from a prefix: every value the prefix is completed with has its label
    built = {f"status.{s.value}" for s in JobStatus} | {f"outcome.{s}" for s in STATES}
    built |= {f"advice.{o}" for o in ("local", "placeholder", "failed")}
    built |= {f"job.{a}.confirm" for a in ("cancel", "retry")}
    built |= {f"quality.{q}" for q in get_args(Quality)}
    assert {k.split(".")[0] + "." for k in built} == used - literal
    assert built <= known, sorted(built - known)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "fr-FR, zh-TW;q=0.5", "zh"),
        (None, "en;q=0.4, zh;q=0.6", "zh"),
        (None, "zh;q=0", "en"),
        (None, "de, fr", "en"),
        (None, None, "en"),
        (None, ";;,q=,zh;q=abc", "en"),
        ("en", "zh-CN", "en"),  # a person's choice beats the browser's
        ("zh", "en-US", "zh"),
        ("xx", "zh-CN", "zh"),  # an unknown cookie value is ignored
    ],
)
def test_language_choice(cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.choose(cookie, header) == expected
