"""The real browser of the console's tests: Debian's Chromium, driven by Playwright.

`launched()` starts it (a missing Chromium fails the test, never skips it); the `browser`
fixture in the project's conftest.py holds one per test module. `sign_in` signs a customer in.
`watch` collects what a page
logs as an error, and `shot` saves a screenshot into artifacts/screenshots/ (not committed) and
checks that every visible form control has a label.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def launched() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Any, *, ignore: tuple[str, ...] = ()) -> Any:
    """Collect the page's console errors and uncaught exceptions in `page.problems` (but those
    about a URL ending in one of `ignore`)."""
    page.problems = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith(ignore):
            page.problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    """Sign in on the console's login page as a customer without two-factor: on the dashboard after."""
    page.goto(f"{base}/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button:has-text('Sign in')")
    assert page.url.endswith("/dashboard/"), page.url


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # Accessibility: every visible form control has a label a screen reader can announce.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
            .filter(el => !el.getAttribute('aria-label') && !(el.id && document.querySelector(`label[for="${el.id}"]`))
                          && !el.closest('label'))
            .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
