"""SQLAlchemy ORM models: the tables of the metadata store (SQLite or PostgreSQL).

Schema changes go through an Alembic migration in ``migrations/versions``; never ``create_all``.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


IdType = BigInteger().with_variant(Integer, "sqlite")
"""The type of every integer id and of every column that points at one: 64-bit on PostgreSQL, so that ids
never run out at 2^31; on SQLite an id must stay ``INTEGER`` (the rowid), which is 64-bit already."""
NEVER_REUSED = {"sqlite_autoincrement": True}
"""Table options of every table with an integer id: SQLite would otherwise hand the highest deleted id
out again (``AUTOINCREMENT`` prevents it), and a new row would inherit what pointed at the deleted one."""


class Base(DeclarativeBase):
    pass


group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", IdType, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Role(Base):
    """A named set of permissions. Roles are data: admins create and edit them."""

    __tablename__ = "roles"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role_id: Mapped[int] = mapped_column(IdType, ForeignKey("roles.id"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True, deferred=True)  # argon2id

    role: Mapped[Role] = relationship(lazy="joined")
    groups: Mapped[list[Group]] = relationship(secondary=group_members, back_populates="members", lazy="selectin")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(secondary=group_members, back_populates="groups", lazy="selectin")


class ApiKey(Base):
    """An API key: its public id and the SHA-256 of its secret. The secret itself is never stored."""

    __tablename__ = "api_keys"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class UsageRecord(Base):
    """One call through the gateway. No foreign keys: accounting outlives users, keys and models."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_user_created", "user_id", "created_at"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_id: Mapped[int] = mapped_column(IdType)
    key_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    role: Mapped[str] = mapped_column(String(64))
    group_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    model: Mapped[str] = mapped_column(String(200), index=True)
    backend: Mapped[str | None] = mapped_column(String(300), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    energy_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    co2_kg: Mapped[float] = mapped_column(Float, default=0.0)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # X-Request-Id of the call


class Quota(Base):
    """A limit on calls: who it binds (``scope`` + ``subject``), on which model, and how much.

    scope ``key``/``user``: that key's or user's calls; ``group``: the group's calls together;
    ``role``: each user of the role separately; ``global``: everybody's calls together.
    ``model`` None counts every model together.
    """

    __tablename__ = "quotas"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requests_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_period: Mapped[str] = mapped_column(String(8), default="month")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """A durable background job: queued until a worker leases it; a lease that runs out (the worker
    died) makes it claimable again, so nothing accepted is lost."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "run_after"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the request that enqueued it


class Collection(Base):
    """A set of documents. Who reads it is decided by ``visibility``: ``private`` (its owner),
    ``group`` (the members of ``group_id``) or ``public`` (every user); only its owner changes it."""

    __tablename__ = "collections"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    group_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("groups.id", ondelete="CASCADE"),
                                                 nullable=True, index=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    documents: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped whenever its chunks or vectors change
    conversation_id: Mapped[int | None] = mapped_column(  # the conversation whose dropped files it holds
        IdType, ForeignKey("conversations.id", ondelete="CASCADE", name="fk_collections_conversation"),
        nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    """An uploaded file and its ingestion: ``queued → processing → ready | failed`` (with ``error``).

    The file itself is kept, content-addressed by ``content_hash``, until it is ingested, so that an
    accepted document survives a crash; uploading the same content twice into a collection returns the
    same document."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "content_hash", name="uq_documents_content"),
                      NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    collection_id: Mapped[int] = mapped_column(IdType, ForeignKey("collections.id", ondelete="CASCADE"),
                                               index=True)
    name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    title: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    chunk_min_size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # smaller chunks: dropped
    meta: Mapped[dict[str, object] | None] = mapped_column("metadata", JSON, nullable=True)  # the client's, as given
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    embedded: Mapped[int] = mapped_column(Integer, default=0)  # chunks that have their vector
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Embedding(TypeDecorator[bytes]):
    """A vector: pgvector's ``vector`` on PostgreSQL, little-endian float32 bytes on SQLite."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: object, dialect: Dialect) -> object:
        if value is None:
            return None
        import numpy as np

        vector = np.asarray(value, dtype="<f4")
        return vector if dialect.name == "postgresql" else vector.tobytes()


class Chunk(Base):
    """A passage of a document. ``lexical`` is its text as the full-text index sees it (analysed:
    folded, stemmed, stop words out); the store's full-text index is built from it."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_document", "document_id", "idx"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    document_id: Mapped[int] = mapped_column(IdType, ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(IdType, ForeignKey("collections.id", ondelete="CASCADE"),
                                               index=True)
    idx: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lexical: Mapped[str] = mapped_column(Text)
    embedding: Mapped[object | None] = mapped_column(Embedding, nullable=True, deferred=True)
    meta: Mapped[dict[str, object] | None] = mapped_column("metadata", JSON, nullable=True)  # its document's


