"""Job leases: which replica runs a job and until when, so replicas sharing a database never run
the same job twice and a dead replica's jobs are taken over once its lease expires.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_owner", sa.String, nullable=True))
    op.add_column("jobs", sa.Column("lease_expires", sa.Double, nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "lease_expires")
    op.drop_column("jobs", "lease_owner")
