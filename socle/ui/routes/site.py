"""The site's own pages: the administrators' settings page (Administration > Paramètres), the pages every State
site carries (accessibility statement, legal notice, personal data, cookies), open without signing in, and
``/``, which leads to the UI.

The accessibility statement states what the automated checks found: the browser tests run axe-core on every
page they open and record the results in ``accessibilite.json`` beside this package's templates (shipped with
it), refreshed by running them with ``SOCLE_RECORD_ACCESSIBILITY=1``.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.compliance.retention import BOUNDS
from socle.errors import SocleError
from socle.identity.permissions import Permission, require
from socle.quotas.service import PRESET_AMOUNTS
from socle.site.service import LABELS, LEVELS, MAX_SUGGESTIONS, NAMES, RETENTION, SiteSettings
from socle.ui import security
from socle.ui.routes.admin import LIMITS, PRESET_LABELS
from socle.ui.routes.usage import long_day
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, optional_visitor, page, redirect, site_of

router = APIRouter(include_in_schema=False, route_class=StrictRoute)
SETTINGS_PATH = "/ui/admin/parametres"
ACCESSIBILITY_RESULTS = Path(__file__).parents[1] / "accessibilite.json"
LEVEL_WORDS = {"none": "non conforme", "partial": "partiellement conforme", "full": "totalement conforme"}
IMPACTS = {"minor": "mineur", "moderate": "modéré", "serious": "important", "critical": "critique"}
LEGAL_PAGES = {  # path: (title, the setting that holds its text)
    "/ui/mentions-legales": ("Mentions légales", "legal_notice"),
    "/ui/donnees-personnelles": ("Données personnelles", "privacy"),
    "/ui/cookies": ("Gestion des cookies", "cookies"),
}
assert set(LEVEL_WORDS) == set(LEVELS)
_NOT_TEXT = {"proconnect_enabled", "quota_presets"}  # read from the form their own way


@router.get("/")
async def root() -> Response:
    return redirect("/ui/chat")  # which asks to sign in first when needed


# ---- the administrators' settings ------------------------------------------------------------------

@router.get(SETTINGS_PATH)
async def settings_page(request: Request, visitor: SignedIn) -> Response:
    require(visitor.principal, Permission.SITE_ADMIN)
    return _settings(request, visitor, await platform(request).site.current())


@router.post(SETTINGS_PATH)
async def save_settings(request: Request, visitor: SignedIn) -> Response:
    sent = await request.form()
    form = _form(sent)
    try:
        await platform(request).site.update(visitor.principal, form)
    except SocleError as exc:
        return _settings(request, visitor, None, form=form, **inline(exc))
    return redirect(SETTINGS_PATH + "?ok=parametres-enregistres")


def _form(sent: FormData) -> dict[str, Any]:
    """The settings the form sent, by name: its texts, its numbers, ProConnect's switch (a checkbox, absent when
    off), each preset's amounts (``preset_<preset>_<amount>``). A setting the form does not show is left as it
    is."""
    form: dict[str, Any] = {name: str(sent[name]) for name in NAMES if name in sent and name not in _NOT_TEXT}
    if "proconnect_issuer" in sent:
        form["proconnect_enabled"] = sent.get("proconnect_enabled") == "oui"
    presets = {preset: {amount: str(sent[f"preset_{preset}_{amount}"]) for amount in PRESET_AMOUNTS
                        if f"preset_{preset}_{amount}" in sent} for preset in PRESET_LABELS}
    if any(presets.values()):
        form["quota_presets"] = presets
    return form


def _settings(request: Request, visitor: Visitor, values: SiteSettings | None, *, status_code: int = 200,
              form: dict[str, Any] | None = None, **context: Any) -> Response:
    """The form, filled with ``values``, or with what was sent (``form``) when it was refused. The client
    secret is never shown: only whether one is kept."""
    site = platform(request).site
    shown = site.latest if values is None else values
    filled: dict[str, Any] = {name: getattr(shown, name) for name in NAMES}
    filled["suggestions"] = "\n".join(shown.suggestions)
    filled.update(form or {})
    filled["proconnect_client_secret"] = ""
    inference = platform(request).inference
    models = [m.id for m in inference.registry.models  # a default for everyone: models everyone may use
              if m.config.type == "chat" and (m.config.audience is None or m.config.audience.public)
              ] if inference is not None else []
    secret = ("kept" if shown.proconnect_client_secret
              else "environment" if platform(request).settings.oidc_client_secret else "none")
    return page(request, "admin_parametres.html", visitor, title="Paramètres du site", status_code=status_code,
                form=filled, labels=LABELS, levels=LEVEL_WORDS, models=models, max_suggestions=MAX_SUGGESTIONS,
                retention=[(name, LABELS[name], *BOUNDS[name.removeprefix("retention_").removesuffix("_days")])
                           for name in RETENTION],
                presets=PRESET_LABELS, amounts={amount: LIMITS[amount] for amount in PRESET_AMOUNTS},
                secret=secret, **context)


# ---- the pages every State site carries (open without signing in) ---------------------------------

@router.get("/ui/mentions-legales")
@router.get("/ui/donnees-personnelles")
@router.get("/ui/cookies")
async def legal_page(request: Request) -> Response:
    title, name = LEGAL_PAGES[request.url.path]
    site = site_of(request) or await platform(request).site.current()
    return page(request, "page_legale.html", await optional_visitor(request), title=title, text=getattr(site, name))


@router.get("/ui/accessibilite")
async def accessibility_page(request: Request) -> Response:
    site = site_of(request) or await platform(request).site.current()
    return page(request, "accessibilite.html", await optional_visitor(request), title="Déclaration d'accessibilité",
                level=LEVEL_WORDS[site.accessibility], checks=accessibility_results(), impacts=IMPACTS,
                public_url=security.public_url(request, "/ui/"))


@functools.cache
def accessibility_results() -> dict[str, Any] | None:
    """What the browser tests' automated checks found (None: never recorded), with a summary per rule."""
    if not ACCESSIBILITY_RESULTS.is_file():
        return None
    results: dict[str, Any] = json.loads(ACCESSIBILITY_RESULTS.read_text(encoding="utf-8"))
    rules: dict[str, dict[str, Any]] = {}
    for checked in results.get("pages", []):
        for violation in checked.get("violations", []):
            rule = rules.setdefault(violation["id"], {**violation, "pages": []})
            rule["pages"].append(checked["name"])
    results["checked_on"] = long_day(results["checked_at"])
    results["rules"] = sorted(rules.values(), key=lambda rule: rule["id"])
    results["titles"] = sorted({checked["title"] for checked in results.get("pages", [])})
    results["clean"] = sum(1 for checked in results.get("pages", []) if not checked.get("violations"))
    return results
