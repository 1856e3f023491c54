"""Panorama app: the catalogue of AI solutions, the census of needs, the calls for projects (projects, the
jury's scores, the impact indicators of selected products); every user may read it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ROLES = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("permissions", sa.JSON))
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
READ = "panorama:read"


def _user(column: str) -> "sa.Column[int]":
    return sa.Column(column, _ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)


def upgrade() -> None:
    op.create_table(
        "panorama_solutions",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("slug", sa.String(120), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("family", sa.String(32), nullable=False, index=True),
        sa.Column("editor", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("maturity", sa.String(32), nullable=False),
        sa.Column("hosting", sa.String(32), nullable=False),
        sa.Column("open_source", sa.Boolean, nullable=False),
        sa.Column("licence", sa.String(100), nullable=False),
        sa.Column("integration", sa.String(1000), nullable=False),
        sa.Column("criterion_impact", sa.Text, nullable=False),
        sa.Column("criterion_maturity", sa.Text, nullable=False),
        sa.Column("criterion_integration", sa.Text, nullable=False),
        sa.Column("criterion_compliance", sa.Text, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("illustrative", sa.Boolean, nullable=False),
        sa.Column("app", sa.String(64), nullable=True),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("vector_model", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_needs",
        sa.Column("id", _ID, primary_key=True),
        _user("author_id"),
        sa.Column("administration", sa.String(200), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("irritant", sa.Text, nullable=False),
        sa.Column("sufferers", sa.String(500), nullable=False),
        sa.Column("volume", sa.String(200), nullable=False),
        sa.Column("data_available", sa.Text, nullable=False),
        sa.Column("workaround", sa.Text, nullable=False),
        sa.Column("family", sa.String(32), nullable=True, index=True),
        sa.Column("matches", sa.JSON, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_calls",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closes_on", sa.String(10), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_projects",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("call_id", _ID, sa.ForeignKey("panorama_calls.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        _user("submitter_id"),
        sa.Column("administration", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_scores",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("project_id", _ID, sa.ForeignKey("panorama_projects.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("juror_id", _ID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("marks", sa.JSON, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("project_id", "juror_id", name="uq_panorama_scores_juror"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_indicators",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("project_id", _ID, sa.ForeignKey("panorama_projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(50), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("project_id", "kind", name="uq_panorama_indicators_kind"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "panorama_measures",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("indicator_id", _ID, sa.ForeignKey("panorama_indicators.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("measured_on", sa.String(10), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)
                                                   .where(_ROLES.c.name == "user")):
        if READ not in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=sorted([*permissions, READ])))


def downgrade() -> None:
    for table in ("panorama_measures", "panorama_indicators", "panorama_scores", "panorama_projects",
                  "panorama_calls", "panorama_needs", "panorama_solutions"):
        op.drop_table(table)
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)):
        if READ in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=[p for p in permissions if p != READ]))
