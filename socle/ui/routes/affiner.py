"""Affiner un modèle: fine-tuning for a person who is not technical.

Their examples come as a spreadsheet of two columns (a question and the answer expected, or a message and the label
expected) or as the API's JSONL; the page turns a spreadsheet into JSONL and uploads it through the files service,
which checks it (errors in French, naming the line), then shows the estimate and launches the job through the
fine-tuning service: the UI obeys exactly the API's rules. A job's page follows it (status, losses, events), and
once it succeeds lets its owner try the new model beside its base and share it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import Response

from socle import charts
from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.db.models import FineTuningEvent, FineTuningJob
from socle.endpoints import Endpoint
from socle.errors import InvalidRequest, SocleError
from socle.finetuning.service import JobRequest
from socle.formats import french_number
from socle.identity.permissions import Permission
from socle.spreadsheets import csv_rows, xlsx_rows
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import inline, page, redirect

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=StrictRoute)
ACCEPTED = ".csv,.xlsx,.jsonl"
STATUSES = {"validating_files": ("Vérification des exemples", "info"), "queued": ("En attente", "new"),
            "running": ("Entraînement en cours", "info"), "succeeded": ("Terminé", "success"),
            "failed": ("Échec", "error"), "cancelled": ("Annulé", "warning")}
RUNNING = ("validating_files", "queued", "running")
FAILURES = {"invalid_training_file": "les exemples ne conviennent pas au modèle choisi (trop longs pour lui ?)",
            "invalid_file": "le fichier d'exemples n'est plus disponible",
            "model_not_found": "le modèle de base n'est plus proposé",
            "training_unavailable": "l'entraînement n'est pas possible sur cette plateforme",
            "model_not_served": "aucun serveur du modèle de base ne sait servir le modèle affiné",
            "training_failed": "l'entraînement s'est arrêté sur une erreur"}
EVENTS = {"Fine-tuning job started.": "L'entraînement a commencé.",
          "Fine-tuning job cancelled.": "L'affinage est annulé.",
          "The job has successfully completed.": "L'affinage est terminé."}
ANSWER_TOKENS = 200
IN_A_SPREADSHEET = {"le message 1 (user) est vide": "la première colonne (la question ou le message) est vide",
                    "le message 2 (assistant) est vide": "la deuxième colonne (la réponse ou l'étiquette attendue) "
                                                         "est vide"}


def examples_jsonl(filename: str, content: bytes) -> tuple[bytes, bool]:
    """The examples as the API's JSONL, and whether they came from a spreadsheet (its line N is the JSONL's line
    N - 1: the first line names the columns)."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return content, False
    if suffix == ".csv":
        rows: Iterator[dict[str, Any]] = csv_rows(content)
    elif suffix == ".xlsx":
        rows = xlsx_rows(content)
    else:
        raise InvalidRequest("Envoyez un tableau CSV ou Excel (.xlsx) de deux colonnes, ou un fichier JSONL.",
                             param="file", code="unsupported_file")
    lines = []
    for row in rows:
        cells = [("" if value is None else str(value)).strip() for value in row.values()]
        question, answer = (cells + ["", ""])[:2]
        lines.append(json.dumps({"messages": [{"role": "user", "content": question},
                                              {"role": "assistant", "content": answer}]}, ensure_ascii=False))
    return "\n".join(lines).encode("utf-8") + b"\n", True


def line_errors(checks: dict[str, Any] | None, *, spreadsheet: bool) -> list[str]:
    """The file's problems in French, each naming its line (a spreadsheet's own numbering)."""
    errors = []
    for error in (checks or {}).get("errors", []):
        line = int(error.get("line") or 0)
        where = f"Ligne {line + 1 if spreadsheet else line} : " if line else ""
        message = str(error.get("message_fr") or error.get("message"))
        errors.append(where + (IN_A_SPREADSHEET.get(message, message) if spreadsheet else message))
    more = int((checks or {}).get("error_count", 0)) - len(errors)
    if more > 0:
        errors.append(f"… et {more} autres problèmes.")
    return errors


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "moins d'une minute"
    if minutes < 120:
        return f"environ {minutes} minute{'s' if minutes > 1 else ''}"
    return f"environ {round(minutes / 60)} heures"


