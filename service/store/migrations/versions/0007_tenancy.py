"""Tenancy: evaluation is opt-in per job (evaluators read the source text of the jobs they judge), and each
job's generations are listed, so deleting a job deletes the cached generations no other job uses.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs from before the opt-in are closed to evaluators too: their owners never agreed to it.
    op.add_column("jobs", sa.Column("evaluation", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "job_generations",
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
    )
    op.create_index("ix_job_generations_key", "job_generations", ["key"])


def downgrade() -> None:
    op.drop_index("ix_job_generations_key", "job_generations")
    op.drop_table("job_generations")
    op.drop_column("jobs", "evaluation")
