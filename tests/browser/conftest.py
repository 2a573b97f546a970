"""Headless Chromium (Debian's package) driven through Playwright's sync API.

Playwright's own browser download does not work on these machines, so the
browser is /usr/bin/chromium (override with MLHUB_CHROMIUM). Each test gets
fresh browser contexts (no shared cookies); when a test fails, every page it
opened is saved under test-artifacts/browser/ as a screenshot and its HTML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.stack import ARTIFACTS

CHROMIUM = os.environ.get("MLHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_ARTIFACTS = ARTIFACTS / "browser"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell, at teardown,
    # whether the test failed.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# module scope: Playwright's sync API keeps an event loop running while it is open,
# which pytest-asyncio's tests must not meet
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM} (apt-get install -y chromium, or set MLHUB_CHROMIUM)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _save_pages(name: str, pages: list[tuple[str, Page]]) -> list[Path]:
    BROWSER_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    saved = []
    for label, page in pages:
        if page.is_closed():
            continue
        stem = BROWSER_ARTIFACTS / f"{safe}-{label}"
        try:
            page.screenshot(path=str(stem.with_suffix(".png")), full_page=True, timeout=15_000)
            saved.append(stem.with_suffix(".png"))
        except Exception as e:  # a screenshot must not hide the real failure
            stem.with_suffix(".screenshot-error.txt").write_text(repr(e))
        try:
            html = f"<!-- url: {page.url} -->\n" + page.content()
            stem.with_suffix(".html").write_text(html)
            saved.append(stem.with_suffix(".html"))
        except Exception as e:
            stem.with_suffix(".html-error.txt").write_text(repr(e))
    return saved


@pytest.fixture
def new_page(browser: Browser, request) -> Iterator[Callable[..., Page]]:
    """Factory: ``new_page("carol")`` opens a page in a fresh browser context.

    Pages are labelled so failure artifacts say whose page they show.
    """
    opened: list[tuple[str, Page]] = []
    contexts = []

    def make(label: str = "page") -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(30_000)
        ctx.set_default_navigation_timeout(60_000)
        contexts.append(ctx)
        page = ctx.new_page()
        opened.append((f"{len(opened)}-{label}", page))
        return page

    yield make

    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        saved = _save_pages(request.node.name, opened)
        if saved:
            print("\nbrowser artifacts: " + ", ".join(str(p) for p in saved))
    for ctx in contexts:
        try:
            ctx.close()
        except Exception:
            pass


@pytest.fixture
def page(new_page) -> Page:
    """One page in a fresh browser context."""
    return new_page("page")
