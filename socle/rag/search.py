"""Search over the caller's collections: lexical, semantic, or both fused (hybrid, the default).

Hybrid search ranks by weighted reciprocal rank fusion — each method contributes
``weight / (k + rank)`` for every chunk in its top candidates — which needs no calibration between
BM25 and cosine scores. Chunks not yet embedded are still found by their words. An optional reranker
(a ``rerank`` model of the catalogue) reorders the fused candidates.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Chunk, Collection, Document
from socle.errors import InvalidRequest, NotFound
from socle.identity.permissions import Principal
from socle.inference.backends.base import Endpoint
from socle.inference.service import InferenceService
from socle.rag.collections import readable
from socle.rag.lexical import query_terms
from socle.rag.stores import ChunkStore, Hit

Method = Literal["lexical", "semantic", "hybrid"]


@dataclass(frozen=True, slots=True)
class Fusion:
    """Reciprocal rank fusion's settings (chosen on the French retrieval dev set, bench/retrieval.py)."""

    k: int = 60
    lexical_weight: float = 1.0
    semantic_weight: float = 1.0
    depth: int = 100  # candidates taken from each method


@dataclass(frozen=True, slots=True)
class Result:
    chunk: Chunk
    document_name: str
    score: float
    method: str


class SearchService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ChunkStore, inference: InferenceService,
                 *, embedding_model: str, fusion: Fusion = Fusion()) -> None:
        self._sessions = sessions
        self._store = store
        self._inference = inference
        self.embedding_model = embedding_model
        self.fusion = fusion

    async def search(self, principal: Principal, prompt: str, collection_ids: Sequence[int], *,
                     method: Method = "hybrid", k: int = 10, score_threshold: float | None = None,
                     rerank_model: str | None = None) -> list[Result]:
        if not prompt.strip():
            raise InvalidRequest("prompt must not be empty.", param="prompt")
        ids = sorted(set(collection_ids))
        if not ids:
            raise InvalidRequest("Name at least one collection to search.", param="collections")
        await self._check_readable(principal, ids)
        depth = max(k, self.fusion.depth) if method == "hybrid" or rerank_model else k
        vector = await self._embed(principal, prompt) if method != "lexical" else None
        async with self._sessions() as session, session.begin():
            lexical = await self._store.lexical(session, principal, ids, query_terms(prompt), depth) \
                if method != "semantic" else []
            semantic = await self._store.semantic(session, principal, ids, vector, depth) \
                if vector is not None else []
        hits = self._fuse(lexical, semantic) if method == "hybrid" else (lexical or semantic)
        if score_threshold is not None:
            hits = [hit for hit in hits if hit.score >= score_threshold]
        results = await self._load(principal, hits[: depth if rerank_model else k], method)
        if rerank_model:
            results = await self._rerank(principal, rerank_model, prompt, results)
        return results[:k]

    async def _check_readable(self, principal: Principal, ids: list[int]) -> None:
        async with self._sessions() as session:
            found = set(await session.scalars(select(Collection.id).where(Collection.id.in_(ids), readable(principal))))
        for collection_id in ids:
            if collection_id not in found:
                raise NotFound(f"Collection {collection_id} not found.", param="collections")

    async def _embed(self, principal: Principal, prompt: str) -> np.ndarray:
        answer = await self._inference.call(principal, Endpoint.EMBEDDINGS, {
            "model": self.embedding_model, "input": [prompt], "input_type": "query"})
        return np.asarray(answer["data"][0]["embedding"], dtype=np.float32)

    def _fuse(self, lexical: list[Hit], semantic: list[Hit]) -> list[Hit]:
        fusion = self.fusion
        scores: dict[int, float] = {}
        for hits, weight in ((lexical, fusion.lexical_weight), (semantic, fusion.semantic_weight)):
            for rank, hit in enumerate(hits, start=1):
                scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (fusion.k + rank)
        return [Hit(chunk_id, score) for chunk_id, score in sorted(scores.items(), key=lambda item: -item[1])]

    async def _load(self, principal: Principal, hits: list[Hit], method: str) -> list[Result]:
        if not hits:
            return []
        async with self._sessions() as session:
            rows = await session.execute(
                select(Chunk, Document.name).join(Document, Document.id == Chunk.document_id)
                .join(Collection, Collection.id == Chunk.collection_id)
                .where(Chunk.id.in_([hit.chunk_id for hit in hits]), readable(principal)))
            found = {chunk.id: (chunk, name) for chunk, name in rows}
        return [Result(found[hit.chunk_id][0], found[hit.chunk_id][1], hit.score, method)
                for hit in hits if hit.chunk_id in found]

    async def _rerank(self, principal: Principal, model: str, prompt: str, results: list[Result]) -> list[Result]:
        if not results:
            return results
        answer = await self._inference.call(principal, Endpoint.RERANK, {
            "model": model, "query": prompt, "documents": [r.chunk.text for r in results]})
        return [Result(results[item["index"]].chunk, results[item["index"]].document_name,
                       float(item["relevance_score"]), f"{results[item['index']].method}+rerank")
                for item in answer["results"]]
