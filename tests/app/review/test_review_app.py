"""The analyst review app (fraud/app/review/) through FastAPI's TestClient on a small scored world: sign-in and its
rate limit, CSRF refusals that change nothing, a verdict recorded for every transaction of a case with source
`analyst` and the analyst as actor, a closed case refused to a second analyst, customers' answer links (once,
tampered, expired, GET changes nothing), escaping, security headers, roles, the proxy-header switch, `fraud users`."""

from __future__ import annotations

import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from fraud.app.cli import app as cli
from fraud.app.review.actions import CaseClosed, record_case_verdict
from fraud.app.review.app import create_app
from fraud.app.review.auth import CSRF_COOKIE, SESSION_COOKIE
from fraud.db.cases import case_transactions, cases
from fraud.db.labels import Verdict
from fraud.db.users import Role, add_user, authenticate, disable_user
from fraud.outreach.alerts import AlertPolicy, queue_alerts
from fraud.outreach.answers import Answer, answer_link
from tests.helpers.homes import own_migrated_home
from tests.helpers.scored_world import build_world

PASSWORD = secrets.token_urlsafe(16)  # made per run: no password-looking literal in the repository
TOKEN = re.compile(r'name="csrftoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def home():
    """Its own database: the case queue depends on the platform's clock (the newest transaction), which another
    module's world in the session's database would move."""
    with own_migrated_home("fraud-review-") as (settings, engine):
        world = build_world(engine, settings, "review", cards=6, days=3, seed=3)
        for name, role in (("ana", Role.ANALYST), ("bob", Role.ANALYST), ("root", Role.ADMIN), ("gone", "analyst")):
            add_user(engine, name, PASSWORD, role)
        disable_user(engine, "gone")
        queue_alerts(engine, world.model_version, AlertPolicy(sender="alerts@example.com"))
        yield settings, engine, world


@pytest.fixture(scope="module")
def app(home):
    settings, engine, _ = home
    return create_app(settings, engine, login_limit="1000/minute")


def client(app, user: str | None = None, address: str = "testclient") -> TestClient:
    browser = TestClient(app, follow_redirects=False, client=(address, 50000))
    if user is not None:
        response = sign_in(browser, user, PASSWORD)
        assert response.status_code == 303, response.text
    return browser


def token(browser: TestClient, path: str = "/login") -> str:
    found = TOKEN.search(browser.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found[1]


def sign_in(browser: TestClient, user: str, password: str, next_: str = "/queue"):
    form = {"csrftoken": token(browser), "username": user, "password": password, "next": next_}
    return browser.post("/login", data=form)


def rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(sql), params)]


def labels_of(engine, trans_nums) -> dict[str, tuple]:
    found = rows(
        engine,
        "SELECT trans_num, is_fraud, source, actor FROM transaction_label WHERE trans_num = ANY(:t)",
        t=list(trans_nums),
    )
    return {r[0]: r[1:] for r in found}


def events(engine) -> int:
    return rows(engine, "SELECT count(*) FROM label_event")[0][0]


def case_path(case_id: str) -> str:
    return f"/cases/{case_id}"


# --- sign in --------------------------------------------------------------------------------------------------


def test_sign_in_success_failure_and_session_cookie(app, home):
    _, engine, _ = home
    browser = client(app)
    redirect = browser.get("/queue")
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=%2Fqueue"

    wrong = sign_in(browser, "ana", "not the password")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert sign_in(browser, "nobody", PASSWORD).status_code == 401
    assert sign_in(browser, "gone", PASSWORD).status_code == 401  # disabled: the same answer

    right = sign_in(browser, "ana", PASSWORD, next_="//evil.example/x")
    assert right.status_code == 303 and right.headers["location"] == "/queue"  # never another site
    cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    queue = browser.get("/queue")
    assert queue.status_code == 200 and 'id="queue"' in queue.text and "ana" in queue.text

    out = browser.post("/logout", data={"csrftoken": token(browser, "/queue")})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert browser.get("/queue").status_code == 303


def test_a_disabled_user_loses_the_session_at_once(app, home):
    _, engine, _ = home
    add_user(engine, "carol", PASSWORD, Role.ANALYST)
    browser = client(app, "carol")
    assert browser.get("/queue").status_code == 200
    disable_user(engine, "carol")
    assert browser.get("/queue").status_code == 303


