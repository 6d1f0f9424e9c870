"""The operations page in a real headless Chromium, against a real `clipline api` (uvicorn) and real
`clipline worker` processes on this run's vhost and Redis db, rendering with ffmpeg from the loopback CDN.

Screenshots land in .artifacts/screenshots/ (CLIPLINE_TEST_SCREENSHOTS); each test prints their paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from clipline.web import session
from pipeline.models import parse_request
from pipeline.store import JobStore
from pipeline.subprocesses import tied_to_caller

from .browser import DESKTOP, PHONE, chromium, layout_problems, screenshot, tab_through, unlabelled_controls
from .conftest import Stack, build_request, new_job_id, stack_env
from .private import free_port

pytestmark = pytest.mark.integration

TOKEN = "web-t0ken"
#: Lines of the test job: (video, source start, source end, give hls_url); line i lasts LINE_MS[i].
PICKS = [
    ("v_a", 0, 1000, True),
    ("v_b", 500, 1500, False),
    ("v_gone", 0, 1000, False),  # gone everywhere: a black placeholder
    ("v_a", 3000, 4000, True),
    ("v_local", 1000, 2000, False),  # only on local disk
    ("v_a", 6000, 7000, True),
]
LINE_MS = [1200, 800, 1500, 1000, 900, 1100]
#: A song-sized job for the layout and keyboard tests: 60 lines (spec 000: 50-70 is typical).
LONG_GONE, LONG_LOCAL = (7, 33), (20, 48)
LONG_PICKS = [
    ("v_gone", 0, 1000, False)
    if i in LONG_GONE
    else ("v_local", 500, 1500, False)
    if i in LONG_LOCAL
    else ("v_a", (i * 300) % 18000, (i * 300) % 18000 + 1200, True)
    if i % 2
    else ("v_b", (i * 170) % 10000, (i * 170) % 10000 + 1000, False)
    for i in range(60)
]
SCRIPT_LYRIC = "<script>window.__pwned = 1</script>"
IMG_LYRIC = '<img src="x" onerror="window.__pwned = 2">'
FINAL = ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED")


@contextmanager
def api_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """`clipline api` on a free loopback port; yields its base URL."""
    port = free_port()
    log = open(log_dir / f"api-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=tied_to_caller(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@dataclass
class Site:
    stack: Stack
    base: str
    api: httpx.Client  # holds the bearer token


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, vhost: str, redis_url: str, cdn: Any, samples: Any
) -> Iterator[Site]:
    """Workers for every stage and the API with a token, shared by this module's tests."""
    tmp = tmp_path_factory.mktemp("web")
    stack = Stack(stack_env(tmp, vhost, redis_url, cdn, samples), tmp, cdn, samples)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    env = dict(stack.env, CLIPLINE_API_TOKEN=TOKEN)
    try:
        with api_server(env, tmp) as base:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
                yield Site(stack, base, api)
    finally:
        stack.stop_workers()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def web_request(job_id: str, stack: Stack, picks: list[tuple[str, int, int, bool]] = PICKS) -> dict[str, Any]:
    req = build_request(job_id, stack.cdn, picks, line_ms=lambda i: LINE_MS[i % len(LINE_MS)], audio=False)
    req["lines"][1]["text"] = SCRIPT_LYRIC
    req["lines"][3]["text"] = IMG_LYRIC
    return req


