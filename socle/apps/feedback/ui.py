"""Avis usagers: the feedback app in the web UI. My datasets and importing a file into one; per dataset, its
analyses (followed while they run) and the form that estimates or starts one; per analysis, its report in the
page, and the self-contained report and the annotations (CSV) to download.

Every page acts as the signed-in user through the feedback app's services: a dataset
or an analysis of anyone else answers 404, as in the API.
"""
from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import JSONResponse, Response

from socle.api.strict import StrictRoute
from socle.apps.feedback.analyses import Analyses
from socle.apps.feedback.app import FeedbackServices
from socle.apps.feedback.models import FeedbackAnalysis
from socle.apps.feedback.report import ENGINES_FR, STATUS_FR
from socle.apps.feedback.service import ACTIVE, DEFAULT_OPTIONS
from socle.db.integers import MAX_INTEGER, Id
from socle.errors import SocleError
from socle.identity.permissions import Permission
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import error_page, french, page, redirect, status_of

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
IMPORT_PATH = "/ui/avis/importer"
ACCEPTED = ".csv,.jsonl,.ndjson,.xlsx,.txt,.tsv"
ENGINES = {"embedding": "Classement par ressemblance : rapide, sur les serveurs de la plateforme ; chaque message "
                        "est rapproché d'exemples déjà classés",
           "llm": "Lecture par un assistant IA : un modèle de conversation de la plateforme lit chaque message ; "
                  "plus fin sur les cas difficiles, plus lent"}
MODEL_KINDS = {"embedding": "de comparaison de textes", "llm": "de conversation"}
MODEL_TYPES = {"embedding": "embeddings", "llm": "chat"}
NOTICES = {"analyse-lancee": "L'analyse est lancée : elle se poursuit même si vous quittez cette page.",
           "analyse-arretee": "L'analyse est arrêtée : ce qui est annoté est gardé, vous pouvez la reprendre.",
           "analyse-reprise": "L'analyse reprend là où elle s'était arrêtée.",
           "jeu-supprime": "Le jeu de données et ses analyses ont été supprimés."}
_MESSAGES_BY_CODE = {
    "unsupported_file_type": "Ce type de fichier n'est pas pris en charge : donnez un fichier CSV, JSONL ou Excel "
                             "(.xlsx).",
    "too_many_messages": "Ce jeu de données dépasserait le nombre de messages permis sur la plateforme.",
    "model_not_supported": "Ce modèle ne convient pas à ce moteur d'analyse.",
}


def _french(exc: SocleError) -> str:
    return _MESSAGES_BY_CODE.get(exc.code or "", "") or french(exc)


def _services(request: Request) -> FeedbackServices:
    return platform(request).app(FeedbackServices)


def _analyses(request: Request) -> Analyses:
    return _services(request).analyses


def _progress(analysis: FeedbackAnalysis) -> dict[str, Any]:
    """What a page shows of an analysis, and what its script reads while it runs."""
    handled = analysis.done + analysis.failed
    return {"id": analysis.id, "status": analysis.status, "status_label": STATUS_FR.get(analysis.status, analysis.status),
            "active": analysis.status in ACTIVE, "done": analysis.done, "failed": analysis.failed,
            "handled": handled, "total": analysis.total, "tokens": analysis.tokens,
            "percent": round(100 * handled / analysis.total) if analysis.total else 0, "error": analysis.error}


# -- datasets -------------------------------------------------------------------------------------------

@router.get("/avis")
async def datasets_page(request: Request, visitor: SignedIn) -> Response:
    return await _datasets(request, visitor)


async def _datasets(request: Request, visitor: Visitor, *, status_code: int = 200, error: str | None = None,
                    name: str = "") -> Response:
    try:
        datasets = await _services(request).datasets.list_datasets(visitor.principal)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    return page(request, "avis.html", visitor, title="Avis usagers", status_code=status_code, error=error,
                datasets=datasets, accepted=ACCEPTED, name=name, notice_avis=NOTICES.get(request.query_params.get("fait", "")))


