"""A real headless Chromium (Debian's package) driven by Playwright, and the page checks the web tests
share: layout (nothing overlaps, no sideways scroll, readable text), labels, keyboard focus order.

Playwright never downloads a browser here: it is pointed at the system Chromium
(``CLIPLINE_TEST_CHROMIUM`` overrides the path). Each launch gets a fresh profile directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CLIPLINE_TEST_SCREENSHOTS", ROOT / ".artifacts" / "screenshots"))
CHROMIUM = os.environ.get("CLIPLINE_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MIN_FONT_PX = 12
CHECKS_JS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium; Playwright gives every launch a fresh temporary profile (--user-data-dir)."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: ./dev.sh test installs Debian's chromium package")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _check(name: str) -> str:
    """A function expression calling one of page_checks.js's checks with page.evaluate's argument."""
    return f"(arg) => ({CHECKS_JS}).{name}(arg)"


def layout_problems(page: Page) -> dict[str, Any]:
    """Overlapping text/controls, text under MIN_FONT_PX, and sideways overflow (px) of the page as shown."""
    result: dict[str, Any] = page.evaluate(_check("layout"), MIN_FONT_PX)
    return result


def tab_through(page: Page, limit: int = 80) -> list[dict[str, Any]]:
    """Press Tab from the top of the page until focus comes round again; what got focus, in order."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    seen: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = page.evaluate(_check("focused"))
        if now is None or (seen and now == seen[0]):
            break
        seen.append(now)
    return seen


def unlabelled_controls(page: Page) -> list[str]:
    result: list[str] = page.evaluate(_check("unlabelled"))
    return result
