"""The catalogue of models in the database: what every process serves, changed at run time from the browser.

The YAML file (``SOCLE_CONFIG``) is imported at each start and stays authoritative for the models it declares:
they are written as the file says (a model the file no longer declares is removed), and the browser may only
take them out of service and back. Models added from the browser are the administrators' own: edited, tested,
taken out of service and removed there, and kept across restarts. A model of the browser that the file comes to
declare is the file's from then on.

Every change raises the catalogue's revision in the same transaction; each process reads the revision every
few seconds (one small query) and reloads the catalogue when it moved (:class:`socle.inference.registry.ModelRegistry`).

Backend keys entered in the browser are stored encrypted (:mod:`socle.inference.sealing`), given back to no one:
pages and exports say only that a key is recorded.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.audit.service import Action, AuditTrail
from socle.db.models import CatalogueBackend, CatalogueModel, CatalogueState, utcnow
from socle.endpoints import Endpoint, Json
from socle.errors import Conflict, InvalidRequest, NotFound, SocleError
from socle.identity.permissions import Permission, Principal, require
from socle.inference import audio
from socle.inference.audience import Audience
from socle.inference.backends.base import Backend
from socle.inference.catalogue import build_backend
from socle.inference.sealing import SecretBox
from socle.settings import BackendConfig, Catalogue, ModelConfig

log = logging.getLogger("socle.inference")
ORIGINS = ("yaml", "ui")
UI_POSITION = 1_000_000  # the browser's models come after the file's, in the order they were added
ANSWER_CHARS = 300
_BACKEND = TypeAdapter(BackendConfig)
_PROBES: dict[str, tuple[Endpoint, Json]] = {
    "chat": (Endpoint.CHAT, {"messages": [{"role": "user", "content": "Bonjour ! Réponds en une phrase."}],
                             "max_tokens": 32, "stream": False}),
    "embeddings": (Endpoint.EMBEDDINGS, {"input": ["Bonjour"]}),
    "rerank": (Endpoint.RERANK, {"query": "horaires de la mairie", "documents": ["La mairie ouvre à 9 h.",
                                                                                "Il pleut."]}),
    "transcription": (Endpoint.TRANSCRIPTIONS, {"file": audio.Audio("essai.wav", audio.silence(1.0), "audio/wav")}),
    "moderation": (Endpoint.MODERATIONS, {"input": "Bonjour"}),
}
# What a person reads for a field refused by the validation (the pydantic names are the YAML's).
FIELD_LABELS = {"id": "Identifiant", "type": "Usage", "routing": "Répartition", "aliases": "Autres noms",
                "max_context_length": "Contexte maximal", "owned_by": "Propriétaire", "url": "Adresse du serveur",
                "model": "Nom du modèle sur le serveur", "timeout_s": "Délai de réponse", "name": "Nom du serveur",
                "api_key_env": "Variable d'environnement de la clé", "weight": "Poids", "provider": "Fournisseur",
                "license": "Licence", "intended_use": "Usage prévu", "description": "Description",
                "limitations": "Limites", "languages": "Langues", "runs_on": "Où il fonctionne",
                "url_card": "En savoir plus", "backends": "Serveurs"}
_REASONS = {"missing": "à remplir", "string_too_long": "trop long", "string_too_short": "à remplir",
            "string_pattern_mismatch": "contient des caractères non permis (lettres sans accent, chiffres, . _ - : /)",
            "greater_than": "trop petit", "greater_than_equal": "trop petit", "less_than_equal": "trop grand",
            "int_parsing": "doit être un nombre entier", "float_parsing": "doit être un nombre",
            "literal_error": "valeur hors de la liste", "union_tag_invalid": "type de serveur inconnu",
            "extra_forbidden": "champ inconnu"}


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """A backend as the administrators' page shows it: its entry (never its key), and whether a key is kept."""

    id: int
    label: str
    config: BackendConfig
    has_key: bool

    @property
    def kind(self) -> str:
        return str(self.config.type)

    @property
    def location(self) -> str:
        """Where it runs: a server's address or a model file (never a key: the entry holds none)."""
        return str(getattr(self.config, "url", None) or getattr(self.config, "path", None) or "modèle intégré")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: int
    config: ModelConfig  # without keys
    origin: str  # yaml | ui
    enabled: bool
    backends: tuple[BackendEntry, ...]
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.config.id

    @property
    def editable(self) -> bool:
        """Models of the file are changed in the file; the browser only takes them out of service and back."""
        return self.origin == "ui"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What every process serves: the models in service, with their keys, at one revision."""

    revision: int
    models: tuple[ModelConfig, ...]


@dataclass(frozen=True, slots=True)
class Probe:
    """One backend's answer to "Tester la connexion"."""

    backend: str
    ok: bool
    latency_ms: int
    answer: str = ""  # the beginning of what it answered
    reason: str = ""  # in French, when it failed


class CatalogueStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, box: SecretBox, *,
                 test_timeout_s: float = 15.0) -> None:
        self._sessions = sessions
        self._audit = audit
        self._box = box
        self._test_timeout_s = test_timeout_s
        self._listeners: list[Callable[[], Awaitable[object]]] = []

    def on_change(self, listener: Callable[[], Awaitable[object]]) -> None:
        """``listener`` runs in this process once an administrator's change is committed: the process that made
        it applies it at once, the others when they next read the revision."""
        self._listeners.append(listener)

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()

    # ---- what every process reads ---------------------------------------------------------------------------

    async def revision(self) -> int:
        """The catalogue's revision: one primary-key read, every few seconds in each process."""
        async with self._sessions() as session:
            return int(await session.scalar(select(CatalogueState.revision).where(CatalogueState.id == 1)) or 0)

    async def snapshot(self) -> Snapshot:
        """The models in service with their keys opened; a model whose entry no longer validates here (an
        environment variable gone) is left out and logged. Raises
        :class:`~socle.inference.sealing.SealingUnavailable` when a key cannot be opened."""
        async with self._sessions() as session:
            revision = int(await session.scalar(select(CatalogueState.revision).where(CatalogueState.id == 1)) or 0)
            rows = list(await session.scalars(select(CatalogueModel).where(CatalogueModel.enabled.is_(True))
                                              .order_by(CatalogueModel.position, CatalogueModel.id)))
        models: list[ModelConfig] = []
        for row in rows:
            try:
                config = _config(row)
            except ValidationError as exc:
                log.error("the model %s of the catalogue is not served: %s", row.name,
                          "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
                continue
            keys = [self._box.open(backend.secret) if backend.secret else None for backend in row.backends]
            models.append(_with_keys(config, keys))
        return Snapshot(revision, tuple(models))

    async def names(self, model_type: str) -> set[str]:
        """The ids of the stored models of ``model_type`` (in service or not; the file's and the browser's): what
        a setting naming a model (the site's default model) may name."""
        async with self._sessions() as session:
            rows = list(await session.scalars(select(CatalogueModel)))
        found = set()
        for row in rows:
            try:
                if _config(row).type == model_type:
                    found.add(row.name)
            except ValidationError:  # an entry that no longer validates here names no model
                continue
        return found

    async def reseal(self) -> int:
        """Seal every stored backend key again with the first key of ``SOCLE_ENCRYPTION_KEYS`` (after a rotation,
        so that the old key can be dropped); the number of keys sealed again. The keys themselves do not change:
        the catalogue's revision stays."""
        async with self._sessions() as session, session.begin():
            backends = list(await session.scalars(select(CatalogueBackend).where(CatalogueBackend.secret.is_not(None))))
            for backend in backends:
                assert backend.secret is not None
                backend.secret = self._box.reseal(backend.secret)
        return len(backends)

    async def import_file(self, catalogue: Catalogue) -> bool:
        """Write the file's models as it declares them (several processes may start at once: a clash is retried);
        True when the catalogue changed."""
        for attempt in range(5):
            try:
                return await self._import(catalogue)
            except IntegrityError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        return False

    async def _import(self, catalogue: Catalogue) -> bool:
        async with self._sessions() as session, session.begin():
            rows = {row.name: row for row in await session.scalars(select(CatalogueModel))}
            changed = False
            for position, model in enumerate(catalogue.models):
                settings, card, backends = _parts(model)
                row = rows.get(model.id)
                if row is None:
                    session.add(CatalogueModel(name=model.id, position=position, origin="yaml", enabled=True,
                                               settings=settings, card=card, updated_at=utcnow(),
                                               backends=_backend_rows(backends, [None] * len(backends))))
                    changed = True
                elif (row.origin, row.position, row.settings, row.card, [(b.config, b.secret) for b in row.backends]) \
                        != ("yaml", position, settings, card, [(b, None) for b in backends]):
                    if row.origin != "yaml":
                        log.warning("the model %s, added from the browser, is now declared in the catalogue's file: "
                                    "the file's entry replaces it", model.id)
                    row.origin, row.position, row.settings, row.card = "yaml", position, settings, card
                    row.backends = _backend_rows(backends, [None] * len(backends))
                    row.updated_at, row.updated_by = utcnow(), None
                    changed = True
            declared = {model.id for model in catalogue.models}
            for name, row in rows.items():
                if row.origin == "yaml" and name not in declared:
                    await session.delete(row)
                    changed = True
            if changed:
                await _bump(session)
        return changed

    # ---- what the administrators do (models:admin) -----------------------------------------------------------

    async def entries(self, actor: Principal) -> list[ModelEntry]:
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session:
            rows = await session.scalars(select(CatalogueModel).order_by(CatalogueModel.position, CatalogueModel.id))
            return [_entry(row) for row in rows]

    async def entry(self, actor: Principal, entry_id: int) -> ModelEntry:
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session:
            return _entry(await _row(session, entry_id))

    async def create(self, actor: Principal, settings: Mapping[str, Any], backend: Mapping[str, Any], *,
                     api_key: str = "") -> ModelEntry:
        """A new model of the browser with its first backend (``settings``: the YAML's fields of a model, its
        card included; ``backend``: one backend entry as the YAML writes it; ``api_key``: its key, if any)."""
        require(actor, Permission.MODELS_ADMIN)
        config = _validated({**settings, "backends": [dict(backend)]})
        keys = [self._sealed(config.backends[0], api_key)]
        model_settings, card, backends = _parts(config)
        async with self._sessions() as session, session.begin():
            await self._check_names(session, config, None)
            position = UI_POSITION + int(await session.scalar(select(CatalogueModel.id).order_by(
                CatalogueModel.id.desc()).limit(1)) or 0)
            row = CatalogueModel(name=config.id, position=position, origin="ui", enabled=True,
                                 settings=model_settings, card=card, updated_at=utcnow(),
                                 updated_by=actor.user_id or None, backends=_backend_rows(backends, keys))
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"un modèle s'appelle déjà « {config.id} ».", param="id",
                               code="model_exists") from exc
            await self._audit.record_in(session, Action.MODEL_CREATED, actor=actor, target=("model", config.id),
                                        details={"type": config.type, "backends": len(backends)})
            await _bump(session)
            entry_id = row.id
        await self._changed()
        return await self.entry(actor, entry_id)

    async def update(self, actor: Principal, entry_id: int, settings: Mapping[str, Any]) -> ModelEntry:
        """A browser model's settings and card (its backends are kept, keys included)."""
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session, session.begin():
            row = await _editable(session, entry_id)
            current = _config(row)
            kept = {"audience": row.settings["audience"]} if "audience" in row.settings else {}  # not a form's
            config = _validated({**kept, **settings, "id": row.name,
                                 "backends": [b.model_dump(mode="json", exclude_defaults=True)
                                              for b in current.backends]})
            model_settings, card, _ = _parts(config)
            await self._check_names(session, config, row.id)
            changed = sorted(name for name in {*model_settings, *row.settings}
                             if model_settings.get(name) != row.settings.get(name))
            if card != row.card:
                changed.append("card")
            row.settings, row.card, row.updated_at, row.updated_by = model_settings, card, utcnow(), actor.user_id or None
            await self._audit.record_in(session, Action.MODEL_CHANGED, actor=actor, target=("model", row.name),
                                        details={"changed": changed})
            await _bump(session)
        await self._changed()
        return await self.entry(actor, entry_id)

    async def set_enabled(self, actor: Principal, entry_id: int, enabled: bool) -> ModelEntry:
        """In service or not (the file's models too): a model out of service is answered as unknown."""
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session, session.begin():
            row = await _row(session, entry_id)
            if row.enabled != enabled:
                row.enabled, row.updated_at, row.updated_by = enabled, utcnow(), actor.user_id or None
                await self._audit.record_in(session, Action.MODEL_CHANGED, actor=actor, target=("model", row.name),
                                            details={"enabled": enabled})
                await _bump(session)
        await self._changed()
        return await self.entry(actor, entry_id)

    async def delete(self, actor: Principal, entry_id: int) -> None:
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session, session.begin():
            row = await _editable(session, entry_id)
            await session.delete(row)
            await self._audit.record_in(session, Action.MODEL_DELETED, actor=actor, target=("model", row.name))
            await _bump(session)
        await self._changed()

    async def add_backend(self, actor: Principal, entry_id: int, backend: Mapping[str, Any], *,
                          api_key: str = "") -> ModelEntry:
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session, session.begin():
            row = await _editable(session, entry_id)
            current = _config(row)
            config = _validated({**current.model_dump(mode="json", exclude={"backends"}, exclude_defaults=True),
                                 "id": row.name, "backends": [*[b.model_dump(mode="json", exclude_defaults=True)
                                                                for b in current.backends], dict(backend)]})
            added = config.backends[-1]
            row.backends.append(CatalogueBackend(position=len(row.backends), updated_at=utcnow(),
                                                 config=added.model_dump(mode="json", exclude_defaults=True),
                                                 secret=self._sealed(added, api_key)))
            row.updated_at, row.updated_by = utcnow(), actor.user_id or None
            await self._audit.record_in(session, Action.MODEL_CHANGED, actor=actor, target=("model", row.name),
                                        details={"backend_added": config.backend_label(len(config.backends) - 1)})
            await _bump(session)
        await self._changed()
        return await self.entry(actor, entry_id)

    async def remove_backend(self, actor: Principal, entry_id: int, backend_id: int) -> ModelEntry:
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session, session.begin():
            row = await _editable(session, entry_id)
            backend = next((b for b in row.backends if b.id == backend_id), None)
            if backend is None:
                raise NotFound("ce serveur n'existe pas.", param="backend_id")
            if len(row.backends) == 1:
                raise InvalidRequest("un modèle garde au moins un serveur : retirez le modèle lui-même, ou ajoutez "
                                     "d'abord un autre serveur.", param="backend_id", code="last_backend")
            label = _entry(row).backends[row.backends.index(backend)].label
            row.backends.remove(backend)
            for position, kept in enumerate(row.backends):
                kept.position = position
            row.updated_at, row.updated_by = utcnow(), actor.user_id or None
            await self._audit.record_in(session, Action.MODEL_CHANGED, actor=actor, target=("model", row.name),
                                        details={"backend_removed": label})
            await _bump(session)
        await self._changed()
        return await self.entry(actor, entry_id)

    # ---- what the platform's own services do (their callers' rights are checked by them) ------------------------

    async def register(self, config: ModelConfig, *, owner_id: int | None, details: Mapping[str, Any]) -> None:
        """Add a model that a service made (a fine-tuned model), or replace it when it is there already (the job
        that made it ran again after a crash): a model of the browser, which the administrators may then take out
        of service or remove. A backend that carries a key (its base's, entered in the browser) keeps it, sealed
        again with this entry: the entry's JSON never holds it."""
        model_settings, card, backends = _parts(config)
        keys = [self._box.seal(key.get_secret_value()) if (key := getattr(backend, "api_key", None)) else None
                for backend in config.backends]
        async with self._sessions() as session, session.begin():
            row = await session.scalar(select(CatalogueModel).where(CatalogueModel.name == config.id))
            if row is None:
                position = UI_POSITION + int(await session.scalar(select(CatalogueModel.id).order_by(
                    CatalogueModel.id.desc()).limit(1)) or 0)
                session.add(CatalogueModel(name=config.id, position=position, origin="ui", enabled=True,
                                           settings=model_settings, card=card, updated_at=utcnow(), updated_by=owner_id,
                                           backends=_backend_rows(backends, keys)))
            else:
                row.settings, row.card, row.updated_at, row.updated_by = model_settings, card, utcnow(), owner_id
                row.backends = _backend_rows(backends, keys)
            await self._audit.record_in(session, Action.MODEL_CREATED, target=("model", config.id),
                                        details={"type": config.type, "backends": len(backends), **details})
            await _bump(session)
        await self._changed()

    async def remove_owned_in(self, session: AsyncSession, owner_id: int) -> int:
        """Remove the models a person owns (their fine-tuned models) inside the caller's transaction, when the person
        is erased; the caller calls :meth:`applied` once it commits. The catalogue is small: read whole."""
        rows = await session.scalars(select(CatalogueModel).where(CatalogueModel.origin == "ui"))
        owned = [row for row in rows if (row.settings.get("audience") or {}).get("owner_id") == owner_id]
        for row in owned:
            await session.delete(row)  # with its backends
        if owned:
            await _bump(session)
        return len(owned)

    async def applied(self) -> None:
        """Apply in this process a change that a caller's transaction committed (:meth:`remove_owned_in`)."""
        await self._changed()

    async def set_audience(self, actor: Principal, name: str, audience: Audience) -> None:
        """Change who may use a model (shared with groups, published): the caller's service checked the right."""
        async with self._sessions() as session, session.begin():
            row = await session.scalar(select(CatalogueModel).where(CatalogueModel.name == name))
            if row is None:
                raise NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")
            row.settings = {**row.settings, "audience": audience.model_dump(mode="json")}
            row.updated_at, row.updated_by = utcnow(), actor.user_id or None
            await self._audit.record_in(session, Action.MODEL_CHANGED, actor=actor, target=("model", name),
                                        details={"groups": list(audience.group_ids), "public": audience.public})
            await _bump(session)
        await self._changed()

    async def export_yaml(self, actor: Principal) -> str:
        """The models in service as a catalogue file: a key entered in the browser is not written, its backend
        names an environment variable to set instead (the header lists them)."""
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session:
            rows = list(await session.scalars(select(CatalogueModel).where(CatalogueModel.enabled.is_(True))
                                              .order_by(CatalogueModel.position, CatalogueModel.id)))
        models, variables = [], []
        for row in rows:
            entry = {"id": row.name, **row.settings, "backends": []}
            for index, backend in enumerate(row.backends):
                config = dict(backend.config)
                if backend.secret:
                    variable = _variable(row.name, index)
                    config["api_key_env"] = variable
                    variables.append(variable)
                entry["backends"].append(config)
            if row.card:
                entry["card"] = row.card
            models.append(entry)
        header = "# Catalogue of models exported from the platform (models in service only).\n"
        if variables:
            header += ("# The keys entered in the browser are not exported: set these environment variables to them:\n"
                       + "".join(f"#   {name}\n" for name in variables))
        return header + yaml.safe_dump({"models": models}, allow_unicode=True, sort_keys=False)

    async def test(self, actor: Principal, entry_id: int,
                   running: Callable[[ModelConfig, int], Backend | None] | None = None) -> list[Probe]:
        """Call each backend of the model once (a short question, or a word to embed), within a time limit, from a
        client of its own, so that a model out of service can be tried too; ``running`` gives the backend this
        process already runs for the same entry, used as it is (an in-process model is not loaded twice)."""
        require(actor, Permission.MODELS_ADMIN)
        async with self._sessions() as session:
            row = await _row(session, entry_id)
            config = _with_keys(_config(row), [self._box.open(b.secret) if b.secret else None for b in row.backends])
        probes = [await self._probe(config, index, running(config, index) if running else None)
                  for index in range(len(config.backends))]
        await self._audit.record(Action.MODEL_TESTED, actor=actor, target=("model", config.id),
                                 details={"ok": [probe.ok for probe in probes]})
        return probes

    async def _probe(self, config: ModelConfig, index: int, running: Backend | None) -> Probe:
        label = config.backend_label(index)
        endpoint, body = _PROBES[config.type]
        backend = running or build_backend(config.backends[index], config.id, label)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._test_timeout_s):
                if running is None:
                    await backend.start()
                answer = await backend.call(endpoint, dict(body))
        except TimeoutError:
            return Probe(label, False, _ms(started), reason=f"le serveur n'a pas répondu dans les "
                                                            f"{self._test_timeout_s:.0f} secondes.")
        except SocleError as exc:
            return Probe(label, False, _ms(started), reason=_reason(exc))
        except Exception:  # an engine that fails to load: the details go to the log, for operators
            log.exception("testing backend %s of model %s failed", label, config.id)
            return Probe(label, False, _ms(started), reason="le serveur n'a pas pu être démarré (détails dans le "
                                                             "journal de la plateforme).")
        finally:
            if running is None:
                await backend.close()
        return Probe(label, True, _ms(started), answer=_summary(config.type, answer))

    def _sealed(self, backend: BackendConfig, api_key: str) -> str | None:
        key = api_key.strip()
        if not key:
            return None
        if "api_key" not in type(backend).model_fields:
            raise InvalidRequest("ce type de serveur ne prend pas de clé.", param="api_key")
        return self._box.seal(key)

    async def _check_names(self, session: AsyncSession, config: ModelConfig, own: int | None) -> None:
        """A model's id and aliases name no other model (in service or not)."""
        for row in await session.scalars(select(CatalogueModel).where(CatalogueModel.id != (own or 0))):
            taken = {row.name, *row.settings.get("aliases", [])}  # type: ignore[misc]
            clash = taken & {config.id, *config.aliases}
            if clash:
                raise Conflict(f"le nom « {sorted(clash)[0]} » est déjà celui d'un autre modèle.", param="id",
                               code="model_exists")


