"""The report in a real browser: Debian's headless Chromium, driven by Playwright, renders the file with every
plot decoded and the flagged-transactions table filled, and fetches nothing from the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fraud.outreach.report import publish_report
from tests.helpers.chromium import ARTIFACTS, CHROMIUM, launched
from tests.helpers.scored_world import build_world

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium (/usr/bin/chromium): apt-get install chromium, or `make test` installs it",
    ),
]


@pytest.mark.timeout(120)
def test_report_renders_in_headless_chromium(engine, settings, tmp_path):
    from playwright.sync_api import sync_playwright

    world = build_world(engine, settings, "browser", cards=24, days=6, seed=21)
    report = Path(publish_report(engine, settings).latest)
    requests, errors = [], []
    with sync_playwright() as playwright:
        browser = launched(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri(), wait_until="load")
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)

            plots = page.eval_on_selector_all(
                "img.plot",
                "imgs => imgs.map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,"
                " shown: i.getBoundingClientRect().width}))",
            )
            cards = page.eval_on_selector_all("#headline .card .value", "els => els.map(e => e.textContent.trim())")
            rows = page.eval_on_selector_all(
                "#top-flagged tbody tr", "trs => trs.map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))"
            )
            hostile_text = page.inner_text("#top-flagged")
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "report.png")

    assert len(plots) == 6
    for plot in plots:
        assert plot["complete"] and plot["w"] > 300 and plot["h"] > 150 and plot["shown"] > 200, plot
    assert len(cards) == 6 and all(cards)
    flagged = int(world.transactions["flagged"].sum())
    assert len(rows) == min(25, flagged) > 0
    for cells in rows:
        time, card, merchant, amount, score = cells[0], cells[1], cells[2], cells[5], cells[6]
        assert (
            time.startswith("2026-11-") and card.startswith("•••• ") and merchant and float(amount.replace(",", "")) > 0
        )
        assert float(score) >= 0.8
    # the hostile merchant is text on the page, not markup that ran
    assert '<script>alert("pwned")</script>' in hostile_text and not errors
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert screenshot.stat().st_size > 50_000
