"""Charts: one style, inline SVG that runs no script, counts written the French way."""
from __future__ import annotations

from socle import charts


def test_bars_are_one_named_image_without_script_with_french_counts() -> None:
    svg = charts.bars("Requêtes par jour et par modèle", ["01/12", "02/12"],
                      [("smollm2-135m", [12000, 3500]), ("e5", [None, 250])], stacked=True)
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-label="Requêtes par jour et par modèle"' in svg
    assert "<script" not in svg and "<!--" not in svg
    assert ">15\u202f000</text>" in svg  # the axis: whole counts, French thousands
    assert "font-family:Marianne,Arial,sans-serif" in svg and charts.PALETTE[0] in svg


def test_an_empty_period_says_so() -> None:
    assert "Aucune donnée sur la période" in charts.bars("Utilisateurs actifs par jour", [], [("Actifs", [])])


def test_axis_marks_are_whole_numbers_on_a_1_2_5_scale() -> None:
    assert charts.whole_numbers(3) == [0, 1, 2, 3]
    assert charts.whole_numbers(12) == [0, 5, 10, 15]
    assert charts.whole_numbers(180) == [0, 50, 100, 150, 200]


def test_values_printed_inside_bars_are_white() -> None:
    assert charts.style(values_inside=True).value_colors == ("#ffffff",) * len(charts.PALETTE)
    assert charts.style(("#ce0500", "#18753c")).colors == ("#ce0500", "#18753c")
