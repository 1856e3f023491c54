"""Retention: the record of each run of the retention job (when, and how many rows of each kind it deleted).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "retention_runs",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("day", sa.String(10), nullable=False, index=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False, index=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("retention_runs")
