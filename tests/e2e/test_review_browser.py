"""The review app as analysts and a customer use it: `fraud review` started as a process on a free port, driven in
Debian's headless Chromium by Playwright. An analyst signs in, opens the top case and marks it fraud (the label is
there, source `analyst`); a second analyst sees the case closed; the hostile merchant and holder names show as text;
a verdict whose form lost its CSRF token is refused; a customer's "No, it wasn't" link labels the alert's
transactions and a second click changes nothing. No page fetches anything from elsewhere or logs an error (a CSP
violation would). Screenshots land in test-artifacts/, and in docs/ (the README's) with FRAUD_SCREENSHOTS=1."""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import text

from bench.api import wait_healthy
from fraud.core.settings import REPO_ROOT
from fraud.db.cases import case_transactions, cases
from fraud.db.users import Role, add_user
from fraud.features.catalog import FEATURE_NAMES
from fraud.outreach.alerts import AlertPolicy, queue_alerts
from fraud.outreach.answers import Answer, answer_link
from tests.helpers.chromium import ARTIFACTS, CHROMIUM
from tests.helpers.homes import free_port, own_migrated_home
from tests.helpers.scored_world import HOSTILE_MERCHANT, build_world

DOCS = REPO_ROOT / "docs"
PASSWORD = secrets.token_urlsafe(16)  # made per run: no password-looking literal in the repository
VIEWPORT = {"width": 1440, "height": 1000}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"),
]


def _features(amount: float, hour: int, category: str) -> list[float]:
    """A plausible feature vector for a flagged payment (the world's own vectors are zeros)."""
    values = dict.fromkeys(FEATURE_NAMES, 0.0) | {
        "amt_log": math.log1p(amount),
        "hour": float(hour),
        "is_night": float(hour >= 22 or hour < 6),
        "age_years": 46.0,
        "age_known": 1.0,
        "city_pop_log": math.log1p(5000),
        "city_pop_known": 1.0,
        "distance_km": 412.0,
        "distance_known": 1.0,
        "card_count_1d": 3.0,
        "card_count_7d": 11.0,
        "card_count_30d": 38.0,
        "card_mean_amt_30d": amount / 4.6,
        "amt_over_card_mean_30d": 4.6,
        "amt_z_card_30d": 3.4,
        "secs_since_prev_log": math.log1p(540),
        "card_new_merchant_30d": 1.0,
        "merchant_count_30d": 214.0,
        "merchant_labels_30d": 60.0,
        "merchant_fraud_rate_30d": 0.05,
    }
    if f"cat_{category}" in values:
        values[f"cat_{category}"] = 1.0
    return [values[name] for name in FEATURE_NAMES]


REASONS = (
    '[{"feature": "amt_over_card_mean_30d", "contribution": 0.412}, '
    '{"feature": "card_new_merchant_30d", "contribution": 0.163}, '
    '{"feature": "distance_km", "contribution": 0.071}]'
)


