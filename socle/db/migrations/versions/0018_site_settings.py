"""Site settings changed from the browser (welcome text, suggestions, default model, legal pages, accessibility);
the built-in roles' descriptions in French, where they are still the original ones.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_ROLES = sa.table("roles", sa.column("name", sa.String), sa.column("description", sa.String))
# name: (the original description, its French version) — a description an administrator rewrote is kept.
DESCRIPTIONS = {
    "admin": ("Administers the platform: every permission.",
              "Administre la plateforme : toutes les permissions."),
    "user": ("Uses the models and manages their own API keys.",
             "Utilise l'assistant et ses documents, et gère ses propres clés d'API."),
    "auditor": ("Reads the audit trail and the register of processing activities (the data protection officer, "
                "the security officer).",
                "Consulte le journal d'audit et le registre des traitements (délégué à la protection des "
                "données, responsable de la sécurité)."),
}


def upgrade() -> None:
    op.create_table(
        "site_settings",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sqlite_autoincrement=True,
    )
    _describe(lambda pair: pair)


def downgrade() -> None:
    _describe(lambda pair: (pair[1], pair[0]))
    op.drop_table("site_settings")


def _describe(direction: Callable[[tuple[str, str]], tuple[str, str]]) -> None:
    for name, pair in DESCRIPTIONS.items():
        old, new = direction(pair)
        op.execute(_ROLES.update().where(_ROLES.c.name == name, _ROLES.c.description == old)
                   .values(description=new))
