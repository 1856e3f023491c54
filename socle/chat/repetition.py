"""Stopping an answer that loops: small models, once they repeat themselves, rarely stop (asked about telework
days, the bundled model wrote "150 euros pour la catégorie A" five times in a row).

Whatever the backend, a turn's stream is watched as it arrives: it loops when one run of ``words`` words comes
back for the ``times``-th time, or when its end is one stretch of text repeated ``times`` times in a row (a loop
without spaces). The answer is then cut where the repetition began: what came before is kept, the repeats are
not. The sampling penalties of local models (:mod:`socle.inference.backends.llamacpp`) make loops rarer; this
ends those that happen all the same.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from socle.text import fold

_WORD = re.compile(r"\w+")


@dataclass
class LoopGuard:
    """Fed the answer's pieces; says where to cut it once it loops (None until then)."""

    words: int = 8  # a run of this many words...
    times: int = 3  # ...seen this many times is a loop
    min_span: int = 80  # characters a repetition without spaces must cover, so that "----" rules are not loops
    text: str = ""
    _seen: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    _words: list[tuple[str, int]] = field(default_factory=list)  # folded word, its start in ``text``
    _scanned: int = 0  # where the words not yet counted start

    def feed(self, piece: str) -> int | None:
        """Add a piece of the answer; where the answer should end if it now loops."""
        self.text += piece
        # words followed by a separator are complete; the last one may still grow
        for match in _WORD.finditer(self.text, self._scanned):
            if match.end() == len(self.text):
                break
            self._scanned = match.end()
            self._words.append((fold(match.group()), match.start()))
            if len(self._words) >= self.words:
                run = tuple(word for word, _ in self._words[-self.words:])
                starts = self._seen.setdefault(run, [])
                starts.append(self._words[-self.words][1])
                if len(starts) >= self.times:
                    return starts[1]
        return self._periodic()

    def _periodic(self) -> int | None:
        tail = self.text[-3 * self.min_span * self.times:]
        for period in range(1, len(tail) // self.times + 1):
            repeats = max(self.times, -(-self.min_span // period))
            if repeats * period > len(tail):
                continue
            if tail.endswith(tail[-period:] * repeats):
                return len(self.text) - (repeats - 1) * period  # the first occurrence is kept
        return None
