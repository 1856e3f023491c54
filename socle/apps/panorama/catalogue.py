"""The catalogue of AI solutions: browsing by family with facets, a solution's page, editing (a form, or a
YAML, CSV or Excel file, merged by slug), export, and search by need through the hybrid index.

Every user with ``panorama:read`` reads the whole catalogue (it is public within the platform); only
``panorama:edit`` changes it. The platform's own apps are entries of the catalogue too, kept in step with
the installed apps at start-up.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.panorama import audit, importing
from socle.apps.panorama.importing import SolutionFields
from socle.apps.panorama.models import PanoramaSolution
from socle.apps.panorama.permissions import EDIT, READ, require
from socle.apps.panorama.search import CatalogueIndex, Embed, Indexed, Indexer, Match, indexed_text
from socle.apps.panorama.vocabulary import FAMILIES
from socle.audit.service import AuditTrail
from socle.db.models import utcnow
from socle.errors import BackendError, BackendTimeout, BackendUnavailable, Conflict, InvalidRequest, NotFound
from socle.identity.permissions import Principal
from socle.jobs.kinds import JobKind, Kind, Payload
from socle.jobs.queue import JobQueue
from socle.text import fold, terms

log = logging.getLogger("socle.panorama")
EMBED_BATCH = 16
INDEX = "panorama.index"  # the job kind that computes the catalogue's missing vectors
MAX_NEED = 2000  # characters of a need searched


@dataclass(frozen=True, slots=True)
class PlatformApp:
    """One of the platform's installed apps, as the catalogue presents it."""

    name: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Filters:
    family: str | None = None
    maturity: str | None = None
    hosting: str | None = None
    open_source: bool | None = None
    text: str | None = None  # words the name, editor or description must hold


@dataclass(slots=True)
class Listing:
    solutions: list[PanoramaSolution]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)  # facet → value → count (other filters on)
    total: int = 0


@dataclass(frozen=True, slots=True)
class Imported:
    created: int
    updated: int


def solution_dict(solution: PanoramaSolution) -> dict[str, Any]:
    return {"id": solution.id, "slug": solution.slug, "name": solution.name, "family": solution.family,
            "editor": solution.editor, "description": solution.description, "maturity": solution.maturity,
            "hosting": solution.hosting, "open_source": solution.open_source, "licence": solution.licence,
            "integration": solution.integration, "criterion_impact": solution.criterion_impact,
            "criterion_maturity": solution.criterion_maturity,
            "criterion_integration": solution.criterion_integration,
            "criterion_compliance": solution.criterion_compliance, "keywords": list(solution.keywords or []),
            "url": solution.url, "illustrative": solution.illustrative, "app": solution.app,
            "created_at": solution.created_at.isoformat(), "updated_at": solution.updated_at.isoformat()}


def _apply(solution: PanoramaSolution, fields: SolutionFields) -> list[str]:
    """Copy the fields onto the row; the names of those that changed (the audit trail says which)."""
    changed = []
    for name, value in fields.model_dump(exclude={"slug"}).items():
        if getattr(solution, name) != value:
            setattr(solution, name, value)
            changed.append(name)
    if changed:  # its text may have changed: its vector is computed again at the next indexing
        solution.updated_at, solution.vector, solution.vector_model = utcnow(), None, None
    return changed


