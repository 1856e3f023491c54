"""The lexical analyser: what the full-text index sees of a text, and of a question.

Both stores index the analysed text with a plain tokenizer, so lexical search behaves the same on
SQLite (FTS5) and PostgreSQL: accents folded, elisions cut (l', d', qu'...), French stop words out,
words reduced to their Snowball stem (PyStemmer) so that "déclarer" finds "déclaration". Tuned on
the French retrieval dev set (bench/retrieval.py).
"""
from __future__ import annotations

import functools
import re
import unicodedata

import Stemmer

_WORD = re.compile(r"[a-z0-9]+")
_ELISION = re.compile(r"\b(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu)['’]", re.IGNORECASE)

STOP_WORDS = frozenset("""
a ai aie aient aies ait as au aura aurai auraient aurais aurait auras aurez auriez aurions aurons auront aux
avaient avais avait avec avez aviez avions avons ayant ayez ayons c ce ceci cela celle celles celui ces cet
cette ceux chez comme comment d dans de des donc dont du elle elles en encore es est et etaient etais etait
etant ete etes etiez etions etre eu eue eues eurent eus eusse eussent eut eux faut fut il ils j je l la le les
leur leurs lui m ma mais me meme mes moi mon n ne ni nos notre nous on ont ou par pas peu peut pour qu quand
que quel quelle quelles quels qui quoi s sa sans se ses si son sont soi soit sommes sont sous sur t ta te tes
toi ton tous tout toute toutes tu un une vos votre vous y
""".split())


@functools.lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("french")


def fold(text: str) -> str:
    """Lower case, accents removed (NFKD), ligatures opened: "Œuvre déclarée" → "oeuvre declaree"."""
    text = unicodedata.normalize("NFKD", text.lower().replace("œ", "oe").replace("æ", "ae"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def terms(text: str) -> list[str]:
    """The stems of a text's meaningful words, in order (repeats kept: they count in a document)."""
    words = [w for w in _WORD.findall(fold(_ELISION.sub(" ", text))) if w not in STOP_WORDS]
    return _stemmer().stemWords(words)  # type: ignore[no-any-return]


def analyse(text: str) -> str:
    """What the full-text index stores for a passage."""
    return " ".join(terms(text))


def query_terms(question: str) -> list[str]:
    """A question's distinct terms, in order: the search ORs them, ranked by BM25."""
    return list(dict.fromkeys(terms(question)))
