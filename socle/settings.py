"""Settings: one pydantic-settings object (env vars ``SOCLE_*``) plus the YAML model catalogue.

Everything an operator can change is declared here, once, except what a backend's entry of the catalogue
holds: each backend module declares that itself (:mod:`socle.inference.catalogue`). Invalid configuration
fails at start with a :class:`ConfigError` that names the faulty field (``models[0].backends[1].url: ...``).
"""
from __future__ import annotations

import functools
import ipaddress
import urllib.parse
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from socle.endpoints import PLATFORM_TYPES, ModelType
from socle.identity import keys
from socle.inference.audience import Audience
from socle.inference.cards import ModelCard
from socle.inference.catalogue import backend_kinds, config_union

RoutingStrategy = Literal["least-busy", "round-robin", "weighted"]


WORKER_ROLES = ("api", "jobs", "training")


def _roles(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the faulty field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# One backend entry of the catalogue: the config models the backend modules declare, told apart by ``type``.
BackendConfig = config_union()


class Pricing(_Strict):
    """Price per million tokens, in the platform's currency (``SOCLE_CURRENCY``)."""

    input_per_million: float = Field(default=0.0, ge=0)
    output_per_million: float = Field(default=0.0, ge=0)


    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


class Impact(_Strict):
    """Model size, for the energy and carbon estimates (EcoLogits' methodology)."""

    active_params_b: float = Field(gt=0, description="Active parameters, in billions")
    total_params_b: float | None = Field(default=None, gt=0, description="Total parameters (MoE); default: active")


class ModelConfig(_Strict):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
    type: ModelType
    routing: RoutingStrategy = "least-busy"

    @field_validator("type", mode="before")
    @classmethod
    def _albert_type(cls, value: object) -> object:
        """The Albert API's names of the kinds (``text-generation``...) are understood too."""
        return PLATFORM_TYPES.get(value, value) if isinstance(value, str) else value
    backends: list[BackendConfig] = Field(min_length=1)
    owned_by: str = "socle"
    max_context_length: int | None = Field(default=None, ge=1)
    aliases: list[str] = Field(default_factory=list)
    retries: int | None = Field(default=None, ge=0, description="Other backends tried after a failure "
                                "before the first byte; default: all of them")
    failure_threshold: int = Field(default=3, ge=1, description="Consecutive failures that take a backend out")
    cooldown_s: float = Field(default=30.0, gt=0, description="How long a failing backend stays out")
    pricing: Pricing = Field(default_factory=Pricing)
    impact: Impact | None = None
    card: ModelCard | None = Field(default=None, description="Shown to users before they choose the model")
    audience: Audience | None = Field(default=None, description="Who may see and use it (a fine-tuned model: its "
                                      "owner, the groups it is shared with); none: everyone")

    @property
    def model_card(self) -> ModelCard | None:
        """The catalogue's card, else the bundled model's own when every backend serves the bundled file."""
        if self.card is not None:
            return self.card
        cards = [backend.bundled_card() for backend in self.backends]
        return cards[0] if all(card is cards[0] for card in cards) else None

    def backend_label(self, index: int) -> str:
        """What callers may know of a backend: never its address, which stays in the configuration."""
        return self.backends[index].name or f"{self.id}#{index}"

    @model_validator(mode="after")
    def _unique_labels(self) -> "ModelConfig":
        labels = [self.backend_label(i) for i in range(len(self.backends))]
        if len(set(labels)) != len(labels):
            raise ValueError("two backends of this model have the same name")
        return self


class Catalogue(_Strict):
    """The YAML file: the models clients see and where each is served."""

    models: list[ModelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "Catalogue":
        seen: set[str] = set()
        for index, model in enumerate(self.models):
            for name in (model.id, *model.aliases):
                if name in seen:
                    raise ValueError(f"models[{index}]: model id or alias {name!r} is declared twice")
                seen.add(name)
        return self


DEFAULT_CATALOGUE = Catalogue(
    models=[
        ModelConfig(id="smollm2-135m", type="chat", backends=[{"type": "llamacpp"}],
                    max_context_length=4096, impact=Impact(active_params_b=0.135)),
        ModelConfig(id="multilingual-e5-small", type="embeddings", backends=[{"type": "e5"}],
                    aliases=["multilingual-e5-small-passage"],  # embeds passages (e5.PASSAGE_SUFFIX)
                    max_context_length=512, impact=Impact(active_params_b=0.118)),
        ModelConfig(id="multilingual-e5-small-rerank", type="rerank", backends=[{"type": "e5"}],
                    max_context_length=512, impact=Impact(active_params_b=0.118)),
    ]
)


class Settings(BaseSettings):
    """Process settings, from ``SOCLE_*`` environment variables (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(env_prefix="SOCLE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    config: Path | None = Field(default=None, description="YAML catalogue of models and backends")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in the data directory"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    backlog: int = Field(default=8192, ge=64, description="Connections waiting to be accepted (bursts of clients)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(default="text", description="Logs as plain text lines or one "
                                                "JSON object per line (for a log collector)")
    log_static: bool = Field(default=False, description="Requests for static assets (the web UI's files) in "
                             "the access log")

    api_docs: bool = Field(default=True, description="Serve the API's documentation: /docs, /redoc and "
                           "/openapi.json (false: none of them)")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest accepted body")
    max_tokens_limit: int = Field(default=8192, ge=1, description="Largest max_tokens a request may ask")
    max_choices: int = Field(default=8, ge=1, le=128, description="Largest n (and best_of) a request may ask: "
                             "every choice is generated, and reserved against budgets")
    auth_cache_ttl_s: float = Field(
        default=5.0, ge=0, description="How long a verified key is trusted before the database is re-read"
    )
    currency: str = Field(default="EUR", max_length=8)
    electricity_mix: str = Field(default="FRA", description="ISO 3166-1 alpha-3 zone of the servers' electricity")
    datacenter_pue: float = Field(default=1.2, ge=1.0, description="Power usage effectiveness of the servers' site")
    datacenter_wue: float = Field(default=0.5, ge=0, description="Water usage effectiveness (L/kWh)")
    usage_flush_interval_s: float = Field(default=1.0, gt=0, description="Usage rows are written this often")
    usage_batch_size: int = Field(default=500, ge=1, description="...or as soon as this many are waiting")
    redis_url: str | None = Field(default=None, description="Shared counters for quotas (redis://host:6379/0); "
                                  "default: in process memory, exact for one process only")
    redis_key_prefix: str = Field(default="socle", min_length=1, description="Prefix of every key in Redis: "
                                  "one per platform sharing a Redis server")
    redis_timeout_s: float = Field(default=0.5, gt=0, le=30, description="A Redis command or connection that "
                                   "takes longer fails, and the store counts as unreachable (see quota_fail_open)")
    quota_fail_open: bool = Field(default=False, description="When the quota store is unreachable: serve "
                                  "without limits (true) or refuse with 503 (false, the default)")
    quota_refresh_s: float = Field(default=5.0, gt=0, description="Quota rules are re-read this often")
    quota_default_completion_tokens: int = Field(default=1024, ge=1, description="Tokens a budget reserves for "
                                                 "an answer whose request names no max_tokens")
    health_interval_s: float = Field(default=10.0, gt=0, description="Active health checks of backends")
    catalogue_refresh_s: float = Field(default=2.0, gt=0, description="Each process checks this often whether the "
                                       "catalogue of models changed (from the browser) and applies the change")
    encryption_keys: SecretStr | None = Field(default=None, description="Fernet keys (comma-separated; the first "
                                              "encrypts, every one decrypts: rotation) that encrypt the backend "
                                              "keys entered in the browser (make one with: python -c 'from "
                                              "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
    admin_email: str = "admin@localhost"
    admin_api_key: SecretStr | None = Field(default=None, description="The first admin's API key (a secret of "
                                            "the deployment; `socle keys generate` makes one) instead of one "
                                            "generated into DATA_DIR/admin.key; only its hash is stored")
    migrate_on_start: bool = Field(default=True, description="serve and worker migrate the schema at start "
                                   "(under a database lock); false: they wait for `socle db upgrade` to do it")
    schema_wait_s: float = Field(default=300.0, ge=0, description="With migrate_on_start false: how long serve "
                                 "and worker wait for the schema to be current before exiting 1")
    run_jobs: bool = Field(default=True, description="serve also runs the job pools; false when separate "
                           "`socle worker` processes run them")
    shutdown_grace_s: float = Field(default=30.0, ge=0, description="On SIGTERM: how long requests in flight "
                                    "(serve) and running jobs (worker) get to finish")
    worker_port: int | None = Field(default=None, ge=1, le=65535, description="`socle worker` answers /health, "
                                    "/ready and /metrics (a key with metrics:read) on this port of SOCLE_HOST, "
                                    "for probes and for its own metrics (ingestion); unset: it listens nowhere")
    worker_roles: str = Field(default="api,jobs,training", description="What this process takes on, "
                              "comma-separated: 'training' takes fine-tuning trainings (one at a time), so that in "
                              "production only the GPU workers train (set 'api,jobs' elsewhere)")
    fine_tuning_tokens_per_s: float = Field(default=80.0, gt=0, description="Training speed this platform's "
                                            "trainers reach, for the estimate of a job's duration")
    fine_tuning_price_per_1k_tokens: float = Field(default=0.0, ge=0, description="Price of 1,000 trained tokens, "
                                                   "in the platform's currency, for a job's estimate")
    fine_tuning_checkpoint_every: int = Field(default=20, ge=1, description="Training steps between two "
                                              "checkpoints (a training interrupted resumes from the last one)")
    fine_tuning_threads: int | None = Field(default=None, ge=1, description="CPU threads a training uses "
                                            "(PyTorch's); default: every core of the machine")

    rag_embedding_model: str = Field(default="multilingual-e5-small", description="Embeddings model of the "
                                     "catalogue that indexes and searches documents")
    rag_pg_ef_search: int = Field(default=1000, ge=10, le=1000, description="PostgreSQL: hnsw.ef_search, the "
                                  "candidates an HNSW search walks through (more: better recall, slower)")
    rag_pg_exact_below: int = Field(default=20_000, ge=0, description="PostgreSQL: collections holding fewer "
                                    "chunks than this are searched exactly, without the HNSW index")
    rag_pg_hnsw_m: int = Field(default=16, ge=2, le=100, description="PostgreSQL: links per vector in the HNSW "
                               "index (more: better recall, larger index, slower build); read when the index "
                               "is created")
    rag_pg_hnsw_ef_construction: int = Field(default=64, ge=4, le=1000, description="PostgreSQL: candidates "
                                             "weighed per vector while building the HNSW index; read when the "
                                             "index is created")
    rag_pg_lexical_candidates: int = Field(default=2_000, ge=100, description="PostgreSQL: beyond this many "
                                           "chunks holding the question's words, lexical search ranks those "
                                           "holding its rarest words and those holding all the others, "
                                           "not every match")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, description="Largest uploaded document")
    audio_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, description="Largest audio file sent to "
                                 "/v1/audio/transcriptions (the OpenAI API's limit by default)")
    files_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, description="Largest file of /v1/files "
                                 "(batch input, assistants' files)")
    files_fine_tune_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Largest fine-tuning "
                                           "file (checked line by line at upload, held in memory to train)")
    files_fine_tune_max_examples: int = Field(default=50_000, ge=1, description="Most examples in one "
                                              "fine-tuning file")
    ingestion_workers: int = Field(default=2, ge=0, description="Ingestion jobs run at once per process "
                                   "(0: this process ingests nothing)")
    batch_workers: int = Field(default=1, ge=0, description="Batches (/v1/batches) run at once per process "
                               "(0: this process runs none)")
    batch_request_concurrency: int = Field(default=4, ge=1, description="Requests of one batch sent at once: kept "
                                           "small, so that interactive calls keep the backends first")
    batch_max_requests: int = Field(default=50_000, ge=1, description="Most requests in one batch's input file")
    job_lease_s: float = Field(default=30.0, ge=1, description="A job whose worker died is taken up again "
                               "after this long")
    job_stall_s: float = Field(default=300.0, gt=0, description="A job due this long and not started is "
                               "logged (once) and counted as stalled in /metrics")
    parse_timeout_s: float = Field(default=120.0, gt=0, description="Time limit to parse one document")
    parse_memory_mb: int = Field(default=1024, ge=128, description="Memory limit of the parsing process")
    parse_max_pages: int = Field(default=2000, ge=1, description="Longest accepted document, in pages")
    db_pool_size: int = Field(default=10, ge=1)

    # Retention, in days (0: kept until deleted by hand); enforced once a day by the retention job. Each
    # installed app sets its own data's period (SOCLE_<APP>_RETENTION_DAYS).
    retention_conversations_days: int = Field(default=365, ge=0, description="A conversation unused this long "
                                              "is deleted")
    retention_usage_days: int = Field(default=365, ge=0, description="Usage rows (one per call) older than "
                                      "this are deleted")
    retention_documents_days: int = Field(default=0, ge=0, description="Documents uploaded this long ago are "
                                          "deleted (0, the default: they are the administration's working documents)")
    retention_audit_days: int = Field(default=1825, ge=365, description="Audit trail entries older than this "
                                      "are deleted (at least a year: the trail must outlive what it proves)")
    retention_sessions_days: int = Field(default=30, ge=0, description="Web sessions are deleted this long after "
                                         "they expired")

    ui_cookie_secure: bool = Field(default=True, description="The web UI's session cookie travels over HTTPS "
                                   "only; false for plain http (tests, a workstation)")
    ui_session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="A web UI sign-in lasts this long")
    ui_session_idle_minutes: float = Field(default=30.0, gt=0, description="A web UI session unused this long "
                                           "ends (on top of ui_session_hours)")
    ui_sign_in_failures_per_account: int = Field(default=5, ge=1, description="Failed password sign-ins to one "
                                                 "account in the window, after which its sign-ins are refused")
    ui_sign_in_failures_per_ip: int = Field(default=50, ge=1, description="Failed password sign-ins from one "
                                            "client address in the window, after which its sign-ins are refused")
    ui_sign_in_window_minutes: int = Field(default=15, ge=1, description="The window of the two limits above")
    ui_trusted_proxies: str = Field(default="", description="Comma-separated addresses or networks (CIDR) of the "
                                    "reverse proxies whose X-Forwarded-For names the client (audit trail, "
                                    "sign-in limits)")
    # The site's settings that the administration changes from the browser (Administration > Paramètres): these
    # are their defaults, used until a value is saved there (``socle.site``).
    site_organisation: str = Field(default="", max_length=200, description="The administration that runs the "
                                   "platform, named in the legal pages and the accessibility statement")
    site_welcome_text: str = Field(default="", max_length=2000, description="Welcome text of an empty "
                                   "conversation (Markdown); empty: the platform's own")
    site_suggestions: list[str] = Field(default_factory=list, max_length=6, description="Suggested first "
                                        "messages, as a JSON list; empty: the platform's own")
    site_default_model: str = Field(default="", max_length=200, description="The chat model a new "
                                    "conversation starts with; empty: the first of the catalogue")
    site_accessibility: Literal["none", "partial", "full"] = Field(
        default="none", description="The site's RGAA conformance, as its accessibility statement says (none, "
                                    "partial, full): shown in every page's footer")
    site_contact: str = Field(default="", max_length=320, description="Where to write about accessibility and "
                              "personal data (an address or a web page), named in the legal pages")
    site_refresh_s: float = Field(default=5.0, gt=0, description="The site's settings are re-read this often")
    oidc_issuer: str | None = Field(default=None, description="ProConnect's (or another OpenID provider's) "
                                    "issuer URL, e.g. https://auth.agentconnect.gouv.fr/api/v2; unset: no button")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    oidc_scopes: str = Field(default="openid email given_name usual_name", description="Scopes asked of the "
                             "provider (ProConnect's names)")
    oidc_redirect_uri: str | None = Field(default=None, description="The callback registered with the provider; "
                                          "default: /ui/connexion/proconnect/retour on the address the browser used")
    oidc_create_users: bool = Field(default=False, description="A provider's user with no account gets one, "
                                    "with oidc_default_role; false: refused until an admin creates the account")
    oidc_default_role: str = "user"
    oidc_require_email_verified: bool = Field(default=False, description="Refuse an address not marked "
                                              "email_verified=true (ProConnect's are verified and carry no such "
                                              "claim); one marked false is always refused")
    oidc_timeout_s: float = Field(default=10.0, gt=0, description="Calls to the provider (discovery, token)")
    public_url: str | None = Field(default=None, description="The address at which people reach the platform "
                                   "(https://ia.ministere.gouv.fr): the links sent by e-mail start with it; "
                                   "required with smtp_host")
    smtp_host: str | None = Field(default=None, description="The mail server that sends invitations and password "
                                  "links; unset: no e-mail (the admin copies the link) and no forgotten-password "
                                  "page")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = Field(default=None, description="Sign-in to the mail server; unset: none")
    smtp_password: SecretStr | None = None
    smtp_sender: str = Field(default="", max_length=320, validate_default=True, description="The From of the e-mails, e.g. "
                             "'Socle IA <ne-pas-repondre@ministere.gouv.fr>'; required with smtp_host")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(default="starttls", description="starttls (port 587), "
                                                        "tls (implicit, port 465), or none (a relay on this network)")
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Connecting to and talking with the "
                                  "mail server")
    invitation_hours: int = Field(default=72, ge=1, le=24 * 30, description="An invitation link works this long")
    password_reset_minutes: int = Field(default=60, ge=5, le=24 * 60, description="A password-reset link works "
                                        "this long")

    @field_validator("config", "database_url", "redis_url", "oidc_issuer", "oidc_client_id", "oidc_client_secret",
                     "oidc_redirect_uri", "admin_api_key", "public_url", "smtp_host", "smtp_user", "smtp_password",
                     "encryption_keys", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_api_key")
    @classmethod
    def _platform_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not keys.well_formed(value.get_secret_value()):
            raise ValueError(f"must be a key of the platform's form ({keys.PREFIX}<12 hex>_<secret of at least "
                             f"{keys.MIN_SECRET_LENGTH} characters>): make one with `socle keys generate`")
        return value

    @field_validator("worker_roles")
    @classmethod
    def _known_roles(cls, value: str) -> str:
        unknown = sorted(set(_roles(value)) - set(WORKER_ROLES))
        if unknown:
            raise ValueError(f"unknown role {', '.join(unknown)}; the roles are {', '.join(WORKER_ROLES)}")
        return value

    @property
    def trains(self) -> bool:
        """This process takes fine-tuning trainings (SOCLE_WORKER_ROLES names 'training')."""
        return "training" in _roles(self.worker_roles)

    @field_validator("ui_trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # its ValueError names the bad part
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _https_issuer(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
            raise ValueError("must be an https:// URL (plain http only on this machine, for tests)")
        return value

    @field_validator("oidc_client_secret")
    @classmethod
    def _oidc_is_complete(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("oidc_issuer") and not (info.data.get("oidc_client_id") and value):
            raise ValueError("SOCLE_OIDC_ISSUER is set: set SOCLE_OIDC_CLIENT_ID and SOCLE_OIDC_CLIENT_SECRET too")
        return value

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value and not (value.startswith(("https://", "http://")) and urllib.parse.urlsplit(value).netloc):
            raise ValueError("must be the platform's web address, e.g. https://ia.ministere.gouv.fr")
        return value.rstrip("/") if value else value

    @field_validator("smtp_sender")
    @classmethod
    def _smtp_is_complete(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("smtp_host") and not (value and info.data.get("public_url")):
            raise ValueError("SOCLE_SMTP_HOST is set: set SOCLE_SMTP_SENDER (the From address) and SOCLE_PUBLIC_URL "
                             "(the address the e-mailed links lead to) too")
        return value

    @property
    def mail_configured(self) -> bool:
        """E-mails can be sent: invitations and reset links go by mail, and a forgotten password can be reset."""
        return bool(self.smtp_host)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'socle.db').resolve()}"

    @property
    def documents_dir(self) -> Path:
        """Accepted uploads wait here until they are ingested."""
        return self.data_dir / "documents"

    @property
    def files_dir(self) -> Path:
        """The bytes of /v1/files, one file per id."""
        return self.data_dir / "files"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"

    def catalogue(self) -> Catalogue:
        return load_catalogue(self.config)


def _format_validation_error(error: ValidationError, prefix: str) -> str:
    lines = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part not in backend_kinds():  # discriminator tags add nothing for a reader
                path += f".{part}" if path else str(part)
        lines.append(f"{path or '(root)'}: {item['msg']}")
    return "; ".join(lines)


def load_catalogue(path: Path | None) -> Catalogue:
    """Read and validate the YAML catalogue; with no file, the embedded defaults."""
    if path is None:
        return DEFAULT_CATALOGUE
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"SOCLE_CONFIG: file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"SOCLE_CONFIG: {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"SOCLE_CONFIG: {path} must be a mapping with a 'models' key")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_validation_error(exc, '')}") from exc


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        fields = "; ".join(f"SOCLE_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(fields) from exc
