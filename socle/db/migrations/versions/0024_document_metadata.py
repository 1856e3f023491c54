"""Albert-compatible document metadata: the client's ``metadata`` (a JSON object) on each document and its
chunks, and the smallest chunk a document keeps (Albert's ``chunk_min_size``).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("metadata", sa.JSON(), nullable=True))
    op.add_column("documents", sa.Column("chunk_min_size", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("chunks", sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table, column in (("chunks", "metadata"), ("documents", "chunk_min_size"), ("documents", "metadata")):
        if op.get_bind().dialect.name == "sqlite":
            with op.batch_alter_table(table) as batch:
                batch.drop_column(column)
        else:
            op.drop_column(table, column)
