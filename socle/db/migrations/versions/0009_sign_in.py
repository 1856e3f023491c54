"""Web UI sign-in: idle timeout of sessions, and the ProConnect ID token that ends the provider's session.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_sessions", sa.Column("last_seen_at", UTCDateTime, nullable=True))
    op.execute("UPDATE login_sessions SET last_seen_at = created_at")
    with op.batch_alter_table("login_sessions") as batch:  # SQLite rebuilds the table to change a column
        batch.alter_column("last_seen_at", existing_type=UTCDateTime, nullable=False)
    op.add_column("login_sessions", sa.Column("id_token", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("id_token")
        batch.drop_column("last_seen_at")
