"""The lexical analyser: what the full-text index sees of a text, and of a question.

Both stores index the analysed text with a plain tokenizer, so lexical search behaves the same on
SQLite (FTS5) and PostgreSQL: lower case, elisions cut (l', d', qu'...), accents folded, French stop
words and one-letter tokens out, numbers kept ("16 ans", "UE"). No stemming: on the French retrieval
dev set, Snowball stems helped lexical search alone but cost hybrid search recall@10 (0.970 → 0.943),
the embeddings already matching inflected forms (bench/retrieval.py).
"""
from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")
_ELISION = re.compile(r"\b(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu)['’]")

STOP_WORDS = frozenset("""
a au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur leurs lui ma mais
me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un
une vos votre vous c d j l m n s t y ete etre etait etaient etant suis es est sommes etes sont serai sera
seront serait seraient ai as avons avez ont avait avaient aura auront aurait eu ceci cela ca celui celle ceux
celles dont donc or ni car si lorsque puisque quand quel quelle quels quelles quoi comment pourquoi combien
tout tous toute toutes plus moins tres aussi bien sans sous entre vers chez depuis pendant apres avant comme
ainsi alors encore deja
""".split())


def fold(text: str) -> str:
    """Lower case, accents removed (NFKD), ligatures opened: "Œuvre déclarée" → "oeuvre declaree"."""
    text = unicodedata.normalize("NFKD", text.lower().replace("œ", "oe").replace("æ", "ae"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def terms(text: str) -> list[str]:
    """A text's meaningful words, in order (repeats kept: they count in a document)."""
    words = _WORD.findall(fold(_ELISION.sub(" ", text.lower())))
    return [w for w in words if len(w) > 1 and w not in STOP_WORDS]


def analyse(text: str) -> str:
    """What the full-text index stores for a passage."""
    return " ".join(terms(text))


MAX_QUERY_TERMS = 64  # a long prompt searched by words: its first terms are enough, and bound the query


def query_terms(question: str) -> list[str]:
    """A question's distinct terms, in order: the search ORs them, ranked by BM25."""
    return list(dict.fromkeys(terms(question)))[:MAX_QUERY_TERMS]