# ---- rows and configs -------------------------------------------------------------------------------------------

def _parts(model: ModelConfig) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """A model as the rows keep it: its settings, its card, its backends' entries (as JSON, defaults left out)."""
    settings = model.model_dump(mode="json", exclude={"id", "backends", "card"}, exclude_defaults=True)
    card = model.card.model_dump(mode="json", exclude_defaults=True) if model.card is not None else None
    return settings, card, [b.model_dump(mode="json", exclude_defaults=True) for b in model.backends]


def _backend_rows(configs: Sequence[dict[str, Any]], secrets: Sequence[str | None]) -> list[CatalogueBackend]:
    return [CatalogueBackend(position=i, config=config, secret=secret, updated_at=utcnow())
            for i, (config, secret) in enumerate(zip(configs, secrets, strict=True))]


def _config(row: CatalogueModel) -> ModelConfig:
    return ModelConfig.model_validate({**row.settings, "id": row.name, "card": row.card,
                                       "backends": [backend.config for backend in row.backends]})


def _with_keys(config: ModelConfig, keys: Sequence[str | None]) -> ModelConfig:
    backends = [backend.model_copy(update={"api_key": SecretStr(key)}) if key else backend
                for backend, key in zip(config.backends, keys, strict=True)]
    return config.model_copy(update={"backends": backends})