@router.post("/avis/importer")
async def import_file(request: Request, visitor: SignedIn, file: Annotated[UploadFile, File()],
                      name: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Adds a file's messages to the dataset of that name (a new one, or one of mine): the dataset's page
    then says how many were added and how many were already there or skipped."""
    if not name.strip():
        return await _datasets(request, visitor, status_code=400, error="Donnez un nom au jeu de données.")
    if not file.filename:
        return await _datasets(request, visitor, status_code=400, error="Choisissez un fichier à importer.",
                               name=name)
    try:
        imported = await _services(request).datasets.import_file(visitor.principal, name, file.filename,
                                                                await file.read())
    except SocleError as exc:
        return await _datasets(request, visitor, status_code=status_of(exc), error=_french(exc), name=name)
    return await _dataset(request, visitor, imported.dataset.id, imported=imported)


@router.get("/avis/{dataset_id}")
async def dataset_page(dataset_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _dataset(request, visitor, dataset_id)


@router.post("/avis/{dataset_id}/supprimer")
async def delete_dataset(dataset_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await _services(request).datasets.delete_dataset(visitor.principal, dataset_id)
    except SocleError as exc:
        return await _dataset(request, visitor, dataset_id, status_code=status_of(exc), error=_french(exc))
    return redirect("/ui/avis?fait=jeu-supprime")


def _models(request: Request, visitor: Visitor) -> dict[str, list[str]]:
    """The platform's models the visitor may use, by the engine that takes them."""
    inference = platform(request).inference
    if inference is None or not (visitor.principal.can(Permission.MODELS_READ)
                                 and visitor.principal.can(Permission.MODELS_USE)):
        return {engine: [] for engine in MODEL_TYPES}
    served = inference.list_models(visitor.principal)
    return {engine: [m.id for m in served if m.config.type == kind] for engine, kind in MODEL_TYPES.items()}


async def _dataset(request: Request, visitor: Visitor, dataset_id: int, *, status_code: int = 200,
                   error: str | None = None, imported: Any = None, estimate: Any = None,
                   chosen: dict[str, Any] | None = None) -> Response:
    p = platform(request)
    try:
        dataset = await _services(request).datasets.get_dataset(visitor.principal, dataset_id)
        analyses = await _services(request).datasets.list_analyses(visitor.principal, dataset_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    models = _models(request, visitor)
    default_model = p.search.embedding_model or next(iter(models["embedding"]), "")
    form = {"engine": "embedding", "model": default_model, "reply_model": next(iter(models["llm"]), ""),
            "token_budget": "", "replies": False, "learn": DEFAULT_OPTIONS["learn_from_labels"], **(chosen or {})}
    return page(request, "avis_jeu.html", visitor, title=dataset.name, section="/ui/avis", status_code=status_code,
                error=error, dataset=dataset, analyses=[(a, _progress(a)) for a in analyses], imported=imported,
                estimate=estimate, models=models, engines=ENGINES, engine_names=ENGINES_FR, model_kinds=MODEL_KINDS,
                form=form,
                running=any(a.status in ACTIVE for a in analyses),
                notice_avis=NOTICES.get(request.query_params.get("fait", "")))


# -- analyses -------------------------------------------------------------------------------------------

@router.post("/avis/{dataset_id}/analyses")
async def start_analysis(dataset_id: Id, request: Request, visitor: SignedIn,
                         engine: Annotated[str, Form()] = "embedding", model: Annotated[str, Form()] = "",
                         token_budget: Annotated[str, Form()] = "", replies: Annotated[str, Form()] = "",
                         reply_model: Annotated[str, Form()] = "", learn: Annotated[str, Form()] = "",
                         action: Annotated[str, Form()] = "lancer") -> Response:
    """``action=estimer``: the dry run (what the analysis would cost at most, nothing is analysed);
    ``action=lancer``: start it."""
    chosen = {"engine": engine, "model": model, "token_budget": token_budget, "replies": bool(replies),
              "reply_model": reply_model, "learn": bool(learn)}
    actor = visitor.principal

    async def refused(message: str, status_code: int = 400) -> Response:
        return await _dataset(request, visitor, dataset_id, status_code=status_code, error=message, chosen=chosen)

    models = _models(request, visitor)
    if engine not in ENGINES:
        return await refused("Choisissez un moteur d'analyse.")
    if model not in models[engine]:
        return await refused(f"Choisissez un modèle {MODEL_KINDS[engine]} pour le moteur « {ENGINES_FR[engine]} ».")
    if replies and reply_model not in models["llm"]:
        return await refused("Les brouillons de réponse demandent un modèle de conversation : choisissez-en un.")
    budget = token_budget.strip().replace(" ", "").replace("\u202f", "")
    if budget and not (budget.isascii() and budget.isdigit() and 0 < int(budget) <= MAX_INTEGER):
        return await refused("Le budget de jetons est un nombre entier positif (ou rien, pour ne pas en fixer).")
    try:
        analyses = _analyses(request)
        plan = analyses.plan(actor, engine, model, replies=bool(replies), reply_model=reply_model,
                           learn_from_labels=bool(learn))
        if action == "estimer":
            estimate = await analyses.estimate(actor, dataset_id, plan)
            return await _dataset(request, visitor, dataset_id, estimate=estimate, chosen=chosen)
        await analyses.start(actor, dataset_id, plan, token_budget=int(budget) if budget else None)
    except SocleError as exc:
        return await refused(_french(exc), status_of(exc))
    return redirect(f"/ui/avis/{dataset_id}?fait=analyse-lancee")


@router.post("/avis/analyses/{analysis_id}/arreter")
async def stop_analysis(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _act(request, visitor, _services(request).datasets.cancel(visitor.principal, analysis_id),
                      "analyse-arretee")


@router.post("/avis/analyses/{analysis_id}/reprendre")
async def resume_analysis(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _act(request, visitor, _services(request).datasets.resume(visitor.principal, analysis_id),
                      "analyse-reprise")


async def _act(request: Request, visitor: Visitor, action: Awaitable[FeedbackAnalysis], notice: str) -> Response:
    """Stop or resume: back to the dataset's page with the notice, or the error page."""
    try:
        analysis = await action
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    return redirect(f"/ui/avis/{analysis.dataset_id}?fait={notice}")


@router.get("/api/avis/analyses/{analysis_id}")
async def analysis_state(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    """An analysis' progress, polled by its dataset's page while it runs."""
    try:
        analysis = await _services(request).datasets.get(visitor.principal, analysis_id)
    except SocleError as exc:
        return JSONResponse({"error": {"message": _french(exc)}}, status_code=status_of(exc))
    return JSONResponse(_progress(analysis))


# -- reports --------------------------------------------------------------------------------------------

@router.get("/avis/analyses/{analysis_id}")
async def report_page(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        analysis, dataset, report = await _analyses(request).report(visitor.principal, analysis_id, fragment=True)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    return page(request, "avis_rapport.html", visitor, title=f"Rapport : {dataset.name}", section="/ui/avis",
                dataset=dataset, analysis=analysis, progress=_progress(analysis), report=report)


@router.get("/avis/analyses/{analysis_id}/rapport.html")
async def report_file(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    """The report as one file that needs nothing else (to keep, send or print to PDF)."""
    try:
        analysis, _, html = await _analyses(request).report(visitor.principal, analysis_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="rapport-avis-{analysis.id}.html"'})


@router.get("/avis/analyses/{analysis_id}/annotations.csv")
async def annotations_file(analysis_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        body = await _analyses(request).annotations_csv(visitor.principal, analysis_id)
    except SocleError as exc:
        return error_page(request, visitor, status_of(exc), _french(exc))
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="annotations-avis-{analysis_id}.csv"'})
