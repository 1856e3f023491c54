"""An analysis' report: one self-contained HTML file in French (its CSS and its charts inline, no script, no
font, nothing fetched from anywhere), printable to PDF from any browser, and the same content for the web UI.

Only the pseudonymised text of a message (its annotation's ``text``) and what the engine wrote about it ever
appear, never the message as imported. Every text is escaped (Jinja2's autoescape; lxml in the charts).
Each chart is an SVG image drawn by pygal on the server, named by its ``<title>`` and ``<desc>``, and
followed by the table of its figures for those who cannot see it.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import pygal
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pygal.etree import etree

from socle import charts
from socle.apps.feedback.models import FeedbackAnalysis, FeedbackDataset
from socle.apps.feedback.service import AnnotatedMessage
from socle.apps.feedback.taxonomy import SENTIMENT_FR, SENTIMENTS, Taxonomy
from socle.formats import french_number

TEMPLATES = Path(__file__).with_name("templates")
ENGINES_FR = {"embedding": "classement par ressemblance",  # each message set beside examples already classified
              "llm": "lecture par un assistant IA"}  # a conversation model of the platform reads each message
"""The engines as an agent names them (the code, the API and the command line keep ``embedding`` and ``llm``)."""
STATUS_FR = {"queued": "en attente", "running": "en cours", "done": "terminée", "failed": "en échec",
             "stopped": "arrêtée"}
MONTHS_FR = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")
NO_SERVICE = "Service non précisé"
NO_SUBTHEME = "Sans sous-thème"
TOP_SERVICES = 10
EXAMPLES = 3  # irritant sentences shown per group
EXCERPT = 600  # characters of a message shown beside its irritant
URGENT_SHOWN = 200  # the most recent; the CSV has them all

SENTIMENT_COLOURS = {"negative": "#ce0500", "neutral": "#666666", "positive": "#18753c"}  # by meaning


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    description: str
    svg: Markup
    headers: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True, slots=True)
class Example:
    irritant: str
    text: str
    external_id: str
    written_on: str


@dataclass(frozen=True, slots=True)
class IrritantGroup:
    label: str
    count: int
    examples: list[Example]


@dataclass(frozen=True, slots=True)
class Urgent:
    external_id: str
    written_on: str
    service: str
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    size: int
    keywords: list[str]
    examples: list[str]
    theme_fit: float | None
    outside_taxonomy: bool


@dataclass(slots=True)
class Report:
    """What the template shows, computed once."""

    dataset: str
    source: str
    engine: str
    engine_label: str
    model: str
    status: str
    status_label: str
    complete: bool
    error: str | None
    messages: int  # annotated (ok or invalid)
    total: int  # in the analysis
    valid: int
    invalid: int
    tokens: int
    token_budget: int | None
    first_day: str | None
    last_day: str | None
    undated: int
    created: str
    finished: str | None
    generated: str
    replies: bool
    sentiments: list[tuple[str, int, str]] = field(default_factory=list)  # (label, count, share)
    urgent_count: int = 0
    charts: dict[str, Chart] = field(default_factory=dict)  # by id
    irritants: list[IrritantGroup] = field(default_factory=list)
    negatives: int = 0
    urgent: list[Urgent] = field(default_factory=list)  # the most recent URGENT_SHOWN of ``urgent_count``
    topics: list[Topic] = field(default_factory=list)
    topics_ready: bool = False


def render_report(analysis: FeedbackAnalysis, dataset: FeedbackDataset, rows: list[AnnotatedMessage],
                  taxonomy: Taxonomy) -> str:
    """The report as one HTML document that needs nothing else: save it, mail it, print it to PDF."""
    report = build_report(analysis, dataset, rows, taxonomy)
    return _environment().get_template("report.html").render(report=report, css=_css(), standalone=True)


def render_report_fragment(analysis: FeedbackAnalysis, dataset: FeedbackDataset, rows: list[AnnotatedMessage],
                           taxonomy: Taxonomy) -> Markup:
    """The report's content, to put inside a page of the web UI (which gives the page its own title):
    its styles are scoped to the report's ``.rapport-avis`` element."""
    report = build_report(analysis, dataset, rows, taxonomy)
    html = _environment().get_template("_report_body.html").render(report=report, css=_css(), standalone=False)
    return Markup(html)  # autoescaped by the template


@cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["nombre"] = partial(french_number, decimals=0)  # counts
    env.filters["jour"] = french_day
    return env


@cache
def _css() -> Markup:
    return Markup((TEMPLATES / "report.css").read_text(encoding="utf-8"))  # our own file, not user input


# -- figures ------------------------------------------------------------------------------------------

def build_report(analysis: FeedbackAnalysis, dataset: FeedbackDataset, rows: list[AnnotatedMessage],
                 taxonomy: Taxonomy) -> Report:
    valid = [(row, row.annotation.result) for row in rows
             if row.annotation.status == "ok" and isinstance(row.annotation.result, dict)]
    days = sorted(d for d in (_day(row.message.written_on) for row in rows) if d)
    topics = analysis.topics
    report = Report(
        dataset=dataset.name, source=dataset.source, engine=analysis.engine,
        engine_label=ENGINES_FR.get(analysis.engine, analysis.engine) + (
            ", appris aussi des messages étiquetés du jeu" if analysis.engine == "embedding"
            and analysis.options.get("learn_from_labels") and dataset.labelled else ""), model=analysis.model,
        status=analysis.status, status_label=STATUS_FR.get(analysis.status, analysis.status),
        complete=analysis.status == "done", error=analysis.error, messages=len(rows), total=analysis.total,
        valid=len(valid), invalid=len(rows) - len(valid), tokens=analysis.tokens,
        token_budget=analysis.token_budget,
        first_day=days[0] if days else None, last_day=days[-1] if days else None,
        undated=len(rows) - len(days), created=_moment(analysis.created_at) or "",
        finished=_moment(analysis.finished_at), generated=_moment(datetime.now(UTC)) or "",
        replies=bool((analysis.options or {}).get("replies")), topics_ready=topics is not None)
    sentiments = Counter(str(result.get("sentiment")) for _, result in valid)
    report.sentiments = [(SENTIMENT_FR[s], sentiments[s], _share(sentiments[s], len(valid))) for s in SENTIMENTS]
    report.urgent_count = sum(1 for _, result in valid if result.get("urgent") is True)
    report.negatives = sentiments["negative"]
    report.charts = {c.id: c for c in (_themes_over_time(valid, taxonomy), _sentiment_by_service(valid),
                                       _theme_counts(valid, taxonomy), _subtheme_counts(valid, taxonomy)) if c}
    report.irritants = _irritants(valid, taxonomy)
    report.urgent = _urgent(valid)
    report.topics = [_topic(t) for t in topics or [] if isinstance(t, dict)]
    return report


Valid = Sequence[tuple[AnnotatedMessage, dict[str, Any]]]


def _labels(result: dict[str, Any], kind: str) -> list[tuple[str, float]]:
    """The labels an engine chose, highest confidence first."""
    found = [(str(item.get("label")), float(item.get("confidence") or 0)) for item in result.get(kind) or []
             if isinstance(item, dict) and item.get("label")]
    return sorted(found, key=lambda pair: -pair[1])


def _themes_over_time(valid: Valid, taxonomy: Taxonomy) -> Chart | None:
    months = sorted({m for m in (_month(row.message.written_on) for row, _ in valid) if m})
    if not months:
        return None
    months = _every_month(months[0], months[-1])
    counts: dict[tuple[str, str], int] = Counter()
    for row, result in valid:
        month = _month(row.message.written_on)
        if month:
            for label, _ in _labels(result, "themes"):
                counts[(label, month)] += 1
    themes = [t for t in _ordered(taxonomy.theme_keys, {label for label, _ in counts})
              if any(counts[(t, m)] for m in months)]
    series = [(theme, [counts[(theme, m)] for m in months]) for theme in themes]
    kind = "line" if len(months) >= 3 else "bar"
    labels = [month_label(m) for m in months]
    svg = _chart(kind, "Messages par mois et par thème",
                 "Nombre de messages de chaque thème, mois par mois (un message peut relever de plusieurs "
                 "thèmes).",
                 [charts.short_month(m) for m in months], series, colours=charts.PALETTE, height=400)
    return Chart("themes-par-mois", "Messages par mois et par thème",
                 "Un message peut relever de plusieurs thèmes : il compte alors dans chacun.", svg,
                 ["Mois", *themes, "Messages du mois"],
                 [[label, *(counts[(t, m)] for t in themes),
                   sum(1 for row, _ in valid if _month(row.message.written_on) == m)]
                  for m, label in zip(months, labels, strict=True)])


