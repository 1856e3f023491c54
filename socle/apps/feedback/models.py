"""The feedback app's tables, on the platform's metadata: datasets of citizens' messages, the analyses run over
them and one annotation per message analysed. Their schema changes go through the app's migrations."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from socle.db.models import NEVER_REUSED, Base, IdType, UTCDateTime, utcnow


class FeedbackDataset(Base):
    """A set of citizens' feedback messages imported for analysis. ``owner_id`` is none for the
    operator's (the CLI's) datasets; every other one is its owner's alone."""

    __tablename__ = "feedback_datasets"
    __table_args__ = (Index("ix_feedback_datasets_owner", "owner_id", "name"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"),
                                                 nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500), default="")  # the imported file's name
    source_format: Mapped[str] = mapped_column(String(32), default="")  # csv | sp+ | jsonl | xlsx
    messages: Mapped[int] = mapped_column(Integer, default=0)
    labelled: Mapped[int] = mapped_column(Integer, default=0)  # messages that came with ground-truth labels
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedbackMessage(Base):
    """One message as imported. ``labels`` holds the ground truth that came with it, if any (themes,
    subthemes, sentiment, urgent); ``extra`` the source's other columns worth keeping."""

    __tablename__ = "feedback_messages"
    __table_args__ = (UniqueConstraint("dataset_id", "external_id", name="uq_feedback_messages_external"),
                      NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(IdType, ForeignKey("feedback_datasets.id", ondelete="CASCADE"),
                                            index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    written_on: Mapped[str | None] = mapped_column(String(10), nullable=True)  # ISO date
    service: Mapped[str | None] = mapped_column(String(300), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    labels: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)


class FeedbackAnalysis(Base):
    """One run of an engine over a dataset: a durable job whose results are its annotations.
    ``status``: queued → running → done | failed | stopped (its token budget or quota ran out: it can be
    resumed). ``topics`` holds the emerging topics found once every message is annotated."""

    __tablename__ = "feedback_analyses"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(IdType, ForeignKey("feedback_datasets.id", ondelete="CASCADE"),
                                            index=True)
    owner_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"),
                                                 nullable=True)
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    token_budget: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    topics: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FeedbackAnnotation(Base):
    """An engine's reading of one message, written once: a resumed analysis skips the messages that
    have theirs. ``status`` is ``ok`` or ``invalid`` (the model's output never matched the schema:
    ``error`` says why); ``result`` is the schema-valid annotation, ``text`` the pseudonymised message."""

    __tablename__ = "feedback_annotations"
    __table_args__ = (UniqueConstraint("analysis_id", "message_id", name="uq_feedback_annotations_message"),
                      NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    analysis_id: Mapped[int] = mapped_column(IdType, ForeignKey("feedback_analyses.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(IdType, ForeignKey("feedback_messages.id", ondelete="CASCADE"),
                                            index=True)
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    personal_data: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)  # float32, for topics
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
