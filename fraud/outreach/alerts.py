"""Customer alerts: group a card's transactions of one day that were sent to review or blocked (the decisions of
fraud/rules/, stored with each score) into one alert, queue it once per channel
(unique group key), cap alerts per customer and day, then deliver every pending alert with retries.

Exactly once: an alert row is queued before anything is sent, claimed with a row lock while it is sent, and
marked sent in the same database transaction; a failed delivery leaves it pending for the next run. A flagged
transaction of a card-day whose alert already went out gets a follow-up alert (`<key>#2`).

Each email says per payment why we are asking (its stored top reasons in words, fraud/features/phrases.py) and
carries the alert's signed "Yes, it was me" / "No, it wasn't" links (fraud/outreach/answers.py), valid
`answer_link_days` from the moment it is sent."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fraud.core.settings import Settings
from fraud.db import queries
from fraud.features.catalog import FEATURE_VERSION
from fraud.features.phrases import for_cardholder
from fraud.outreach.answers import Answer, answer_link
from fraud.outreach.mailers import DeliveryError, Mailer, TransientDeliveryError
from fraud.outreach.notify import AlertEmail, AlertLine, AnswerLinks, render

CHANNEL = "email"  # every mail transport (outbox, SMTP, SES) is one channel: a customer gets one email
_QUEUE_LOCK = 0x5A1E47  # pg advisory lock: one run at a time plans groups (delivery is locked per alert)


@dataclass(frozen=True)
class AnswerLinkSigner:
    """Makes an alert's "Yes, it was me" / "No, it wasn't" links (fraud/outreach/answers.py), valid `days` from the
    moment the email is sent."""

    base_url: str  # the review app's address (Settings.review_base_url)
    key: bytes = field(repr=False)  # Settings.review_signing_key("answer-link")
    days: int = 14

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerLinkSigner:
        return cls(settings.review_base_url, settings.review_signing_key("answer-link"), settings.answer_link_days)

    def links(self, alert_id: int, sent_at: datetime) -> AnswerLinks:
        expires_at = sent_at + timedelta(days=self.days)
        return AnswerLinks(
            me=answer_link(self.base_url, self.key, alert_id, Answer.ME, expires_at),
            not_me=answer_link(self.base_url, self.key, alert_id, Answer.NOT_ME, expires_at),
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class AlertPolicy:
    sender: str
    daily_cap: int = 2
    retry_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    # after this many alerts in a row fail transiently the server is taken to be down: the rest wait for next run
    stop_after_consecutive_failures: int = 3
    channel: str = CHANNEL
    # the answer links every email carries (from_settings always sets them); None: emails without them
    answer_links: AnswerLinkSigner | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(
            sender=settings.mail_from,
            daily_cap=settings.alert_daily_cap_per_customer,
            retry_attempts=max(1, settings.smtp_retry_attempts),
            retry_backoff_seconds=settings.smtp_retry_backoff_seconds,
            answer_links=AnswerLinkSigner.from_settings(settings),
        )


@dataclass(frozen=True)
class PlannedAlert:
    group_key: str
    card_token: str
    alert_day: date
    model_version: str
    trans_nums: tuple[str, ...]
    status: str = "pending"  # or "capped": recorded, never sent
    existing_id: int | None = None  # add the transactions to this still-pending alert instead


@dataclass(frozen=True)
class Plan:
    alerts: list[PlannedAlert]
    opted_out_groups: int
    no_email_groups: int


def group_key(card_token: str, day: date, sequence: int = 1) -> str:
    base = f"{card_token}:{day.isoformat()}"
    return base if sequence == 1 else f"{base}#{sequence}"


def plan_alerts(candidates: pd.DataFrame, existing: pd.DataFrame, daily_cap: int) -> Plan:
    """candidates: flagged transactions in no alert yet (trans_num, model_version, event_time, card_token, email,
    alerts_opt_out); existing: the channel's alerts to the same customers (id, card_token, alert_day, status, email).
    Days are UTC days of the transaction; a customer is an email address (one person may hold several cards)."""
    if candidates.empty:
        return Plan([], 0, 0)
    frame = candidates.assign(
        day=pd.to_datetime(candidates["event_time"], utc=True).dt.date,
        email=candidates["email"].str.strip().str.lower(),
    )
    groups = frame.groupby(["card_token", "day"], sort=False)
    first_seen = groups["event_time"].min().sort_values()
    by_card_day: dict[tuple[str, date], list] = defaultdict(list)
    per_customer_day: Counter = Counter()
    for row in existing.itertuples():
        by_card_day[(row.card_token, row.alert_day)].append(row)
        if row.status in ("pending", "sent"):
            per_customer_day[(row.email, row.alert_day)] += 1
    alerts, opted_out, no_email = [], 0, 0
    for card_token, day in first_seen.index:  # earliest first, so the cap keeps a customer's first alerts
        rows = groups.get_group((card_token, day))
        if rows["alerts_opt_out"].astype(bool).any():
            opted_out += 1
            continue
        email = rows["email"].iloc[0]
        if not isinstance(email, str) or "@" not in email:
            no_email += 1
            continue
        trans_nums, model_version = tuple(rows["trans_num"]), str(rows["model_version"].iloc[0])
        earlier = by_card_day[(card_token, day)]
        pending = [a for a in earlier if a.status == "pending"]
        if pending:  # not sent yet: the email will list these too
            alerts.append(
                PlannedAlert(
                    pending[0].group_key, card_token, day, model_version, trans_nums, existing_id=int(pending[0].id)
                )
            )
            continue
        capped = per_customer_day[(email, day)] >= daily_cap
        if not capped:
            per_customer_day[(email, day)] += 1
        alerts.append(
            PlannedAlert(
                group_key(card_token, day, len(earlier) + 1),
                card_token,
                day,
                model_version,
                trans_nums,
                status="capped" if capped else "pending",
            )
        )
    return Plan(alerts, opted_out, no_email)


@dataclass
class AlertResult:
    queued: int = 0  # new alerts this run
    capped: int = 0
    skipped_opted_out: int = 0  # card-day groups
    skipped_no_email: int = 0
    sent: int = 0
    failed: int = 0  # left pending, with attempts and last_error recorded
    deferred: int = 0  # not tried this run: the server looked down
    errors: list[str] = field(default_factory=list)


def queue_alerts(engine: Engine, model_version: str, policy: AlertPolicy) -> tuple[Plan, int]:
    """Write the plan: new alerts (with their transactions) and additions to pending ones.

    Returns (plan, new alerts)."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _QUEUE_LOCK})
        candidates = queries.alert_candidates(connection, model_version, policy.channel)
        emails = sorted({e.strip().lower() for e in candidates["email"].dropna()})
        existing = queries.customer_alerts_for(connection, policy.channel, emails)
        plan = plan_alerts(candidates, existing, policy.daily_cap)
        created = 0
        for alert in plan.alerts:
            if alert.existing_id is not None:
                queries.link_alert_transactions(connection, alert.existing_id, policy.channel, list(alert.trans_nums))
            elif (
                queries.insert_customer_alert(
                    connection,
                    alert.group_key,
                    policy.channel,
                    alert.card_token,
                    alert.alert_day,
                    alert.model_version,
                    alert.status,
                    list(alert.trans_nums),
                )
                is not None
            ):
                created += 1
    return plan, created


