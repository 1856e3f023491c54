"""The site's settings: stored in the database, the environment's values as defaults, changed by an
administrator from the browser, every change in the audit trail.

Every page reads them (the footer names the accessibility level): each process keeps them for
``refresh_s`` seconds, so a change reaches every worker and replica within that delay (at once on the one
that made it), the way quota rules do (``socle.quotas.service``).
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import SiteSetting, utcnow
from socle.errors import InvalidRequest
from socle.identity.permissions import Permission, Principal, require
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


NAMES = tuple(field.name for field in dataclasses.fields(SiteSettings))
LABELS = {"welcome_text": "Texte d'accueil", "suggestions": "Suggestions", "default_model": "Modèle par défaut",
          "organisation": "Administration", "contact": "Contact", "accessibility": "Conformité à l'accessibilité",
          "legal_notice": "Mentions légales", "privacy": "Données personnelles", "cookies": "Gestion des cookies",
          "accessibility_notes": "Contenus non accessibles"}
"""Each setting's name in French (the settings page, the refusals); the audit trail keeps the names."""
assert set(LABELS) == set(NAMES)


def environment_defaults(settings: Settings) -> SiteSettings:
    """The values used until an administrator saves others: ``SOCLE_SITE_*``, then the platform's texts."""
    return SiteSettings(  # in the form a browser's form gives back, so that a page saved unchanged changes nothing
        welcome_text=(settings.site_welcome_text or defaults.WELCOME).strip(),
        suggestions=tuple(settings.site_suggestions) or defaults.SUGGESTIONS,
        default_model=settings.site_default_model, organisation=settings.site_organisation.strip(),
        contact=settings.site_contact.strip(), accessibility=settings.site_accessibility,
        legal_notice=defaults.legal_notice(settings.site_organisation).strip(),
        privacy=defaults.privacy(settings.site_organisation, settings.site_contact, settings).strip(),
        cookies=defaults.COOKIES.strip(), accessibility_notes=defaults.accessibility_notes().strip())


class SiteService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, defaults: SiteSettings, *,
                 chat_models: Collection[str], refresh_s: float = 5.0) -> None:
        self._sessions = sessions
        self._audit = audit
        self._defaults = defaults
        self._chat_models = frozenset(chat_models)  # what a default model may be
        self._refresh_s = refresh_s
        self._cached = defaults
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
                self._cached = _merged(self._defaults, stored)
                self._expires = time.monotonic() + self._refresh_s
        return self._cached

    async def update(self, actor: Principal, changes: Mapping[str, Any]) -> SiteSettings:
        """Save ``changes`` (by name; those equal to the present value are ignored). A value equal to its default
        is not stored, so that a later change of the environment's default applies to it. Administrators only
        (``site:admin``): these texts speak for the administration on every page."""
        require(actor, Permission.SITE_ADMIN)
        present = await self._fresh()
        wanted = {name: _checked(name, value, self._chat_models) for name, value in changes.items()}
        changed = {name: value for name, value in wanted.items() if getattr(present, name) != value}
        if not changed:
            return present
        async with self._sessions() as session, session.begin():
            await session.execute(delete(SiteSetting).where(SiteSetting.name.in_(changed)))
            session.add_all(SiteSetting(name=name, value=list(value) if isinstance(value, tuple) else value,
                                        updated_at=utcnow(), updated_by=actor.user_id or None)
                            for name, value in changed.items() if getattr(self._defaults, name) != value)
            await self._audit.record_in(session, Action.SITE_SETTINGS_CHANGED, actor=actor,
                                        target=("site", "settings"), details={"changed": sorted(changed)})
        self._expires = 0.0
        return await self.current()

    async def _fresh(self) -> SiteSettings:
        self._expires = 0.0
        return await self.current()


def _merged(base: SiteSettings, stored: Mapping[str, Any]) -> SiteSettings:
    """The defaults with the stored values over them; a stored name no longer known is ignored."""
    known = {name: tuple(value) if name == "suggestions" else value
             for name, value in stored.items() if name in NAMES}
    return dataclasses.replace(base, **known)


def _checked(name: str, value: Any, chat_models: frozenset[str]) -> Any:
    if name not in NAMES:
        raise InvalidRequest(f"le paramètre « {name} » n'existe pas.", param=name)
    if name == "suggestions":
        return _suggestions(value)
    if not isinstance(value, str):
        raise InvalidRequest(f"« {LABELS[name]} » attend un texte.", param=name)
    value = value.strip().replace("\r\n", "\n")
    if name == "accessibility" and value not in LEVELS:
        raise InvalidRequest("choisissez un niveau de conformité de la liste.", param=name)
    if name == "default_model" and value and value not in chat_models:
        raise InvalidRequest(f"« {value} » n'est pas un modèle de conversation de la plateforme.", param=name,
                             code="model_not_found")
    if len(value) > _LENGTHS.get(name, 200):
        raise InvalidRequest(f"« {LABELS[name]} » compte au plus {_LENGTHS.get(name, 200)} caractères.", param=name)
    return value


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