@pytest.fixture(scope="module")
def world():
    """Its own home (the queue depends on the platform's clock: its newest transaction), a scored world with
    readable reasons, three users and the alerts' queue."""
    with own_migrated_home("fraud-review-e2e-") as (settings, engine):
        built = build_world(engine, settings, "rev", cards=12, days=4, seed=8)
        flagged = built.transactions[built.transactions["score"] >= 0.8]
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE fraud_score SET top_reasons = CAST(:r AS jsonb), outcome = :o WHERE trans_num = :t"),
                [
                    {"t": t, "r": REASONS, "o": "block" if score > 0.95 else "review"}
                    for t, score in zip(flagged["trans_num"], flagged["score"], strict=True)
                ],
            )
            connection.execute(
                text('UPDATE transaction_features SET "values" = :v WHERE trans_num = :t'),
                [
                    {"t": row.trans_num, "v": _features(row.amt, row.event_time.hour, row.category)}
                    for row in flagged.itertuples()
                ],
            )
        # the top case gets the rest of its card-day too, sent to review by a rule: a case of several payments
        top = cases(engine, built.model_version)[0]
        frame = built.transactions
        rest = frame[(frame["card_token"] == top.card_token) & (frame["day"] == top.day) & (frame["score"] < 0.8)]
        with engine.begin() as connection:
            connection.execute(
                text("""UPDATE fraud_score SET outcome = 'review', decided_by = 'velocity-1d',
                        rules_fired = ARRAY['velocity-1d'], top_reasons = CAST(:r AS jsonb) WHERE trans_num = :t"""),
                [{"t": t, "r": REASONS} for t in rest["trans_num"]],
            )
            connection.execute(
                text('UPDATE transaction_features SET "values" = :v WHERE trans_num = :t'),
                [
                    {"t": row.trans_num, "v": _features(row.amt, row.event_time.hour, row.category)}
                    for row in rest.itertuples()
                ],
            )
        for name, role in (("ana", Role.ANALYST), ("bob", Role.ANALYST), ("root", Role.ADMIN)):
            add_user(engine, name, PASSWORD, role)
        queue_alerts(engine, built.model_version, AlertPolicy(sender="alerts@example.com"))
        yield settings, engine, built


@pytest.fixture(scope="module")
def server(world):
    settings, _, _ = world
    port = free_port()
    log = open(settings.home / "review.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud.app.cli", "review", "--port", str(port)],
        env=dict(os.environ),  # FRAUD_HOME: the world's home
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout=60, log=settings.home / "review.log")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


class Watched:
    """A browser context whose requests, console errors and dialogs are recorded."""

    def __init__(self, browser, url: str):
        self.url = url
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.requests, self.errors = [], []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.context.on("weberror", lambda error: self.errors.append(str(error.error)))
        self.page.on("dialog", lambda dialog: self.errors.append(f"dialog: {dialog.message}"))

    def sign_in(self, username: str) -> None:
        self.page.goto(f"{self.url}/queue")
        assert self.page.url.startswith(f"{self.url}/login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.url}/queue")

    def check_clean(self) -> None:
        strangers = [u for u in self.requests if not u.startswith(self.url)]
        assert not strangers and not self.errors, (strangers, self.errors)

    def close(self) -> None:
        self.context.close()


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("FRAUD_SCREENSHOTS") == "1":  # the README's pictures: only when asked
        page.screenshot(path=str(DOCS / name), full_page=True)