def _sentiment_by_service(valid: Valid) -> Chart | None:
    if not valid:
        return None
    per_service: dict[str, Counter[str]] = defaultdict(Counter)
    for row, result in valid:
        per_service[(row.message.service or "").strip() or NO_SERVICE][str(result.get("sentiment"))] += 1
    top = sorted(per_service, key=lambda s: (-sum(per_service[s].values()), s))[:TOP_SERVICES]
    drawn = list(reversed(top))  # pygal draws the first label at the bottom: the busiest service on top
    series = [(SENTIMENT_FR[s], [per_service[service][s] for service in drawn]) for s in SENTIMENTS]
    title = f"Sentiment par service ({min(len(per_service), TOP_SERVICES)} services les plus cités)"
    svg = _chart("hstacked", title, "Pour chacun des services qui ont reçu le plus de messages, le nombre de "
                 "messages négatifs, neutres et positifs.", drawn, series,
                 colours=tuple(SENTIMENT_COLOURS[s] for s in SENTIMENTS), height=140 + 34 * len(drawn))
    return Chart("sentiment-par-service", title,
                 "Les services sont rangés du plus au moins cité.", svg,
                 ["Service", *(SENTIMENT_FR[s] for s in SENTIMENTS), "Total", "Part négative"],
                 [[service, *(per_service[service][s] for s in SENTIMENTS), sum(per_service[service].values()),
                   _share(per_service[service]["negative"], sum(per_service[service].values()))]
                  for service in top])


def _theme_counts(valid: Valid, taxonomy: Taxonomy) -> Chart | None:
    counts = Counter(label for _, result in valid for label, _ in _labels(result, "themes"))
    return _counts_chart("themes", "Messages par thème", counts, _ordered(taxonomy.theme_keys, set(counts)),
                         {t: t for t in counts}, len(valid), "Thème")


def _subtheme_counts(valid: Valid, taxonomy: Taxonomy) -> Chart | None:
    counts = Counter(label for _, result in valid for label, _ in _labels(result, "subthemes"))
    names = {key: taxonomy.subtheme_label(key) for key in counts}
    return _counts_chart("sous-themes", "Messages par sous-thème", counts,
                         _ordered(taxonomy.subtheme_keys, set(counts)), names, len(valid), "Sous-thème")


def _counts_chart(id_: str, title: str, counts: Counter[str], keys: list[str], names: dict[str, str],
                  valid: int, header: str) -> Chart | None:
    if not valid:
        return None
    keys = sorted(keys, key=lambda k: -counts[k])
    drawn = list(reversed(keys))
    svg = _chart("hbar", title,
                 f"{title} : nombre de messages où l'analyse l'a relevé, du plus au moins fréquent.",
                 [names[k] for k in drawn], [("Messages", [counts[k] for k in drawn])], colours=charts.PALETTE,
                 height=120 + 34 * max(len(drawn), 1))
    return Chart(id_, title, "Un message peut en relever plusieurs, ou aucun.", svg,
                 [header, "Messages", "Part des messages analysés"],
                 [[names[k], counts[k], _share(counts[k], valid)] for k in keys])


def _irritants(valid: Valid, taxonomy: Taxonomy) -> list[IrritantGroup]:
    """The negative messages grouped by their most likely sub-theme, the largest group first; each with a
    few of its irritant sentences (the most confident first)."""
    groups: dict[str, list[tuple[float, AnnotatedMessage, dict[str, Any]]]] = defaultdict(list)
    for row, result in valid:
        if result.get("sentiment") != "negative":
            continue
        subthemes = _labels(result, "subthemes")
        key = subthemes[0][0] if subthemes else ""
        groups[key].append((subthemes[0][1] if subthemes else 0.0, row, result))
    found = []
    for key, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0] == "", kv[0])):
        ranked = sorted(members, key=lambda m: -m[0])
        examples = [Example(str(result["irritant"]), excerpt(row.annotation.text), row.message.external_id,
                            row.message.written_on or "")
                    for _, row, result in ranked if isinstance(result.get("irritant"), str)
                    and result["irritant"].strip()][:EXAMPLES]
        found.append(IrritantGroup(taxonomy.subtheme_label(key) if key else NO_SUBTHEME, len(members), examples))
    return found


