"""The request id of each call in its usage row, and of the request that enqueued each job (so that a job's
logs name the request it serves).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): instant on both engines, however many usage rows there are.
    op.add_column("usage", sa.Column("request_id", sa.String(128), nullable=True))
    op.add_column("jobs", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    """SQLite rebuilds the tables to drop a column."""
    with op.batch_alter_table("jobs") as table:
        table.drop_column("request_id")
    with op.batch_alter_table("usage") as table:
        table.drop_column("request_id")