def test_sign_in_is_rate_limited_per_username_and_per_address(home):
    settings, engine, _ = home
    limited = create_app(settings, engine, login_limit="5/minute")
    first = client(limited, address="10.0.0.1")
    for _ in range(5):
        assert sign_in(first, "ana", "wrong password!").status_code == 401
    # the username is used up, from any address, even with the right password
    other = client(limited, address="10.0.0.2")
    refused = sign_in(other, "ana", PASSWORD)
    assert refused.status_code == 429 and "Too many sign-in attempts" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # the address is used up, for any username
    assert sign_in(first, "bob", PASSWORD).status_code == 429
    # another user from another address is not affected
    assert sign_in(client(limited, address="10.0.0.3"), "bob", PASSWORD).status_code == 303


def test_a_spoofed_forwarded_for_does_not_change_the_sign_in_address(home):
    settings, engine, _ = home
    limited = create_app(settings, engine, login_limit="3/minute")
    caller = client(limited, address="198.51.100.4")
    for i in range(3):  # three usernames, three addresses claimed: one caller
        caller.headers["X-Forwarded-For"] = f"203.0.113.{i}"
        assert sign_in(caller, f"nobody-{i}", "wrong password!").status_code == 401
    caller.headers["X-Forwarded-For"] = "203.0.113.99"
    assert sign_in(caller, "bob", PASSWORD).status_code == 429
    # behind a proxy FRAUD_TRUSTED_PROXIES names, the header names the client: another client is not affected
    behind = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    proxied_app = create_app(behind, engine, login_limit="3/minute")
    proxied = client(proxied_app, address="10.0.0.7")
    for i in range(3):
        proxied.headers["X-Forwarded-For"] = f"6.6.6.{i}, 203.0.113.1"  # the caller's own hops do not count
        assert sign_in(proxied, f"nobody-{i}", "wrong password!").status_code == 401
    assert sign_in(proxied, "bob", PASSWORD).status_code == 429
    proxied.headers["X-Forwarded-For"] = "203.0.113.2"
    assert sign_in(proxied, "bob", PASSWORD).status_code == 303


# --- CSRF -----------------------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, home):
    _, engine, world = home
    top = cases(engine, world.model_version)[0]
    trans_nums = case_transactions(engine, world.model_version, top.case_id)
    browser = client(app, "ana")
    before_labels, before_events = labels_of(engine, trans_nums), events(engine)

    missing = browser.post(f"/cases/{top.case_id}/verdict", data={"verdict": "fraud"})
    forged = browser.post(f"/cases/{top.case_id}/verdict", data={"verdict": "fraud", "csrftoken": "forged"})
    browser.cookies.delete(CSRF_COOKIE)  # a cross-site form: the session rides along, no token cookie
    cross_site = browser.post(f"/cases/{top.case_id}/verdict", data={"verdict": "genuine"})
    for refused in (missing, forged, cross_site):
        assert refused.status_code == 403 and "Nothing was changed" in refused.text
    assert labels_of(engine, trans_nums) == before_labels and events(engine) == before_events
    # sign-in is protected too, with no cookie at all
    fresh = client(app)
    assert fresh.post("/login", data={"username": "ana", "password": PASSWORD}).status_code == 403


# --- the queue and a case -------------------------------------------------------------------------------------


def test_queue_in_risk_then_age_order_with_masked_cards_and_paging(app, home):
    _, engine, world = home
    browser = client(app, "ana")
    page = browser.get("/queue").text
    open_cases = cases(engine, world.model_version, limit=None)
    ids = re.findall(r'href="/cases/([^"]+)"', page)
    assert [i.replace("%3A", ":") for i in ids] == [c.case_id for c in open_cases]
    shown = re.sub(r'href="[^"]*"', "", page)  # a case's id (its card token) is in its link, not on the screen
    assert "•••• " in shown and not any(c.card_token in shown for c in open_cases)
    assert "blocked" in page or "review" in page
    empty = browser.get("/queue?page=99")
    assert empty.status_code == 200 and "Nothing to review" in empty.text
    assert browser.get("/queue?page=abc").status_code == 200