def wait_final(api: httpx.Client, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end within {timeout_s} s")


@pytest.fixture(scope="module")
def gaps_job(site: Site) -> str:
    """A 60-line job rendered through the JSON API: COMPLETED_WITH_GAPS (two placeholders, two local)."""
    job_id = new_job_id("webgaps")
    assert site.api.post("/jobs", json=web_request(job_id, site.stack, LONG_PICKS)).status_code == 202
    assert wait_final(site.api, job_id)["status"] == "COMPLETED_WITH_GAPS"
    return job_id


def logged_in(
    browser: Browser, site: Site, *, viewport: dict[str, int] = DESKTOP, locale: str = "en-US"
) -> Page:
    """A fresh browser context (no cookies) that logs in through the form."""
    ctx = browser.new_context(viewport=viewport, locale=locale)
    page = ctx.new_page()
    page.goto(f"{site.base}/login")
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    page.wait_for_url(f"{site.base}/")
    return page


#: The progress and the status the page shows, read in one evaluation: the page replaces its live part
#: whole, so two reads could see progress before an update and the status after it (CI saw a final
#: status beside the 33 % shown a moment before).
SHOWN = """() => [document.getElementById("job-progress")?.getAttribute("value"),
                document.getElementById("job-status")?.dataset.status]"""


def watch_until_final(page: Page, timeout_s: float = 180) -> list[int]:
    """Progress values the page showed (without reloading) until its status is final."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value, status = page.evaluate(SHOWN)
        seen.append(int(value or 0))
        if status in FINAL:
            return seen
        time.sleep(0.25)
    raise AssertionError(f"the page never showed a final status; progress seen {seen[-5:]}")


def print_shots(capsys: pytest.CaptureFixture[str], paths: list[Path]) -> None:
    with capsys.disabled():
        print("\nscreenshots:", *(str(p) for p in paths), sep="\n  ")


def test_login_submit_watch_progress_placeholder_and_retry(
    site: Site, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = ctx.new_page()
    # Given a person who is not logged in: the page asks for the token, and a wrong one is refused
    page.goto(f"{site.base}/")
    assert "/login" in page.url and page.locator("text=Log in to see this page.").is_visible()
    page.fill("#token", "not-the-token")
    page.click("form[action='/login'] button[type=submit]")
    assert page.locator("#token-error").inner_text() == "That token is not right."
    page.fill("#token", TOKEN)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{site.base}/")
    cookie = next(c for c in ctx.cookies() if c["name"] == session.COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # When a request that fails validation is pasted, the problem is shown beside its field
    job_id = new_job_id("webform")
    request = web_request(job_id, site.stack)
    bad = json.loads(json.dumps(request))
    bad["lines"][2]["clip"]["hls_url"] = "ftp://cdn.invalid/v_gone.m3u8"
    bad_text = json.dumps(bad, indent=2, ensure_ascii=False)
    page.click("nav >> text=Submit a job")
    page.fill("#request", bad_text)
    page.click("#submit-button")
    here = page.locator(".excerpt li.here")
    assert "lines[2].clip.hls_url" in here.inner_text() and '"hls_url"' in here.inner_text()
    assert "http or https" in here.inner_text()
    assert page.input_value("#request") == bad_text  # the pasted text is kept
    assert page.get_attribute("#request", "aria-invalid") == "true"
    page.click("#problems a[data-start]")  # the problem's link selects the field in the text box
    selected = page.evaluate(
        "() => { const t = document.getElementById('request');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); }"
    )
    assert selected.startswith('"hls_url"') and "ftp://" in selected
    assert site.api.get(f"/jobs/{job_id}").status_code == 404  # nothing was recorded

    # And a valid request submitted through the form renders, the page following it live
    page.fill("#request", json.dumps(request, indent=2, ensure_ascii=False))
    page.click("#submit-button")
    page.wait_for_url(f"{site.base}/ui/jobs/{job_id}")
    page.evaluate("() => { window.__samePage = true; }")
    seen = watch_until_final(page)
    assert page.evaluate("() => window.__samePage") is True  # no reload: the page updated itself
    assert seen == sorted(seen) and seen[-1] == 100, seen
    assert page.get_attribute("#job-status", "data-status") == "COMPLETED_WITH_GAPS"

    # Then the strip shows each slot's outcome where the report says, to scale
    report = site.api.get(f"/jobs/{job_id}/report").json()
    states = page.eval_on_selector_all("#strip .slot", "els => els.map(e => e.dataset.state)")
    assert states == [row["outcome"] for row in report["slots"]]
    assert states[2] == "placeholder" and states[4] == "local"
    strip = page.locator("#strip").bounding_box()
    total_ms = report["slots"][-1]["slot_end_ms"]
    for row in report["slots"]:
        box = page.locator(f"#slot-{row['index']}").bounding_box()
        assert strip and box
        assert abs((box["x"] - strip["x"]) - strip["width"] * row["slot_start_ms"] / total_ms) <= 3
        assert (
            abs(box["width"] - strip["width"] * (row["slot_end_ms"] - row["slot_start_ms"]) / total_ms) <= 3
        )
    # Each block says its outcome in words too, and hovering shows the line, its time, source and reason
    assert page.get_attribute("#slot-2", "aria-label") == "Line 3: placeholder"
    page.hover("#slot-2")
    tip = page.locator("#tip-2")
    assert tip.is_visible()
    tip_text = tip.inner_text()
    assert "Line 3" in tip_text and "第3句 line 3" in tip_text and "00:02.000–00:03.500" in tip_text
    assert "v_gone" in tip_text and report["slots"][2]["reason"] in tip_text

    # The missing-footage list is in timeline order and carries the report's advice
    rows = page.locator("table.missing tbody tr")
    assert [rows.nth(i).get_attribute("data-index") for i in range(rows.count())] == ["2", "4"]
    advice = {g["video_id"]: g["action"] for g in report["summary"]["missing_footage"]}
    assert rows.nth(0).locator("td.advice").inner_text() == advice["v_gone"]
    assert rows.nth(1).locator("td.advice").inner_text() == advice["v_local"]

    # Lyrics are shown as text, never run as HTML
    assert page.evaluate("() => window.__pwned") is None
    page.click("summary")
    lyrics = page.locator("table.slots td.lyric")
    assert lyrics.nth(1).inner_text() == SCRIPT_LYRIC and lyrics.nth(3).inner_text() == IMG_LYRIC
    assert page.locator("table.slots td.lyric img, table.slots td.lyric script").count() == 0

    # The report link works with the login cookie alone; the player is there when the video can be served
    report_href = page.get_attribute("#report-link", "href")
    assert report_href
    fetched = ctx.request.get(f"{site.base}{report_href}" if report_href.startswith("/") else report_href)
    assert fetched.status == 200 and fetched.json()["job_id"] == job_id
    status = site.api.get(f"/jobs/{job_id}").json()
    if status.get("output_url"):  # the media route on this origin, which the login cookie reaches
        video = f"/jobs/{job_id}/video"
        assert page.get_attribute("#player", "src") == video
        assert page.get_attribute("#video-link", "href") == video
        part = ctx.request.get(f"{site.base}{video}", headers={"Range": "bytes=0-99"})
        assert part.status == 206 and len(part.body()) == 100
        assert page.get_attribute("#player", "poster") == f"/jobs/{job_id}/poster"
    else:
        assert (
            page.locator("#player").count() == 0 and page.locator("text=No video to show yet.").is_visible()
        )
    shots = [screenshot(page, "job-finished-desktop")]

    # When Retry is clicked and confirmed, the job runs again and the page follows it
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#retry-button")
    page.wait_for_url(f"{site.base}/ui/jobs/{job_id}?done=retried")
    assert dialogs and job_id in dialogs[0]
    assert page.locator("text=The job was started again.").is_visible()
    seen = watch_until_final(page)
    assert seen[-1] == 100 and page.get_attribute("#job-status", "data-status") == "COMPLETED_WITH_GAPS"
    assert page.locator("section[aria-labelledby=h-history] li").first.inner_text().startswith("Attempt 1")
    assert site.api.get(f"/jobs/{job_id}").json()["attempt"] == 2

    # The jobs list shows it with its counts
    page.goto(f"{site.base}/?q={job_id}")
    row = page.locator(f"tr[data-job='{job_id}']")
    assert "completed with gaps" in row.inner_text() and "placeholder 1" in row.inner_text()
    shots.append(screenshot(page, "jobs-list-desktop"))
    print_shots(capsys, shots)
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_layout_nothing_overlaps_and_text_is_readable(
    site: Site,
    gaps_job: str,
    browser: Browser,
    viewport: dict[str, int],
    locale: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = logged_in(browser, site, viewport=viewport, locale=locale)
    size = f"{viewport['width']}x{viewport['height']}"
    lang = locale.split("-")[0]
    shots, problems = [], {}
    bad_text = json.dumps({"job_id": "x", "lines": [{"text": "a", "start_ms": 0, "end_ms": -1}]}, indent=2)
    for name, go in [
        ("list", lambda: page.goto(f"{site.base}/")),
        ("job", lambda: page.goto(f"{site.base}/ui/jobs/{gaps_job}")),
        ("job-tip", lambda: page.focus(f"#slot-{LONG_GONE[0]}")),
        (
            "submit-errors",
            lambda: (
                page.goto(f"{site.base}/ui/submit"),
                page.fill("#request", bad_text),
                page.click("#submit-button"),
            ),
        ),
    ]:
        go()
        found = layout_problems(page)
        if found["overlaps"] or found["small"] or found["overflow"] > 0:
            problems[name] = found
        shots.append(screenshot(page, f"{name}-{lang}-{size}"))
    assert problems == {}
    if lang == "zh":
        page.goto(f"{site.base}/ui/jobs/{gaps_job}")
        assert page.get_attribute("html", "lang") == "zh-CN" and "已完成（有缺口）" in page.inner_text(
            "#job-status"
        )
    print_shots(capsys, shots)
    page.context.close()


def test_keyboard_reaches_every_control_with_a_name(site: Site, gaps_job: str, browser: Browser) -> None:
    page = logged_in(browser, site)
    page.goto(f"{site.base}/ui/jobs/{gaps_job}")
    assert unlabelled_controls(page) == []
    order = tab_through(page)
    assert all(f["visible"] and f["name"] for f in order), order
    names = [f["id"] or f["name"] for f in order]
    # The skip link comes first, then the menus, then the job's own controls in reading order
    assert order[0]["name"] == "Skip to content"
    for expected in ("Jobs", "Submit a job", "English", "中文", "Log out", "retry-button", "report-link"):
        assert expected in names, names
    assert names.index("retry-button") < names.index("report-link")
    # The strip is one stop on the way; arrow keys move along it and show each line's details
    slots = [f for f in order if "slot" in str(f["cls"]).split()]
    assert [s["id"] for s in slots] == ["slot-0"]
    page.focus("#slot-0")
    for _ in range(LONG_GONE[0]):
        page.keyboard.press("ArrowRight")
    gone = f"slot-{LONG_GONE[0]}"
    assert page.evaluate("() => document.activeElement.id") == gone
    assert page.get_attribute(f"#{gone}", "tabindex") == "0"  # the strip's one tab stop follows the focus
    assert page.locator(f"#tip-{LONG_GONE[0]}").is_visible()
    assert "v_gone" in page.inner_text(f"#tip-{LONG_GONE[0]}")
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.id") == f"slot-{len(LONG_PICKS) - 1}"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("() => document.activeElement.id") == f"slot-{len(LONG_PICKS) - 2}"
    page.keyboard.press("Home")
    assert page.evaluate("() => document.activeElement.id") == "slot-0"
    # Retry from the keyboard asks first; saying no changes nothing
    page.once("dialog", lambda d: d.dismiss())
    page.focus("#retry-button")
    page.keyboard.press("Enter")
    assert site.api.get(f"/jobs/{gaps_job}").json()["status"] == "COMPLETED_WITH_GAPS"
    for path in ("/", "/ui/submit"):
        page.goto(f"{site.base}{path}")
        assert unlabelled_controls(page) == []
        assert all(f["visible"] and f["name"] for f in tab_through(page))
    page.context.close()


def test_sessions_languages_not_found_and_forms(site: Site, gaps_job: str, browser: Browser) -> None:
    # An expired session sends the person to log in, saying why
    ctx: BrowserContext = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    expired = session.sign(TOKEN, expires_at=time.time() - 60)
    ctx.add_cookies([{"name": session.COOKIE, "value": expired, "url": site.base}])
    page = ctx.new_page()
    page.goto(f"{site.base}/ui/jobs/{gaps_job}")
    assert "/login" in page.url and "why=expired" in page.url
    assert page.locator("text=会话已过期，请重新登录。").is_visible()  # Chinese by Accept-Language
    # A page that is polling a running job goes to the login page when its session ends
    pending = new_job_id("webpending")
    JobStore(site.stack.env["CLIPLINE_DATABASE_URL"]).create_or_get(
        parse_request(web_request(pending, site.stack))
    )  # recorded, never enqueued: it stays PENDING
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    page.wait_for_url("**/ui/jobs/*")
    page.goto(f"{site.base}/ui/jobs/{pending}")
    assert page.get_attribute("#live", "data-final") == "no"
    ctx.add_cookies([{"name": session.COOKIE, "value": expired, "url": site.base}])
    page.wait_for_url("**/login?why=expired*", timeout=15_000)
    # The language can be switched, and the choice sticks
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    page.wait_for_url(f"**/ui/jobs/{pending}")
    page.click("a[hreflang=en]")
    assert page.get_attribute("html", "lang") == "en" and "Timeline" in page.inner_text("#h-timeline")
    page.goto(f"{site.base}/")
    assert page.inner_text("h1") == "Jobs"
    # Unknown job: a 404 page, the id shown as text
    res = page.goto(f"{site.base}/ui/jobs/%3Cscript%3Ealert(1)")
    assert res is not None and res.status == 404
    assert page.inner_text("main p") == "There is no job <script>alert(1)."
    res = page.goto(f"{site.base}/ui/no-such-page")
    assert res is not None and res.status == 404 and page.inner_text("main p") == "There is no such page."
    # Cancel through the page: confirmed, the job ends CANCELLED; a second cancel shows why not
    page.goto(f"{site.base}/ui/jobs/{pending}")
    page.once("dialog", lambda d: d.accept())
    page.click("#cancel-button")
    page.wait_for_url("**?done=cancelled")
    assert page.get_attribute("#job-status", "data-status") == "CANCELLED"
    assert page.locator("#cancel-button").count() == 0 and page.locator("#retry-button").count() == 1
    ctx.close()


def test_form_posts_need_the_csrf_token_and_api_writes_need_the_bearer(site: Site, gaps_job: str) -> None:
    with httpx.Client(base_url=site.base, timeout=30) as anon:
        login = anon.get("/login")
        csrf = anon.cookies[session.CSRF_COOKIE]
        assert login.status_code == 200 and "Content-Security-Policy" in login.headers
        # A cross-site form post carries no CSRF cookie/field pair: refused
        bad = anon.post("/login", data={"token": TOKEN, "next": "/", "csrf": "forged"})
        assert bad.status_code == 403 and session.COOKIE not in anon.cookies
        ok = anon.post("/login", data={"token": TOKEN, "next": "//evil.example/", "csrf": csrf})
        assert ok.status_code == 303 and ok.headers["location"] == "/"  # never a redirect off-site
        assert anon.get(f"/jobs/{gaps_job}/report").status_code == 200  # the cookie reads the JSON API
        assert anon.post(f"/jobs/{gaps_job}/retry").status_code == 401  # but does not write through it
        forged = anon.post(f"/ui/jobs/{gaps_job}/retry", data={"csrf": "x", "confirmed": "yes"})
        assert forged.status_code == 403 and site.api.get(f"/jobs/{gaps_job}").json()["attempt"] == 1
        # Without the confirmation a form post only asks
        asked = anon.post(f"/ui/jobs/{gaps_job}/retry", data={"csrf": csrf})
        assert asked.status_code == 200 and 'name="confirmed" value="yes"' in asked.text
        assert site.api.get(f"/jobs/{gaps_job}").json()["attempt"] == 1
    # The bearer header opens the page too (scripts, curl)
    assert site.api.get("/", follow_redirects=False).status_code == 200


def test_without_a_token_the_page_is_open(site: Site, gaps_job: str, browser: Browser) -> None:
    env = {k: v for k, v in site.stack.env.items() if k != "CLIPLINE_API_TOKEN"}
    with api_server(env, site.stack.tmp) as base:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(f"{base}/ui/jobs/{gaps_job}")
        assert page.url.endswith(f"/ui/jobs/{gaps_job}") and page.locator("form.logout").count() == 0
        # Uploading a file works like pasting, and a bad file's text is kept in the box
        upload = site.stack.tmp / "bad.json"
        upload.write_text('{"lines": [}', encoding="utf-8")
        page.goto(f"{base}/ui/submit")
        page.set_input_files("#upload", str(upload))
        page.click("#submit-button")
        assert page.input_value("#request") == '{"lines": [}'
        assert "This is not valid JSON" in page.inner_text("#problems")
        page.close()


def test_the_layout_check_finds_overlaps_small_text_and_overflow(browser: Browser) -> None:
    # The check the layout test relies on, shown failing on a page built to be broken
    page = browser.new_page(viewport=PHONE)
    page.set_content(
        "<p>first paragraph of text</p>"
        "<p style='position:relative; top:-1.2em'>second paragraph on top</p>"
        "<p style='font-size:9px'>tiny print</p>"
        "<div style='width:600px'>too wide</div>"
        "<div style='overflow:hidden; width:20px; white-space:nowrap'>clipped text is not counted</div>"
    )
    found = layout_problems(page)
    assert any("first paragraph" in o and "second paragraph" in o for o in found["overlaps"])
    assert found["small"] and "tiny print" in found["small"][0]
    assert found["overflow"] > 0
    assert not any("clipped" in o for o in found["overlaps"])
    page.close()
