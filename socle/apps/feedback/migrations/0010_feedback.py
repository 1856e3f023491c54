"""Citizens' feedback app: datasets, their messages, analyses and one annotation per message analysed;
the built-in user role may use it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ROLES = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("permissions", sa.JSON))
_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback_datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("source_format", sa.String(32), nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("labelled", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_feedback_datasets_owner", "feedback_datasets", ["owner_id", "name"])
    op.create_table(
        "feedback_messages",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("feedback_datasets.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("written_on", sa.String(10), nullable=True),
        sa.Column("service", sa.String(300), nullable=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("rating", sa.Float, nullable=True),
        sa.Column("labels", sa.JSON, nullable=True),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.UniqueConstraint("dataset_id", "external_id", name="uq_feedback_messages_external"),
    )
    op.create_table(
        "feedback_analyses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("feedback_datasets.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("token_budget", sa.BigInteger, nullable=True),
        sa.Column("topics", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "feedback_annotations",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("feedback_analyses.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("message_id", _BIG_ID, sa.ForeignKey("feedback_messages.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("personal_data", sa.JSON, nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("analysis_id", "message_id", name="uq_feedback_annotations_message"),
    )
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)
                                                   .where(_ROLES.c.name == "user")):
        if "feedback:use" not in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=sorted([*permissions, "feedback:use"])))


def downgrade() -> None:
    for table in ("feedback_annotations", "feedback_analyses", "feedback_messages", "feedback_datasets"):
        op.drop_table(table)
