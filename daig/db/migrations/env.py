"""Alembic environment: runs migrations on the URL given by ``daig.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from daig.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(config.attributes["database_url"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
