"""Batches of ``/v1/batches`` and the results of their requests, kept until the batch's files are written.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("owner_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_id", _BIG_ID, nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", _BIG_ID, nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("errors", sa.JSON, nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("completed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("output_file_id", _BIG_ID, nullable=True),
        sa.Column("error_file_id", _BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        *(sa.Column(name, UTCDateTime, nullable=True) for name in (
            "in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
            "cancelled_at")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_batches_owner", "batches", ["owner_id", "id"])
    op.create_table(
        "batch_results",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("batch_id", _BIG_ID, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("batch_id", "line", name="uq_batch_results_line"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("batch_results")
    op.drop_index("ix_batches_owner", table_name="batches")
    op.drop_table("batches")
