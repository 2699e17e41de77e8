"""Comparison sequence: each comparison gets the next number as it is stored, so an export can be read
incrementally (`after=`) and checked for completeness without trusting any replica's clock.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("comparisons") as batch:
        batch.add_column(sa.Column("seq", sa.Integer, nullable=True))
    # Existing comparisons are numbered in the order the export used to follow.
    op.execute("UPDATE comparisons SET seq = (SELECT COUNT(*) FROM comparisons AS earlier "
               "WHERE earlier.created < comparisons.created "
               "OR (earlier.created = comparisons.created AND earlier.id <= comparisons.id))")
    with op.batch_alter_table("comparisons") as batch:
        batch.alter_column("seq", existing_type=sa.Integer, nullable=False)
    op.create_index("ux_comparisons_seq", "comparisons", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_comparisons_seq", "comparisons")
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("seq")
