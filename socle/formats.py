"""Numbers written the French way, one format for every page, report and chart of the platform."""
from __future__ import annotations

THOUSANDS = "\u202f"  # a narrow no-break space: "12 345", never cut across two lines


def french_number(value: float | None, decimals: int | None = None) -> str:
    """``12345`` → "12 345", ``0.5`` → "0,5": thousands apart by a narrow no-break space, a decimal comma.
    ``decimals`` rounds to that many places (counts drawn on a chart: 0); no value writes nothing."""
    if value is None:
        return ""
    text = f"{value:,}" if decimals is None else f"{value:,.{decimals}f}"
    return text.replace(",", THOUSANDS).replace(".", ",")
