"""Customers' answers to an alert: the "Yes, it was me" / "No, it wasn't" links of the alert email.

A link names the alert, the answer and its expiry, signed with HMAC-SHA256 under the review app's answer-link key
(fraud.core.settings.Settings.review_signing_key("answer-link")): it cannot be made for another alert, another
answer or a later expiry. It is usable once: the first answer recorded for the alert (`customer_answer`, primary
key alert_id) is the only one; a replay, a tampered link or an expired one changes nothing
(the review app serves the links: fraud/app/review/). The answer becomes a `customer` label of the alert's
transactions (fraud/db/labels.py: "No, it wasn't" = fraud, "Yes, it was me" = genuine) and closes their case."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlencode


class Answer(StrEnum):
    ME = "me"  # "Yes, it was me": genuine
    NOT_ME = "not_me"  # "No, it wasn't": fraud


class LinkRefused(ValueError):
    """A link that is not one we signed (tampered, truncated) or no longer valid (expired); `reason` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedAnswer:
    alert_id: int
    answer: Answer
    expires: int  # unix seconds


def _signature(key: bytes, alert_id: int, answer: Answer, expires: int) -> str:
    return hmac.new(key, f"{alert_id}:{answer.value}:{expires}".encode(), hashlib.sha256).hexdigest()


def answer_link(base_url: str, key: bytes, alert_id: int, answer: Answer, expires_at: datetime) -> str:
    """The link an alert email carries for one answer."""
    expires = int(expires_at.timestamp())
    signature = _signature(key, alert_id, answer, expires)
    query = urlencode({"alert": alert_id, "answer": answer.value, "expires": expires, "sig": signature})
    return f"{base_url.rstrip('/')}/answer?{query}"


def verify(key: bytes, alert: str, answer: str, expires: str, sig: str, now: datetime) -> SignedAnswer:
    """The answer a link carries, or LinkRefused."""
    try:
        signed = SignedAnswer(int(alert), Answer(answer), int(expires))
    except ValueError:
        raise LinkRefused("not a link we sent") from None
    expected = _signature(key, signed.alert_id, signed.answer, signed.expires)
    if not hmac.compare_digest(expected, sig or ""):
        raise LinkRefused("not a link we sent")
    if now.timestamp() >= signed.expires:
        raise LinkRefused("expired")
    return signed
