import pytest


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (tests/helpers/chromium.py)."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.chromium import launched

    with sync_playwright() as playwright:
        chromium = launched(playwright)
        yield chromium
        chromium.close()
