"""Answers by extracts: the passages found for a question, the sentences that answer it highlighted, with their
sources — what a question about documents gets when the only model at hand is a demonstration one, which would
loop and invent figures rather than write a faithful answer.

Sentences are scored by lexical overlap with the question (the platform's French folding, :mod:`socle.text`),
each shared term weighted by its rarity among the candidate sentences. The passages themselves were already
ranked by the hybrid search (words and embeddings); scoring their sentences by words costs nothing, whereas
embedding every sentence would cost the small CPU embedding model seconds per question (about 8 passages/s).
The answer is Markdown (rendered with raw HTML escaped): the passage's own characters are escaped so that a
document's text is shown as written, and the answering sentences are in bold. Through the API, the answer is a
chat completion like any other (:func:`completion`, :func:`chunks`), written by the platform: it used no tokens.
"""
from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from socle.rag.search import Result
from socle.text import terms

SHOWN = 3  # passages quoted
NOTICE = ("*Cette réponse cite vos documents sans les reformuler : le modèle choisi est un modèle de "
          "démonstration, qui ne sait pas rédiger de réponse fiable. Un vrai modèle, installé par l'équipe qui "
          "administre la plateforme, rédige des réponses. Vous pouvez aussi demander au modèle de démonstration "
          "de rédiger la sienne, pour voir.*")
NOTHING = "Aucun passage de vos documents ne répond à cette question."

_SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+|\n\s*\n")  # a single line break is a PDF's wrapping
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


@dataclass(frozen=True, slots=True)
class Quote:
    """One passage quoted: its source number (as in the answer's sources), its sentences, and which answer."""

    number: int
    where: str
    sentences: list[str]
    answering: set[int]


def sentences_of(text: str) -> list[str]:
    """A passage cut into sentences (at their end punctuation, or a blank line)."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def quotes(question: str, results: Sequence[Result], *, shown: int = SHOWN) -> list[Quote]:
    """The passages that answer ``question`` best, in the search's order, with their answering sentences."""
    asked = set(terms(question))
    cut = [sentences_of(result.chunk.text) for result in results]
    bags = [[set(terms(sentence)) for sentence in sentences] for sentences in cut]
    every = [bag for passage in bags for bag in passage]
    rarity = {term: math.log(1 + len(every) / (1 + sum(term in bag for bag in every))) for term in asked}
    scored = [[sum(rarity[term] for term in bag & asked) for bag in passage] for passage in bags]
    best = max((score for scores in scored for score in scores), default=0.0)
    found: list[Quote] = []
    for number, (result, sentences, scores) in enumerate(zip(results, cut, scored, strict=True), start=1):
        answering = {index for index, score in enumerate(scores) if best > 0 and score >= 0.6 * best}
        if not answering:  # a passage without a sentence near the best one's score is not quoted
            continue
        where = result.document_name + (f", page {result.chunk.page}" if result.chunk.page else "")
        found.append(Quote(number, where, sentences, answering))
    return found[:shown]


def _escaped(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def answer(question: str, results: Sequence[Result]) -> str:
    """The answer by extracts, as Markdown: each quoted passage with its source number, its answering sentences
    in bold, then the notice that a real model writes answers."""
    found = quotes(question, results)
    parts = ["Voici les passages de vos documents qui répondent à la question ; les phrases en gras sont "
             "celles qui y répondent le mieux." if found else NOTHING]
    for quote in found:
        text = " ".join(f"**{_escaped(sentence)}**" if index in quote.answering else _escaped(sentence)
                        for index, sentence in enumerate(quote.sentences))
        parts.append(f"[{quote.number}] {_escaped(quote.where)} :\n\n> {text}")
    parts.append(NOTICE)
    return "\n\n".join(parts)


def is_extracts(content: str) -> bool:
    """Whether a saved answer is one of these (it ends with their notice): not generated, so not labelled as such."""
    return content.rstrip().endswith(NOTICE)


def _head(model: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-extraits-{secrets.token_hex(12)}", "created": int(time.time()), "model": model,
            "system_fingerprint": "extraits"}


def completion(model: str, text: str) -> dict[str, Any]:
    """The answer as an OpenAI chat completion (no tokens used: no model wrote it)."""
    return {**_head(model), "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


async def chunks(model: str, text: str) -> AsyncIterator[dict[str, Any]]:
    """The answer as the chunks of an OpenAI chat completion stream: all of it, then its end."""
    head = {**_head(model), "object": "chat.completion.chunk"}
    yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
    yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
