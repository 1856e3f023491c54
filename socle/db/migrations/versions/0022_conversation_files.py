"""Files dropped into a conversation: a collection may belong to a conversation (``conversation_id``), whose
turns search it and with which it is deleted.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a column with its foreign key without a rebuild
        op.execute("ALTER TABLE collections ADD COLUMN conversation_id INTEGER "
                   "CONSTRAINT fk_collections_conversation REFERENCES conversations (id) ON DELETE CASCADE")
    else:
        op.add_column("collections", sa.Column("conversation_id", _BIG_ID, nullable=True))
        op.create_foreign_key("fk_collections_conversation", "collections", "conversations", ["conversation_id"],
                              ["id"], ondelete="CASCADE")
    op.create_index("ix_collections_conversation_id", "collections", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_collections_conversation_id", "collections")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("collections", recreate="always", table_kwargs={"sqlite_autoincrement": True}) \
                as batch:
            batch.drop_column("conversation_id")
    else:
        op.drop_column("collections", "conversation_id")