class LoginSession(Base):
    """A signed-in browser (the web UI). Only the SHA-256 of the cookie's 256-bit secret is stored, so a
    copy of the database signs no one in; ``csrf_token`` must come back with every state-changing request."""

    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's secret
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # for the idle timeout
    id_token: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)  # ends ProConnect's session


class AccountLink(Base):
    """A single-use link that lets a person set their own password: an invitation, or a password reset.
    Only the SHA-256 of its 256-bit secret is stored (as for sessions and keys): a copy of the database opens
    no account. ``created_by``: the admin who issued it (none for a reset the person asked for)."""

    __tablename__ = "account_links"
    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # invitation | reset
    created_by: Mapped[int | None] = mapped_column(IdType, nullable=True)  # no key: the admin may be erased
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Conversation(Base):
    """A chat, in the web UI or through ``/v1/conversations``, its owner's alone. ``collection_ids`` holds the
    collections its latest turn searched (empty for a plain chat)."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    collection_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leaf_id: Mapped[int | None] = mapped_column(IdType, nullable=True)  # the last message of the branch shown


class Message(Base):
    """One turn of a conversation. An assistant's message keeps the model that wrote it, the excerpts it
    was given (``sources``) and its author's rating (-1, 1 or none) with an optional comment: the
    platform's qualitative impact indicator."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation", "conversation_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(IdType, ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(IdType, nullable=True)  # the message it follows
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sources: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """One entry of the audit trail, chained to the one before: ``hash`` is the SHA-256 of ``prev_hash`` and
    the entry's canonical JSON (``socle.audit.chain``). People appear by id only, so that erasing one never
    rewrites the chain; ids are never reused (AUTOINCREMENT on SQLite)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_at", "action", "at"),
                      Index("ix_audit_events_actor", "actor_user_id", "at"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # no foreign key: kept on erasure
    actor_key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RetentionRun(Base):
    """One run of the retention job: when, and how many rows of each kind it deleted (``counts``), for the
    administrators' page "Conservation des données"."""

    __tablename__ = "retention_runs"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # ISO date (UTC) the run is for
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class SiteSetting(Base):
    """One of the site's settings that the administration changes from the browser (``socle.site``): its name,
    its value as JSON, who changed it last and when. A name not stored takes its default from the
    environment."""

    __tablename__ = "site_settings"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[object] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # no foreign key: kept on erasure


class CatalogueModel(Base):
    """A model of the catalogue (``socle.inference.catalogue_store``): its settings and card as the catalogue's
    YAML writes them, whether it is served, and where it was declared (``yaml``: the file, which stays
    authoritative for it; ``ui``: the browser)."""

    __tablename__ = "catalogue_models"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # the model id clients name
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order of /v1/models and of the pickers
    origin: Mapped[str] = mapped_column(String(8))  # yaml | ui
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # ModelConfig less id, backends, card
    card: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # no foreign key: kept on erasure
    backends: Mapped[list[CatalogueBackend]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="CatalogueBackend.position",
        lazy="selectin")


