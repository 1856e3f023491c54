"""Usage rows written before backends had public labels named a remote backend ``openai:<its URL>``, which
every user reads in their usage (and a URL may have carried credentials): those names are forgotten.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_USAGE = sa.table("usage", sa.column("backend", sa.String))


def upgrade() -> None:
    op.execute(_USAGE.update().where(_USAGE.c.backend.like("openai:%")).values(backend=None))


def downgrade() -> None:
    """Nothing to restore: the addresses are gone on purpose."""
