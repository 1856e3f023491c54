"""The lexical analyser: what the full-text index sees of a text, and of a question.

Both stores index the analysed text with a plain tokenizer, so lexical search behaves the same on
SQLite (FTS5) and PostgreSQL: lower case, elisions cut (l', d', qu'...), accents folded, French stop
words and one-letter tokens out, numbers kept ("16 ans", "UE"). No stemming: on the French retrieval
dev set, Snowball stems helped lexical search alone but cost hybrid search recall@10 (0.970 → 0.943),
the embeddings already matching inflected forms (bench/retrieval.py). The folding itself is the
platform's (:mod:`socle.text`).
"""
from __future__ import annotations

from socle.text import terms


def analyse(text: str) -> str:
    """What the full-text index stores for a passage."""
    return " ".join(terms(text))


MAX_QUERY_TERMS = 64  # a long prompt searched by words: its first terms are enough, and bound the query


def query_terms(question: str) -> list[str]:
    """A question's distinct terms, in order: the search ORs them, ranked by BM25."""
    return list(dict.fromkeys(terms(question)))[:MAX_QUERY_TERMS]