class CatalogueBackend(Base):
    """One backend of a catalogue model: its entry as the YAML writes it (never a key), and the key entered in the
    browser, encrypted (Fernet, ``SOCLE_ENCRYPTION_KEYS``)."""

    __tablename__ = "catalogue_backends"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    model_id: Mapped[int] = mapped_column(IdType, ForeignKey("catalogue_models.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    model: Mapped[CatalogueModel] = relationship(back_populates="backends")


class CatalogueState(Base):
    """One row: the catalogue's revision, raised by every change; each process polls it to know when to reload."""

    __tablename__ = "catalogue_state"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FineTuningJob(Base):
    """A fine-tuning job (``/v1/fine_tuning/jobs``): what its owner asked for, the hyperparameters resolved, and
    where it stands (``validating_files → queued → running → succeeded | failed | cancelled``). Files are named
    by id without a foreign key: a training file deleted later leaves the job's history whole."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_fine_tuning_jobs_owner", "owner_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))  # the base model
    training_file_id: Mapped[int] = mapped_column(IdType)
    validation_file_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hyperparameters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # resolved: no "auto" left
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32), default="validating_files")
    error: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)  # {code, message, param}
    fine_tuned_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    estimate: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)  # examples, tokens, time, cost
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FineTuningEvent(Base):
    """A line of a job's log: a ``message``, or ``metrics`` (step, losses) that the events API and the chart show."""

    __tablename__ = "fine_tuning_events"
    __table_args__ = (Index("ix_fine_tuning_events_job", "job_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(8), default="info")  # info | warn | error
    type: Mapped[str] = mapped_column(String(16), default="message")  # message | metrics
    message: Mapped[str] = mapped_column(String(2000))
    data: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FineTuningCheckpoint(Base):
    """A checkpoint a job saved (the engine resumes from the last one after a crash), with its metrics."""

    __tablename__ = "fine_tuning_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_fine_tuning_checkpoints_step"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1000))
    train_loss: Mapped[float] = mapped_column(Float)
    valid_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UploadedFile(Base):
    """A file of ``/v1/files`` (training data, batch input...), its owner's alone; the bytes lie in the data
    directory under its id. ``status``: ``processed`` once checked (a fine-tuning file passed its validation),
    ``error`` with ``status_details`` otherwise; ``checks`` keeps what the validation found (examples, tokens,
    line-numbered errors) for the pages that show it."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_owner", "owner_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="processed")  # processed | error
    status_details: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    checks: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredResponse(Base):
    """A response of the Responses API (``/v1/responses``), its owner's alone. ``input_items`` is the whole
    context the model was given (the previous response's context and output, then this request's input), so
    that a response continued by ``previous_response_id`` is read in one query; ``parameters`` holds what the
    response object repeats (tools, temperature, metadata...)."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_owner", "owner_id", "id"), Index("ix_responses_created", "created_at"),
                      NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # in_progress | completed | incomplete | failed
    instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    input_items: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    output: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    usage: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    parameters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    previous_response_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Batch(Base):
    """A batch of ``/v1/batches``, its owner's alone: requests read from an input file, run by a job at low
    priority. ``key_id`` is the API key that created it: its requests count against that key's quotas too."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_owner", "owner_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    key_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[int] = mapped_column(IdType)
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    batch_metadata: Mapped[dict[str, object] | None] = mapped_column("metadata", JSON, nullable=True)
    errors: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    error_file_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BatchResult(Base):
    """One request of a batch, done: its output line (a response or an error), kept under the request's line
    number until the batch's files are written. The unique line is what makes a resumed batch run each request
    once and write each result once."""

    __tablename__ = "batch_results"
    __table_args__ = (UniqueConstraint("batch_id", "line", name="uq_batch_results_line"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    batch_id: Mapped[int] = mapped_column(IdType, ForeignKey("batches.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    record: Mapped[dict[str, object]] = mapped_column(JSON)
