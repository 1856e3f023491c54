"""What every CSV export of the platform shares: a cell that a spreadsheet shows as text, never runs."""
from __future__ import annotations

_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what makes Excel or LibreOffice read a cell as a formula


def safe_cell(text: str) -> str:
    """``text``, with a leading apostrophe if it would start a formula (CSV injection)."""
    return "'" + text if text[:1] in _FORMULA else text
