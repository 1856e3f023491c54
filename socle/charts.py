"""Charts drawn on the server as SVG by pygal, in one style for every page and report of the platform.

No script runs in the browser for them (pygal's tooltip script is removed), so they obey the pages' CSP and
work offline, and a report holding them stays one self-contained file; the colours are the DSFR's, the
numbers French. An SVG chart says little to a screen reader: each chart is shown with the table of its
figures, and the SVG itself is one named image.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pygal
from markupsafe import Markup
from pygal.etree import etree
from pygal.style import Style

from socle.formats import french_number

# The DSFR's illustrative colours, contrasted enough against white for bars.
PALETTE = ("#000091", "#009081", "#c3992a", "#ce614a", "#a558a0", "#417dc4", "#716043", "#3a3a3a")
SVG = "{http://www.w3.org/2000/svg}"
Series = Sequence[tuple[str, Sequence[float | None]]]


def style(colours: Sequence[str] = PALETTE, *, values_inside: bool = False) -> Style:
    """The platform's chart style: the DSFR's font, greys and ``colours``; ``values_inside``: values printed
    in white, on the dark bars."""
    return Style(value_colors=("#ffffff",) * len(colours) if values_inside else (),
                 background="transparent", plot_background="transparent", foreground="#3a3a3a",
                 foreground_strong="#161616", foreground_subtle="#dddddd", opacity="0.9", opacity_hover="1",
                 font_family="Marianne, Arial, sans-serif", label_font_size=13, major_label_font_size=13,
                 legend_font_size=14, value_font_size=12, tooltip_font_size=13, no_data_font_size=18,
                 colors=tuple(colours))


def value_text(value: float | None) -> str:
    """A value as a chart writes it: a count, in French."""
    return french_number(value, decimals=0)


MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")
WIDTH = 900  # every chart's drawing width (it scales to its column)


def short_month(month: str) -> str:
    """``2025-01`` → "janv. 2025": what an axis can hold (tables keep the month's full name)."""
    year, number = month.split("-")
    return f"{MONTHS_SHORT[int(number) - 1]} {year}"


def label_every(labels: Sequence[str], *, font_px: int = 13, width: int = WIDTH) -> int:
    """Every how many x labels to write so that none runs into the next: a character is about 0.6 em wide,
    a label wants a gap of 16 px, and the plot leaves about 90 px to the y axis."""
    widest = max((len(label) for label in labels), default=1) * font_px * 0.6 + 16
    return max(1, math.ceil(len(labels) * widest / (width - 90)))


def whole_numbers(top: float) -> list[int]:
    """Axis marks up to ``top``: whole numbers (pygal's own may be fractions of a count), at most six, on a
    1-2-5 scale."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))  # 1, 2, 5, 10, 20, 50, 100...
    while top / step > 5:
        step = int(step * next(factors))
    return list(range(0, int(top) + step, step))


def without_scripts(tree: Any) -> Any:
    """The rendered tree without pygal's scripts (its configuration and tooltips) and comments."""
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag in (f"{SVG}script", "script") or not isinstance(child.tag, str):
                parent.remove(child)
    return tree


def bars(label: str, x_labels: Sequence[str], series: Series, *, stacked: bool = False) -> Markup:
    """Vertical bars: one bar per x label and series (``stacked``: the series on top of each other).
    ``label`` is the image's accessible name."""
    kind = pygal.StackedBar if stacked else pygal.Bar
    every = label_every(x_labels)  # as many dates under the axis as fit side by side, whatever the period
    chart = kind(style=style(), js=[], disable_xml_declaration=True, width=WIDTH, height=380, explicit_size=False,
                 legend_at_bottom=True, legend_at_bottom_columns=4, truncate_legend=40, x_label_rotation=0,
                 show_minor_x_labels=every == 1, x_labels_major_every=every, min_scale=1, max_scale=6,
                 truncate_label=-1, print_values=False, no_data_text="Aucune donnée sur la période",
                 show_legend=len(series) > 1, value_formatter=value_text)
    chart.x_labels = list(x_labels)
    if any(value for _, values in series for value in values):
        columns = list(zip(*(values for _, values in series), strict=True))
        chart.y_labels = whole_numbers(int(max((sum(v or 0 for v in column) if stacked else max(v or 0 for v in column)
                                                for column in columns), default=0)))
    for name, values in series:
        chart.add(name, list(values))
    tree = without_scripts(chart.render_tree())
    tree.set("role", "img")
    tree.set("aria-label", label)
    tree.set("focusable", "false")
    return Markup(etree.tostring(tree, encoding="unicode"))  # pygal escapes every text it writes (labels, names)


def lines(label: str, x_labels: Sequence[str], series: Series) -> Markup:
    """Lines: one per series over the x labels (a missing value leaves a gap), e.g. a training's losses by step.
    ``label`` is the image's accessible name."""
    every = label_every(x_labels)
    chart = pygal.Line(style=style(), js=[], disable_xml_declaration=True, width=WIDTH, height=340,
                       explicit_size=False, legend_at_bottom=True, legend_at_bottom_columns=2, x_label_rotation=0,
                       show_minor_x_labels=every == 1, x_labels_major_every=every, truncate_label=-1,
                       allow_interruptions=True, no_data_text="Aucune mesure pour l'instant",
                       show_legend=len(series) > 1, value_formatter=lambda v: french_number(v, decimals=2))
    chart.x_labels = list(x_labels)
    for name, values in series:
        chart.add(name, list(values))
    tree = without_scripts(chart.render_tree())
    tree.set("role", "img")
    tree.set("aria-label", label)
    tree.set("focusable", "false")
    return Markup(etree.tostring(tree, encoding="unicode"))  # pygal escapes every text it writes