def _reasons(value: object) -> list:
    """fraud_score.top_reasons as read (a list, JSON text, or NULL)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, (list, tuple)) else []


def _why(top_reasons: object, features: object) -> tuple[str, ...]:
    """Why we are asking, for the cardholder: the first two of the payment's reasons they may read."""
    vector = list(features) if isinstance(features, (list, tuple, np.ndarray)) else None
    return tuple(for_cardholder(_reasons(top_reasons), vector, limit=2))


def _alert_email(lines: pd.DataFrame, channel: str, links: AnswerLinks | None = None) -> AlertEmail:
    """The email of one alert from its rows of queries.pending_alert_lines."""
    first = lines.iloc[0]
    holder = " ".join(str(v) for v in (first["first_name"], first["last_name"]) if isinstance(v, str) and v) or None
    return AlertEmail(
        group_key=first["group_key"],
        channel=channel,
        alert_day=first["alert_day"],
        email=first["email"],
        holder=holder,
        last4=first["last4"],
        lines=tuple(
            AlertLine(r.merchant, float(r.amount), r.event_time, _why(r.top_reasons, r.features))
            for r in lines.itertuples()
        ),
        links=links,
    )


def deliver_pending(
    engine: Engine,
    mailer: Mailer,
    policy: AlertPolicy,
    result: AlertResult,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    consecutive_failures = 0
    pending = queries.pending_alert_lines(engine, policy.channel, FEATURE_VERSION)
    for alert_id, lines in pending.groupby("id", sort=True):
        if consecutive_failures >= policy.stop_after_consecutive_failures:
            result.deferred += 1
            continue
        with engine.begin() as connection:
            if not queries.claim_pending_alert(connection, int(alert_id)):
                continue  # another run is sending it, or already did
            if lines["alerts_opt_out"].astype(bool).any():  # opted out after the alert was queued
                queries.record_alert_delivery(connection, int(alert_id), "opted_out", 0, None)
                result.skipped_opted_out += 1
                continue
            # the links name this alert (customer_alert.id) and expire answer_link_days after the send
            links = policy.answer_links.links(int(alert_id), datetime.now(UTC)) if policy.answer_links else None
            message = render(_alert_email(lines, policy.channel, links), policy.sender)
            attempts, last_error = 0, None

            def send_once(message=message) -> str:  # bound now: the loop moves on only after the retries
                nonlocal attempts, last_error
                attempts += 1
                try:
                    return mailer.send(message)
                except DeliveryError as error:
                    last_error = f"{mailer.name}: {error}"[:1000]
                    raise

            retrying = Retrying(
                stop=stop_after_attempt(policy.retry_attempts),
                reraise=True,
                sleep=sleep,
                wait=wait_exponential(multiplier=policy.retry_backoff_seconds, max=60),
                retry=retry_if_exception_type(TransientDeliveryError),
            )
            try:
                delivered_id = retrying(send_once)
            except DeliveryError as error:
                queries.record_alert_delivery(connection, int(alert_id), "pending", attempts, last_error)
                result.failed += 1
                result.errors.append(str(error))
                consecutive_failures = consecutive_failures + 1 if isinstance(error, TransientDeliveryError) else 0
                continue
            queries.record_alert_delivery(connection, int(alert_id), "sent", attempts, last_error, delivered_id)
            result.sent += 1
            consecutive_failures = 0


def send_alerts(
    engine: Engine, model_version: str, mailer: Mailer, policy: AlertPolicy, sleep: Callable[[float], None] = time.sleep
) -> AlertResult:
    """Queue the new card-day groups of the model's review and block decisions, then deliver every pending alert
    of the channel (including ones left pending by earlier runs)."""
    plan, created = queue_alerts(engine, model_version, policy)
    result = AlertResult(
        queued=created,
        capped=sum(a.status == "capped" for a in plan.alerts if a.existing_id is None),
        skipped_opted_out=plan.opted_out_groups,
        skipped_no_email=plan.no_email_groups,
    )
    deliver_pending(engine, mailer, policy, result, sleep)
    return result
