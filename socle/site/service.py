"""The site's settings: stored in the database, the environment's values as defaults, changed by an
administrator from the browser, every change in the audit trail — the texts and the default model, the quota
presets' amounts, the retention periods (within the bounds of :mod:`socle.compliance.retention`) and ProConnect
(its client secret sealed with the platform's :class:`~socle.inference.sealing.SecretBox`, never shown again).

Every page reads them (the footer names the accessibility level): each process keeps them for
``refresh_s`` seconds, so a change reaches every worker and replica within that delay (at once on the one
that made it), the way quota rules do (``socle.quotas.service``).
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.compliance.retention import BOUNDS, KINDS
from socle.db.models import SiteSetting, utcnow
from socle.errors import InvalidRequest
from socle.identity.oidc import ProviderChoice
from socle.identity.permissions import Permission, Principal, require
from socle.inference.sealing import SecretBox
from socle.quotas.service import PRESET_AMOUNTS, PRESETS, preset_amounts
from socle.settings import Settings
from socle.site import defaults

LEVELS = ("none", "partial", "full")
MAX_SUGGESTIONS = 6
SUGGESTION_LENGTH = 200
_LENGTHS = {"welcome_text": 2000, "default_model": 200, "organisation": 200, "contact": 320,
            "legal_notice": 20_000, "privacy": 20_000, "cookies": 20_000, "accessibility_notes": 20_000}


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """What the administration sets; texts are Markdown (rendered with raw HTML escaped)."""

    welcome_text: str
    suggestions: tuple[str, ...]
    default_model: str  # "" : the first chat model the person may use
    organisation: str
    contact: str
    accessibility: str  # one of LEVELS
    legal_notice: str
    privacy: str
    cookies: str
    accessibility_notes: str
    quota_presets: Mapping[str, Mapping[str, int]]  # each preset's amounts (socle.quotas.service.PRESET_AMOUNTS)
    retention_conversations_days: int
    retention_usage_days: int
    retention_documents_days: int
    retention_audit_days: int
    retention_sessions_days: int
    proconnect_enabled: bool
    proconnect_issuer: str
    proconnect_client_id: str
    proconnect_client_secret: str  # sealed; "": the environment's (SOCLE_OIDC_CLIENT_SECRET)

    @property
    def retention_days(self) -> dict[str, int]:
        return {kind: int(getattr(self, f"retention_{kind}_days")) for kind in KINDS}

    @property
    def proconnect(self) -> ProviderChoice | None:
        """ProConnect as chosen here (None: off)."""
        if not self.proconnect_enabled:
            return None
        return ProviderChoice(self.proconnect_issuer, self.proconnect_client_id, self.proconnect_client_secret)


class ModelNames(Protocol):
    """The catalogue as stored (its file's models and those added in the browser)."""

    async def names(self, model_type: str) -> set[str]: ...


NAMES = tuple(field.name for field in dataclasses.fields(SiteSettings))
LABELS = {"welcome_text": "Texte d'accueil", "suggestions": "Suggestions", "default_model": "Modèle par défaut",
          "organisation": "Administration", "contact": "Contact", "accessibility": "Conformité à l'accessibilité",
          "legal_notice": "Mentions légales", "privacy": "Données personnelles", "cookies": "Gestion des cookies",
          "accessibility_notes": "Contenus non accessibles", "quota_presets": "Modèles de quotas",
          "retention_conversations_days": "Conversations", "retention_usage_days": "Consommation détaillée",
          "retention_documents_days": "Documents déposés", "retention_audit_days": "Journal d'audit",
          "retention_sessions_days": "Sessions du site", "proconnect_enabled": "Connexion avec ProConnect",
          "proconnect_issuer": "Adresse du fournisseur d'identité", "proconnect_client_id": "Identifiant client",
          "proconnect_client_secret": "Secret client"}
"""Each setting's name in French (the settings page, the refusals); the audit trail keeps the names."""
assert set(LABELS) == set(NAMES)
RETENTION = tuple(f"retention_{kind}_days" for kind in KINDS)
PROCONNECT = ("proconnect_enabled", "proconnect_issuer", "proconnect_client_id", "proconnect_client_secret")
_AUDITED_APART = {**{name: Action.RETENTION_CHANGED for name in RETENTION},
                  **{name: Action.PROCONNECT_CHANGED for name in PROCONNECT},
                  "quota_presets": Action.QUOTA_PRESETS_CHANGED}
"""The settings whose change has its own entry in the audit trail, with the new values (never a secret)."""
_MAX_AMOUNT = 10**12


def environment_defaults(settings: Settings) -> SiteSettings:
    """The values used until an administrator saves others: ``SOCLE_SITE_*``, then the platform's texts."""
    days = defaults.retention_days(settings)
    return SiteSettings(  # in the form a browser's form gives back, so that a page saved unchanged changes nothing
        welcome_text=(settings.site_welcome_text or defaults.WELCOME).strip(),
        suggestions=tuple(settings.site_suggestions) or defaults.SUGGESTIONS,
        default_model=settings.site_default_model, organisation=settings.site_organisation.strip(),
        contact=settings.site_contact.strip(), accessibility=settings.site_accessibility,
        legal_notice=defaults.legal_notice(settings.site_organisation).strip(),
        privacy=defaults.privacy(settings.site_organisation, settings.site_contact, days).strip(),
        cookies=defaults.COOKIES.strip(), accessibility_notes=defaults.accessibility_notes().strip(),
        quota_presets=preset_amounts(), **{f"retention_{kind}_days": value for kind, value in days.items()},
        proconnect_enabled=bool(settings.oidc_issuer), proconnect_issuer=settings.oidc_issuer or "",
        proconnect_client_id=settings.oidc_client_id or "", proconnect_client_secret="")


class SiteService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, environment: Settings, *,
                 box: SecretBox, models: ModelNames | None = None, chat_models: Collection[str] = (),
                 refresh_s: float = 5.0) -> None:
        self._sessions = sessions
        self._audit = audit
        self._environment = environment
        self._defaults = environment_defaults(environment)
        self._box = box
        self._models = models  # the stored catalogue: what a default model may be, besides the file's
        self._chat_models = frozenset(chat_models)  # the catalogue file's, read before any import
        self._refresh_s = refresh_s
        self._cached = self._defaults
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @property
    def defaults(self) -> SiteSettings:
        return self._defaults

    @property
    def latest(self) -> SiteSettings:
        """The values last read, without waiting (the defaults before the first read): for a page that must
        render even when the database does not answer (the error pages)."""
        return self._cached

    async def current(self) -> SiteSettings:
        if time.monotonic() < self._expires:
            return self._cached
        async with self._lock:
            if time.monotonic() >= self._expires:
                async with self._sessions() as session:
                    stored = {row.name: row.value for row in await session.scalars(select(SiteSetting))}
                self._cached = self._merged(stored)
                self._expires = time.monotonic() + self._refresh_s
        return self._cached

    async def retention_days(self) -> dict[str, int]:
        """The retention periods in force (read by :class:`~socle.compliance.retention.Retention`)."""
        return (await self.current()).retention_days

    async def update(self, actor: Principal, changes: Mapping[str, Any]) -> SiteSettings:
        """Save ``changes`` (by name; those equal to the present value are ignored). A value equal to its default
        is not stored, so that a later change of the environment's default applies to it. A client secret is
        given in clear and stored sealed; an empty one keeps the present one. Administrators only
        (``site:admin``): these texts speak for the administration on every page."""
        require(actor, Permission.SITE_ADMIN)
        present = await self._fresh()
        chat_models = self._chat_models | (await self._models.names("chat") if self._models is not None else set())
        wanted = {name: _checked(name, value, chat_models) for name, value in changes.items()}
        if wanted.get("proconnect_client_secret") == "":
            del wanted["proconnect_client_secret"]  # kept: it is never shown, so the form sends it empty
        elif "proconnect_client_secret" in wanted:
            wanted["proconnect_client_secret"] = self._sealed(wanted["proconnect_client_secret"])
        changed = {name: value for name, value in wanted.items() if getattr(present, name) != value}
        if not changed:
            return present
        _check_proconnect(dataclasses.replace(present, **changed), self._environment)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(SiteSetting).where(SiteSetting.name.in_(changed)))
            session.add_all(SiteSetting(name=name, value=_stored(value), updated_at=utcnow(),
                                        updated_by=actor.user_id or None)
                            for name, value in changed.items() if getattr(self._defaults, name) != value)
            general = sorted(name for name in changed if name not in _AUDITED_APART)
            if general:
                await self._audit.record_in(session, Action.SITE_SETTINGS_CHANGED, actor=actor,
                                            details={"changed": general})
            for action in dict.fromkeys(_AUDITED_APART[name] for name in changed if name in _AUDITED_APART):
                names = sorted(name for name in changed if _AUDITED_APART.get(name) == action)
                await self._audit.record_in(session, action, actor=actor,
                                            details={"changed": names, **_audited(action, changed)})
        self._expires = 0.0
        return await self.current()

    async def reseal(self) -> int:
        """Seal the stored ProConnect secret again with the first key (after a key rotation); 1 when one was
        sealed again, 0 when none is stored."""
        async with self._sessions() as session, session.begin():
            row = await session.scalar(select(SiteSetting).where(SiteSetting.name == "proconnect_client_secret"))
            if row is None or not isinstance(row.value, str) or not row.value:
                return 0
            row.value = self._box.reseal(row.value)
        self._expires = 0.0
        return 1

    def _sealed(self, secret: str) -> str:
        if not self._box.configured:
            raise InvalidRequest("la plateforme n'a pas de clé de chiffrement (SOCLE_ENCRYPTION_KEYS) : le secret "
                                 "client ne peut pas être enregistré. Demandez à l'équipe qui l'exploite d'en définir "
                                 "une.", param="proconnect_client_secret", code="encryption_not_configured")
        return self._box.seal(secret)

    async def _fresh(self) -> SiteSettings:
        self._expires = 0.0
        return await self.current()

    def _merged(self, stored: Mapping[str, Any]) -> SiteSettings:
        """The defaults with the stored values over them; a stored name no longer known is ignored. The default
        personal-data page says the retention periods in force."""
        known = {name: tuple(value) if name == "suggestions" else value
                 for name, value in stored.items() if name in NAMES}
        merged = dataclasses.replace(self._defaults, **known)
        if "privacy" not in known and merged.retention_days != self._defaults.retention_days:
            merged = dataclasses.replace(merged, privacy=defaults.privacy(
                self._environment.site_organisation, self._environment.site_contact, merged.retention_days).strip())
        return merged


