"""Where the database is and as whom each component connects.

Where: `FRAUD_DATABASE_URL`, else RDS in aws mode (`FRAUD_DB_HOST`), else an embedded PostgreSQL from the pgserver
wheel in `FRAUD_HOME/pg` that stays up between runs and is reused.

As whom: every caller names its role (fraud/db/roles.py); `FRAUD_DB_ROLE` overrides a component's. Locally a role is
the embedded server's (or the URL's) server with the role's user name; the embedded server trusts its Unix socket, so
no password, but the session really is the role's and its grants apply. In aws mode a component role connects with
an IAM database authentication token made per new connection (nothing stored, nothing to rotate) and the owner
(migrations only) with the RDS-managed master secret, re-read once when authentication fails (a rotation); both over
TLS with `verify-full` against the RDS CA bundle.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from fraud.core.settings import REPO_ROOT, Settings
from fraud.core.storage import private_dir
from fraud.db.roles import DbRole

# where the RDS CA bundle is packaged (deploy/rds-ca/README.md): the image's copy, else the checkout's
RDS_CA_BUNDLES = (Path("/etc/ssl/certs/rds/global-bundle.pem"), REPO_ROOT / "deploy" / "rds-ca" / "global-bundle.pem")


def _sqlalchemy_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def start_embedded(pg_dir: Path) -> str:
    """Start (or find running) the embedded server; returns its URL (Unix socket in pg_dir, no TCP port)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR on headless machines
        import pgserver

        if not pg_dir.parent.exists():  # FRAUD_HOME made 0700 (run as root, pgserver widens it to reach pg_dir)
            private_dir(pg_dir.parent)
        server = pgserver.get_server(pg_dir, cleanup_mode=None)
    return server.get_uri()


def stop_embedded(pg_dir: Path, timeout: float = 30.0) -> bool:
    """Fast shutdown of the embedded server, if it runs. Returns whether one was stopped."""
    pid_file = pg_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise TimeoutError(f"embedded PostgreSQL (pid {pid}) did not stop within {timeout:.0f} s")


def user_of(settings: Settings, role: DbRole) -> str | None:
    """The PostgreSQL user `role` connects as; None for the owner (the URL's or the master secret's user)."""
    if role is DbRole.OWNER:
        return None
    return settings.db_role or role.value


def ssl_root_cert(settings: Settings) -> Path:
    """The CA bundle RDS's certificate is verified against: FRAUD_DB_SSL_ROOT_CERT, else the packaged one."""
    if settings.db_ssl_root_cert is not None:
        return settings.db_ssl_root_cert
    for bundle in RDS_CA_BUNDLES:
        if bundle.exists():
            return bundle
    raise RuntimeError(
        "aws mode verifies RDS's certificate: set FRAUD_DB_SSL_ROOT_CERT to the RDS CA bundle (deploy/rds-ca/README.md)"
    )


def _on_rds(settings: Settings) -> bool:
    return settings.database_url is None and settings.mode == "aws" and settings.db_host is not None


@dataclass(frozen=True)
class _RdsLogin:
    """How a new RDS connection gets its password: an IAM token for `user`, or the master secret (`secret_arn`)."""

    host: str
    port: int
    user: str
    secret_arn: str | None
    region: str
    endpoint: str | None
    settings: Settings = field(compare=False)  # the rest of it: which AWS endpoint, credentials

    def password(self) -> str:
        if self.secret_arn is None:
            from fraud.core.aws import db_auth_token

            return db_auth_token(self.settings, self.host, self.port, self.user)
        from fraud.core.aws import secret_json

        return secret_json(self.settings, self.secret_arn)["password"]

    def reread(self) -> bool:
        """Forget a cached master secret (it may have been rotated); False when there is none to re-read."""
        if self.secret_arn is None:
            return False
        from fraud.core.aws import invalidate_secret

        invalidate_secret(self.settings, self.secret_arn)
        return True


def _rds(settings: Settings, role: DbRole) -> tuple[URL, _RdsLogin]:
    """RDS's URL for `role` (no password: `_RdsLogin` makes one per connection) over verified TLS."""
    user, secret_arn = user_of(settings, role), None
    if user is None:
        if settings.db_secret_arn is None:
            raise RuntimeError("migrations in aws mode need FRAUD_DB_SECRET_ARN (the RDS master secret)")
        from fraud.core.aws import secret_json

        secret_arn = settings.db_secret_arn
        user = secret_json(settings, secret_arn)["username"]
    url = URL.create(
        "postgresql+psycopg",
        username=user,
        host=settings.db_host,
        port=settings.db_port,
        database=settings.db_name,
        query={"sslmode": "verify-full", "sslrootcert": str(ssl_root_cert(settings))},
    )
    login = _RdsLogin(
        settings.db_host, settings.db_port, user, secret_arn, settings.aws_region, settings.aws_endpoint_url, settings
    )
    return url, login


