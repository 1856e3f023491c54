"""Usage: one row per call (tokens, latency, status, cost, energy, carbon).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False, index=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("group_ids", sa.JSON, nullable=False),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("backend", sa.String(300), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("energy_kwh", sa.Float, nullable=False),
        sa.Column("co2_kg", sa.Float, nullable=False),
    )
    op.create_index("ix_usage_user_created", "usage", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("usage")
