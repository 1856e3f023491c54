"""How well search by need finds the right family: each labelled need (``data/needs.jsonl``, written for the
project, in the words agents use) is searched over the catalogue; a need counts as found at ``k`` when its
expected family is among the families of the first results, taken in order without repeats, up to ``k``."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from socle.apps.panorama.catalogue import CatalogueService
from socle.identity.permissions import Principal

NEEDS = Path(__file__).parent / "data" / "needs.jsonl"


@dataclass(frozen=True, slots=True)
class Labelled:
    need: str
    family: str


@dataclass(slots=True)
class Evaluation:
    needs: int
    top1: float
    top3: float
    misses: list[dict[str, object]] = field(default_factory=list)  # needs whose family is not in the top 3
    by_family: dict[str, float] = field(default_factory=dict)  # top-3 accuracy per expected family

    def as_dict(self) -> dict[str, object]:
        return {"needs": self.needs, "top1": self.top1, "top3": self.top3, "by_family": self.by_family,
                "misses": self.misses}


def labelled(path: Path = NEEDS) -> list[Labelled]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Labelled(row["need"], row["family"]) for row in rows]


async def evaluate(catalogue: CatalogueService, principal: Principal, needs: list[Labelled]) -> Evaluation:
    found1 = found3 = 0
    misses: list[dict[str, object]] = []
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter(n.family for n in needs)
    results = await catalogue.search_many(principal, [n.need for n in needs], k=10)
    for item, matches in zip(needs, results, strict=True):
        families = list(dict.fromkeys(m.family for m in matches))
        found1 += bool(families) and families[0] == item.family
        if item.family in families[:3]:
            found3 += 1
            hits[item.family] += 1
        else:
            misses.append({"need": item.need, "expected": item.family, "found": families[:3]})
    count = max(len(needs), 1)
    return Evaluation(len(needs), round(found1 / count, 3), round(found3 / count, 3), misses,
                      {family: round(hits[family] / total, 3) for family, total in sorted(totals.items())})
