"""Conversations as trees: a question edited and sent again, or an answer written again, starts a new branch
next to the earlier one, which stays reachable. Each message names the one it follows (``parent_id``); a
conversation names the last message of the branch it shows (``leaf_id``). Existing conversations become one
branch, each message following the one before it.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.add_column("messages", sa.Column("parent_id", _BIG_ID, nullable=True))
    op.add_column("conversations", sa.Column("leaf_id", _BIG_ID, nullable=True))
    op.execute("UPDATE messages SET parent_id = (SELECT MAX(earlier.id) FROM messages AS earlier "
               "WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)")
    op.execute("UPDATE conversations SET leaf_id = (SELECT MAX(messages.id) FROM messages "
               "WHERE messages.conversation_id = conversations.id)")


def downgrade() -> None:
    op.drop_column("conversations", "leaf_id")
    op.drop_column("messages", "parent_id")