def _url_and_login(settings: Settings, role: DbRole) -> tuple[URL, _RdsLogin | None]:
    """The URL `role` connects with and, on RDS, how each connection gets its password (None elsewhere)."""
    if settings.database_url is None and settings.mode == "aws" and settings.db_host is None:
        if settings.db_secret_arn is not None:
            raise RuntimeError("aws mode needs FRAUD_DB_HOST (the RDS endpoint; `fraud aws-env` prints it)")
    if _on_rds(settings):
        return _rds(settings, role)
    if settings.database_url is not None:
        url = _sqlalchemy_url(settings.database_url.get_secret_value())
    else:
        url = _sqlalchemy_url(start_embedded(settings.pg_dir))
    user = user_of(settings, role)
    if user is not None:  # the same server as the role: trusted locally (see the module docstring)
        url = url.set(username=user, password=None)
    return url, None


def database_url(settings: Settings, role: DbRole = DbRole.OWNER) -> str:
    """The SQLAlchemy URL `role` connects with (the owner's unless named). In aws mode it holds no password:
    `get_engine`'s connections and `conninfo` get a fresh one each."""
    return _url_and_login(settings, role)[0].render_as_string(hide_password=False)


def conninfo(settings: Settings, role: DbRole) -> str | Callable[[], str]:
    """For psycopg (the real-time path's pool): a libpq connection string, or in aws mode a callable the pool calls
    per new connection, returning one with a fresh password."""
    from psycopg.conninfo import make_conninfo

    url, login = _url_and_login(settings, role)
    url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    if login is None:
        return url
    return lambda: make_conninfo(url, password=login.password())


def authentication_failed(error: BaseException) -> bool:
    """Whether a connection attempt failed on its credentials (invalid_password, invalid_authorization_spec)."""
    if getattr(error, "sqlstate", None) in ("28P01", "28000"):
        return True
    return "authentication failed" in str(error)


def connect_with_login(connect: Callable[..., object], cparams: dict, login: _RdsLogin) -> object:
    """Connect with the login's password; when authentication fails and the password came from a cached secret,
    re-read the secret once and retry (a rotation), else give up."""
    import psycopg

    cparams["password"] = login.password()
    try:
        return connect(**cparams)
    except psycopg.OperationalError as error:
        if not (authentication_failed(error) and login.reread()):
            raise
    cparams["password"] = login.password()
    return connect(**cparams)


# an engine built by `get_engine` for a component role → (settings, role): `owner_engine` finds the owner's
_BUILT: weakref.WeakKeyDictionary[Engine, tuple[Settings, DbRole]] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=16)
def _engine_for(url: str, login: _RdsLogin | None) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if login is not None:

        @event.listens_for(engine, "do_connect")
        def _connect(dialect, connection_record, cargs, cparams):
            return connect_with_login(lambda **params: dialect.connect(*cargs, **params), cparams, login)

    return engine


def get_engine(settings: Settings, *, role: DbRole = DbRole.OWNER) -> Engine:
    """The engine of `role` (fraud/db/roles.py) on the platform's database; one per URL and process. Components
    name their role (tests/db/test_roles.py checks they do); the owner's is for migrations, tests and tools."""
    url, login = _url_and_login(settings, role)
    engine = _engine_for(url.render_as_string(hide_password=False), login)
    _BUILT[engine] = (settings, role)
    return engine


def owner_engine(engine: Engine) -> Engine:
    """The owner's engine on the database `engine` (from `get_engine`) connects to; `engine` itself otherwise."""
    built = _BUILT.get(engine)
    if built is None or built[1] is DbRole.OWNER:
        return engine
    return get_engine(built[0], role=DbRole.OWNER)


def create_database_if_missing(server: URL | str, name: str) -> URL:
    """The URL of database `name` on the server `server` connects to, created if it does not exist yet. Safe when
    two processes start at once (Dagster's webserver and daemon): the loser of the race finds the database there."""
    engine = create_engine(server, isolation_level="AUTOCOMMIT")  # CREATE DATABASE: no transaction
    try:
        with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if not connection.execute(query, {"name": name}).scalar():
                quoted = connection.dialect.identifier_preparer.quote(name)
                try:
                    connection.execute(text(f"CREATE DATABASE {quoted}"))
                except DBAPIError as error:  # duplicate_database, or the catalog's unique index under a race
                    if not connection.execute(query, {"name": name}).scalar():
                        raise error
        return engine.url.set(database=name)
    finally:
        engine.dispose()


def sibling_database(settings: Settings, name: str) -> URL:
    """The URL of database `name` on the platform's server (created on first use), for a neighbour such as
    Dagster's instance storage."""
    return create_database_if_missing(database_url(settings, DbRole.OWNER), name)