def test_the_hostile_merchant_is_text_on_the_case_page(app, home):
    _, engine, world = home
    open_cases = cases(engine, world.model_version, limit=None)
    hostile = next(c for c in open_cases if c.card_token.startswith("review-card-00"))
    reasons = (
        '[{"feature": "card_new_merchant_30d", "contribution": 0.2}, {"feature": "is_night", "contribution": 0.1}]'
    )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE fraud_score SET top_reasons = CAST(:r AS jsonb) WHERE trans_num = ANY(:t)"),
            {"r": reasons, "t": case_transactions(engine, world.model_version, hostile.case_id)},
        )
    page = client(app, "ana").get(case_path(hostile.case_id))
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text  # the holder's name
    # the reasons in words (fraud/features/phrases.py), from the stored vector
    assert 'class="reasons words"' in page.text and "card_new_merchant_30d +0.200" not in page.text
    for section in ('id="history"', 'id="merchants"', 'id="verdict-form"', "Why it was flagged"):
        assert section in page.text


def test_pages_carry_the_security_headers(app):
    assert TestClient(app).get("/health").json() == {"status": "ok"}
    browser = client(app, "ana")
    page = browser.get("/queue")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-content-type-options"] == "nosniff"
    css = browser.get("/static/review.css")
    assert css.status_code == 200 and css.headers.get("cache-control") != "no-store"
    assert "<script" not in page.text and " style=" not in page.text  # nothing the CSP would have to allow


def test_the_admin_page_is_for_admins(app, home):
    assert client(app, "ana").get("/admin").status_code == 403
    page = client(app, "root").get("/admin")
    assert page.status_code == 200 and 'id="users"' in page.text and "gone" in page.text and "disabled" in page.text


# --- verdicts -------------------------------------------------------------------------------------------------


def test_a_verdict_labels_every_transaction_of_the_case_then_the_next_case_opens(app, home):
    _, engine, world = home
    top, following = cases(engine, world.model_version)[:2]
    trans_nums = case_transactions(engine, world.model_version, top.case_id)
    browser = client(app, "ana")
    form = {"csrftoken": token(browser, case_path(top.case_id)), "verdict": "fraud", "note": "called the holder"}
    done = browser.post(f"/cases/{top.case_id}/verdict", data=form)
    assert done.status_code == 303 and done.headers["location"] == case_path(following.case_id).replace(":", "%3A")
    assert labels_of(engine, trans_nums) == {t: (True, "analyst", "ana") for t in trans_nums}
    assert rows(
        engine,
        "SELECT verdict, source, actor, note FROM label_event WHERE trans_num = ANY(:t)",
        t=trans_nums,
    ) == [("fraud", "analyst", "ana", "called the holder")] * len(trans_nums)
    assert "Recorded “fraud” on" in browser.get(done.headers["location"]).text  # the flash, once

    # a second analyst sees it closed, by whom, and a verdict is refused with nothing recorded
    bob = client(app, "bob")
    page = bob.get(case_path(top.case_id)).text
    assert 'id="case-status">closed' in page and "ana" in page and 'id="verdict-form"' not in page
    before = events(engine)
    form = {"csrftoken": token(bob, case_path(top.case_id)), "verdict": "genuine"}
    refused = bob.post(f"/cases/{top.case_id}/verdict", data=form)
    assert refused.status_code == 409 and "closed before your verdict" in refused.text
    assert events(engine) == before
    assert labels_of(engine, trans_nums) == {t: (True, "analyst", "ana") for t in trans_nums}


def test_unsure_keeps_the_case_open_and_a_bad_verdict_is_refused(app, home):
    _, engine, world = home
    top = cases(engine, world.model_version)[0]
    trans_nums = case_transactions(engine, world.model_version, top.case_id)
    before = labels_of(engine, trans_nums)  # file labels loaded ahead of their time, not known yet
    browser = client(app, "bob")
    form = {"csrftoken": token(browser, case_path(top.case_id)), "verdict": "unsure", "note": "<b>not sure</b>"}
    assert browser.post(f"/cases/{top.case_id}/verdict", data=form).status_code == 303
    assert top.case_id in {c.case_id for c in cases(engine, world.model_version, limit=None)}
    page = browser.get(case_path(top.case_id)).text
    assert "&lt;b&gt;not sure&lt;/b&gt;" in page and 'id="verdicts"' in page
    assert browser.post(f"/cases/{top.case_id}/verdict", data={**form, "verdict": "maybe"}).status_code == 422
    assert labels_of(engine, trans_nums) == before  # neither became a label
    assert client(app, "bob").get("/cases/nope:2026-01-01").status_code == 404


