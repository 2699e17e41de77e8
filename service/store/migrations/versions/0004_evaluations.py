"""Evaluations: comparison tasks (pairs of outputs of one node), their leases to evaluators, and the
comparisons evaluators submit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluation_tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("first", sa.String, nullable=False),
        sa.Column("second", sa.String, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("lease_id", sa.String(32), nullable=True),
        sa.Column("lease_owner", sa.String, nullable=True),
        sa.Column("lease_expires", sa.Double, nullable=True),
    )
    op.create_index("ix_evaluation_tasks_lease_owner", "evaluation_tasks", ["lease_owner"])
    op.create_table(
        "evaluation_leases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("task_id", sa.String(64), sa.ForeignKey("evaluation_tasks.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("evaluator", sa.String, nullable=False),
        sa.Column("leased", sa.Double, nullable=False),
        sa.Column("expires", sa.Double, nullable=False),
        sa.Column("submitted", sa.Double, nullable=True),
    )
    op.create_index("ix_evaluation_leases_evaluator", "evaluation_leases", ["evaluator"])
    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("lease_id", sa.String(32), nullable=False, unique=True),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String, nullable=False),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("refs", sa.JSON, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("policies", sa.JSON, nullable=False),
        sa.Column("preference", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Double, nullable=True),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("reports_opened", sa.JSON, nullable=False),
        sa.Column("flagged", sa.JSON, nullable=False),
        sa.Column("evaluator", sa.String, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
    )
    op.create_index("ix_comparisons_created", "comparisons", ["created"])
    op.create_index("ix_comparisons_evaluator_task", "comparisons", ["evaluator", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_comparisons_evaluator_task", "comparisons")
    op.drop_index("ix_comparisons_created", "comparisons")
    op.drop_table("comparisons")
    op.drop_index("ix_evaluation_leases_evaluator", "evaluation_leases")
    op.drop_table("evaluation_leases")
    op.drop_index("ix_evaluation_tasks_lease_owner", "evaluation_tasks")
    op.drop_table("evaluation_tasks")
