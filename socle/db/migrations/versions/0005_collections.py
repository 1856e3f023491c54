"""Collections of documents, and the permissions to use and publish them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ROLES = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("permissions", sa.JSON))


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False, server_default=""),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id", ondelete="CASCADE"), nullable=True, index=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    # Users keep collections of their own documents; publishing to everyone stays with admins.
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)
                                                   .where(_ROLES.c.name == "user")):
        if "collections:own" not in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=sorted([*permissions, "collections:own"])))


def downgrade() -> None:
    op.drop_table("collections")
