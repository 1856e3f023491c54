"""The census of needs: an agent describes what hinders their service (the irritant, who suffers it, how
often, the data at hand, how they cope today); the need is matched to the closest solutions of the
catalogue when written, and takes the family of the closest. Needs are grouped by similarity with the
platform's topic service (the same clustering as the citizens' messages of the feedback app).

An agent reads their own needs; ``panorama:edit`` reads them all, by family and administration, and
exports them. Someone else's need answers 404.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.panorama.catalogue import CatalogueService
from socle.apps.panorama.models import PanoramaNeed
from socle.apps.panorama.permissions import EDIT, READ, require
from socle.apps.panorama.vocabulary import FAMILY_BY_CODE
from socle.errors import NotFound
from socle.identity.permissions import Principal
from socle.rag.topics import Topic, emerging_topics
from socle.spreadsheets import safe_cell

MATCHES = 3  # solutions proposed for a need
GROUP_MIN = 2  # needs that make a group
GROUP_DISTANCE = 1.0  # a census holds tens or hundreds of needs, not thousands of messages: a wider cut


class NeedFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    administration: str = Field(min_length=1, max_length=200, description="The administration that has it.")
    title: str = Field(min_length=1, max_length=200)
    irritant: str = Field(min_length=1, max_length=5000, description="What goes wrong today.")
    sufferers: str = Field(min_length=1, max_length=500, description="Who suffers it (agents, users, ...).")
    volume: str = Field(default="", max_length=200, description="How often, how many.")
    data_available: str = Field(default="", max_length=5000)
    workaround: str = Field(default="", max_length=5000, description="How the service copes today.")

    def text(self) -> str:
        return f"{self.title}. {self.irritant}"


@dataclass(slots=True)
class Overview:
    needs: list[PanoramaNeed]
    by_family: dict[str, int]
    by_administration: dict[str, int]
    cross: dict[str, dict[str, int]]  # administration → family → needs


def need_dict(need: PanoramaNeed) -> dict[str, Any]:
    return {"id": need.id, "administration": need.administration, "title": need.title,
            "irritant": need.irritant, "sufferers": need.sufferers, "volume": need.volume,
            "data_available": need.data_available, "workaround": need.workaround, "family": need.family,
            "matches": need.matches or [], "created_at": need.created_at.isoformat()}


class NeedService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], catalogue: CatalogueService) -> None:
        self._sessions = sessions
        self._catalogue = catalogue

    async def declare(self, principal: Principal, fields: NeedFields) -> PanoramaNeed:
        require(principal, READ)
        text = fields.text()
        vector = await self._catalogue.embed_need(text)
        matches = await self._catalogue.search(principal, text, k=MATCHES)
        need = PanoramaNeed(author_id=principal.user_id or None, **fields.model_dump(),
                            family=matches[0].family if matches else None,
                            matches=[m.as_dict() for m in matches],
                            vector=None if vector is None else np.asarray(vector, dtype="<f4").tobytes())
        async with self._sessions() as session, session.begin():
            session.add(need)
        return need

    async def mine(self, principal: Principal) -> list[PanoramaNeed]:
        require(principal, READ)
        async with self._sessions() as session:
            return list(await session.scalars(select(PanoramaNeed).where(
                PanoramaNeed.author_id == (principal.user_id or None)).order_by(PanoramaNeed.id.desc())))

    async def get(self, principal: Principal, need_id: int) -> PanoramaNeed:
        require(principal, READ)
        async with self._sessions() as session:
            need = await session.get(PanoramaNeed, need_id)
        if need is None or not (principal.can(EDIT) or (need.author_id and need.author_id == principal.user_id)):
            raise NotFound(f"Need {need_id} not found.", param="need_id")
        return need

    async def overview(self, principal: Principal, *, family: str | None = None,
                       administration: str | None = None) -> Overview:
        """Every need (newest first) with the counts by family and by administration."""
        require(principal, EDIT)
        query = select(PanoramaNeed).order_by(PanoramaNeed.id.desc())
        if family:
            query = query.where(PanoramaNeed.family == family)
        if administration:
            query = query.where(PanoramaNeed.administration == administration)
        async with self._sessions() as session:
            needs = list(await session.scalars(query))
        cross: dict[str, dict[str, int]] = {}
        for need in needs:
            row = cross.setdefault(need.administration, {})
            row[need.family or ""] = row.get(need.family or "", 0) + 1
        return Overview(needs, dict(Counter(n.family or "" for n in needs).most_common()),
                        dict(Counter(n.administration for n in needs).most_common()), cross)

    async def groups(self, principal: Principal, *, limit: int = 12) -> list[Topic]:
        """Needs grouped by similarity of their text (the platform's topic service)."""
        require(principal, EDIT)
        async with self._sessions() as session:
            rows = (await session.execute(select(PanoramaNeed.id, PanoramaNeed.title, PanoramaNeed.irritant,
                                                 PanoramaNeed.vector)
                                          .where(PanoramaNeed.vector.is_not(None)).order_by(PanoramaNeed.id))).all()
        if len(rows) < 2 * GROUP_MIN:
            return []
        vectors = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows])
        return await emerging_topics([r.id for r in rows], [f"{r.title}. {r.irritant}" for r in rows], vectors,
                                     min_size=GROUP_MIN, distance=GROUP_DISTANCE, limit=limit)

    async def export_csv(self, principal: Principal) -> str:
        overview = await self.overview(principal)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(["id", "administration", "titre", "irritant", "qui le subit", "volume",
                         "données disponibles", "contournement actuel", "famille", "solutions proposées", "déposé le"])
        for need in overview.needs:
            family = FAMILY_BY_CODE.get(need.family or "")
            writer.writerow([str(need.id), *(safe_cell(v) for v in (
                need.administration, need.title, need.irritant, need.sufferers, need.volume, need.data_available,
                need.workaround, family.label if family else "",
                " | ".join(str(m.get("name")) for m in need.matches or []))),
                need.created_at.date().isoformat()])
        return out.getvalue()
