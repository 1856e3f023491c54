"""Search over the caller's collections: lexical, semantic, or both fused (hybrid, the default).

Hybrid search ranks by reciprocal rank fusion — each method contributes ``weight / (k + rank)`` for every
chunk in its top candidates — which needs no calibration between BM25 (or ``ts_rank``) and cosine scores (a
search may set ``k``, the Albert API's ``rff_k``). Equal scores are frequent (rank r in one method only,
either one): the lexical rank breaks them, then the semantic one. Chunks not yet embedded are still found by
their words. An optional reranker (a ``rerank`` model of the catalogue) reorders the fused candidates. When
the embedding model cannot answer, hybrid search still answers, by words alone (its results then say
``lexical``).

A search may be narrowed to the documents whose metadata (given at upload) equal every key of
``metadata_filters``: their ids are found first, and the stores search only their chunks.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.db.models import Chunk, Collection, Document
from socle.endpoints import Endpoint
from socle.errors import BackendError, BackendTimeout, BackendUnavailable, InvalidRequest, NotFound
from socle.identity.permissions import Principal
from socle.inference.service import InferenceService
from socle.rag.collections import readable
from socle.rag.lexical import query_terms
from socle.rag.stores import ChunkStore, Hit

Method = Literal["lexical", "semantic", "hybrid"]
log = logging.getLogger("socle.rag")


@dataclass(frozen=True, slots=True)
class Fusion:
    """Reciprocal rank fusion's settings, chosen on the French retrieval dev set (bench/retrieval.py):
    a shallow depth makes ``k`` matter little; unequal weights were the fragile setting."""

    k: int = 10
    lexical_weight: float = 1.0
    semantic_weight: float = 1.0
    depth: int = 20  # candidates taken from each method (at least the k asked)


@dataclass(frozen=True, slots=True)
class Result:
    chunk: Chunk
    document_name: str
    score: float
    method: str


@dataclass(slots=True)
class Found:
    """A search's results and the tokens its model calls took (the embedding of the prompt, a reranking)."""

    results: list[Result]
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0,
                                                           "total_tokens": 0})

    def count(self, answer: dict[str, Any]) -> None:
        for name, value in (answer.get("usage") or {}).items():
            if name in self.usage and isinstance(value, int):
                self.usage[name] += value


# The most documents a metadata filter may leave (their ids are parameters of the store's query).
MAX_FILTERED_DOCUMENTS = 20_000


