"""Customer alerts: one email per flagged card-day, exactly once, through a real SMTP server (aiosmtpd), the
outbox folder and SES (moto server); retries, caps, opt-outs and escaping."""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from dagster import materialize
from sqlalchemy import text

from assets.reporting import customer_alerts
from assets.resources import FraudPlatform
from fraud.core.settings import Settings
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.outreach.alerts import AlertPolicy, AnswerLinkSigner, plan_alerts, send_alerts
from fraud.outreach.answers import Answer, LinkRefused, verify
from fraud.outreach.mailers import OutboxMailer
from tests.helpers.homes import free_port
from tests.helpers.scored_world import HOSTILE_FIRST, HOSTILE_MERCHANT, build_world

SENDER = "alerts@fraud-platform.example"


class Collector:
    """aiosmtpd handler: keeps every message; answers `replies` (e.g. 451) to the first DATA commands."""

    def __init__(self, replies: list[str] | None = None, refuse: str | None = None):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies = list(replies or [])
        self.refuse = refuse  # a recipient answered with a permanent 554

    async def handle_DATA(self, server, session, envelope):
        if self.refuse and self.refuse in envelope.rcpt_tos:
            return "554 5.7.1 recipient rejected"
        if self.replies:
            return self.replies.pop(0)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture(autouse=True)
def no_pending_alerts_from_other_tests(engine):
    """Every run delivers all pending alerts of the channel; a test starts without another test's leftovers."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM customer_alert WHERE status = 'pending'"))


@pytest.fixture()
def smtp_port():
    return free_port()


def _start(handler, port) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture()
def smtp_env(monkeypatch, fraud_env, smtp_port):
    monkeypatch.setenv("FRAUD_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FRAUD_SMTP_PORT", str(smtp_port))
    monkeypatch.setenv("FRAUD_SMTP_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("FRAUD_SMTP_RETRY_BACKOFF_SECONDS", "0.01")
    return smtp_port


def _run_asset():
    result = materialize([customer_alerts], resources={"fraud": FraudPlatform()})
    assert result.success
    return result.asset_materializations_for_node("customer_alerts")[0].metadata


def _alert_rows(engine, world) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT a.id, a.group_key, a.status, a.attempts, a.last_error, a.message_id,
                   count(l.trans_num) AS transactions
            FROM customer_alert a JOIN customer_alert_transaction l ON l.alert_id = a.id
            WHERE a.group_key LIKE :prefix GROUP BY a.id ORDER BY a.id"""),
            connection,
            params={"prefix": f"{world.tag}-card-%"},
        )


def _text_parts(message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
    }


