"""Audit trail: the hash-chained table of security-relevant actions; the ``audit:read`` permission and the
built-in ``auditor`` role that holds it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ROLES = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("description", sa.String), sa.column("permissions", sa.JSON),
                  sa.column("builtin", sa.Boolean))
_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
AUDITOR = {"name": "auditor", "description": "Reads the audit trail and the register of processing "
           "activities (the data protection officer, the security officer).",
           "permissions": ["audit:read", "keys:own", "models:read"], "builtin": True}


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False, index=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger, nullable=True),
        sa.Column("actor_key_id", sa.BigInteger, nullable=True),
        sa.Column("target_type", sa.String(32), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_events_action_at", "audit_events", ["action", "at"])
    op.create_index("ix_audit_events_actor", "audit_events", ["actor_user_id", "at"])
    connection = op.get_bind()
    existing = sa.select(sa.func.count()).select_from(_ROLES).where(_ROLES.c.name == "auditor")
    if connection.scalar(existing) == 0:
        op.bulk_insert(_ROLES, [AUDITOR])
    else:  # a role of that name was made by hand: it gets the permission
        for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)
                                                       .where(_ROLES.c.name == "auditor")):
            if "audit:read" not in permissions:
                connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                                   .values(permissions=sorted([*permissions, "audit:read"])))


def downgrade() -> None:
    op.drop_table("audit_events")
    op.execute(_ROLES.delete().where(_ROLES.c.name == "auditor", _ROLES.c.builtin == sa.true()))
