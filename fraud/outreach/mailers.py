"""Mail transports behind one small interface: `.eml` files in an outbox folder (local default), an SMTP
server, or Amazon SES. Each raises `TransientDeliveryError` (worth retrying: a 4xx reply, a refused or
dropped connection, throttling) or `PermanentDeliveryError` (a 5xx reply, a rejected message)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from fraud.core.settings import Settings
from fraud.core.storage import write_private


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class Mailer(Protocol):
    name: str  # the transport, for logs and metadata (the alert channel is "email" for all of them)

    def send(self, message: EmailMessage) -> str:
        """Deliver the message; return the id to record (the provider's id, else the Message-ID header)."""
        ...


class OutboxMailer:
    """Writes each message as `<alert ref>.eml` (atomic rename, mode 0600), so a rerun overwrites instead of
    duplicating."""

    name = "outbox"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> str:
        try:
            write_private(self.folder / f"{message['X-Fraud-Alert']}.eml", bytes(message))  # 0600: names and cards
        except OSError as error:  # a full or read-only disk may well recover by the next run
            raise TransientDeliveryError(f"outbox: {error}") from error
        return message["Message-ID"]


def _smtp_error(error: Exception) -> DeliveryError:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        kind = TransientDeliveryError if codes and all(400 <= c < 500 for c in codes) else PermanentDeliveryError
        return kind(f"recipients refused: {codes}")
    if isinstance(error, smtplib.SMTPResponseException):
        kind = TransientDeliveryError if 400 <= error.smtp_code < 500 else PermanentDeliveryError
        reply = (
            error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
        )
        return kind(f"{error.smtp_code} {reply}")
    # refused or dropped connections, timeouts, name resolution: the server may be back next time
    return TransientDeliveryError(f"{type(error).__name__}: {error}")


class SmtpMailer:
    """An SMTP server. STARTTLS verifies the server's certificate and host name (the system's CAs, or `ca_file`);
    a login is refused without STARTTLS, before connecting, so the password never crosses in clear text."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 10.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ):
        self.host, self.port, self.timeout = host, port, timeout
        self.starttls, self.username, self.password, self.ca_file = starttls, username, password, ca_file

    def send(self, message: EmailMessage) -> str:
        if self.username and not self.starttls:
            raise PermanentDeliveryError(
                "SMTP login without TLS refused: set FRAUD_SMTP_STARTTLS=true (or unset FRAUD_SMTP_USERNAME)"
            )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except ssl.SSLCertVerificationError as error:  # a configuration problem: retrying will not help
            raise PermanentDeliveryError(
                f"SMTP server {self.host}:{self.port}: certificate not verified ({error.verify_message}); "
                "trust its CA with FRAUD_SMTP_CA_FILE"
            ) from error
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            raise _smtp_error(error) from error
        return message["Message-ID"]


_SES_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "RequestTimeout",
    "TooManyRequestsException",
}


class SesMailer:
    """Amazon SES `SendRawEmail`: the same MIME message as SMTP, both parts intact."""

    name = "ses"

    def __init__(self, client, configuration_set: str | None = None):
        self.client, self.configuration_set = client, configuration_set

    def send(self, message: EmailMessage) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        request = {"Source": message["From"], "Destinations": [message["To"]], "RawMessage": {"Data": bytes(message)}}
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            return self.client.send_raw_email(**request)["MessageId"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            kind = TransientDeliveryError if code in _SES_TRANSIENT else PermanentDeliveryError
            raise kind(f"SES {code}: {error.response.get('Error', {}).get('Message', '')}") from error
        except BotoCoreError as error:  # endpoint unreachable, read timeout
            raise TransientDeliveryError(f"SES {type(error).__name__}: {error}") from error


def mail_transport(settings: Settings) -> str:
    if settings.mail_channel != "auto":
        return settings.mail_channel
    if settings.mode == "aws":
        return "ses"
    return "smtp" if settings.smtp_host else "outbox"


def mailer_for(settings: Settings) -> Mailer:
    transport = mail_transport(settings)
    if transport == "ses":
        from fraud.core.aws import client

        return SesMailer(client(settings, "ses"), settings.ses_configuration_set)
    if transport == "smtp":
        if not settings.smtp_host:
            raise ValueError("FRAUD_MAIL_CHANNEL=smtp needs FRAUD_SMTP_HOST")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_timeout_seconds,
            settings.smtp_starttls,
            settings.smtp_username,
            password,
            settings.smtp_ca_file,
        )
    return OutboxMailer(settings.outbox_dir)
