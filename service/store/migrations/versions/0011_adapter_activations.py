"""Adapter activations: the bundle every replica serves, and the one each job started on.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "adapter_activations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("directory", sa.Text, nullable=True),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("activated", sa.Double, nullable=False),
        sa.Column("activated_by", sa.String, nullable=False),
    )
    op.add_column("jobs", sa.Column("bundle", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "bundle")
    op.drop_table("adapter_activations")
