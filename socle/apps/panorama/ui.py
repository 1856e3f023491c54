"""Panorama IA in the web UI: the catalogue by family with its filters and facets, a solution's page, search
by need, the census of needs (declare one, see its closest solutions; the overview by family and
administration for editors, with its CSV), the calls for projects (submit, mark as a juror, rank, select,
follow a product's impact indicators), and editing the catalogue (a form, a file).

Every page acts as the signed-in user through the app's services; what they may not see answers 404, what
they may not do 403, on the platform's error page (its one exception handler).
"""
from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from socle.api.strict import StrictRoute
from socle.apps.panorama.app import PanoramaServices
from socle.apps.panorama.calls import (
    CallFields,
    IndicatorFields,
    MeasureFields,
    ProjectFields,
    ScoreFields,
)
from socle.apps.panorama.catalogue import Filters, solution_dict
from socle.apps.panorama.importing import SolutionFields
from socle.apps.panorama.needs import NeedFields
from socle.apps.panorama.permissions import EDIT, JURY
from socle.apps.panorama.vocabulary import (
    FAMILIES,
    FAMILY_BY_CODE,
    HOSTINGS,
    INDICATOR_KINDS,
    JURY_CRITERIA,
    MARK_MAX,
    MATURITIES,
    PROJECT_STATUSES,
    SOLUTION_CRITERIA,
)
from socle.db.integers import Id
from socle.errors import PayloadTooLarge, SocleError
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, page, redirect

PREFIX = "/ui/panorama"
IMPORT_PATH = f"{PREFIX}/importer"
MAX_FILE = 8 * 1024 * 1024
router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=StrictRoute)
M = TypeVar("M", bound=BaseModel)
NOTICES = {"importe": "Le fichier est importé dans le catalogue.", "enregistre": "C'est enregistré.",
           "supprime": "La solution est retirée du catalogue.", "note": "Votre notation est enregistrée.",
           "depose": "Le projet est déposé : le jury l'examinera."}
FIELD_LABELS = {"name": "le nom", "family": "la famille", "editor": "l'éditeur", "description": "la description",
                "administration": "l'administration", "title": "le titre", "irritant": "l'irritant",
                "sufferers": "qui le subit", "summary": "le résumé", "marks": "les notes", "measured_on": "la date",
                "value": "la valeur", "note": "le commentaire", "url": "l'adresse du site", "closes_on": "la date"}


def _services(request: Request) -> PanoramaServices:
    return platform(request).app(PanoramaServices)


def _vocabulary(visitor: Visitor) -> dict[str, Any]:
    return {"families": FAMILIES, "family_by_code": FAMILY_BY_CODE, "maturities": MATURITIES, "hostings": HOSTINGS,
            "solution_criteria": SOLUTION_CRITERIA, "jury_criteria": JURY_CRITERIA, "mark_max": MARK_MAX,
            "project_statuses": PROJECT_STATUSES, "indicator_kinds": INDICATOR_KINDS,
            "can_edit": visitor.principal.can(EDIT), "can_judge": visitor.principal.can(JURY),
            "notice_panorama": None}


def _page(request: Request, template: str, visitor: Visitor, *, title: str, **context: Any) -> Response:
    vocabulary = _vocabulary(visitor)
    vocabulary["notice_panorama"] = NOTICES.get(request.query_params.get("fait", ""))
    return page(request, template, visitor, title=title, **{**vocabulary, **context})


