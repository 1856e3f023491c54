"""Quotas: rate limits and budgets per key, user, group, role or for everyone, per model or all.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("requests_per_day", sa.Integer, nullable=True),
        sa.Column("tokens_per_minute", sa.Integer, nullable=True),
        sa.Column("budget_tokens", sa.BigInteger, nullable=True),
        sa.Column("budget_cost", sa.Float, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=False, server_default="month"),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("quotas")