class SearchService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ChunkStore, inference: InferenceService,
                 *, embedding_model: str | None, fusion: Fusion = Fusion()) -> None:
        self._sessions = sessions
        self._store = store
        self._inference = inference
        self.embedding_model = embedding_model
        self.fusion = fusion

    async def search(self, principal: Principal, prompt: str, collection_ids: Sequence[int], *,
                     method: Method = "hybrid", k: int = 10, score_threshold: float | None = None,
                     rerank_model: str | None = None, rff_k: int | None = None,
                     metadata_filters: dict[str, Any] | None = None) -> list[Result]:
        return (await self.find(principal, prompt, collection_ids, method=method, k=k, score_threshold=score_threshold,
                                rerank_model=rerank_model, rff_k=rff_k, metadata_filters=metadata_filters)).results

    async def find(self, principal: Principal, prompt: str, collection_ids: Sequence[int], *,
                   method: Method = "hybrid", k: int = 10, score_threshold: float | None = None,
                   rerank_model: str | None = None, rff_k: int | None = None,
                   metadata_filters: dict[str, Any] | None = None) -> Found:
        """The search, with the tokens it took."""
        found = Found([])
        if not prompt.strip():
            raise InvalidRequest("prompt must not be empty.", param="prompt")
        ids = sorted(set(collection_ids))
        if not ids:
            raise InvalidRequest("Name at least one collection to search.", param="collections")
        await self._check_readable(principal, ids)
        documents = await self._matching(principal, ids, metadata_filters) if metadata_filters else None
        if documents is not None and not documents:
            return found
        depth = max(k, self.fusion.depth) if method == "hybrid" or rerank_model else k
        vector = None
        if method == "semantic" and self.embedding_model is None:
            raise InvalidRequest("Semantic search needs an embeddings model: none is configured "
                                 "(SOCLE_RAG_EMBEDDING_MODEL).", param="method")
        if method != "lexical" and self.embedding_model is not None:
            try:
                vector = await self._embed(principal, prompt, found)
            except (BackendError, BackendTimeout, BackendUnavailable, NotFound) as exc:  # NotFound: not served now
                if method == "semantic":
                    raise
                log.warning("hybrid search by words alone: the embedding model failed (%s)", exc)
        if vector is None:
            method = "lexical"
        async with self._sessions() as session, session.begin():
            lexical = await self._store.lexical(session, principal, ids, query_terms(prompt), depth,
                                                documents=documents) if method != "semantic" else []
            semantic = await self._store.semantic(session, principal, ids, vector, depth, documents=documents) \
                if vector is not None else []
        hits = self._fuse(lexical, semantic, rff_k) if method == "hybrid" else (lexical or semantic)
        if score_threshold is not None:
            hits = [hit for hit in hits if hit.score >= score_threshold]
        results = await self._load(principal, hits[: depth if rerank_model else k], method)
        if rerank_model:
            results = await self._rerank(principal, rerank_model, prompt, results, found)
        found.results = results[:k]
        return found

    async def _check_readable(self, principal: Principal, ids: list[int]) -> None:
        async with self._sessions() as session:
            found = set(await session.scalars(select(Collection.id).where(Collection.id.in_(ids), readable(principal))))
        for collection_id in ids:
            if collection_id not in found:
                raise NotFound(f"Collection {collection_id} not found.", param="collections")

    async def _matching(self, principal: Principal, ids: list[int], filters: dict[str, Any]) -> list[int]:
        """The readable documents of ``ids`` whose metadata hold every key of ``filters`` with its value
        (compared in Python: JSON values compare alike whatever the store)."""
        query = (select(Document.id, Document.meta).join(Collection, Collection.id == Document.collection_id)
                 .where(Document.collection_id.in_(ids), Document.meta.isnot(None), readable(principal)))
        async with self._sessions() as session:
            rows = await session.execute(query)
            matching = [document_id for document_id, meta in rows
                        if all(_same(meta.get(key), value) for key, value in filters.items())]
        if len(matching) > MAX_FILTERED_DOCUMENTS:
            raise InvalidRequest(f"metadata_filters leave {len(matching)} documents: at most "
                                 f"{MAX_FILTERED_DOCUMENTS} may be searched this way; narrow the filter.",
                                 param="metadata_filters")
        return matching

    async def _embed(self, principal: Principal, prompt: str, found: Found) -> np.ndarray:
        assert self.embedding_model is not None
        answer = await self._inference.call(principal, Endpoint.EMBEDDINGS, {
            "model": self.embedding_model, "input": [prompt], "input_type": "query"})
        found.count(answer)
        return np.asarray(answer["data"][0]["embedding"], dtype=np.float32)

    def _fuse(self, lexical: list[Hit], semantic: list[Hit], rff_k: int | None = None) -> list[Hit]:
        fusion = self.fusion if rff_k is None else replace(self.fusion, k=rff_k)
        absent = max(len(lexical), len(semantic)) + 1
        ranks: dict[int, list[int]] = {}  # chunk → [lexical rank, semantic rank]
        for method, hits in enumerate((lexical, semantic)):
            for rank, hit in enumerate(hits, start=1):
                ranks.setdefault(hit.chunk_id, [absent, absent])[method] = rank

        def score(chunk_ranks: list[int]) -> float:
            lexical_rank, semantic_rank = chunk_ranks
            return ((fusion.lexical_weight / (fusion.k + lexical_rank) if lexical_rank != absent else 0.0)
                    + (fusion.semantic_weight / (fusion.k + semantic_rank) if semantic_rank != absent else 0.0))

        fused = [(score(r), r[0], r[1], chunk_id) for chunk_id, r in ranks.items()]
        fused.sort(key=lambda item: (-item[0], item[1], item[2], item[3]))
        return [Hit(chunk_id, value) for value, _, _, chunk_id in fused]

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

    async def _rerank(self, principal: Principal, model: str, prompt: str, results: list[Result],
                      found: Found) -> list[Result]:
        if not results:
            return results
        answer = await self._inference.call(principal, Endpoint.RERANK, {
            "model": model, "query": prompt, "documents": [r.chunk.text for r in results]})
        found.count(answer)
        return [Result(results[item["index"]].chunk, results[item["index"]].document_name,
                       float(item["relevance_score"]), f"{results[item['index']].method}+rerank")
                for item in answer["results"]]


def _same(stored: Any, wanted: Any) -> bool:
    """Equal as JSON values: ``true`` is not ``1``, ``2`` is ``2.0``."""
    return isinstance(stored, bool) == isinstance(wanted, bool) and stored == wanted


_NO_WEB = ("The platform has no access to the internet, by design: nothing leaves the administration's servers. "
           "Search your collections only")


def refuse_web_search(*, method: str, web_search: bool, prefix: str = "") -> None:
    """The Albert API's web search (``web_search``, the ``multiagent`` method) is refused by name: a client
    must never believe the web was searched. ``prefix``: where the client sent them (``search_args.``)."""
    if web_search:
        raise InvalidRequest(f"web_search is not offered. {_NO_WEB}: leave web_search out or false.",
                             param=f"{prefix}web_search")
    if method == "multiagent":
        raise InvalidRequest(f"The multiagent method (which searches the web) is not offered. {_NO_WEB}, with "
                             "method hybrid, semantic or lexical.", param=f"{prefix}method")
