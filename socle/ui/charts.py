"""Charts drawn on the server as SVG by pygal and put inline in the page.

No script runs in the browser for them (pygal's tooltip script is removed), so they obey the pages' CSP and
work offline; the colours are the DSFR's. An SVG chart says little to a screen reader: each chart is shown
with the table of its figures (``_graphique.html``), and the SVG itself is one labelled image.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import pygal
from markupsafe import Markup
from pygal.etree import etree
from pygal.style import Style

# The DSFR's illustrative colours, contrasted enough against white for bars.
PALETTE = ("#000091", "#009081", "#c3992a", "#ce614a", "#a558a0", "#417dc4", "#716043", "#3a3a3a")
_STYLE = Style(background="transparent", plot_background="transparent", foreground="#3a3a3a",
               foreground_strong="#161616", foreground_subtle="#dddddd", opacity="0.9", opacity_hover="1",
               font_family="Marianne, arial, sans-serif", label_font_size=13, major_label_font_size=13,
               legend_font_size=14, value_font_size=13, tooltip_font_size=13, no_data_font_size=18,
               colors=PALETTE)
_SVG = "{http://www.w3.org/2000/svg}"
Series = Sequence[tuple[str, Sequence[float | None]]]


def bars(label: str, x_labels: Sequence[str], series: Series, *, stacked: bool = False) -> Markup:
    """Vertical bars: one bar per x label and series (``stacked``: the series on top of each other).
    ``label`` is the image's accessible name."""
    kind = pygal.StackedBar if stacked else pygal.Bar
    every = max(1, len(x_labels) // 12)  # about twelve dates under the axis, whatever the period
    chart = kind(style=_STYLE, js=[], disable_xml_declaration=True, width=900, height=380, explicit_size=False,
                 legend_at_bottom=True, legend_at_bottom_columns=4, truncate_legend=40, x_label_rotation=0,
                 show_minor_x_labels=every == 1, x_labels_major_every=every, min_scale=1, max_scale=6,
                 truncate_label=-1, print_values=False, no_data_text="Aucune donnée sur la période", show_legend=len(series) > 1,
                 value_formatter=_french_number)
    chart.x_labels = list(x_labels)
    if any(value for _, values in series for value in values):
        chart.y_labels = _whole_numbers(series, stacked=stacked)  # pygal's own marks may be fractions
    for name, values in series:
        chart.add(name, list(values))
    return _inline(chart.render_tree(), label)


def _inline(tree: etree._Element, label: str) -> Markup:  # type: ignore[name-defined]
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag in (f"{_SVG}script", "script"):
                parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", label)
    tree.set("focusable", "false")
    svg = etree.tostring(tree, encoding="unicode")
    return Markup(svg)  # pygal escapes every text it writes (labels, model names)


def _whole_numbers(series: Series, *, stacked: bool) -> list[int]:
    """The y axis's marks: whole numbers (counts of requests, tokens, users), at most six, on a 1-2-5 scale."""
    columns = list(zip(*(values for _, values in series), strict=True))
    top = int(max((sum(v or 0 for v in column) if stacked else max(v or 0 for v in column) for column in columns),
                  default=0))
    step, factors = 1, itertools.cycle((2, 2.5, 2))  # 1, 2, 5, 10, 20, 50, 100...
    while top / step > 5:
        step = int(step * next(factors))
    return list(range(0, top + step, step))


def _french_number(value: float) -> str:
    return f"{value:,.0f}".replace(",", "\u202f")