def _stored(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _audited(action: Action, changed: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a change made apart: the new values, never the secret."""
    if action == Action.QUOTA_PRESETS_CHANGED:
        return {"presets": changed["quota_presets"]}
    return {name: value for name, value in changed.items()
            if _AUDITED_APART.get(name) == action and name != "proconnect_client_secret"}


def _check_proconnect(chosen: SiteSettings, environment: Settings) -> None:
    if not chosen.proconnect_enabled:
        return
    has_secret = bool(chosen.proconnect_client_secret or environment.oidc_client_secret)
    if not (chosen.proconnect_issuer and chosen.proconnect_client_id and has_secret):
        raise InvalidRequest("pour activer ProConnect, donnez l'adresse du fournisseur d'identité, l'identifiant "
                             "client et le secret client.", param="proconnect_enabled")


def _checked(name: str, value: Any, chat_models: Collection[str]) -> Any:
    if name not in NAMES:
        raise InvalidRequest(f"le paramètre « {name} » n'existe pas.", param=name)
    if name == "suggestions":
        return _suggestions(value)
    if name == "quota_presets":
        return _presets(value)
    if name in RETENTION:
        return _retention(name, value)
    if name == "proconnect_enabled":
        if not isinstance(value, bool):
            raise InvalidRequest(f"« {LABELS[name]} » est activée ou non.", param=name)
        return value
    if not isinstance(value, str):
        raise InvalidRequest(f"« {LABELS[name]} » attend un texte.", param=name)
    value = value.strip().replace("\r\n", "\n")
    if name == "accessibility" and value not in LEVELS:
        raise InvalidRequest("choisissez un niveau de conformité de la liste.", param=name)
    if name == "default_model" and value and value not in chat_models:
        raise InvalidRequest(f"« {value} » n'est pas un modèle de conversation de la plateforme.", param=name,
                             code="model_not_found")
    if name == "proconnect_issuer" and value and not _web_address(value):
        raise InvalidRequest("l'adresse du fournisseur d'identité commence par https://.", param=name)
    if len(value) > _LENGTHS.get(name, 200):
        raise InvalidRequest(f"« {LABELS[name]} » compte au plus {_LENGTHS.get(name, 200)} caractères.", param=name)
    return value


def _web_address(value: str) -> bool:
    """https, or plain http on this machine only (tests), as ``SOCLE_OIDC_ISSUER`` takes."""
    parts = urllib.parse.urlsplit(value)
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
    return bool(parts.netloc) and (parts.scheme == "https" or local)


def _whole(value: Any, label: str, param: str) -> int:
    """A whole number, from JSON or from a form's text (spaces between thousands allowed)."""
    if isinstance(value, str):
        value = "".join(value.split())
        if value.isascii() and value.isdigit():
            value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(f"« {label} » est un nombre entier positif.", param=param)
    return value


def _retention(name: str, value: Any) -> int:
    kind = name.removeprefix("retention_").removesuffix("_days")
    low, high = BOUNDS[kind]
    days = _whole(value, LABELS[name], name)
    if not low <= days <= high:
        raise InvalidRequest(f"« {LABELS[name]} » : entre {low} et {high} jours.", param=name)
    return days


def _presets(value: Any) -> dict[str, dict[str, int]]:
    """Every preset with every amount: those not given keep the code's."""
    if not isinstance(value, Mapping) or not set(value) <= set(PRESETS):
        raise InvalidRequest("les modèles de quotas sont ceux de la plateforme.", param="quota_presets")
    checked = preset_amounts()
    for preset, amounts in value.items():
        if not isinstance(amounts, Mapping) or not set(amounts) <= set(PRESET_AMOUNTS):
            raise InvalidRequest(f"le modèle de quotas « {preset} » n'a que {', '.join(PRESET_AMOUNTS)}.",
                                 param="quota_presets")
        for amount, given in amounts.items():
            number = _whole(given, LABELS["quota_presets"], f"quota_presets.{preset}.{amount}")
            if number > _MAX_AMOUNT:
                raise InvalidRequest(f"« {LABELS['quota_presets']} » : {number} est trop grand.",
                                     param=f"quota_presets.{preset}.{amount}")
            checked[preset][amount] = number
    return checked


def _suggestions(value: Any) -> tuple[str, ...]:
    """One suggestion a line: blank lines dropped."""
    lines = value.splitlines() if isinstance(value, str) else value
    if not isinstance(lines, (list, tuple)) or not all(isinstance(line, str) for line in lines):
        raise InvalidRequest("les suggestions sont des lignes de texte.", param="suggestions")
    kept = tuple(line.strip() for line in lines if line.strip())
    if len(kept) > MAX_SUGGESTIONS:
        raise InvalidRequest(f"{MAX_SUGGESTIONS} suggestions au plus.", param="suggestions")
    if any(len(line) > SUGGESTION_LENGTH for line in kept):
        raise InvalidRequest(f"une suggestion compte au plus {SUGGESTION_LENGTH} caractères.", param="suggestions")
    return kept