def french_event(event: FineTuningEvent) -> str:
    """An event of the job in French (the API's events are OpenAI's, in English)."""
    data = event.data or {}
    if event.type == "metrics":
        valid = data.get("valid_loss")
        loss = french_number(data.get("train_loss"), 3)
        return (f"Étape {data.get('step')} sur {data.get('total_steps')} : perte {loss}"
                + ("" if valid is None else f", perte sur les exemples de validation {french_number(valid, 3)}"))
    if "checkpoint" in data:
        return f"Point de reprise enregistré à l'étape {data.get('step')}."
    if "resumed_from_step" in data:
        return f"L'entraînement reprend depuis l'étape {data['resumed_from_step']}, après une interruption."
    if "model" in data:
        return f"Le nouveau modèle est prêt : {data['model']}"
    if event.message.startswith("Created fine-tuning job"):
        return "La demande d'affinage est enregistrée."
    if event.message.startswith("Validated the training file"):
        return "Les exemples sont vérifiés."
    if event.level == "error":
        return "L'affinage a échoué."
    return EVENTS.get(event.message, event.message)


def losses(events: list[FineTuningEvent]) -> tuple[list[str], list[float | None], list[float | None]]:
    """The steps and both losses, oldest first (a step reported twice after a resumption: its last report)."""
    by_step: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "metrics" and event.data:
            by_step[int(event.data["step"])] = event.data
    steps = sorted(by_step)
    return ([str(step) for step in steps], [by_step[s].get("train_loss") for s in steps],
            [by_step[s].get("valid_loss") for s in steps])


@router.get("/affiner")
async def fine_tuning_page(request: Request, visitor: SignedIn) -> Response:
    return await _start(request, visitor)


@router.post("/affiner")
async def check_examples(request: Request, visitor: SignedIn, file: Annotated[UploadFile, File()]) -> Response:
    """The examples uploaded and checked: their errors, or their estimate and the form that launches (the base
    model is chosen there)."""
    p = platform(request)
    filename = file.filename or "exemples"
    try:
        content, spreadsheet = examples_jsonl(filename, await file.read(p.files.max_bytes("fine-tune") + 1))
        stored = await p.files.create(visitor.principal, f"{PurePath(filename).stem}.jsonl", content, "fine-tune")
    except SocleError as exc:
        return await _start(request, visitor, **inline(exc))
    if stored.status == "error":
        return await _start(request, visitor, status_code=400,
                            line_errors=line_errors(stored.checks, spreadsheet=spreadsheet))
    checks = stored.checks or {}
    guess = p.fine_tuning.estimate(int(checks.get("examples", 0)), int(checks.get("tokens", 0)))
    return await _start(request, visitor, checked=stored, estimate=guess, duration=duration(guess.seconds))


@router.post("/affiner/lancer")
async def launch(request: Request, visitor: SignedIn, file_id: Annotated[Id, Form()],
                 model: Annotated[str, Form(max_length=200)],
                 suffix: Annotated[str, Form(max_length=64)] = "",
                 n_epochs: Annotated[int | None, Form(ge=1, le=50)] = None) -> Response:
    """The job, with "auto" settings unless the person chose how many times the examples are read."""
    hyperparameters = {} if n_epochs is None else {"n_epochs": n_epochs}
    try:
        job = await platform(request).fine_tuning.create(visitor.principal, JobRequest(
            model=model, training_file=file_id, suffix=suffix.strip() or None, hyperparameters=hyperparameters))
    except SocleError as exc:
        return await _start(request, visitor, model=model, **inline(exc))
    return redirect(f"/ui/affiner/{job.id}")


