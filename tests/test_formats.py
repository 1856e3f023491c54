"""French numbers: the same on every page, report and chart."""
from __future__ import annotations

from socle.formats import french_number


def test_thousands_are_apart_by_a_narrow_no_break_space() -> None:
    assert french_number(12345) == "12\u202f345"
    assert french_number(1234567) == "1\u202f234\u202f567"
    assert french_number(999) == "999"
    assert french_number(0) == "0"


def test_decimals_take_a_comma_and_may_be_rounded() -> None:
    assert french_number(1234.5) == "1\u202f234,5"
    assert french_number(0.0005) == "0,0005"
    assert french_number(1234.5, decimals=0) == "1\u202f234"
    assert french_number(2.25, decimals=1) == "2,2"


def test_no_value_writes_nothing() -> None:
    assert french_number(None) == ""
