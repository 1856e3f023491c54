"""Account links: the single-use links of invitations and password resets (only their secret's hash is kept).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "account_links",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_by", _BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("account_links")
