"""Alembic environment: runs on the connection that `service.store.database.migrate` hands over."""

from alembic import context

from recursum.service.store.tables import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