class CatalogueService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, jobs: JobQueue,
                 embed: Embed | None, *, embedding_model: str | None,
                 apps: Callable[[], Sequence[PlatformApp]] = list, sample: bool = True) -> None:
        self._sessions = sessions
        self._audit = audit
        self._jobs = jobs
        self._embed = embed if embedding_model else None
        self.embedding_model = embedding_model if embed else None
        self._apps = apps
        self._sample = sample
        self._ready = False
        self._indexer = Indexer()

    @property
    def kinds(self) -> list[JobKind]:
        """Indexing the catalogue after it changed: the solutions' vectors computed off the request path, so
        that the next search by need finds them ready."""
        return [Kind(INDEX, self._run_index, self._index_given_up)]

    async def _run_index(self, payload: Payload) -> None:
        await self._index()

    async def _index_given_up(self, payload: Payload, error: str) -> None:
        log.warning("panorama: the catalogue's indexing gave up (%s); searches embed what is missing", error)

    async def _changed(self) -> None:
        await self._jobs.enqueue(INDEX, {}, dedupe_key=INDEX, max_attempts=3)

    async def ready(self) -> None:
        """Once per process, before the catalogue is first read: the platform's apps in step with what is
        installed, and the sample catalogue loaded if the settings want it and the catalogue has nothing
        else. Idempotent, so that every process of the gateway may do it."""
        if self._ready:
            return
        await self.sync_apps()
        if self._sample:
            async with self._sessions() as session:
                others = await session.scalar(select(func.count()).select_from(PanoramaSolution)
                                              .where(PanoramaSolution.app.is_(None)))
            if not others:
                solutions, illustrative = importing.sample()
                try:  # the platform's own doing: recorded without an actor
                    await self._merge(None, solutions, illustrative=illustrative, source="sample")
                except IntegrityError:  # another process loaded it at the same moment
                    pass
        self._ready = True
        await self._changed()

    # -- reading ----------------------------------------------------------------------------------
    async def browse(self, principal: Principal, filters: Filters = Filters(), *, limit: int = 500,
                     offset: int = 0) -> Listing:
        """The solutions that pass the filters, by family then name, with each facet's counts computed with
        the other facets' filters applied (what choosing that value would leave)."""
        require(principal, READ)
        await self.ready()
        async with self._sessions() as session:
            rows = list(await session.scalars(select(PanoramaSolution)
                                              .order_by(PanoramaSolution.family, PanoramaSolution.name)))
        words = [w for w in (filters.text or "").split() if w]

        def passes(s: PanoramaSolution, skip: str | None = None) -> bool:
            return ((skip == "family" or not filters.family or s.family == filters.family)
                    and (skip == "maturity" or not filters.maturity or s.maturity == filters.maturity)
                    and (skip == "hosting" or not filters.hosting or s.hosting == filters.hosting)
                    and (skip == "open_source" or filters.open_source is None or s.open_source == filters.open_source)
                    and all(_contains(s, w) for w in words))

        facets = {
            "family": dict(Counter(s.family for s in rows if passes(s, "family"))),
            "maturity": dict(Counter(s.maturity for s in rows if passes(s, "maturity"))),
            "hosting": dict(Counter(s.hosting for s in rows if passes(s, "hosting"))),
            "open_source": {str(k).lower(): v for k, v in
                            Counter(s.open_source for s in rows if passes(s, "open_source")).items()},
        }
        kept = [s for s in rows if passes(s)]
        order = {f.code: i for i, f in enumerate(FAMILIES)}
        kept.sort(key=lambda s: (order.get(s.family, len(order)), s.name.casefold()))
        return Listing(kept[offset:offset + limit], facets, len(kept))

    async def get(self, principal: Principal, slug: str) -> PanoramaSolution:
        require(principal, READ)
        await self.ready()
        async with self._sessions() as session:
            solution = await session.scalar(select(PanoramaSolution).where(PanoramaSolution.slug == slug))
        if solution is None:
            raise NotFound(f"Solution {slug!r} not found.", param="slug")
        return solution

    async def count(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(PanoramaSolution)) or 0)

    # -- editing ----------------------------------------------------------------------------------
    async def create(self, principal: Principal, fields: SolutionFields) -> PanoramaSolution:
        require(principal, EDIT)
        slug = fields.resolved_slug()
        async with self._sessions() as session, session.begin():
            if await session.scalar(select(PanoramaSolution.id).where(PanoramaSolution.slug == slug)) is not None:
                raise Conflict(f"A solution {slug!r} already exists.", param="slug", code="duplicate_slug")
            solution = PanoramaSolution(slug=slug, illustrative=False)
            _apply(solution, fields)
            session.add(solution)
            await session.flush()
            await self._audit.record_in(session, audit.SOLUTION_CREATED, actor=principal,
                                        target=(audit.SOLUTION, solution.id),
                                        details={"slug": slug, "name": solution.name, "family": solution.family})
        await self._changed()
        return solution

    async def update(self, principal: Principal, slug: str, fields: SolutionFields) -> PanoramaSolution:
        require(principal, EDIT)
        async with self._sessions() as session, session.begin():
            solution = await session.scalar(select(PanoramaSolution).where(PanoramaSolution.slug == slug))
            if solution is None:
                raise NotFound(f"Solution {slug!r} not found.", param="slug")
            if solution.app is not None and fields.family != solution.family:
                raise InvalidRequest("An app of the platform keeps its family.", param="family")
            changed = _apply(solution, fields)
            if changed:
                await self._audit.record_in(session, audit.SOLUTION_UPDATED, actor=principal,
                                            target=(audit.SOLUTION, solution.id),
                                            details={"slug": slug, "fields": changed})
        await self._changed()
        return solution

    async def delete(self, principal: Principal, slug: str) -> None:
        require(principal, EDIT)
        async with self._sessions() as session, session.begin():
            solution = await session.scalar(select(PanoramaSolution).where(PanoramaSolution.slug == slug))
            if solution is None:
                raise NotFound(f"Solution {slug!r} not found.", param="slug")
            if solution.app is not None:
                raise InvalidRequest("An app of the platform stays in the catalogue while it is installed.",
                                     param="slug", code="platform_app")
            await session.delete(solution)
            await self._audit.record_in(session, audit.SOLUTION_DELETED, actor=principal,
                                        target=(audit.SOLUTION, solution.id),
                                        details={"slug": slug, "name": solution.name})

    async def import_file(self, principal: Principal, filename: str, data: bytes) -> Imported:
        """Merge a file into the catalogue: a slug already there is updated, a new one added."""
        require(principal, EDIT)
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""  # parse refuses any other
        return await self._merge(principal, importing.parse(filename, data), illustrative=False, source=suffix)

    async def load_sample(self, principal: Principal) -> Imported:
        """The illustrative catalogue shipped with the app, merged in like a file."""
        require(principal, EDIT)
        solutions, illustrative = importing.sample()
        return await self._merge(principal, solutions, illustrative=illustrative, source="sample")

    async def _merge(self, principal: Principal | None, solutions: Sequence[SolutionFields], *, illustrative: bool,
                     source: str) -> Imported:
        """Merge by slug, and record the import with its counts when it changed the catalogue. ``source``:
        the file's format, or ``sample`` (never the file's name, which may name a person)."""
        created = updated = 0
        async with self._sessions() as session, session.begin():
            existing = {s.slug: s for s in await session.scalars(select(PanoramaSolution))}
            for fields in solutions:
                solution = existing.get(fields.resolved_slug())
                if solution is None:
                    solution = PanoramaSolution(slug=fields.resolved_slug(), illustrative=illustrative)
                    _apply(solution, fields)
                    session.add(solution)
                    created += 1
                elif solution.app is None and _apply(solution, fields):
                    solution.illustrative = illustrative
                    updated += 1
            if created or updated:
                await self._audit.record_in(session, audit.CATALOGUE_IMPORTED, actor=principal, details={
                    "source": source, "solutions": len(solutions), "created": created, "updated": updated})
        await self._changed()
        return Imported(created, updated)

    async def export(self, principal: Principal, fmt: str) -> str:
        require(principal, READ)
        rows = [solution_dict(s) for s in (await self.browse(principal, limit=1_000_000)).solutions]
        if fmt == "csv":
            return importing.to_csv(rows)
        if fmt in ("yaml", "yml"):
            return importing.to_yaml(rows)
        raise InvalidRequest(f"Unknown export format {fmt!r}: csv or yaml.", param="format")

    async def sync_apps(self) -> None:
        """The platform's installed apps as entries of the catalogue, in the family their description
        speaks of; an app no longer installed leaves the catalogue."""
        apps = list(self._apps())
        names = [app.name for app in apps]
        async with self._sessions() as session, session.begin():
            existing = {s.app: s for s in await session.scalars(
                select(PanoramaSolution).where(PanoramaSolution.app.is_not(None)))}
            for app in apps:
                fields = SolutionFields(
                    name=app.title, slug=f"socle-{importing.slugify(app.name)}", family=_family_of(app),
                    editor="Socle IA (cette plateforme)", description=app.description, maturity="production",
                    hosting="sur_site", open_source=True, licence="EUPL-1.2",
                    integration="Application de la plateforme : pages web, API /v1 et commande socle",
                    criterion_impact="Disponible pour tous les agents de l'administration sur cette plateforme.",
                    criterion_maturity="Installée sur cette plateforme.",
                    criterion_integration="Authentification unique de la plateforme, API compatible.",
                    criterion_compliance="Hébergée sur les serveurs de l'administration, sans envoi de données "
                                         "à l'extérieur.",
                    keywords=["plateforme", app.name])
                solution = existing.get(app.name)
                if solution is None:
                    taken = await session.scalar(select(PanoramaSolution).where(
                        PanoramaSolution.slug == fields.resolved_slug()))
                    solution = taken or PanoramaSolution(slug=fields.resolved_slug(), illustrative=False)
                    solution.app = app.name
                    session.add(solution)
                _apply(solution, fields)
            await session.execute(delete(PanoramaSolution).where(
                PanoramaSolution.app.is_not(None), PanoramaSolution.app.not_in(names)))

    # -- search by need ---------------------------------------------------------------------------
    async def search(self, principal: Principal, need: str, *, k: int = 10,
                     families: Sequence[str] = ()) -> list[Match]:
        """The solutions closest to a need written in plain French, each with why it matched."""
        require(principal, READ)
        need = need.strip()[:MAX_NEED]
        if not need:
            raise InvalidRequest("Describe the need in a few words.", param="need")
        unknown = set(families) - {f.code for f in FAMILIES}
        if unknown:
            raise InvalidRequest(f"Unknown family: {', '.join(sorted(unknown))}.", param="family")
        await self.ready()
        vector = await self.embed_need(need)
        index = await self._index()
        return index.search(need, vector, k=max(1, min(k, 50)), families=families)

    async def search_many(self, principal: Principal, needs: Sequence[str], *, k: int = 10) -> list[list[Match]]:
        """Several needs searched at once, their vectors computed in batches (an evaluation's way)."""
        require(principal, READ)
        await self.ready()
        texts = [need.strip()[:MAX_NEED] for need in needs]
        vectors: list[np.ndarray | None] = [None] * len(texts)
        if self._embed is not None:
            try:
                for start in range(0, len(texts), EMBED_BATCH):
                    vectors[start:start + EMBED_BATCH] = list(
                        await self._embed(texts[start:start + EMBED_BATCH], "query"))
            except (BackendError, BackendTimeout, BackendUnavailable) as exc:
                log.warning("panorama search by words alone: the embedding model failed (%s)", exc)
        index = await self._index()
        return [index.search(text, vector, k=k) for text, vector in zip(texts, vectors, strict=True)]

    async def embed_need(self, text: str) -> np.ndarray | None:
        """The need's vector, or None when no embedding model answers (search goes on by words)."""
        if self._embed is None:
            return None
        try:
            return (await self._embed([text], "query"))[0]
        except (BackendError, BackendTimeout, BackendUnavailable) as exc:
            log.warning("panorama search by words alone: the embedding model failed (%s)", exc)
            return None

    async def _index(self) -> CatalogueIndex:
        async with self._sessions() as session:
            count, latest = (await session.execute(select(func.count(), func.max(PanoramaSolution.updated_at))
                                                   .select_from(PanoramaSolution))).one()
        signature = (count, latest, self.embedding_model)
        return self._indexer.current(signature) or await self._indexer.rebuild(signature, self._load)

    async def _load(self) -> list[Indexed]:
        """Every solution with its vector, embedding (and storing) those without one for the current model."""
        async with self._sessions() as session:
            rows = (await session.execute(select(
                PanoramaSolution.id, PanoramaSolution.slug, PanoramaSolution.name, PanoramaSolution.family,
                PanoramaSolution.editor, PanoramaSolution.description, PanoramaSolution.keywords,
                PanoramaSolution.integration, PanoramaSolution.updated_at, PanoramaSolution.vector,
                PanoramaSolution.vector_model))).all()
        texts = {r.id: indexed_text(r.name, r.family, r.editor, r.description, r.keywords or [], r.integration)
                 for r in rows}
        vectors: dict[int, np.ndarray] = {r.id: np.frombuffer(r.vector, dtype="<f4") for r in rows
                                          if r.vector is not None and r.vector_model == self.embedding_model}
        missing = [r.id for r in rows if r.id not in vectors]
        if missing and self._embed is not None:
            try:
                for start in range(0, len(missing), EMBED_BATCH):
                    batch = missing[start:start + EMBED_BATCH]
                    found = await self._embed([texts[i] for i in batch], "passage")
                    vectors.update(zip(batch, found, strict=True))
                    await self._store_vectors({i: vectors[i] for i in batch})
            except (BackendError, BackendTimeout, BackendUnavailable) as exc:
                log.warning("panorama: %d solutions searched by their words only (%s)", len(missing), exc)
        return [Indexed(r.id, r.slug, r.name, r.family, texts[r.id],
                        ". ".join((r.name, r.description, ", ".join(r.keywords or []), r.integration)),
                        r.updated_at, vectors.get(r.id)) for r in rows]

    async def _store_vectors(self, vectors: Mapping[int, np.ndarray]) -> None:
        async with self._sessions() as session, session.begin():
            for solution_id, vector in vectors.items():
                await session.execute(update(PanoramaSolution).where(PanoramaSolution.id == solution_id)
                                      .values(vector=np.asarray(vector, dtype="<f4").tobytes(),
                                              vector_model=self.embedding_model))


def _contains(solution: PanoramaSolution, word: str) -> bool:
    haystack = fold(" ".join((solution.name, solution.editor, solution.description, " ".join(solution.keywords or []))))
    return fold(word) in haystack


def _family_of(app: PlatformApp) -> str:
    """The family an app belongs to, by the words of its description (the catalogue's own vocabulary)."""
    words = set(terms(f"{app.title} {app.description}"))
    best = max(FAMILIES, key=lambda f: len(words & set(terms(f"{f.label} {f.description}"))))
    return best.code

