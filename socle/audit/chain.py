"""The hash chain: how an entry is sealed, and how a sequence of entries is checked.

``hash = SHA-256(prev_hash + canonical JSON of the entry)``, the first entry's ``prev_hash`` being
:data:`GENESIS`. Editing an entry changes its hash; deleting or reordering entries breaks the next one's link.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Sealed:
    """What the hash covers: every column but the id and the hashes themselves."""

    at: datetime
    action: str
    actor_user_id: int | None
    actor_key_id: int | None
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    address: str | None
    channel: str

    def canonical(self) -> str:
        return json.dumps({
            "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"), "action": self.action,
            "actor_user_id": self.actor_user_id, "actor_key_id": self.actor_key_id,
            "target_type": self.target_type, "target_id": self.target_id, "details": self.details,
            "address": self.address, "channel": self.channel,
        }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def seal(prev_hash: str, entry: Sealed) -> str:
    return hashlib.sha256((prev_hash + entry.canonical()).encode()).hexdigest()
