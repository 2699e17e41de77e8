"""Report leases: a pending helper report is leased to the replica generating it, so replicas sharing a
database never generate the same report twice, and a dead replica's reports move on once its lease expires.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reports", sa.Column("lease_owner", sa.String, nullable=True))
    op.add_column("reports", sa.Column("lease_expires", sa.Double, nullable=True))


def downgrade() -> None:
    op.drop_column("reports", "lease_expires")
    op.drop_column("reports", "lease_owner")
