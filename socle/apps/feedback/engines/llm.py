"""The engine for production: any chat model of the platform reads each message and answers one JSON
object constrained by the annotation schema (``response_format``: a grammar on llama.cpp, guided decoding
on vLLM). The output is validated all the same; an invalid one is asked again, with what was wrong, up to
the context's attempts, then kept as ``invalid`` with the reason."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from socle.apps.feedback.engines.base import EngineContext, Example, Interrupted, Item, Outcome
from socle.apps.feedback.schema import AnnotationValidator
from socle.apps.feedback.taxonomy import Taxonomy
from socle.endpoints import Endpoint
from socle.errors import RateLimited

MAX_COMPLETION_TOKENS = 400
CONCURRENCY = 8  # calls in flight per batch: a served model batches them


def system_prompt(taxonomy: Taxonomy) -> str:
    themes = "\n".join(f"- {t.key} : {t.description}" for t in taxonomy.themes)
    subthemes = "\n".join(f"- {s.key} ({s.label}) : {s.description}" for s in taxonomy.subthemes)
    return (
        "Tu analyses les avis laissés par les usagers des services publics français. Pour le message donné, "
        "réponds uniquement par un objet JSON conforme au schéma imposé.\n"
        f"Thèmes (plusieurs possibles, avec une confiance entre 0 et 1) :\n{themes}\n"
        f"Sous-thèmes (plusieurs possibles) :\n{subthemes}\n"
        "sentiment : negative, neutral ou positive, avec sentiment_confidence.\n"
        "irritant : en une phrase courte en français, ce qui irrite l'usager ; null s'il n'y en a pas.\n"
        f"urgent : true si {taxonomy.urgency[0].lower()}{taxonomy.urgency[1:]} ; urgency_reason dit pourquoi, "
        "en français, sinon null. Un message positif (remerciement, satisfaction) n'est jamais urgent.\n"
        "Les données personnelles ont été remplacées par des marqueurs comme [NOM_1] : ne les commente pas.")


class LlmEngine:
    name = "llm"
    batch_size = 16

    def __init__(self, context: EngineContext, model: str) -> None:
        self.context = context
        self.model = model
        self._validator: AnnotationValidator = context.validator()
        self._system = system_prompt(context.taxonomy)
        self._format = {"type": "json_schema", "json_schema": {
            "name": "annotation", "strict": True, "schema": self._validator.schema}}

    def estimate_tokens(self, text: str) -> int:
        return (len(self._system) + len(text)) // 3 + 16 + MAX_COMPLETION_TOKENS

    async def prepare(self) -> None:
        return None  # the model is served: nothing to fit

    async def annotate(self, items: list[Item], examples: Sequence[Example] = ()) -> list[Outcome]:
        """``examples`` are not used: the model reads the taxonomy's descriptions. A message whose call a
        quota refused while others were in flight (each reserves its worst case) is tried again alone; if
        it is refused alone too, the batch stops there with what is done."""
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(item: Item) -> Outcome:
            async with limit:
                return await self._annotate(item)
        results: list[Outcome | BaseException] = list(
            await asyncio.gather(*(one(item) for item in items), return_exceptions=True))
        for index, (item, result) in enumerate(zip(items, results, strict=True)):
            if isinstance(result, RateLimited):
                try:
                    results[index] = await self._annotate(item)
                except RateLimited as exc:
                    done = [r for r in results if isinstance(r, Outcome)]
                    await self._embed(items, done)
                    raise Interrupted(done, exc) from exc
            elif isinstance(result, BaseException):
                raise result
        outcomes = [r for r in results if isinstance(r, Outcome)]
        await self._embed(items, outcomes)
        return outcomes

    async def _embed(self, items: list[Item], outcomes: list[Outcome]) -> None:
        """The messages' embeddings, for the emerging topics."""
        if self.context.embedding_model is None or not outcomes:
            return
        texts = {item.message_id: item.text for item in items}
        vectors, tokens = await self.context.embed([texts[o.message_id] for o in outcomes])
        for outcome, vector in zip(outcomes, vectors, strict=True):
            outcome.vector = vector
            outcome.tokens += tokens // len(outcomes)

    async def _annotate(self, item: Item) -> Outcome:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self._system},
                                          {"role": "user", "content": item.text}]
        tokens, problem = 0, "no answer"
        for attempt in range(1, self.context.max_attempts + 1):
            answer = await self.context.inference.call(self.context.principal, Endpoint.CHAT, {
                "model": self.model, "messages": messages, "temperature": 0,
                "max_tokens": MAX_COMPLETION_TOKENS, "response_format": self._format})
            tokens += int((answer.get("usage") or {}).get("total_tokens") or 0)
            content = (answer["choices"][0]["message"].get("content") or "").strip()
            try:
                value = orjson.loads(content)
            except orjson.JSONDecodeError as exc:
                problem = f"réponse non JSON ({exc})"
            else:
                errors = self._validator.errors(value)
                if not errors:
                    if value.get("sentiment") == "positive":  # never urgent, whatever the model said
                        value = {**value, "urgent": False, "urgency_reason": None}
                    return Outcome(item.message_id, value, tokens=tokens, attempts=attempt)
                problem = "; ".join(errors)
            messages = [*messages[:2], {"role": "assistant", "content": content[:2000]},
                        {"role": "user", "content": f"Cette réponse ne respecte pas le schéma : {problem}. "
                                                    "Réponds de nouveau avec un objet JSON valide."}]
        return Outcome(item.message_id, None, error=problem[:2000], tokens=tokens,
                       attempts=self.context.max_attempts)

