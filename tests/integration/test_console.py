"""The console in a real headless browser (Debian's chromium driven by Playwright): sign in,
watch a device's values change live, acknowledge an alert and see the inbox change.

``CONSOLE_SCREENSHOTS=DIR`` keeps a screenshot of each page there (the README's come from it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api_fleet import Fleet, change

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (make test installs it where apt can)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, client: httpx.Client) -> Iterator[object]:
    context = browser.new_context(
        base_url=str(client.base_url), viewport={"width": 1360, "height": 900}, timezone_id="UTC"
    )
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def shot(page, name: str) -> None:
    where = os.environ.get("CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"console-{name}.png"), full_page=True)


def sign_in(page, key: str) -> None:
    page.goto("/")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_selector("#devices tr[data-device]")


def test_a_wrong_key_is_refused_and_a_viewer_cannot_act(page, fleet: Fleet):
    page.goto("/")
    page.fill("#key", "tws_not-a-key")
    page.click("#sign-in")
    page.wait_for_selector("#signin-error:has-text('not accepted')")
    sign_in(page, fleet.keys["viewer"])
    page.goto("/#/alerts")
    page.wait_for_selector("#inbox tr[data-alert]")
    assert page.locator("#inbox button[data-action='ack']").first.is_disabled()


def test_fleet_page_lists_devices_and_draws_the_map(page, fleet: Fleet):
    sign_in(page, fleet.keys["operator"])
    page.fill("#search", fleet.run)
    page.wait_for_function(
        "n => document.querySelectorAll('#devices tr[data-device]').length === n", arg=3
    )
    rows = page.locator("#devices tr[data-device]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.device)")) == sorted(fleet.devices)
    hot = page.locator(f"#devices tr[data-device='{fleet.hot}']")
    assert "online" in hot.inner_text() and (
        "major" in hot.inner_text() or "critical" in hot.inner_text()
    )
    page.wait_for_selector(f"#map circle[data-device='{fleet.cool}']")
    assert page.locator("[data-card='devices'] b").inner_text() != ""
    shot(page, "fleet")


def test_device_values_change_live(page, fleet: Fleet, redis_url: str, fleet_prefix: str):
    sign_in(page, fleet.keys["operator"])
    page.goto(f"/#/device/{fleet.cool}")
    cell = page.locator("#values td[data-metric='speed_kmh']")
    cell.wait_for()
    assert cell.inner_text() == "50"
    page.wait_for_selector("#live-dot.on")
    page.wait_for_selector("#chart #series", state="attached")
    change(redis_url, fleet_prefix, fleet, 88.25, f"{fleet.run}-console")
    speed = "#values td[data-metric='speed_kmh']"
    page.wait_for_function(f"() => document.querySelector(\"{speed}\").textContent === '88.25'")
    shot(page, "device")


def test_the_device_page_shows_the_twin_as_it_was(page, fleet: Fleet):
    sign_in(page, fleet.keys["viewer"])
    page.goto(f"/#/device/{fleet.hot}")
    coolant = "#values td[data-metric='coolant_temp_c']"
    page.wait_for_function(f"() => document.querySelector(\"{coolant}\")?.textContent === '120'")
    page.fill("#at-time", "2025-11-20T10:03:10")  # the page shows UTC here
    page.click("#at-show")
    page.wait_for_function(f"() => document.querySelector(\"{coolant}\").textContent === '109'")
    assert "readings replayed" in page.locator("#as-of").inner_text()
    assert "past" in page.locator("#facts").inner_text()
    shot(page, "device-past")
    page.click("#at-live")
    page.wait_for_function(f"() => document.querySelector(\"{coolant}\").textContent === '120'")
    assert page.locator("#as-of").is_hidden()


def test_the_device_page_explains_its_anomalies(page, fleet: Fleet):
    sign_in(page, fleet.keys["viewer"])
    page.goto(f"/#/device/{fleet.pump}")
    row = page.locator("#device-anomalies tr[data-anomaly='relation:flow_rate_m3h+power_kw']")
    row.wait_for()
    lines = row.locator("td.explained div").all_inner_texts()
    assert lines == ["flow_rate_m3h: 118.50 → 96.25", "power_kw: 36.50 → 44.10"]
    assert "open" not in row.inner_text()  # it ended


def test_acknowledge_an_alert_from_the_inbox(page, fleet: Fleet):
    sign_in(page, fleet.keys["operator"])
    page.goto("/#/alerts")
    page.select_option("#alert-status", "new")
    row = page.locator("#inbox tr[data-alert]", has_text=fleet.hot).first
    row.wait_for()
    alert_id = row.get_attribute("data-alert")
    shot(page, "alerts")
    row.locator("button[data-action='ack']").click()
    page.wait_for_selector(f"#inbox tr[data-alert='{alert_id}']", state="detached")
    page.select_option("#alert-status", "acknowledged")
    acked = page.locator(f"#inbox tr[data-alert='{alert_id}']")
    acked.wait_for()
    assert "acknowledged" in acked.locator(".alert-status").inner_text()
    assert acked.locator("button[data-action='ack']").count() == 0
