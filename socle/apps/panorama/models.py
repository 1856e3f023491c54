"""The Panorama app's tables, on the platform's shared metadata (one migration history): the catalogue of
AI solutions, the needs that agents declare, the calls for projects with their projects, the jury's scores
and the impact indicators of the products selected.

People are referred to with ``SET NULL``: a need or a project belongs to its administration, and stays when
the agent who wrote it leaves (the erasure of a user removes their name, not their administration's work).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from socle.db.models import NEVER_REUSED, Base, IdType, UTCDateTime, utcnow


class PanoramaSolution(Base):
    """An AI solution of the catalogue. ``vector`` is the embedding of its indexed text by ``vector_model``
    (little-endian float32), computed once and again only when its text or the model changes; ``app`` names
    the platform's own app it describes, if any."""

    __tablename__ = "panorama_solutions"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(32), index=True)
    editor: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    maturity: Mapped[str] = mapped_column(String(32))
    hosting: Mapped[str] = mapped_column(String(32))
    open_source: Mapped[bool] = mapped_column(Boolean, default=False)
    licence: Mapped[str] = mapped_column(String(100), default="")
    integration: Mapped[str] = mapped_column(String(1000), default="")
    criterion_impact: Mapped[str] = mapped_column(Text, default="")
    criterion_maturity: Mapped[str] = mapped_column(Text, default="")
    criterion_integration: Mapped[str] = mapped_column(Text, default="")
    criterion_compliance: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str] = mapped_column(String(500), default="")
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    app: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    vector_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaNeed(Base):
    """A need declared by an agent, matched to the closest solutions when written (``matches``: a list of
    ``{"solution_id", "slug", "name", "family", "score", "reason"}``) and given the family of the first."""

    __tablename__ = "panorama_needs"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    author_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="SET NULL"),
                                                  nullable=True, index=True)
    administration: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(String(200))
    irritant: Mapped[str] = mapped_column(Text)
    sufferers: Mapped[str] = mapped_column(String(500))
    volume: Mapped[str] = mapped_column(String(200), default="")
    data_available: Mapped[str] = mapped_column(Text, default="")
    workaround: Mapped[str] = mapped_column(Text, default="")
    family: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    matches: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaCall(Base):
    """A call for AI projects, judged on the seven published criteria."""

    __tablename__ = "panorama_calls"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    closes_on: Mapped[str | None] = mapped_column(String(10), nullable=True)  # YYYY-MM-DD
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaProject(Base):
    """A project an administration submits to a call: ``submitted``, then ``selected`` or ``declined``."""

    __tablename__ = "panorama_projects"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_id: Mapped[int] = mapped_column(IdType, ForeignKey("panorama_calls.id", ondelete="CASCADE"), index=True)
    submitter_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="SET NULL"),
                                                     nullable=True, index=True)
    administration: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaScore(Base):
    """One juror's marks of one project (``marks``: criterion → 0..5) and comment; a juror scores a project
    once, and may revise it."""

    __tablename__ = "panorama_scores"
    __table_args__ = (UniqueConstraint("project_id", "juror_id", name="uq_panorama_scores_juror"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(IdType, ForeignKey("panorama_projects.id", ondelete="CASCADE"),
                                            index=True)
    juror_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("users.id", ondelete="SET NULL"),
                                                 nullable=True)
    marks: Mapped[dict[str, int]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaIndicator(Base):
    """One of a selected product's two impact indicators: ``quantitative`` or ``qualitative``."""

    __tablename__ = "panorama_indicators"
    __table_args__ = (UniqueConstraint("project_id", "kind", name="uq_panorama_indicators_kind"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(IdType, ForeignKey("panorama_projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanoramaMeasure(Base):
    """An indicator's value on a day: a number for a quantitative one, a text (and optionally a mark) for a
    qualitative one."""

    __tablename__ = "panorama_measures"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(IdType, ForeignKey("panorama_indicators.id", ondelete="CASCADE"),
                                              index=True)
    measured_on: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
