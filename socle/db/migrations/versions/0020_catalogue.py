"""The catalogue of models in the database: models and their backends changed from the browser (keys encrypted),
the YAML file's imported at start, and the revision every process polls to apply a change without a restart.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalogue_models",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("card", sa.JSON, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "catalogue_backends",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("model_id", _BIG_ID, sa.ForeignKey("catalogue_models.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    state = op.create_table(
        "catalogue_state",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.bulk_insert(state, [{"id": 1, "revision": 0, "updated_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("catalogue_state")
    op.drop_table("catalogue_backends")
    op.drop_table("catalogue_models")