def _links(message) -> dict[str, dict[str, dict[str, str]]]:
    """The answer links of both parts: {part: {answer: query parameters}} (the HTML's hrefs unescaped)."""
    parts = _text_parts(message)
    found = {
        "text/plain": re.findall(r"(https?://\S+/answer\?\S+)", parts["text/plain"]),
        "text/html": [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+/answer\?[^"]+)"', parts["text/html"])],
    }
    links = {}
    for part, urls in found.items():
        queries = [{k: v[0] for k, v in parse_qs(urlsplit(url).query).items()} for url in urls]
        links[part] = {q["answer"]: q for q in queries}
        assert len(urls) == 2 == len(links[part]), (part, urls)  # one link per answer
    return links


def _verifies(key: bytes, link: dict[str, str], now: datetime | None = None) -> bool:
    try:
        verify(key, link["alert"], link["answer"], link["expires"], link["sig"], now or datetime.now(UTC))
    except LinkRefused:
        return False
    return True


def _check_message(message, world, cards: dict[str, tuple[str, str]]) -> tuple[str, object]:
    """Headers and both parts of one alert, its answer links signed with the settings' key; returns its (card
    token, day)."""
    assert message["From"] == SENDER
    assert message["Message-ID"].startswith("<alert-") and message["Message-ID"].endswith("@fraud-platform.example>")
    to = message["To"].addresses[0].addr_spec
    token = next(t for t, (mail, _) in cards.items() if mail == to)
    last4 = cards[token][1]
    assert f"•••• {last4}" in message["Subject"]
    parts = _text_parts(message)
    assert set(parts) == {"text/plain", "text/html"}
    rows = world.transactions[(world.transactions["card_token"] == token) & world.transactions["flagged"]]
    days = set(rows["day"])
    day = next(d for d in days if f"{d:%d %B %Y}" in parts["text/plain"])
    for row in rows[rows["day"] == day].itertuples():  # every flagged payment of the day, in both parts
        assert f"${row.amt:,.2f}" in parts["text/plain"] and f"${row.amt:,.2f}" in parts["text/html"]
        assert row.event_time.strftime("%Y-%m-%d %H:%M UTC") in parts["text/plain"]
    assert "call the number on the back of your card" in parts["text/plain"]
    assert last4 in parts["text/html"] and "What to do" in parts["text/html"]
    assert parts["text/plain"].count("Why we are asking: ") == len(rows[rows["day"] == day])
    links = _links(message)
    assert links["text/plain"] == links["text/html"]
    key = Settings().review_signing_key("answer-link")
    assert all(_verifies(key, link) for link in links["text/plain"].values())
    assert "Yes, it was me" in parts["text/html"] and "No, it wasn&#39;t" in parts["text/html"]
    return token, day


def _cards(engine, world) -> dict[str, tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT card_token, email, last4 FROM dim_card WHERE card_token LIKE :p"), {"p": f"{world.tag}-card-%"}
        ).all()
    return {token: (mail, last4) for token, mail, last4 in rows}


def test_asset_twice_sends_one_email_per_flagged_card_day(engine, settings, smtp_env):
    world = build_world(engine, settings, "smtp1")
    handler = Collector()
    controller = _start(handler, smtp_env)
    try:
        first = _run_asset()
        second = _run_asset()
    finally:
        controller.stop()
    expected = world.flagged_card_days()
    assert len(expected) >= 6 and len(world.transactions[world.transactions["flagged"]]) > len(expected) // 2
    assert first["transport"].value == "smtp" and first["sent"].value == len(expected) == len(handler.messages)
    assert second["sent"].value == 0 and second["queued"].value == 0
    cards = _cards(engine, world)
    seen = [_check_message(message, world, cards) for message in handler.messages]
    assert sorted(seen) == sorted(expected)  # exactly one per card-day
    assert len({m["Message-ID"] for m in handler.messages}) == len(handler.messages)
    assert all(rcpt == [cards[token][0]] for (_, rcpt), (token, _) in zip(handler.envelopes, seen, strict=False))
    alerts = _alert_rows(engine, world)
    assert set(alerts["status"]) == {"sent"} and alerts["attempts"].eq(1).all()
    assert alerts["transactions"].sum() == world.transactions["flagged"].sum()


def test_server_down_then_up_delivers_every_alert_once(engine, settings, smtp_env):
    world = build_world(engine, settings, "smtp2", seed=1)
    down = _run_asset()  # nothing listens on the port: connection refused
    assert down["sent"].value == 0 and down["failed"].value == 3  # three alerts tried, then the rest deferred
    assert down["deferred"].value == len(world.flagged_card_days()) - 3
    alerts = _alert_rows(engine, world)
    assert set(alerts["status"]) == {"pending"}
    tried = alerts[alerts["attempts"] > 0]
    assert len(tried) == 3 and tried["attempts"].eq(3).all()  # retried with backoff (FRAUD_SMTP_RETRY_ATTEMPTS)
    assert tried["last_error"].str.contains("smtp: ConnectionRefusedError").all()

    handler = Collector()
    controller = _start(handler, smtp_env)
    try:
        up = _run_asset()
        again = _run_asset()
    finally:
        controller.stop()
    assert up["sent"].value == len(world.flagged_card_days()) == len(handler.messages)
    assert again["sent"].value == 0
    cards = _cards(engine, world)
    assert sorted(_check_message(m, world, cards) for m in handler.messages) == sorted(world.flagged_card_days())
    alerts = _alert_rows(engine, world)
    assert set(alerts["status"]) == {"sent"}
    assert alerts.loc[alerts["attempts"] > 1, "last_error"].notna().all()  # the earlier failure stays on record


def test_transient_reply_is_retried_and_permanent_one_left_pending(engine, settings, smtp_env):
    world = build_world(engine, settings, "smtp3", cards=2, days=2, seed=2)
    cards = _cards(engine, world)
    refused = cards[f"{world.tag}-card-00".ljust(64, "0")][0]
    handler = Collector(replies=["451 4.3.0 try again later"], refuse=refused)
    controller = _start(handler, smtp_env)
    try:
        result = _run_asset()
    finally:
        controller.stop()
    assert result["sent"].value == 1 and result["failed"].value == 1, str({k: v.value for k, v in result.items()})
    alerts = _alert_rows(engine, world).set_index("status")
    assert alerts.loc["pending", "attempts"] == 1 and "554" in alerts.loc["pending", "last_error"]  # not retried
    assert alerts.loc["sent", "attempts"] == 2 and "451" in alerts.loc["sent", "last_error"]
    assert len(handler.messages) == 1


def test_opted_out_customers_are_skipped_and_daily_cap_holds(engine, settings, tmp_path):
    world = build_world(engine, settings, "cap", cards=4, days=2, seed=3)
    tokens = sorted(world.transactions["card_token"].unique())
    with engine.begin() as connection:
        connection.execute(text("UPDATE dim_card SET alerts_opt_out = true WHERE card_token = :t"), {"t": tokens[1]})
        # one customer with two cards (flagged on the same days): their alerts share a cap
        connection.execute(
            text("UPDATE dim_card SET email = 'Twin@Example.com' WHERE card_token = ANY(:t)"),
            {"t": [tokens[0], tokens[2]]},
        )
    outbox = OutboxMailer(tmp_path)
    result = send_alerts(engine, world.model_version, outbox, AlertPolicy(sender=SENDER, daily_cap=1))
    flagged = world.transactions[world.transactions["flagged"]]
    card_days = set(zip(flagged["card_token"], flagged["day"], strict=False))
    opted_out = {cd for cd in card_days if cd[0] == tokens[1]}
    twin_days = [d for t, d in card_days if t in (tokens[0], tokens[2])]
    capped = len(twin_days) - len(set(twin_days))
    assert capped > 0 and result.capped == capped
    assert result.skipped_opted_out == len(opted_out) > 0
    assert result.sent == len(card_days) - len(opted_out) - capped == len(list(tmp_path.glob("*.eml")))
    again = send_alerts(engine, world.model_version, outbox, AlertPolicy(sender=SENDER, daily_cap=1))
    assert (again.sent, again.queued, again.capped) == (0, 0, 0)
    statuses = _alert_rows(engine, world)["status"].value_counts().to_dict()
    assert statuses == {"sent": result.sent, "capped": capped}


def test_a_later_flag_on_a_card_day_already_alerted_gets_a_follow_up(engine, settings, tmp_path):
    world = build_world(engine, settings, "late", cards=1, days=1, seed=4)
    policy = AlertPolicy(sender=SENDER, daily_cap=5)
    assert send_alerts(engine, world.model_version, OutboxMailer(tmp_path), policy).sent == 1
    late = world.transactions[~world.transactions["flagged"]].iloc[0]
    with engine.begin() as connection:  # a rescoring flags another transaction of the same card-day
        connection.execute(
            text("UPDATE fraud_score SET flagged = true, outcome = 'review' WHERE trans_num = :t"),
            {"t": late["trans_num"]},
        )
    follow_up = send_alerts(engine, world.model_version, OutboxMailer(tmp_path), policy)
    assert follow_up.sent == 1
    keys = list(_alert_rows(engine, world)["group_key"])
    assert keys == [f"{late['card_token']}:{late['day']}", f"{late['card_token']}:{late['day']}#2"]
    assert len(list(tmp_path.glob("*.eml"))) == 2


def test_hostile_names_are_escaped_in_the_email(engine, settings, tmp_path):
    world = build_world(engine, settings, "esc", cards=1, days=2, seed=0)
    send_alerts(engine, world.model_version, OutboxMailer(tmp_path), AlertPolicy(sender=SENDER))
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in tmp_path.glob("*.eml")]
    hostile = [m for m in messages if "Quotes" in _text_parts(m)["text/plain"]]
    assert hostile, "the hostile merchant is flagged on day one"
    for message in hostile:
        html = _text_parts(message)["text/html"]
        assert "<script" not in html and "<img" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &#34;Quotes&#39; Shop&#34;" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        # plain text shows the names as they are; the merchant's "fraud_" prefix never reaches a customer
        assert HOSTILE_MERCHANT.removeprefix("fraud_") in _text_parts(message)["text/plain"]
        assert HOSTILE_FIRST in _text_parts(message)["text/plain"] and "fraud_" not in message.as_string()


def test_ses_delivery_through_moto(engine, settings, moto_endpoint, aws_credentials, monkeypatch):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    world = build_world(engine, settings, "ses", cards=3, days=2, seed=5)
    monkeypatch.setenv("FRAUD_MAIL_CHANNEL", "ses")
    monkeypatch.setenv("FRAUD_AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FRAUD_SMTP_RETRY_BACKOFF_SECONDS", "0.01")
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    before = len(sent)

    unverified = _run_asset()  # SES rejects an unverified sender: permanent, left pending
    assert unverified["transport"].value == "ses" and unverified["sent"].value == 0
    assert _alert_rows(engine, world)["last_error"].str.contains("MessageRejected").all()

    boto3.client("ses", region_name="us-east-1", endpoint_url=moto_endpoint).verify_email_identity(EmailAddress=SENDER)
    delivered = _run_asset()
    assert _run_asset()["sent"].value == 0
    expected = world.flagged_card_days()
    assert delivered["sent"].value == len(expected) == len(sent) - before
    cards = _cards(engine, world)
    messages = [email.message_from_string(m.raw_data, policy=email.policy.default) for m in sent[before:]]
    assert sorted(_check_message(m, world, cards) for m in messages) == sorted(expected)
    alerts = _alert_rows(engine, world)
    assert set(alerts["status"]) == {"sent"} and set(alerts["message_id"]) == {m.id for m in sent[before:]}


# a card that pays at night, far above its average, at a merchant it never used (see tests/features/test_phrases.py)
NIGHT_VECTOR = {
    "amt_log": math.log1p(912.50),
    "hour": 23,
    "is_night": 1,
    "card_count_1h": 6,
    "card_count_30d": 144,
    "card_mean_amt_30d": 110,
    "amt_over_card_mean_30d": 912.50 / 110,
    "amt_z_card_30d": 5.2,
    "card_new_merchant_30d": 1,
    "merchant_labels_7d": 40,
    "merchant_fraud_rate_7d": 0.125,
}
NIGHT_REASONS = [
    {"feature": "merchant_fraud_rate_7d", "contribution": 0.5},  # never told to a cardholder
    {"feature": "amt_z_card_30d", "contribution": 0.4},
    {"feature": "card_new_merchant_30d", "contribution": 0.2},
    {"feature": "card_count_1h", "contribution": 0.1},  # a third one: the email says two
]
KEY = b"answer-link-key-of-the-test-0123"


def test_email_says_why_in_words_and_carries_the_alerts_answer_links(engine, settings, tmp_path):
    world = build_world(engine, settings, "words", cards=3, days=1, seed=6)
    flagged = world.transactions[world.transactions["flagged"]].sort_values("event_time")
    explained = flagged.iloc[0]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE fraud_score SET top_reasons = CAST(:r AS jsonb) WHERE trans_num = :t"),
            {"t": explained["trans_num"], "r": json.dumps(NIGHT_REASONS)},
        )
        connection.execute(
            text("UPDATE transaction_features SET values = :v WHERE trans_num = :t AND feature_version = :version"),
            {
                "t": explained["trans_num"],
                "v": [float(NIGHT_VECTOR.get(name, 0.0)) for name in FEATURE_NAMES],
                "version": FEATURE_VERSION,
            },
        )
    policy = AlertPolicy(sender=SENDER, answer_links=AnswerLinkSigner("https://review.example/app/", KEY, 14))
    before = datetime.now(UTC).replace(microsecond=0)
    result = send_alerts(engine, world.model_version, OutboxMailer(tmp_path), policy)
    after = datetime.now(UTC)
    assert result.sent == len(world.flagged_card_days()) >= 2
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in tmp_path.glob("*.eml")]
    ids = {row.group_key: int(row.id) for row in _alert_rows(engine, world).itertuples()}

    by_alert = {}
    for message in messages:
        parts, links = _text_parts(message), _links(message)
        assert links["text/plain"] == links["text/html"]
        me, not_me = links["text/plain"]["me"], links["text/plain"]["not_me"]
        assert me["alert"] == not_me["alert"] and me["expires"] == not_me["expires"]
        by_alert[int(me["alert"])] = (message, links["text/plain"])
        sent_at = datetime.fromtimestamp(int(me["expires"]), UTC) - timedelta(days=14)
        assert before <= sent_at <= after  # valid answer_link_days from the send
        assert f"https://review.example/app/answer?alert={me['alert']}&answer=me&" in parts["text/plain"]
        assert (
            "Yes, it was me" in parts["text/html"] and "call the number on the back of your card" in parts["text/plain"]
        )
        assert "We will never ask for your PIN" in parts["text/plain"]  # the security advice stays
        assert "merchant_" not in message.as_string() and "contribution" not in message.as_string()
    assert set(by_alert) == set(ids.values())  # each email names its own alert (customer_alert.id)

    for alert_id, (_, links) in by_alert.items():
        for answer in (Answer.ME, Answer.NOT_ME):
            link = links[answer.value]
            assert verify(KEY, link["alert"], link["answer"], link["expires"], link["sig"], after).alert_id == alert_id
            assert (
                verify(KEY, **{k: link[k] for k in ("alert", "answer", "expires", "sig")}, now=after).answer is answer
            )
            for other in set(ids.values()) - {alert_id}:  # no link works for another alert
                assert not _verifies(KEY, {**link, "alert": str(other)}, after)
        assert not _verifies(KEY, {**links["me"], "answer": "not_me"}, after)  # nor for the other answer
        assert not _verifies(KEY, links["me"], after + timedelta(days=14, seconds=1))  # nor after it expires
        assert not _verifies(b"another key", links["me"], after)

    # the explained payment: its first two reasons a cardholder may read, in words; the others: a plain sentence
    group = f"{explained['card_token']}:{explained['day']}"
    message = by_alert[ids[group]][0]
    text_part, html_part = _text_parts(message)["text/plain"], _text_parts(message)["text/html"]
    assert (
        "Why we are asking: Amount 912.50, 8.3 times this card's 30-day average of 110.00. "
        "First purchase at this merchant in 30 days.\n" in text_part
    )
    assert "Amount 912.50, 8.3 times this card&#39;s 30-day average of 110.00. First purchase at this" in html_part
    assert "fraud rate" not in text_part and "standard deviation" not in text_part and "6 purchases" not in text_part
    others = len(flagged[(flagged["card_token"] == explained["card_token"])]) - 1
    assert text_part.count("Why we are asking: It did not look like this card's usual payments.") == others


