"""Files (/v1/files) and fine-tuning jobs, their events and checkpoints; every user may upload their own files.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_ROLES = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("permissions", sa.JSON))
_FILES_OWN = "files:own"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("owner_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.String(2000), nullable=True),
        sa.Column("checks", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_files_owner", "files", ["owner_id", "id"])
    _fine_tuning_tables()
    # Users upload their own files (training data), as they fill their own collections.
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)
                                                   .where(_ROLES.c.name == "user")):
        if _FILES_OWN not in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=sorted([*permissions, _FILES_OWN])))


def _fine_tuning_tables() -> None:
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("owner_id", _BIG_ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("training_file_id", _BIG_ID, nullable=False),
        sa.Column("validation_file_id", _BIG_ID, nullable=True),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("fine_tuned_model", sa.String(200), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger, nullable=True),
        sa.Column("estimate", sa.JSON, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_fine_tuning_jobs_owner", "fine_tuning_jobs", ["owner_id", "id"])
    op.create_table(
        "fine_tuning_events",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("job_id", _BIG_ID, sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_fine_tuning_events_job", "fine_tuning_events", ["job_id", "id"])
    op.create_table(
        "fine_tuning_checkpoints",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("job_id", _BIG_ID, sa.ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("train_loss", sa.Float, nullable=False),
        sa.Column("valid_loss", sa.Float, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("job_id", "step", name="uq_fine_tuning_checkpoints_step"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("fine_tuning_checkpoints")
    op.drop_table("fine_tuning_events")
    op.drop_table("fine_tuning_jobs")
    op.drop_table("files")
    connection = op.get_bind()
    for role_id, permissions in connection.execute(sa.select(_ROLES.c.id, _ROLES.c.permissions)):
        if _FILES_OWN in permissions:
            connection.execute(_ROLES.update().where(_ROLES.c.id == role_id)
                               .values(permissions=[p for p in permissions if p != _FILES_OWN]))
