"""An analysis whose job was dropped as a duplicate of a finished job of the same id gets its job.

Before 0011 a finished job kept its dedupe key, so an analysis that reused a deleted one's id could be left
queued with no job to run it; 0011 released those keys, and this gives every queued analysis still without a
job waiting for it its job. Nothing changes in the schema.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from socle.db.models import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_JOBS = sa.table("jobs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                 sa.column("payload", sa.JSON), sa.column("dedupe_key", sa.String),
                 sa.column("status", sa.String),
                 sa.column("attempts", sa.Integer), sa.column("max_attempts", sa.Integer),
                 sa.column("run_after", UTCDateTime), sa.column("created_at", UTCDateTime))
_ANALYSES = sa.table("feedback_analyses", sa.column("id", sa.Integer), sa.column("status", sa.String),
                     sa.column("options", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    waiting = {key for (key,) in bind.execute(sa.select(_JOBS.c.dedupe_key)
                                              .where(_JOBS.c.dedupe_key.isnot(None)))}
    now = datetime.now(UTC)
    missing: list[dict[str, object]] = []
    for analysis_id, options in bind.execute(sa.select(_ANALYSES.c.id, _ANALYSES.c.options)
                                             .where(_ANALYSES.c.status == "queued")):
        run = int((options or {}).get("runs", 0))
        key = f"feedback.analyze:{analysis_id}:{run}"
        if key not in waiting:
            missing.append({"kind": "feedback.analyze", "payload": {"analysis_id": analysis_id, "run": run},
                            "dedupe_key": key, "status": "queued", "attempts": 0, "max_attempts": 10,
                            "run_after": now, "created_at": now})
    if missing:
        bind.execute(_JOBS.insert(), missing)


def downgrade() -> None:
    """The jobs given stay: they run the analyses they were given for."""
