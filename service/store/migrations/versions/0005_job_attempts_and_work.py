"""Job attempts: how often a job was claimed, so a job that kills every replica running it (out of memory)
is failed after a few tries instead of being claimed forever; and a job's estimated work in tokens, so a
key's unfinished jobs can be held to a budget.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("work_tokens", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("jobs", "work_tokens")
    op.drop_column("jobs", "attempts")