def labels(engine, trans_nums) -> dict[str, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT trans_num, is_fraud, source, actor FROM transaction_label WHERE trans_num = ANY(:t)"),
            {"t": list(trans_nums)},
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def event_count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM label_event")).scalar_one()


@pytest.mark.timeout(120)
def test_hostile_names_show_as_text_and_a_verdict_without_its_csrf_token_is_refused(browser, server, world):
    _, engine, built = world
    hostile = next(c for c in cases(engine, built.model_version, limit=None) if c.card_token.startswith("rev-card-00"))
    trans_nums = case_transactions(engine, built.model_version, hostile.case_id)
    bob = Watched(browser, server)
    bob.sign_in("bob")
    bob.page.goto(f"{server}/cases/{hostile.case_id}")
    merchants = bob.page.locator("article.txn .merchant").all_inner_texts()
    assert HOSTILE_MERCHANT in merchants  # text on the page, not markup that ran
    assert '<img src=x onerror=alert(1)> O\'Brien "Bobby"' in bob.page.inner_text("#holder")
    assert bob.page.locator("script").count() == 0 and bob.page.locator("article.txn img").count() == 0

    before_labels, before_events = labels(engine, trans_nums), event_count(engine)
    bob.page.evaluate("document.querySelector('#verdict-form input[name=csrftoken]').remove()")
    bob.page.click("#verdict-form button.fraud")
    bob.page.wait_for_load_state()
    assert bob.page.inner_text("h1") == "Form refused" and "Nothing was changed" in bob.page.inner_text("main")
    refused = [e for e in bob.errors if "status of 403" in e]
    assert len(refused) == 1 and bob.errors.remove(refused[0]) is None  # the refusal itself, the one error expected
    assert labels(engine, trans_nums) == before_labels and event_count(engine) == before_events
    bob.check_clean()
    bob.close()


@pytest.mark.timeout(180)
def test_an_analyst_marks_the_top_case_fraud_and_a_second_analyst_sees_it_closed(browser, server, world):
    _, engine, built = world
    top = cases(engine, built.model_version)[0]
    trans_nums = case_transactions(engine, built.model_version, top.case_id)

    ana = Watched(browser, server)
    ana.sign_in("ana")
    rows = ana.page.locator("#queue tbody tr")
    assert rows.count() == len(cases(engine, built.model_version, limit=None)) > 1
    assert ana.page.inner_text("#queue tbody tr:first-child span.score") == f"{top.risk:.3f}"
    screenshot(ana.page, "review-queue.png")

    ana.page.click("#queue tbody tr:first-child a.button")
    ana.page.wait_for_url(re.compile(r".*/cases/.*"))
    case_url = ana.page.url
    assert ana.page.inner_text("#case-status") == "open"
    assert ana.page.locator("article.txn").count() == len(trans_nums)
    assert ana.page.locator("article.txn .reasons li").count() >= len(trans_nums)
    ana.page.fill("textarea[name=note]", "Holder called: card not in their hands since Monday.")
    screenshot(ana.page, "review-case.png")
    ana.page.click("#verdict-form button.fraud")
    ana.page.wait_for_load_state()
    assert "Recorded “fraud” on" in ana.page.inner_text(".flash") and ana.page.url != case_url
    assert labels(engine, trans_nums) == {t: (True, "analyst", "ana") for t in trans_nums}
    ana.check_clean()
    ana.close()

    bob = Watched(browser, server)
    bob.sign_in("bob")
    assert quote(top.case_id) not in bob.page.content()  # off the queue
    bob.page.goto(case_url)
    assert bob.page.inner_text("#case-status") == "closed"
    assert "ana" in bob.page.inner_text("#closed-by") and bob.page.locator("#verdict-form").count() == 0
    assert "Holder called" in bob.page.inner_text("#verdicts")
    bob.check_clean()
    bob.close()


@pytest.mark.timeout(120)
def test_a_customers_no_labels_the_alert_and_a_second_click_changes_nothing(browser, server, world):
    settings, engine, _ = world
    with engine.connect() as connection:
        alert_id = connection.execute(text("SELECT min(id) FROM customer_alert")).scalar_one()
        trans_nums = list(
            connection.execute(
                text("SELECT trans_num FROM customer_alert_transaction WHERE alert_id = :a"), {"a": alert_id}
            ).scalars()
        )
    key = settings.review_signing_key("answer-link")
    link = answer_link(server, key, alert_id, Answer.NOT_ME, datetime.now(UTC) + timedelta(days=14))
    customer = Watched(browser, server)
    first_tab, second_tab = customer.page, customer.context.new_page()
    for tab in (first_tab, second_tab):  # opened twice (and GET twice): nothing recorded yet
        tab.goto(link)
        assert tab.inner_text("h1") == "You said it was not you"
    before, unchanged = event_count(engine), labels(engine, trans_nums)
    assert all(source == "file" for _, source, _ in unchanged.values())  # only label files' (not known yet)

    first_tab.click("button[type=submit]")
    first_tab.wait_for_load_state()
    assert first_tab.inner_text("h1") == "Thank you"
    assert labels(engine, trans_nums) == {t: (True, "customer", f"alert#{alert_id}") for t in trans_nums}
    after = event_count(engine)
    assert after == before + len(trans_nums)

    second_tab.click("button[type=submit]")  # the second click
    second_tab.wait_for_load_state()
    assert second_tab.inner_text("h1") == "Already answered"
    assert event_count(engine) == after
    customer.check_clean()
    customer.close()
