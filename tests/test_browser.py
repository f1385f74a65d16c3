"""A real browser (Debian's Chromium through Playwright) against a real uvicorn server: create a record through the form,
see an inline validation error, fix it, find the record by filter and by search, edit it from the record page."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.runtime import Settings

from .conftest import TEST_BUNDLE, add_test_user

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]
RECORD_URL = re.compile(r".*/m/account/\d+$")
pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A uvicorn server on a free local port, serving the test bundle on a fresh SQLite database; stopped afterwards."""
    import uvicorn

    from engine.web.app import create_app

    app = create_app(Settings(metadata=TEST_BUNDLE, db_url=f"sqlite:///{tmp_path / 'loom.db'}", files=tmp_path / "files"))
    add_test_user(app.state.runtime, "boss", ("admin",), "secret-pw")
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none", http="h11")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)
        app.state.runtime.db.dispose()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A Chromium page (skipped, saying why, when Chromium or Playwright is missing)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser test needs /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(10_000)
        try:
            yield page
        finally:
            browser.close()


def test_create_fix_find_and_edit_in_a_real_browser(server: str, browser_page: Any) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 and r.status != 422 else None)

    page.goto(f"{server}/login")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "secret-pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")
    assert page.evaluate("document.documentElement.classList.contains('js')")  # loom.js ran under the strict CSP
    assert page.evaluate("typeof htmx") == "object"

    # create through the form: a bad email is refused inline (HTMX swaps the 422 form), then fixed
    page.click("nav.side >> text=Accounts")
    page.wait_for_url(f"{server}/m/account")
    page.click("a.button.primary")
    page.fill("#f-name", "Browser Co")
    page.fill("#f-email", "not-an-email")
    page.select_option("#f-category", "key")
    page.click("button[type=submit].primary")
    error = page.locator("#f-email-error")
    error.wait_for()
    assert error.inner_text() == "not a valid email address"
    assert page.url == f"{server}/m/account/new"
    assert page.input_value("#f-name") == "Browser Co"
    page.fill("#f-email", "info@browser.example")
    page.click("button[type=submit].primary")
    page.wait_for_url(RECORD_URL)
    assert page.inner_text("h1") == "Browser Co"
    assert "Created." in page.inner_text("#toasts")

    # find it by a filter: the results are swapped in place and the URL is bookmarkable
    page.goto(f"{server}/m/account")
    page.select_option("select[name=category]", "general")
    page.wait_for_url("**/m/account?category=general")
    assert page.locator("#results >> text=Browser Co").count() == 0
    page.select_option("select[name=category]", "key")
    page.wait_for_url("**/m/account?category=key")
    page.locator("#results >> text=Browser Co").wait_for()

    # ... and by the global search
    page.fill("header input[name=q]", "browser")
    page.press("header input[name=q]", "Enter")
    page.wait_for_url("**/search?q=browser")
    page.click("#search-results >> text=Browser Co")
    page.wait_for_url(RECORD_URL)

    # edit from the record page
    page.click("a.button.primary >> text=Edit")
    page.wait_for_url("**/edit")
    page.fill("#f-name", "Browser Co Renamed")
    page.click("button[type=submit].primary")
    page.wait_for_url(RECORD_URL)
    assert page.inner_text("h1") == "Browser Co Renamed"
    assert "Saved." in page.inner_text("#toasts")
    page.locator("#timeline >> text=Browser Co Renamed").wait_for()  # the history loads when it scrolls into view

    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not [p for p in problems if "status of 422" not in p], problems
