"""French text folded for comparison: what search, classification and matching compare, rather than text
as typed.

One folding for the whole platform, so that a word means the same to the full-text index, to the apps'
keyword cues and to a column name matched on import: lower case, accents removed, ligatures opened,
elisions (l', d', qu'...) cut, French stop words and one-letter tokens out, numbers kept.
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
    """A text's meaningful words, folded, in order (repeats kept: they count in a document)."""
    words = _WORD.findall(fold(_ELISION.sub(" ", text.lower())))
    return [w for w in words if len(w) > 1 and w not in STOP_WORDS]


def compact(text: str) -> str:
    """Letters and digits only, folded: "Date de dépôt" and "date_de_depot" → "datededepot" (names compared
    whatever their spelling, e.g. a file's column headers)."""
    return re.sub(r"[^a-z0-9]", "", fold(text))