def _urgent(valid: Valid) -> list[Urgent]:
    """The urgent messages, the most recent first (undated last)."""
    urgent = [(row, result) for row, result in valid if result.get("urgent") is True]
    urgent.sort(key=lambda pair: (pair[0].message.written_on or "", pair[0].message.id), reverse=True)
    return [Urgent(row.message.external_id, row.message.written_on or "", row.message.service or NO_SERVICE,
                   str(result.get("urgency_reason") or ""), row.annotation.text)
            for row, result in urgent[:URGENT_SHOWN]]


def _topic(raw: dict[str, Any]) -> Topic:
    fit = raw.get("theme_fit")
    return Topic(str(raw.get("name") or "Sujet sans nom"), int(raw.get("size") or 0),
                 [str(k) for k in raw.get("keywords") or []], [str(e) for e in raw.get("examples") or []],
                 float(fit) if isinstance(fit, int | float) else None, bool(raw.get("outside_taxonomy")))


# -- charts -------------------------------------------------------------------------------------------

_KINDS = {"line": pygal.Line, "bar": pygal.Bar, "hbar": pygal.HorizontalBar,
          "hstacked": pygal.HorizontalStackedBar}


def _chart(kind: str, title: str, description: str, x_labels: Sequence[str],
           series: Sequence[tuple[str, Sequence[int]]], *, colours: Sequence[str], height: int) -> Markup:
    every = charts.label_every(x_labels) if kind in ("line", "bar") else 1  # horizontal bars: labels one above another
    chart = _KINDS[kind](
        style=charts.style(colours, values_inside=kind in ("hbar", "hstacked")),
        js=[],  # pygal's default tooltip script comes from a CDN: none
        disable_xml_declaration=True, width=charts.WIDTH, height=max(height, 220), explicit_size=False,
        legend_at_bottom=True, legend_at_bottom_columns=3, truncate_legend=40, truncate_label=45,
        x_label_rotation=0, show_minor_x_labels=every == 1, x_labels_major_every=every,
        print_values=kind in ("hbar", "hstacked"), print_zeroes=False, show_legend=len(series) > 1,
        no_data_text="Aucune donnée", value_formatter=charts.value_text, dots_size=3, min_scale=1, max_scale=6)
    chart.x_labels = list(x_labels)
    top = max((sum(column) if kind == "hstacked" else max(column)
               for column in zip(*(values for _, values in series), strict=True)), default=0)
    if top:
        chart.y_labels = charts.whole_numbers(top)  # pygal's own marks may be fractions of a message
    for name, values in series:
        chart.add(name, list(values))
    return _accessible(chart.render_tree(), title, description)


def _accessible(tree: Any, title: str, description: str) -> Markup:
    """No script (pygal's configuration and tooltips), no comment; a ``<title>`` and a ``<desc>`` that name the
    image for screen readers and browsers alike."""
    tree = charts.without_scripts(tree)
    chart_id = tree.get("id") or "graphique"
    name, desc = etree.Element(f"{charts.SVG}title"), etree.Element(f"{charts.SVG}desc")
    name.text, desc.text = title, description
    name.set("id", f"{chart_id}-titre")
    desc.set("id", f"{chart_id}-description")
    tree.insert(0, desc)
    tree.insert(0, name)
    tree.set("role", "img")
    tree.set("aria-labelledby", f"{chart_id}-titre")
    tree.set("aria-describedby", f"{chart_id}-description")
    tree.set("focusable", "false")
    return Markup(etree.tostring(tree, encoding="unicode"))  # lxml escapes every text it writes


# -- French formats ------------------------------------------------------------------------------------

def french_day(day: str | None) -> str:
    parsed = _day(day)
    return date.fromisoformat(parsed).strftime("%d/%m/%Y") if parsed else ""


def month_label(month: str) -> str:
    year, number = month.split("-")
    return f"{MONTHS_FR[int(number) - 1]} {year}"


def excerpt(text: str, limit: int = EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}\u00a0%" if whole else "—"


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%d/%m/%Y à %H:%M (UTC)")


def _day(value: str | None) -> str | None:
    if not value or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _month(value: str | None) -> str | None:
    day = _day(value)
    return day[:7] if day else None


def _every_month(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _ordered(known: Iterable[str], found: set[str]) -> list[str]:
    """The taxonomy's order first, then any label it does not know (an older analysis' taxonomy)."""
    known = list(known)
    return [k for k in known if k in found] + sorted(found - set(known))
