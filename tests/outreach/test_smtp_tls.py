"""SMTP over verified TLS, against a real aiosmtpd server with STARTTLS: a certificate the client cannot verify
(self-signed, or for another host name) is refused; the same server with its CA trusted through
FRAUD_SMTP_CA_FILE gets the message; a username without STARTTLS is refused before anything reaches the server."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import secrets
import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fraud.core.settings import Settings
from fraud.outreach.mailers import PermanentDeliveryError, SmtpMailer, mailer_for
from tests.helpers.homes import free_port

USER, PASSWORD = "alerts", secrets.token_urlsafe(16)  # made per run: no password-looking literal


def self_signed(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for `names` (host names or IP addresses): (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alternative = [
        x509.IPAddress(ipaddress.ip_address(name)) if name[0].isdigit() else x509.DNSName(name) for name in names
    ]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Server:
    """aiosmtpd handler and authenticator: keeps every message and every AUTH attempt."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=(auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD))
        return AuthResult(success=False, handled=False)


@pytest.fixture()
def tls_server(tmp_path):
    """A STARTTLS server on 127.0.0.1 whose self-signed certificate names 127.0.0.1; AUTH only after STARTTLS."""

    def start(names: list[str], require_tls: bool = True) -> tuple[Server, int, Path]:
        cert, key = self_signed(tmp_path, names)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server, port = Server(), free_port()
        controller = Controller(
            server,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=require_tls,
            auth_require_tls=require_tls,
            authenticator=server,
        )
        controller.start()
        started.append(controller)
        return server, port, cert

    started: list[Controller] = []
    yield start
    for controller in started:
        controller.stop()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alerts@example.com", "holder@example.com", "card alert"
    message["Message-ID"] = "<test-1@example.com>"
    message.set_content("was this you?")
    return message


def test_a_self_signed_certificate_is_refused_as_unverified(tls_server):
    server, port, _ = tls_server(["127.0.0.1"])
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, starttls=True, username=USER, password=PASSWORD)
    with pytest.raises(PermanentDeliveryError, match="certificate not verified"):
        mailer.send(_message())
    assert server.messages == [] and server.logins == []  # the password never left


def test_a_certificate_for_another_host_name_is_refused(tls_server):
    server, port, cert = tls_server(["mail.example.com"])  # trusted CA, but not the host we connect to
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, starttls=True, username=USER, password=PASSWORD, ca_file=cert)
    with pytest.raises(PermanentDeliveryError, match="certificate not verified"):
        mailer.send(_message())
    assert server.messages == [] and server.logins == []


def test_with_its_ca_trusted_the_message_is_sent_after_login(tls_server, monkeypatch, tmp_path):
    server, port, cert = tls_server(["127.0.0.1"])
    for name, value in {
        "FRAUD_HOME": str(tmp_path / "home"),
        "FRAUD_MAIL_CHANNEL": "smtp",
        "FRAUD_SMTP_HOST": "127.0.0.1",
        "FRAUD_SMTP_PORT": str(port),
        "FRAUD_SMTP_STARTTLS": "true",
        "FRAUD_SMTP_USERNAME": USER,
        "FRAUD_SMTP_PASSWORD": PASSWORD,
        "FRAUD_SMTP_CA_FILE": str(cert),
    }.items():
        monkeypatch.setenv(name, value)
    mailer = mailer_for(Settings())
    assert mailer.send(_message()) == "<test-1@example.com>"
    assert server.logins == [(USER, PASSWORD)]
    assert [m["Subject"] for m in server.messages] == ["card alert"]


def test_a_username_without_starttls_is_refused_before_auth(tls_server):
    server, port, _ = tls_server(["127.0.0.1"], require_tls=False)  # a server that would take AUTH in clear text
    mailer = SmtpMailer("127.0.0.1", port, timeout=5, starttls=False, username=USER, password=PASSWORD)
    with pytest.raises(PermanentDeliveryError, match="login without TLS refused"):
        mailer.send(_message())
    assert server.logins == [] and server.messages == []
    # without a username, plain SMTP still works (a local relay that needs no login)
    SmtpMailer("127.0.0.1", port, timeout=5).send(_message())
    assert len(server.messages) == 1
