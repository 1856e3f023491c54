"""Usage as charts: "Ma consommation" (one's own calls, and what the quotas binding one leave now), the
administrators' dashboard (the platform's impact indicators: active users, requests, tokens, documents, ratings)
and the CSV export of the sums.

Scopes are the services': the usage service shows one's own usage to everyone and anyone's to
``usage:read_all``, and refuses the platform-wide figures (active users, documents) to anyone else.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from socle import charts
from socle.api.strict import StrictRoute
from socle.errors import PermissionDenied, SocleError
from socle.identity.permissions import SYSTEM
from socle.quotas.service import Allowance
from socle.spreadsheets import safe_cell
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import page
from socle.usage.service import UsageFilter

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
PERIODS = {"7": "Les 7 derniers jours", "30": "Les 30 derniers jours", "90": "Les 90 derniers jours",
           "365": "Les 365 derniers jours"}
DEFAULT_PERIOD = "30"
PLATFORM_ITSELF = "plateforme (traitements automatiques)"
CSV_COLUMNS = ("jour", "modele", "utilisateur", "requetes", "jetons_entree", "jetons_sortie", "jetons_total",
               "cout", "energie_kwh", "co2_kg", "latence_moyenne_ms")


@dataclass(frozen=True, slots=True)
class Period:
    """The days shown, today included (UTC, like the usage records' days)."""

    key: str
    days: list[str]  # ISO dates, oldest first

    @classmethod
    def of(cls, requested: str | None) -> Period:
        key = requested if requested in PERIODS else DEFAULT_PERIOD
        today = datetime.now(UTC).date()
        return cls(key, [(today - timedelta(days=n)).isoformat() for n in range(int(key) - 1, -1, -1)])

    @property
    def since(self) -> datetime:
        return datetime.combine(date.fromisoformat(self.days[0]), time(), tzinfo=UTC)

    @property
    def labels(self) -> list[str]:
        return [short_day(day) for day in self.days]


def short_day(day: str) -> str:
    return date.fromisoformat(day).strftime("%d/%m")


def long_day(day: str) -> str:
    return date.fromisoformat(day).strftime("%d/%m/%Y")


LIMIT_WORDS = {"requests_per_minute": "Requêtes dans la minute écoulée",
               "requests_per_day": "Requêtes sur les dernières 24 heures",
               "tokens_per_minute": "Jetons dans la minute en cours",
               "budget_tokens": "Budget en jetons", "budget_cost": "Budget en coût"}
BUDGET_PERIODS = {"day": "aujourd'hui", "month": "ce mois-ci"}


@dataclass(frozen=True, slots=True)
class Bound:
    """A quota binding the person, in their words: whose it is, on which model, and each limit's remainder."""

    whose: str
    model: str
    lines: list[Allowance]


async def my_allowance(request: Request, visitor: Visitor) -> tuple[list[Bound], str | None]:
    """What each quota binding the visitor (their account, groups, role, keys, the whole platform) leaves now;
    a sentence instead when the quota store cannot be read."""
    p, actor = platform(request), visitor.principal
    if p.inference.quotas is None:
        return [], None
    try:
        keys = {key.id: key.name or key.public_id for key in await p.identity.list_keys(actor, user_id=actor.user_id)
                if key.revoked_at is None}
    except PermissionDenied:
        keys = {}
    try:
        lines = await p.quotas.allowance(actor, p.inference.quotas.store, key_ids=keys)
    except SocleError:
        return [], "Les quotas ne peuvent pas être lus pour le moment : réessayez dans un instant."
    user = await p.identity.get_user(actor, actor.user_id)
    groups = {str(group.id): group.name for group in user.groups}
    bound: dict[int, Bound] = {}
    for line in lines:
        if line.quota_id not in bound:
            whose = {"user": "Votre compte", "role": f"Chaque personne du rôle « {line.subject} »",
                     "group": f"Votre groupe « {groups.get(line.subject, line.subject)} » (partagé par ses membres)",
                     "key": f"Votre clé « {keys.get(int(line.subject), line.subject)} »",
                     "global": "Toute la plateforme (partagé par tous)"}[line.scope]
            bound[line.quota_id] = Bound(whose, line.model or "Tous les modèles", [])
        bound[line.quota_id].lines.append(line)
    return list(bound.values()), None


def per_day_and_model(rows: Sequence[dict[str, Any]], days: Sequence[str], field: str) -> charts.Series:
    """One series per model, one value per day (0 where the model was not called)."""
    models = sorted({row["model"] for row in rows})
    values = {(row["day"], row["model"]): row[field] for row in rows}
    return [(model, [values.get((day, model), 0) for day in days]) for model in models]


@router.get("/consommation")
async def my_usage(request: Request, visitor: SignedIn, periode: str | None = None) -> Response:
    period = Period.of(periode)
    mine = UsageFilter(user_id=visitor.principal.user_id, since=period.since)  # an admin's own, too
    rows = await platform(request).usage.totals(visitor.principal, mine, ["day", "model"])
    by_model = await platform(request).usage.totals(visitor.principal, mine, ["model"])
    allowance, allowance_error = await my_allowance(request, visitor)
    return page(request, "consommation.html", visitor, title="Ma consommation", periods=PERIODS, period=period,
                rows=rows, by_model=by_model, long_day=long_day, allowance=allowance,
                allowance_error=allowance_error, limit_words=LIMIT_WORDS, budget_periods=BUDGET_PERIODS,
                currency=platform(request).usage.currency,
                requests_chart=charts.bars("Requêtes par jour et par modèle", period.labels,
                                           per_day_and_model(rows, period.days, "requests"), stacked=True),
                tokens_chart=charts.bars("Jetons par jour et par modèle", period.labels,
                                         per_day_and_model(rows, period.days, "total_tokens"), stacked=True))


@router.get("/admin")
async def dashboard(request: Request, visitor: SignedIn, periode: str | None = None) -> Response:
    period = Period.of(periode)
    p, actor = platform(request), visitor.principal
    window = UsageFilter(since=period.since)
    active = await p.usage.active_users(actor, window)  # usage:read_all, or refused here
    rows = await p.usage.totals(actor, window, ["day", "model"])
    overall = await p.usage.totals(actor, window, [])
    documents = await p.documents.count_all(actor)
    new_documents = await p.documents.count_all(actor, since=period.since)
    ratings = await p.conversations.ratings(actor, since=period.since)
    weeks = list(active.per_week)
    up = {day: sum(r.up for r in ratings if r.day == day) for day in period.days}
    down = {day: sum(r.down for r in ratings if r.day == day) for day in period.days}
    return page(
        request, "tableau_de_bord.html", visitor, title="Tableau de bord", periods=PERIODS, period=period,
        active=active, rows=rows, overall=overall[0] if overall else {}, documents=documents,
        new_documents=new_documents, ratings=ratings, long_day=long_day,
        this_week=active.per_week.get(weeks[-1], 0) if weeks else 0,
        ups=sum(up.values()), downs=sum(down.values()),
        active_chart=charts.bars("Utilisateurs actifs par jour", period.labels,
                                 [("Utilisateurs actifs", [active.per_day.get(d, 0) for d in period.days])]),
        weekly_chart=charts.bars("Utilisateurs actifs par semaine", [f"sem. du {short_day(w)}" for w in weeks],
                                 [("Utilisateurs actifs", list(active.per_week.values()))]),
        requests_chart=charts.bars("Requêtes par jour et par modèle", period.labels,
                                   per_day_and_model(rows, period.days, "requests"), stacked=True),
        tokens_chart=charts.bars("Jetons par jour et par modèle", period.labels,
                                 per_day_and_model(rows, period.days, "total_tokens"), stacked=True),
        ratings_chart=charts.bars("Avis sur les réponses par jour", period.labels,
                                  [("Réponses utiles", [up[d] for d in period.days]),
                                   ("Réponses pas utiles", [down[d] for d in period.days])]))


@router.get("/consommation.csv")
async def usage_csv(request: Request, visitor: SignedIn, periode: str | None = None,
                    perimetre: str = "moi") -> Response:
    """The sums per day, model and user (named by e-mail address): one's own, or (``perimetre=plateforme``) all
    that the usage service lets the caller read — everyone's with ``usage:read_all``."""
    period = Period.of(periode)
    actor = visitor.principal
    filters = UsageFilter(since=period.since, user_id=None if perimetre == "plateforme" else actor.user_id)
    rows = await platform(request).usage.totals(actor, filters, ["day", "model", "user"])
    emails = await platform(request).usage.emails(actor, {int(row["user"]) for row in rows})
    name = f"consommation-{'plateforme' if filters.user_id is None else 'moi'}-{period.days[-1]}.csv"
    return Response(to_csv(rows, emails), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


def to_csv(rows: Iterable[dict[str, Any]], emails: dict[int, str]) -> str:
    """RFC 4180 CSV (the csv module quotes what needs it), a header line first; users by e-mail address (a
    deleted account by its former number, the platform's own calls — documents' embeddings — as such)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        user = PLATFORM_ITSELF if int(row["user"]) == SYSTEM.user_id else (
            emails.get(int(row["user"])) or f"compte supprimé n° {row['user']}")
        writer.writerow([row["day"], safe_cell(row["model"]), safe_cell(user), row["requests"],
                         row["prompt_tokens"], row["completion_tokens"], row["total_tokens"], f"{row['cost']:.6f}",
                         f"{row['energy_kwh']:.9f}", f"{row['co2_kg']:.9f}", f"{row['avg_latency_ms'] or 0:.1f}"])
    return out.getvalue()