def _entry(row: CatalogueModel) -> ModelEntry:
    config = _config(row)
    backends = tuple(BackendEntry(b.id, config.backend_label(i), config.backends[i], b.secret is not None)
                     for i, b in enumerate(row.backends))
    return ModelEntry(row.id, config, row.origin, row.enabled, backends, row.updated_at)


def _validated(raw: Mapping[str, Any]) -> ModelConfig:
    try:
        return ModelConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise _refusal(exc) from exc


def _refusal(exc: ValidationError) -> InvalidRequest:
    """The first refused field, in French."""
    error = exc.errors()[0]
    names = [str(part) for part in error["loc"] if isinstance(part, str)]
    field = next((name for name in reversed(names) if name in FIELD_LABELS), names[-1] if names else "")
    if field == "url" and "card" in names:
        field = "url_card"
    reason = _REASONS.get(error["type"], "valeur refusée")
    if error["type"] == "value_error" and field == "url":
        reason = "doit commencer par http:// ou https:// et nommer un serveur, sans identifiant ni mot de passe"
    elif error["type"] == "value_error" and field == "api_key_env":
        reason = "cette variable n'est pas définie dans l'environnement de la plateforme"
    return InvalidRequest(f"« {FIELD_LABELS.get(field, field)} » : {reason}.", param=field or None)


