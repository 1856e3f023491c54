"""The audit trail as CSV (API, UI and console share this one format) and as JSON objects."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from socle.audit.service import AuditView
from socle.spreadsheets import safe_cell

COLUMNS = ("id", "at", "action", "actor_user_id", "actor", "actor_key_id", "target_type", "target_id",
           "details", "address", "channel", "hash")


def actor_label(view: AuditView) -> str:
    """The actor as a reader sees them: present e-mail, or the number of an account since deleted."""
    if view.actor_user_id is None:
        return "console" if view.channel == "console" else ""
    return view.actor_email or f"compte supprimé n°{view.actor_user_id}"


def as_json(view: AuditView) -> dict[str, Any]:
    return {"id": view.id, "object": "audit.event", "at": view.at.isoformat(), "action": view.action,
            "actor": {"user_id": view.actor_user_id, "key_id": view.actor_key_id, "email": view.actor_email,
                      "deleted": view.actor_deleted},
            "target": {"type": view.target_type, "id": view.target_id} if view.target_type else None,
            "details": view.details, "address": view.address, "channel": view.channel, "hash": view.hash}


async def csv_chunks(views: AsyncIterator[AuditView]) -> AsyncIterator[str]:
    """A header line, then the entries, a few hundred lines per chunk; cells that would run as formulas in a
    spreadsheet are made text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    lines = 0
    async for view in views:
        writer.writerow([safe_cell(str(cell)) for cell in (
            view.id, view.at.isoformat(), view.action, view.actor_user_id or "", actor_label(view),
            view.actor_key_id or "", view.target_type or "", view.target_id or "",
            json.dumps(view.details, ensure_ascii=False, sort_keys=True), view.address or "", view.channel,
            view.hash)])
        lines += 1
        if lines % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
