"""The dashboard in a real browser: Playwright driving Debian's Chromium (never a
downloaded one) against the tracker served by uvicorn on 127.0.0.1, on a SQLite store.

Screenshots of each step are saved under the test's tmp_path.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests._services import require_chromium
from tests.server.conftest import Seeded, breakers, seed

from errorkit.capturing import api as capture
from errorkit.resilience.registry import BreakerRegistry
from errorkit.store import ErrorStore, open_store
from errorkit.store.users import UserStore

PASSWORD = "correct horse battery"
XSS = "<script>window.__xss = 1</script> and <img src=x onerror=window.__xss=2>"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    base: str
    store: ErrorStore
    seeded: Seeded
    breakers: BreakerRegistry
    xss_id: str
    shots: Path


class _Hostile(RuntimeError):
    """An error whose message tries to run script in the dashboard."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    import uvicorn

    from errorkit.server import create_app

    url = f"sqlite:///{tmp_path / 'errors.db'}"
    seeded = seed(url, tmp_path / "spool")
    capture.configure(store_url=url, service="web", spool_dir=tmp_path / "spool")
    try:
        raise _Hostile(XSS)
    except _Hostile as exc:
        xss_id = capture.capture(exc, endpoint="/search?q=<b>x</b>")
    assert capture.flush(timeout=30)
    capture.shutdown(timeout=5)
    store = open_store(url)
    UserStore(store).add("ana", PASSWORD, role="admin")
    registry = breakers()
    app = create_app(store=store, breakers=registry)  # the tracker's own health checks
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Served(f"http://127.0.0.1:{port}/admin", store, seeded, registry, xss_id, shots)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


@pytest.fixture
def page(served: Served) -> Iterator[Any]:
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            browser.close()


def log_in(page: Any, served: Served) -> None:
    page.goto(f"{served.base}/")
    assert "/admin/login" in page.url
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(f"{served.base}/")


def test_log_in_filter_open_and_resolve_an_issue(page: Any, served: Served) -> None:
    log_in(page, served)
    page.screenshot(path=served.shots / "issues.png", full_page=True)
    assert page.locator("tr.issue").count() == 4
    assert page.locator("#issue-count").inner_text() == "4"

    page.fill("input[name=q]", "Boom")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**q=Boom**")
    assert page.locator("tr.issue").count() == 1
    page.screenshot(path=served.shots / "filtered.png", full_page=True)

    page.click("tr.issue td.title a")
    page.wait_for_url("**/admin/issues/**")
    assert page.locator("h1.issue-title").inner_text() == "Boom: boom <num>"
    assert page.locator("ol.frames.app li").count() >= 1
    assert page.locator("svg.columns").count() == 1
    page.fill("textarea[name=notes]", "fixed in 1.0.1")
    page.click("section.actions button.primary")
    page.wait_for_selector(".meta .badge.resolved")
    page.screenshot(path=served.shots / "resolved.png", full_page=True)
    assert "Notes: fixed in 1.0.1" in page.locator("p.notes").inner_text()
    group = served.store.group(served.store.get(served.seeded.boom_ids[0]).fingerprint)  # type: ignore[union-attr]
    assert group is not None
    assert group.status == "resolved"


def test_find_an_error_by_id(page: Any, served: Served) -> None:
    log_in(page, served)
    wanted = served.seeded.db_ids[0]
    page.fill("#find-id", wanted)
    page.press("#find-id", "Enter")
    page.wait_for_url("**/admin/find**")
    page.screenshot(path=served.shots / "found.png", full_page=True)
    assert wanted in page.locator("section.event h2").inner_text()
    assert page.locator("tr.current").count() == 1


def test_reset_a_breaker(page: Any, served: Served) -> None:
    log_in(page, served)
    page.click("nav >> text=Breakers")
    page.wait_for_url(f"{served.base}/breakers")
    row = page.locator("tr.breaker[data-name=payments]")
    assert row.locator(".badge").inner_text() == "open"
    row.locator("button").click()
    page.wait_for_selector("tr.breaker[data-name=payments] .badge.closed")
    page.screenshot(path=served.shots / "breakers.png", full_page=True)
    assert str(served.breakers.get("payments").status().state) == "closed"  # type: ignore[union-attr]
    page.click("nav >> text=Stats")
    page.wait_for_url(f"{served.base}/stats")
    assert page.locator("svg.columns").count() == 1
    assert "7 stored errors" in page.locator("main").inner_text()
    page.screenshot(path=served.shots / "stats.png", full_page=True)
    page.click("nav >> text=Health")
    page.wait_for_url(f"{served.base}/health")
    assert "store" in page.locator("table").inner_text()
    page.screenshot(path=served.shots / "health.png", full_page=True)


def test_hostile_messages_render_as_text(page: Any, served: Served) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, served)
    title = page.locator("tr.issue td.title a", has_text="_Hostile")
    assert "<script>" in title.inner_text()
    title.click()
    page.wait_for_url("**/admin/issues/**")
    page.screenshot(path=served.shots / "hostile.png", full_page=True)
    assert XSS in page.locator("p.message-text").inner_text()
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    assert page.evaluate("window.__xss === undefined")
    assert dialogs == []
    assert "/search?q=<b>x</b>" in page.locator("dl").inner_text()
    # The same message through the find box and the list refresh.
    page.fill("#find-id", served.xss_id)
    page.press("#find-id", "Enter")
    page.wait_for_url("**/admin/find**")
    assert XSS in page.locator("p.message-text").inner_text()
    page.goto(f"{served.base}/")
    page.evaluate("window.errorkitRefresh()")
    page.wait_for_selector("#issue-rows[data-refreshed]")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss === undefined")


def test_the_list_refreshes_without_a_reload(page: Any, served: Served) -> None:
    from datetime import UTC, datetime

    from errorkit.store import ErrorRecord

    log_in(page, served)
    page.evaluate("window.__same_page = true")
    assert page.locator("tr.issue").count() == 4
    served.store.write_batch(
        [
            ErrorRecord(
                error_id="0d7c6a52-7d4e-4c1b-9b7e-2a6f3e1d8c05",
                timestamp=datetime.now(UTC),
                error_type="http_error",
                error_code="HTTP_INTERNAL_ERROR",
                error_message="arrived while the page was open",
                severity="error",
                fingerprint="late-arrival",
                title="LateError: arrived while the page was open",
            )
        ]
    )
    page.evaluate("window.errorkitRefresh()")
    page.wait_for_selector("tr.issue >> text=LateError")
    assert page.locator("#issue-count").inner_text() == "5"
    assert page.evaluate("window.__same_page === true")  # no reload happened


def test_usable_on_a_phone(page: Any, served: Served) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, served)
    page.screenshot(path=served.shots / "phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert page.locator("#find-id").is_visible()
    assert page.locator("tr.issue td.title a").first.is_visible()
    assert not page.locator("svg.spark").first.is_visible()  # the wide columns fold away


def test_a_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true must have run the browser tests: no Chromium there is a failure, not a skip."""
    import tests._services as services

    monkeypatch.setattr(services, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(services, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true and Chromium"):
        services.require_chromium()