async def _row(session: AsyncSession, entry_id: int) -> CatalogueModel:
    row = await session.get(CatalogueModel, entry_id)
    if row is None:
        raise NotFound("ce modèle n'existe pas.", param="model_id", code="model_not_found")
    return row


async def _editable(session: AsyncSession, entry_id: int) -> CatalogueModel:
    row = await _row(session, entry_id)
    if row.origin != "ui":
        raise Conflict("ce modèle est déclaré dans le fichier de configuration de la plateforme : il se modifie "
                       "dans ce fichier.", param="model_id", code="model_from_file")
    return row


async def _bump(session: AsyncSession) -> None:
    await session.execute(update(CatalogueState).where(CatalogueState.id == 1)
                          .values(revision=CatalogueState.revision + 1, updated_at=utcnow()))


def _variable(model: str, index: int) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in model.upper())
    return f"SOCLE_BACKEND_KEY_{cleaned}_{index}"


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _reason(exc: SocleError) -> str:
    if exc.kind == "gateway_timeout":
        return "le serveur n'a pas répondu à temps."
    if exc.kind == "upstream_rejected":
        status = getattr(exc, "status", 400)
        if status in (401, 403):
            return "le serveur refuse la clé (accès non autorisé) : vérifiez la clé."
        if status == 404:
            return "le serveur ne connaît pas ce modèle : vérifiez le nom du modèle sur le serveur."
        return f"le serveur a refusé la demande (code {status})."
    if exc.kind in ("unavailable", "bad_gateway"):
        return "le serveur est injoignable ou a répondu par une erreur : vérifiez son adresse et qu'il est démarré."
    return "le serveur a répondu de façon inattendue."


def _summary(model_type: str, answer: Json) -> str:
    """What the backend answered, in a few words a person can check."""
    try:
        if model_type == "chat":
            text = str(answer["choices"][0]["message"].get("content") or "")
        elif model_type == "embeddings":
            text = f"vecteur de {len(answer['data'][0]['embedding'])} nombres"
        elif model_type == "transcription":
            text = f"transcription d'une seconde de silence : « {answer['text']} »"
        elif model_type == "moderation":
            text = "texte signalé" if answer["results"][0]["flagged"] else "texte non signalé"
        else:
            text = f"{len(answer.get('results') or answer.get('data') or [])} passages classés"
    except (KeyError, IndexError, TypeError, AttributeError):
        return "réponse reçue, dans une forme inattendue"
    return text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + "…"
