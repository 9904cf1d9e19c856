"""The customer alert email: one message per alert (a card's flagged transactions of one day), rendered from
templates with a plain-text and an HTML part. Each payment says why we are asking, in the cardholder's words
(fraud/features/phrases.py `for_cardholder`), and the email carries the signed "Yes, it was me" / "No, it wasn't"
links of the alert (fraud/outreach/answers.py). The HTML template is autoescaped: merchant and holder names come
from transaction data and must never become markup."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formataddr

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from fraud.core.privacy import mask_card

_env = Environment(
    loader=PackageLoader("fraud.outreach", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# what a payment says when none of its reasons is one a cardholder is told (or it has none on record)
UNUSUAL = "It did not look like this card's usual payments"


@dataclass(frozen=True)
class AlertLine:
    merchant: str
    amount: float
    event_time: datetime
    why: tuple[str, ...] = ()  # phrases for the cardholder (fraud.features.phrases.for_cardholder), plain text


@dataclass(frozen=True)
class AnswerLinks:
    """The alert's two signed answer links (fraud.outreach.answers.answer_link) and when they stop working."""

    me: str  # "Yes, it was me"
    not_me: str  # "No, it wasn't"
    expires_at: datetime


@dataclass(frozen=True)
class AlertEmail:
    group_key: str
    channel: str
    alert_day: date
    email: str
    holder: str | None
    last4: str
    lines: tuple[AlertLine, ...]
    links: AnswerLinks | None = None  # None: an email without answer links (only the advice to call the bank)

    @property
    def ref(self) -> str:
        """A stable, opaque id of the alert: Message-ID, outbox file name (no card token in the mail)."""
        return "alert-" + hashlib.sha256(f"{self.group_key}|{self.channel}".encode()).hexdigest()[:24]


def display_merchant(name: str) -> str:
    # Sparkov-style data prefixes every merchant with "fraud_"; that must not reach a customer
    return str(name).removeprefix("fraud_")


def _one_line(text: str, limit: int = 60) -> str:
    flat = re.sub(r"\s+", " ", text).strip()  # no header injection through a name with a newline
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def subject(alert: AlertEmail) -> str:
    card = mask_card(alert.last4)
    if len(alert.lines) == 1:
        return (
            _one_line(f"Did you make this payment at {display_merchant(alert.lines[0].merchant)}?", 70)
            + f" (card {card})"
        )
    return f"Did you make these {len(alert.lines)} payments on {alert.alert_day:%d %b %Y}? (card {card})"


def why(line: AlertLine) -> str:
    """The payment's "why we are asking" sentence: its phrases, or UNUSUAL."""
    return ". ".join(line.why or (UNUSUAL,)) + "."


def context(alert: AlertEmail) -> dict:
    links = alert.links
    return {
        "name": alert.holder or "customer",
        "card": mask_card(alert.last4),
        "day": f"{alert.alert_day:%A %d %B %Y}",
        "payments": [
            {
                "merchant": display_merchant(line.merchant),
                "amount": f"${line.amount:,.2f}",
                "when": pd.Timestamp(line.event_time).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC"),
                "why": why(line),
            }
            for line in alert.lines
        ],
        "total": f"${sum(line.amount for line in alert.lines):,.2f}",
        "links": None
        if links is None
        else {
            "me": links.me,
            "not_me": links.not_me,
            "expires": pd.Timestamp(links.expires_at).tz_convert("UTC").strftime("%d %B %Y, %H:%M UTC"),
        },
    }


def render(alert: AlertEmail, sender: str) -> EmailMessage:
    values = context(alert)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((_one_line(alert.holder or "", 80), alert.email)) if alert.holder else alert.email
    message["Subject"] = subject(alert)
    message["Message-ID"] = f"<{alert.ref}@{sender.rsplit('@', 1)[-1].strip('>')}>"
    message["X-Fraud-Alert"] = alert.ref
    message.set_content(_env.get_template("alert.txt.j2").render(**values))
    message.add_alternative(_env.get_template("alert.html.j2").render(**values), subtype="html")
    return message