@router.get("/affiner/{job_id}")
async def job_page(job_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _job(request, visitor, job_id)


@router.get("/affiner/{job_id}/suivi")
async def job_progress(job_id: Id, request: Request, visitor: SignedIn) -> Response:
    """The part of the job's page that changes while it runs (the page's script swaps it in)."""
    job, events = await _job_and_events(request, visitor, job_id)
    return page(request, "_affiner_suivi.html", visitor, title="", **_progress(job, events))


@router.post("/affiner/{job_id}/annuler")
async def cancel(job_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).fine_tuning.cancel(visitor.principal, job_id)
    return redirect(f"/ui/affiner/{job_id}?ok=affinage-annule")


@router.post("/affiner/{job_id}/essayer")
async def try_side_by_side(job_id: Id, request: Request, visitor: SignedIn,
                           question: Annotated[str, Form(max_length=4000)]) -> Response:
    """The same question to the base model and to the new one: two calls through the inference service,
    accounted like any call."""
    p = platform(request)
    job = await p.fine_tuning.get(visitor.principal, job_id)
    if not question.strip() or job.fine_tuned_model is None:
        return await _job(request, visitor, job_id, status_code=400, error="Écrivez une question.")
    answers = {}
    try:
        for model in (job.model, job.fine_tuned_model):
            body = {"model": model, "messages": [{"role": "user", "content": question.strip()}],
                    "max_tokens": ANSWER_TOKENS, "temperature": 0}
            result = await p.inference.call(visitor.principal, Endpoint.CHAT, body)
            answers[model] = str(result["choices"][0]["message"].get("content") or "")
    except SocleError as exc:
        return await _job(request, visitor, job_id, question=question, **inline(exc))
    return await _job(request, visitor, job_id, question=question, answers=answers)


@router.post("/affiner/{job_id}/partager")
async def share(job_id: Id, request: Request, visitor: SignedIn,
                group_ids: Annotated[list[Id] | None, Form()] = None,
                public: Annotated[bool, Form()] = False) -> Response:
    p = platform(request)
    job = await p.fine_tuning.get(visitor.principal, job_id)
    if job.fine_tuned_model is None:
        return redirect(f"/ui/affiner/{job_id}")
    admin = visitor.principal.can(Permission.MODELS_ADMIN)
    try:
        await p.fine_tuning.share(visitor.principal, job.fine_tuned_model, group_ids=group_ids or [],
                                  public=public if admin else None)
    except SocleError as exc:
        return await _job(request, visitor, job_id, **inline(exc))
    return redirect(f"/ui/affiner/{job_id}?ok=modele-partage")


async def _start(request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any) -> Response:
    p = platform(request)
    service = p.fine_tuning
    jobs = await service.list(visitor.principal, limit=100, after=None)
    return page(request, "affiner.html", visitor, title="Affiner un modèle", status_code=status_code,
                unavailable=service.unavailable_reason(), models=service.trainable(visitor.principal), jobs=jobs,
                statuses=STATUSES, accepted=ACCEPTED, can_train=visitor.principal.can(Permission.MODELS_USE),
                **context)


async def _job_and_events(request: Request, visitor: Visitor, job_id: int) -> tuple[FineTuningJob,
                                                                                  list[FineTuningEvent]]:
    service = platform(request).fine_tuning
    job = await service.get(visitor.principal, job_id)  # another's: 404
    events = await service.events(visitor.principal, job_id, limit=1000, after=None)
    return job, list(reversed(events))  # oldest first


def _progress(job: FineTuningJob, events: list[FineTuningEvent]) -> dict[str, Any]:
    steps, train, valid = losses(events)
    series: list[tuple[str, list[float | None]]] = [("Perte sur les exemples d'entraînement", list(train))]
    if any(value is not None for value in valid):
        series.append(("Perte sur les exemples de validation", list(valid)))
    rows = [[step, french_number(t, 3), french_number(v, 3) if v is not None else "—"]
            for step, t, v in zip(steps, train, valid, strict=True)]
    chart = charts.lines("Perte par étape de l'entraînement", steps, series) if steps else None
    failure = FAILURES.get((job.error or {}).get("code", ""), "l'affinage s'est arrêté") if job.error else None
    return {"job": job, "statuses": STATUSES, "running": job.status in RUNNING, "chart": chart, "rows": rows,
            "events": [(event.created_at, event.level, french_event(event)) for event in reversed(events)],
            "failure": failure}


async def _job(request: Request, visitor: Visitor, job_id: int, *, status_code: int = 200,
               **context: Any) -> Response:
    p = platform(request)
    job, events = await _job_and_events(request, visitor, job_id)
    user = await p.identity.get_user(visitor.principal, visitor.principal.user_id)
    audience = None
    if job.fine_tuned_model is not None:
        try:
            audience = p.inference.get_model(visitor.principal, job.fine_tuned_model).config.audience
        except SocleError:  # taken out of the catalogue since
            audience = None
    return page(request, "affiner_travail.html", visitor, title=f"Affinage n° {job.id}", status_code=status_code,
                groups=user.groups, audience=audience, is_admin=visitor.principal.can(Permission.MODELS_ADMIN),
                **_progress(job, events), **context)
