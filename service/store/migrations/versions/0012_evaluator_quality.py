"""Evaluator quality: gold items among the comparison tasks, and whether each gold comparison was right.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("evaluation_tasks", sa.Column("gold", sa.JSON, nullable=True))
    op.add_column("comparisons", sa.Column("gold_correct", sa.Boolean, nullable=True))


def downgrade() -> None:
    op.drop_column("comparisons", "gold_correct")
    op.drop_column("evaluation_tasks", "gold")