def test_of_two_verdicts_at_once_on_a_case_one_is_recorded_the_other_refused(home):
    _, engine, world = home
    top = cases(engine, world.model_version)[0]
    start = threading.Barrier(2)

    def give(analyst: str):
        start.wait()
        try:
            return record_case_verdict(engine, world.model_version, top.case_id, Verdict.GENUINE, analyst, None)
        except CaseClosed as closed:
            return closed

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(give, ["ana", "bob"]))
    assert sorted(type(o).__name__ for o in outcomes) == ["CaseClosed", "VerdictRecorded"]
    winner = next(o for o in outcomes if not isinstance(o, CaseClosed))
    trans_nums = case_transactions(engine, world.model_version, top.case_id)
    given = rows(
        engine, "SELECT actor FROM label_event WHERE trans_num = ANY(:t) AND verdict = 'genuine'", t=trans_nums
    )
    assert winner.transactions == len(trans_nums) and len(given) == len(trans_nums) and len(set(given)) == 1


# --- customers' answers ---------------------------------------------------------------------------------------


def alert_ids(engine) -> list[int]:
    return [r[0] for r in rows(engine, "SELECT id FROM customer_alert ORDER BY id")]


def alert_transactions(engine, alert_id: int) -> list[str]:
    found = rows(engine, "SELECT trans_num FROM customer_alert_transaction WHERE alert_id = :a", a=alert_id)
    return [r[0] for r in found]


def link(settings, alert_id: int, answer: Answer, expires: datetime | None = None) -> str:
    key = settings.review_signing_key("answer-link")
    expires = expires or datetime.now(UTC) + timedelta(days=14)
    url = answer_link(settings.review_base_url, key, alert_id, answer, expires)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def answer_form(page: str, browser: TestClient) -> dict:
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    assert {"alert", "answer", "expires", "sig", "csrftoken"} <= set(fields)
    return fields


def test_a_customers_no_labels_the_alert_fraud_once_and_get_changes_nothing(app, home):
    settings, engine, _ = home
    alert_id = alert_ids(engine)[0]
    trans_nums = alert_transactions(engine, alert_id)
    before_labels, before_events = labels_of(engine, trans_nums), events(engine)
    customer = client(app)
    shown = customer.get(link(settings, alert_id, Answer.NOT_ME))
    again = customer.get(link(settings, alert_id, Answer.NOT_ME))  # a mail scanner's prefetch: nothing happens
    assert shown.status_code == again.status_code == 200 and "You said it was not you" in shown.text
    assert rows(engine, "SELECT count(*) FROM customer_answer")[0][0] == 0
    assert labels_of(engine, trans_nums) == before_labels and events(engine) == before_events

    confirmed = customer.post("/answer", data=answer_form(shown.text, customer))
    assert confirmed.status_code == 200 and "Thank you" in confirmed.text
    assert labels_of(engine, trans_nums) == {t: (True, "customer", f"alert#{alert_id}") for t in trans_nums}
    after = events(engine)
    assert after == before_events + len(trans_nums)

    replay = customer.post("/answer", data=answer_form(shown.text, customer))
    assert replay.status_code == 200 and "Already answered" in replay.text
    other_answer = client(app).get(link(settings, alert_id, Answer.ME))
    assert "Already answered" in other_answer.text and "form" not in other_answer.text.split("</table>")[1]
    assert events(engine) == after and rows(engine, "SELECT answer FROM customer_answer") == [("not_me",)]