def _validated(model: type[M], data: dict[str, Any]) -> M | str:
    """The form's fields as the service takes them, or what to tell the person, in French."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({FIELD_LABELS.get(str(e["loc"][0]), str(e["loc"][0])) for e in exc.errors() if e["loc"]})
        return "Vérifiez " + ", ".join(fields) + " : une valeur manque ou n'est pas acceptée."


# -- the catalogue ----------------------------------------------------------------------------------
@router.get("")
async def catalogue_page(request: Request, visitor: SignedIn, famille: str = "", maturite: str = "",
                         hebergement: str = "", libre: str = "", q: str = "") -> Response:
    filters = Filters(famille or None, maturite or None, hebergement or None,
                      {"oui": True, "non": False}.get(libre), q.strip()[:200] or None)
    listing = await _services(request).catalogue.browse(visitor.principal, filters)
    return _page(request, "panorama.html", visitor, title="Panorama des solutions d'IA", listing=listing,
                 chosen={"famille": famille, "maturite": maturite, "hebergement": hebergement, "libre": libre,
                         "q": q})


@router.get("/recherche")
async def search_page(request: Request, visitor: SignedIn, besoin: str = "", famille: str = "") -> Response:
    matches, error = [], None
    if besoin.strip():
        try:
            matches = await _services(request).catalogue.search(visitor.principal, besoin, k=8,
                                                                families=[famille] if famille else [])
        except SocleError as exc:
            error = inline(exc)["error"]
    return _page(request, "panorama_recherche.html", visitor, title="Rechercher une solution par besoin",
                 need=besoin, famille=famille, matches=matches, error=error)


@router.get("/solutions/nouvelle")
async def new_solution_page(request: Request, visitor: SignedIn) -> Response:
    return _page(request, "panorama_formulaire.html", visitor, title="Ajouter une solution", solution=None,
                 values={"maturity": "experimentation", "hosting": "ue"})


@router.post("/solutions/nouvelle")
async def create_solution(request: Request, visitor: SignedIn) -> Response:
    values = _solution_form(await request.form())
    fields = _validated(SolutionFields, values)
    if isinstance(fields, str):
        return _page(request, "panorama_formulaire.html", visitor, title="Ajouter une solution", solution=None,
                     values=values, error=fields, status_code=422)
    try:
        solution = await _services(request).catalogue.create(visitor.principal, fields)
    except SocleError as exc:
        return _page(request, "panorama_formulaire.html", visitor, title="Ajouter une solution", solution=None,
                     values=values, **inline(exc))
    return redirect(f"{PREFIX}/solutions/{solution.slug}?fait=enregistre")


@router.get("/solutions/{slug}")
async def solution_page(request: Request, visitor: SignedIn, slug: str) -> Response:
    solution = await _services(request).catalogue.get(visitor.principal, slug)
    return _page(request, "panorama_solution.html", visitor, title=solution.name, solution=solution)


@router.get("/solutions/{slug}/modifier")
async def edit_solution_page(request: Request, visitor: SignedIn, slug: str) -> Response:
    solution = await _services(request).catalogue.get(visitor.principal, slug)
    values = solution_dict(solution)
    values["keywords"] = ", ".join(values["keywords"])
    return _page(request, "panorama_formulaire.html", visitor, title=f"Modifier {solution.name}",
                 solution=solution, values=values)


@router.post("/solutions/{slug}/modifier")
async def update_solution(request: Request, visitor: SignedIn, slug: str) -> Response:
    services = _services(request)
    solution = await services.catalogue.get(visitor.principal, slug)
    values = {**_solution_form(await request.form()), "slug": slug}
    fields = _validated(SolutionFields, values)
    if isinstance(fields, str):
        return _page(request, "panorama_formulaire.html", visitor, title=f"Modifier {solution.name}",
                     solution=solution, values=values, error=fields, status_code=422)
    await services.catalogue.update(visitor.principal, slug, fields)
    return redirect(f"{PREFIX}/solutions/{slug}?fait=enregistre")


@router.post("/solutions/{slug}/supprimer")
async def delete_solution(request: Request, visitor: SignedIn, slug: str) -> Response:
    await _services(request).catalogue.delete(visitor.principal, slug)
    return redirect(f"{PREFIX}?fait=supprime")


@router.post("/importer")
async def import_file(request: Request, visitor: SignedIn, file: UploadFile = File()) -> Response:
    data = await file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise PayloadTooLarge(f"The file is larger than {MAX_FILE} bytes.")
    await _services(request).catalogue.import_file(visitor.principal, file.filename or "catalogue", data)
    return redirect(f"{PREFIX}?fait=importe")


@router.get("/export.csv")
async def export_catalogue(request: Request, visitor: SignedIn) -> Response:
    text = await _services(request).catalogue.export(visitor.principal, "csv")
    return Response(("\ufeff" + text).encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="panorama.csv"'})


def _solution_form(form: Any) -> dict[str, Any]:
    names = ("name", "family", "editor", "description", "maturity", "hosting", "licence", "integration",
             "criterion_impact", "criterion_maturity", "criterion_integration", "criterion_compliance", "keywords",
             "url")
    values: dict[str, Any] = {name: str(form.get(name) or "") for name in names}
    values["open_source"] = form.get("open_source") == "oui"
    return values


# -- the census of needs ----------------------------------------------------------------------------
NEED_FIELDS = ("administration", "title", "irritant", "sufferers", "volume", "data_available", "workaround")


@router.get("/besoins")
async def needs_page(request: Request, visitor: SignedIn) -> Response:
    return await _needs(request, visitor, values={})


async def _needs(request: Request, visitor: Visitor, *, values: dict[str, str], **context: Any) -> Response:
    needs = await _services(request).needs.mine(visitor.principal)
    return _page(request, "panorama_besoins.html", visitor, title="Déclarer un besoin", needs=needs, values=values,
                 **context)


@router.post("/besoins")
async def declare_need(request: Request, visitor: SignedIn) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in NEED_FIELDS}
    fields = _validated(NeedFields, values)
    if isinstance(fields, str):
        return await _needs(request, visitor, values=values, error=fields, status_code=422)
    try:
        need = await _services(request).needs.declare(visitor.principal, fields)
    except SocleError as exc:
        return await _needs(request, visitor, values=values, **inline(exc))
    return redirect(f"{PREFIX}/besoins/{need.id}?fait=enregistre")


@router.get("/besoins/{need_id}")
async def need_page(request: Request, visitor: SignedIn, need_id: Id) -> Response:
    need = await _services(request).needs.get(visitor.principal, need_id)
    return _page(request, "panorama_besoin.html", visitor, title=need.title, need=need)


@router.get("/recensement")
async def census_page(request: Request, visitor: SignedIn, famille: str = "", administration: str = "") -> Response:
    services = _services(request)
    overview = await services.needs.overview(visitor.principal, family=famille or None,
                                             administration=administration or None)
    groups = await services.needs.groups(visitor.principal)
    return _page(request, "panorama_recensement.html", visitor, title="Recensement des besoins", overview=overview,
                 groups=groups, famille=famille, administration=administration)


@router.get("/recensement.csv")
async def census_csv(request: Request, visitor: SignedIn) -> Response:
    text = await _services(request).needs.export_csv(visitor.principal)
    return Response(("\ufeff" + text).encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="besoins.csv"'})


# -- calls for projects -----------------------------------------------------------------------------
@router.get("/appels")
async def calls_page(request: Request, visitor: SignedIn) -> Response:
    return await _calls(request, visitor, values={})


async def _calls(request: Request, visitor: Visitor, *, values: dict[str, str], **context: Any) -> Response:
    calls = await _services(request).calls.calls(visitor.principal)
    return _page(request, "panorama_appels.html", visitor, title="Appels à projets", calls=calls, values=values,
                 **context)


@router.post("/appels")
async def create_call(request: Request, visitor: SignedIn, title: str = Form(""), description: str = Form(""),
                      closes_on: str = Form("")) -> Response:
    values = {"title": title, "description": description, "closes_on": closes_on}
    fields = _validated(CallFields, {**values, "closes_on": closes_on or None})
    if isinstance(fields, str):
        return await _calls(request, visitor, values=values, error=fields, status_code=422)
    call = await _services(request).calls.create_call(visitor.principal, fields)
    return redirect(f"{PREFIX}/appels/{call.id}?fait=enregistre")


@router.get("/appels/{call_id}")
async def call_page(request: Request, visitor: SignedIn, call_id: Id) -> Response:
    return await _call(request, visitor, call_id, values={})


async def _call(request: Request, visitor: Visitor, call_id: int, *, values: dict[str, str],
                **context: Any) -> Response:
    calls = _services(request).calls
    call = await calls.call(visitor.principal, call_id)
    projects = await calls.projects(visitor.principal, call_id)
    ranking = await calls.ranking(visitor.principal, call_id) \
        if visitor.principal.can(EDIT) or visitor.principal.can(JURY) else []
    return _page(request, "panorama_appel.html", visitor, title=call.title, call=call, projects=projects,
                 ranking=ranking, values=values, **context)


@router.post("/appels/{call_id}/statut")
async def set_call_status(request: Request, visitor: SignedIn, call_id: Id, status: str = Form("")) -> Response:
    await _services(request).calls.set_status(visitor.principal, call_id, "closed" if status == "closed" else "open")
    return redirect(f"{PREFIX}/appels/{call_id}?fait=enregistre")


@router.post("/appels/{call_id}/projets")
async def submit_project(request: Request, visitor: SignedIn, call_id: Id) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in ("administration", "title", "summary", "team", "data")}
    fields = _validated(ProjectFields, values)
    if isinstance(fields, str):
        return await _call(request, visitor, call_id, values=values, error=fields, status_code=422)
    try:
        project = await _services(request).calls.submit(visitor.principal, call_id, fields)
    except SocleError as exc:
        return await _call(request, visitor, call_id, values=values, **inline(exc))
    return redirect(f"{PREFIX}/projets/{project.id}?fait=depose")


@router.get("/projets/{project_id}")
async def project_page(request: Request, visitor: SignedIn, project_id: Id) -> Response:
    return await _project(request, visitor, project_id)


async def _project(request: Request, visitor: Visitor, project_id: int, **context: Any) -> Response:
    calls = _services(request).calls
    project = await calls.project(visitor.principal, project_id)
    call = await calls.call(visitor.principal, project.call_id)
    mine = None
    if visitor.principal.can(JURY):
        ranked = await calls.ranking(visitor.principal, project.call_id)
        mine = next((s for r in ranked if r.project.id == project_id for s in r.scores
                     if s.juror_id == visitor.principal.user_id), None)
    indicators = await calls.indicators(visitor.principal, project_id) if project.status == "selected" else []
    return _page(request, "panorama_projet.html", visitor, title=project.title, project=project, call=call,
                 mine=mine, indicators=indicators, **context)


@router.post("/projets/{project_id}/notation")
async def score_project(request: Request, visitor: SignedIn, project_id: Id) -> Response:
    form = await request.form()
    marks: dict[str, Any] = {c: form.get(f"note_{c}") for c in JURY_CRITERIA}
    fields = _validated(ScoreFields, {"marks": marks, "comment": str(form.get("comment") or "")})
    if isinstance(fields, str):
        return await _project(request, visitor, project_id, error="Donnez une note de 0 à 5 à chacun des sept "
                              "critères.", status_code=422)
    await _services(request).calls.score(visitor.principal, project_id, fields)
    return redirect(f"{PREFIX}/projets/{project_id}?fait=note")


@router.post("/projets/{project_id}/decision")
async def decide(request: Request, visitor: SignedIn, project_id: Id, status: str = Form("")) -> Response:
    decision = status if status in ("submitted", "selected", "declined") else "submitted"
    await _services(request).calls.decide(visitor.principal, project_id, decision)  # type: ignore[arg-type]
    return redirect(f"{PREFIX}/projets/{project_id}?fait=enregistre")


@router.post("/projets/{project_id}/indicateurs/{kind}")
async def define_indicator(request: Request, visitor: SignedIn, project_id: Id, kind: str,
                           name: str = Form(""), unit: str = Form("")) -> Response:
    fields = _validated(IndicatorFields, {"name": name, "unit": unit})
    if isinstance(fields, str) or kind not in INDICATOR_KINDS:
        return await _project(request, visitor, project_id, error="Donnez un nom à l'indicateur.", status_code=422)
    await _services(request).calls.define_indicator(visitor.principal, project_id, kind, fields)  # type: ignore[arg-type]
    return redirect(f"{PREFIX}/projets/{project_id}?fait=enregistre")


@router.post("/projets/{project_id}/indicateurs/{kind}/mesures")
async def record_measure(request: Request, visitor: SignedIn, project_id: Id, kind: str,
                         measured_on: str = Form(""), value: str = Form(""), note: str = Form("")) -> Response:
    number = value.replace(",", ".").replace("\u202f", "").replace(" ", "")
    fields = _validated(MeasureFields, {"measured_on": measured_on or None, "value": number or None, "note": note})
    if isinstance(fields, str) or kind not in INDICATOR_KINDS:
        return await _project(request, visitor, project_id, status_code=422,
                              error="Donnez la date de la mesure et sa valeur (un nombre, ou un texte pour "
                                    "l'indicateur qualitatif).")
    try:
        await _services(request).calls.measure(visitor.principal, project_id, kind, fields)  # type: ignore[arg-type]
    except SocleError as exc:
        return await _project(request, visitor, project_id, **inline(exc))
    return redirect(f"{PREFIX}/projets/{project_id}?fait=enregistre")