def test_plan_groups_per_card_and_utc_day():
    def at(text_time):
        return datetime.fromisoformat(text_time).replace(tzinfo=UTC)

    candidates = pd.DataFrame(
        {
            "trans_num": ["a", "b", "c", "d"],
            "model_version": "m",
            "event_time": [
                at("2026-11-02T00:05"),
                at("2026-11-02T23:55"),
                at("2026-11-03T00:01"),
                at("2026-11-02T10:00"),
            ],
            "card_token": ["k1", "k1", "k1", "k2"],
            "email": ["x@e.com", "x@e.com", "x@e.com", None],
            "alerts_opt_out": False,
        }
    )
    existing = pd.DataFrame(columns=["id", "group_key", "card_token", "alert_day", "status", "email"])
    plan = plan_alerts(candidates, existing, daily_cap=3)
    assert [(a.group_key, a.trans_nums) for a in plan.alerts] == [
        ("k1:2026-11-02", ("a", "b")),
        ("k1:2026-11-03", ("c",)),
    ]
    assert plan.no_email_groups == 1
    pending = pd.DataFrame(
        [
            {
                "id": 7,
                "group_key": "k1:2026-11-02",
                "card_token": "k1",
                "alert_day": date(2026, 11, 2),
                "status": "pending",
                "email": "x@e.com",
            }
        ]
    )
    attached = plan_alerts(candidates.iloc[:1], pending, daily_cap=3).alerts
    assert attached[0].existing_id == 7 and attached[0].group_key == "k1:2026-11-02"


def test_settings_pick_the_transport(monkeypatch, fraud_env):
    from fraud.outreach.mailers import mail_transport

    assert mail_transport(Settings()) == "outbox"
    monkeypatch.setenv("FRAUD_SMTP_HOST", "127.0.0.1")
    assert mail_transport(Settings()) == "smtp"
    monkeypatch.setenv("FRAUD_MODE", "aws")
    assert mail_transport(Settings()) == "ses"
    monkeypatch.setenv("FRAUD_MAIL_CHANNEL", "outbox")
    assert mail_transport(Settings()) == "outbox"
