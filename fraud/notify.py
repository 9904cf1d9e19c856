"""Customer alert emails: rendered from templates (autoescaped), delivered through a mailer, and recorded in
`customer_alert` so that a transaction's alert on a channel is sent at most once."""
from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine, text

from fraud.privacy import mask_card

_env = Environment(loader=PackageLoader("fraud", "templates"), autoescape=select_autoescape(["html"]))


class Mailer(Protocol):
    channel: str

    def send(self, message: EmailMessage) -> None: ...


class OutboxMailer:
    """Writes each message as an .eml file named after its alert key (local default)."""
    channel = "email"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = message["X-Alert-Key"].replace("/", "_")
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(bytes(message))
        tmp.replace(self.folder / f"{name}.eml")


class SmtpMailer:
    channel = "email"

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)


@dataclass(frozen=True)
class AlertResult:
    queued: int
    sent: int
    skipped_opted_out: int
    failed: int


def render(row: dict, sender: str) -> EmailMessage:
    context = {
        "name": " ".join(filter(None, [row.get("first_name"), row.get("last_name")])) or "customer",
        "card": mask_card(row["last4"]),
        "merchant": str(row["merchant"]).removeprefix("fraud_"),
        "amount": f"${float(row['amount']):,.2f}",
        "when": pd.Timestamp(row["event_time"]).strftime("%Y-%m-%d %H:%M UTC"),
    }
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row["email"]
    message["Subject"] = f"Did you make this payment at {context['merchant']}?"
    message["Message-ID"] = make_msgid(domain=sender.split("@")[-1])
    message["X-Alert-Key"] = f"{row['trans_num']}-email"
    message.set_content(_env.get_template("alert.txt.j2").render(**context))
    message.add_alternative(_env.get_template("alert.html.j2").render(**context), subtype="html")
    return message


def send_alerts(engine: Engine, flagged: pd.DataFrame, mailer: Mailer, sender: str) -> AlertResult:
    """Queue one alert per flagged transaction and channel (idempotent), then deliver every queued one."""
    eligible = flagged[~flagged["alerts_opt_out"].astype(bool) & flagged["email"].notna()]
    with engine.begin() as connection:
        if len(eligible):
            connection.execute(text("""
                INSERT INTO customer_alert (trans_num, channel, card_token, model_version, status)
                VALUES (:trans_num, :channel, :card_token, :model_version, 'pending')
                ON CONFLICT ON CONSTRAINT uq_customer_alert_trans_channel DO NOTHING"""),
                [{"trans_num": r.trans_num, "channel": mailer.channel, "card_token": r.card_token,
                  "model_version": r.model_version} for r in eligible.itertuples()])
        pending = set(connection.execute(text(
            "SELECT trans_num FROM customer_alert WHERE channel = :channel AND status = 'pending'"),
            {"channel": mailer.channel}).scalars())
    sent = failed = 0
    for row in eligible[eligible["trans_num"].isin(pending)].to_dict("records"):
        message = render(row, sender)
        try:
            mailer.send(message)
        except (OSError, smtplib.SMTPException):
            failed += 1  # stays pending; the next run retries it
            continue
        with engine.begin() as connection:
            connection.execute(text("""
                UPDATE customer_alert SET status = 'sent', sent_at = :now, message_id = :message_id
                WHERE trans_num = :trans_num AND channel = :channel AND status = 'pending'"""),
                {"now": datetime.now(timezone.utc), "message_id": message["Message-ID"],
                 "trans_num": row["trans_num"], "channel": mailer.channel})
        sent += 1
    return AlertResult(queued=len(pending), sent=sent, skipped_opted_out=int(flagged["alerts_opt_out"].astype(bool).sum()),
                       failed=failed)


def mailer_for(settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port)
    return OutboxMailer(settings.outbox_dir)
