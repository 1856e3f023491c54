"""Drafts that an agent edits before answering a citizen: never sent by the platform. Written by a chat
model in the administration's tone, from the pseudonymised message and what the analysis found."""
from __future__ import annotations

from typing import Any

import orjson

from socle.apps.feedback.engines.base import EngineContext
from socle.apps.feedback.schema import REPLY_MAX
from socle.endpoints import Endpoint
from socle.rag.topics import Namer

MAX_TOKENS = 300
_TONE = ("Tu rédiges, pour un agent d'une administration française, le brouillon d'une réponse à un usager qui a "
         "laissé un avis. Ton : courtois, sobre, vouvoiement, phrases courtes, sans jargon. Remercie l'usager, "
         "reconnais précisément ce qu'il signale, explique la suite possible sans promettre ce que tu ne sais pas "
         "et sans inventer de délai, de montant ni de nom. Garde les marqueurs comme [NOM_1] tels quels. "
         "Termine par « Le service ». 120 mots au plus.")


async def draft_reply(context: EngineContext, model: str, text: str, annotation: dict[str, Any]) -> tuple[str, int]:
    """The draft and the tokens it cost."""
    found = {k: annotation.get(k) for k in ("themes", "sentiment", "irritant", "urgent")}
    answer = await context.inference.call(context.principal, Endpoint.CHAT, {
        "model": model, "temperature": 0.3, "max_tokens": MAX_TOKENS,
        "messages": [{"role": "system", "content": _TONE},
                     {"role": "user", "content": f"Avis de l'usager :\n{text}\n\nAnalyse : "
                                                 f"{orjson.dumps(found).decode()}"}]})
    content = (answer["choices"][0]["message"].get("content") or "").strip()
    return content[:REPLY_MAX], int((answer.get("usage") or {}).get("total_tokens") or 0)


def topic_namer(context: EngineContext, model: str) -> Namer:
    """Names a group of messages with the chat model, in a few French words."""
    schema = {"type": "object", "additionalProperties": False, "required": ["name"],
              "properties": {"name": {"type": "string", "maxLength": 80}}}

    async def name(examples: list[str], keywords: list[str]) -> str | None:
        answer = await context.inference.call(context.principal, Endpoint.CHAT, {
            "model": model, "temperature": 0, "max_tokens": 60,
            "response_format": {"type": "json_schema", "json_schema": {"name": "topic", "schema": schema}},
            "messages": [{"role": "system", "content": "Donne un nom court (quelques mots, en français) au sujet "
                                                       "commun de ces avis d'usagers. Réponds en JSON."},
                         {"role": "user", "content": f"Mots fréquents : {', '.join(keywords)}\n\n"
                                                     + "\n---\n".join(examples)}]})
        try:
            value = orjson.loads(answer["choices"][0]["message"].get("content") or "")
            return str(value["name"]).strip()[:80] or None
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
    return name
