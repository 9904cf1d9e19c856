"""Apply the Alembic migrations (`fraud db upgrade`); the config is built here, no alembic.ini needed.

Migrations run as the schema's owner (fraud/db/roles.py): `upgrade` given a component's engine checks the schema is
at head as that role and migrates through the owner's engine only when it is not."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from fraud.db.engine import owner_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def alembic_config(engine: Engine) -> Config:
    config = _config()
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate `engine`'s database to `revision`, as its owner. A component's engine does nothing when the schema
    is at head already; otherwise the owner's engine (fraud.db.engine.owner_engine) migrates: locally the embedded
    server's superuser, in AWS the master secret (which only the deploy step can read)."""
    owner = owner_engine(engine)
    if owner is not engine and revision == "head" and _at_head(engine):
        return
    with owner.begin() as connection:
        config = alembic_config(owner)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _at_head(engine: Engine) -> bool:
    """Whether a component's role sees the schema at head; False when it cannot tell (a database from before the
    roles: the role may not exist yet, or may not read alembic_version)."""
    try:
        return current_revision(engine) == head_revision()
    except DBAPIError:
        return False


def downgrade(engine: Engine, revision: str) -> None:
    owner = owner_engine(engine)
    with owner.begin() as connection:
        config = alembic_config(owner)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
