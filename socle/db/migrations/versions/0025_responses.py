"""Stored responses of the Responses API (``/v1/responses``): what was asked, what the model answered, and the
context a later response continues from (``previous_response_id``).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("owner_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("instructions", sa.Text, nullable=True),
        sa.Column("input_items", sa.JSON, nullable=False),
        sa.Column("output", sa.JSON, nullable=False),
        sa.Column("usage", sa.JSON, nullable=True),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("previous_response_id", _BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_responses_owner", "responses", ["owner_id", "id"])
    op.create_index("ix_responses_created", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created", table_name="responses")
    op.drop_index("ix_responses_owner", table_name="responses")
    op.drop_table("responses")