def test_a_customers_yes_labels_the_alert_genuine(app, home):
    settings, engine, _ = home
    alert_id = alert_ids(engine)[1]
    trans_nums = alert_transactions(engine, alert_id)
    customer = client(app)
    shown = customer.get(link(settings, alert_id, Answer.ME))
    assert "You said it was you" in shown.text
    assert customer.post("/answer", data=answer_form(shown.text, customer)).status_code == 200
    assert labels_of(engine, trans_nums) == {t: (False, "customer", f"alert#{alert_id}") for t in trans_nums}


def test_tampered_and_expired_links_are_refused_and_change_nothing(app, home):
    settings, engine, _ = home
    alert_id = alert_ids(engine)[2]
    before_events, before_answers = events(engine), rows(engine, "SELECT * FROM customer_answer")
    customer = client(app)
    good = link(settings, alert_id, Answer.NOT_ME)
    query = parse_qs(urlsplit(good).query)
    tampered = [
        good.replace("answer=not_me", "answer=me"),  # the other answer with this answer's signature
        good.replace(f"alert={alert_id}", f"alert={alert_id + 1}"),
        good[:-4],  # a truncated signature
        "/answer",
    ]
    for path in tampered:
        page = customer.get(path)
        assert page.status_code == 400 and "This link does not work" in page.text, path
    expired = customer.get(link(settings, alert_id, Answer.NOT_ME, datetime.now(UTC) - timedelta(seconds=1)))
    assert expired.status_code == 410 and "This link has expired" in expired.text
    # a POST of a tampered link, with a valid CSRF token, is refused the same way
    form = {name: values[0] for name, values in query.items()} | {"answer": "me", "csrftoken": token(customer, good)}
    assert customer.post("/answer", data=form).status_code == 400
    assert events(engine) == before_events and rows(engine, "SELECT * FROM customer_answer") == before_answers


# --- identity from a proxy ----------------------------------------------------------------------------------------


def test_the_proxy_header_switch_is_off_by_default_and_trusts_only_known_active_users(app, home):
    settings, engine, _ = home
    assert client(app).get("/queue", headers={"x-auth-user": "ana"}).status_code == 303  # off: ignored
    behind_proxy = TestClient(create_app(settings, engine, trusted_header="X-Auth-User"), follow_redirects=False)
    assert behind_proxy.get("/queue", headers={"x-auth-user": "ana"}).status_code == 200
    assert behind_proxy.get("/admin", headers={"x-auth-user": "ana"}).status_code == 403
    for who in ({}, {"x-auth-user": "stranger"}, {"x-auth-user": "gone"}):
        assert behind_proxy.get("/queue", headers=who).status_code == 401
    assert behind_proxy.get("/login").status_code == 303  # no password sign-in


# --- users ----------------------------------------------------------------------------------------------------


def test_fraud_users_add_list_disable(home):
    _, engine, _ = home
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "dave", "--role", "admin"], input=PASSWORD + "\n")
    assert added.exit_code == 0 and "added dave (admin)" in added.output
    assert runner.invoke(cli, ["users", "add", "dave", "--role", "admin"], input=PASSWORD + "\n").exit_code == 1
    short = runner.invoke(cli, ["users", "add", "eve", "--role", "analyst"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert runner.invoke(cli, ["users", "add", "x y", "--role", "analyst"], input=PASSWORD + "\n").exit_code == 1
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0 and "dave" in listed.output and PASSWORD not in listed.output
    assert runner.invoke(cli, ["users", "disable", "dave"]).exit_code == 0
    assert authenticate(engine, "dave", PASSWORD) is None
    assert runner.invoke(cli, ["users", "disable", "nobody"]).exit_code == 1
    stored = rows(engine, "SELECT password_hash FROM app_user WHERE username = 'dave'")[0][0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_weaker_hash_is_replaced_at_sign_in(home):
    _, engine, _ = home
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    add_user(engine, "frank", PASSWORD, Role.ANALYST)
    with engine.begin() as connection:
        connection.execute(text("UPDATE app_user SET password_hash = :h WHERE username = 'frank'"), {"h": weak})
    assert authenticate(engine, "frank", PASSWORD) is not None
    assert rows(engine, "SELECT password_hash FROM app_user WHERE username = 'frank'")[0][0] != weak
    assert authenticate(engine, "frank", PASSWORD) is not None
