"""Callback outbox: a job's pending callback is a row, written with the job, so it survives restarts and is
delivered by whichever replica leases it; attempts keep a coarse outcome instead of the receiver's status
code and error text (which let a submitter probe the receiver's network).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.Double, nullable=False),
        sa.Column("lease_owner", sa.String, nullable=True),
        sa.Column("lease_expires", sa.Double, nullable=True),
    )
    op.create_index("ix_callback_deliveries_status", "callback_deliveries", ["status", "next_attempt"])
    # Jobs still queued or running keep their callbacks: they enter the outbox now.
    op.execute("INSERT INTO callback_deliveries (id, job_id, url, owner, status, attempts, next_attempt) "
               "SELECT 'msg_' || id, id, callback_url, owner, 'pending', 0, created FROM jobs "
               "WHERE callback_url IS NOT NULL AND status IN ('queued', 'running')")
    with op.batch_alter_table("callback_attempts") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=False, server_default="rejected"))
        batch.drop_column("status_code")
        batch.drop_column("error")


def downgrade() -> None:
    with op.batch_alter_table("callback_attempts") as batch:
        batch.add_column(sa.Column("error", sa.Text, nullable=True))
        batch.add_column(sa.Column("status_code", sa.Integer, nullable=True))
        batch.drop_column("outcome")
    op.drop_index("ix_callback_deliveries_status", "callback_deliveries")
    op.drop_table("callback_deliveries")
