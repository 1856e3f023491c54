"""``/v1/feedback``: the citizens' feedback app over HTTP — import datasets, run analyses (durable jobs),
follow them, and read their annotations, report and evaluation. Everything is its owner's alone."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, File, Form, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, Response

from socle.api.deps import Caller
from socle.api.schemas import ListOf
from socle.api.strict import StrictRoute
from socle.apps.feedback.deps import Feedback, FeedbackAnalyses
from socle.apps.feedback.evaluation import evaluate
from socle.apps.feedback.models import FeedbackAnalysis
from socle.apps.feedback.service import DEFAULT_OPTIONS, AnnotatedMessage
from socle.db.integers import Amount, Id
from socle.errors import InvalidRequest, PayloadTooLarge

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], route_class=StrictRoute)
DATASETS_PATH = "/v1/feedback/datasets"


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["feedback.dataset"] = "feedback.dataset"
    name: str
    source: str
    source_format: str = Field(description="csv, sp+ (the Services Publics+ export), jsonl or xlsx")
    messages: int
    labelled: int = Field(description="Messages that came with ground-truth labels")
    created_at: datetime


class ImportOut(DatasetOut):
    added: int
    already_there: int = Field(description="Messages of the file whose id the dataset already held")
    skipped: list[str] = Field(description="Rows left out, and why")


class AnalysisOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    object: Literal["feedback.analysis"] = "feedback.analysis"
    dataset_id: int
    engine: str
    model: str
    status: Literal["queued", "running", "done", "failed", "stopped"]
    error: str | None
    total: int
    done: int = Field(description="Messages annotated")
    failed: int = Field(description="Messages whose annotation stayed invalid after its retries")
    tokens: int
    token_budget: int | None
    options: dict[str, Any]
    topics: list[dict[str, Any]] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class AnalysisRequest(BaseModel):
    dataset: Id
    engine: Literal["embedding", "llm"] = "embedding"
    model: str | None = Field(default=None, description="Default: the platform's first model of the engine's kind")
    token_budget: Amount | None = Field(default=None, ge=1,
                                        description="Stop once this many tokens are spent")
    replies: bool = Field(default=False, description="Draft a reply to each message (a chat model)")
    reply_model: str | None = None
    learn_from_labels: bool = Field(default=DEFAULT_OPTIONS["learn_from_labels"],
                                    description="The embedding engine also learns from the dataset's labelled "
                                                "messages (never to annotate those very messages)")
    dry_run: bool = Field(default=False, description="Estimate the tokens; start nothing")


class EstimateOut(BaseModel):
    object: Literal["feedback.estimate"] = "feedback.estimate"
    dataset_id: int
    engine: str
    model: str
    messages: int
    tokens: int = Field(description="At most: prompts estimated generously, completions at their limit")


class ResumeRequest(BaseModel):
    token_budget: Amount | None = Field(default=None, ge=1)


class AnnotationOut(BaseModel):
    message_id: int
    id: str = Field(description="The message's id in the imported file")
    date: str | None
    service: str | None
    channel: str | None
    text: str = Field(description="Pseudonymised")
    status: Literal["ok", "invalid"]
    annotation: dict[str, Any] | None
    personal_data: list[dict[str, Any]] = Field(description="Kinds and places of what was pseudonymised")
    error: str | None


def _annotation_out(row: AnnotatedMessage) -> AnnotationOut:
    m, a = row.message, row.annotation
    return AnnotationOut(message_id=m.id, id=m.external_id, date=m.written_on, service=m.service, channel=m.channel,
                         text=a.text, status=a.status, annotation=a.result, personal_data=a.personal_data,  # type: ignore[arg-type]
                         error=a.error)


@router.post("/datasets", response_model=ImportOut, status_code=status.HTTP_201_CREATED,
             summary="Import a CSV, JSONL or Excel file of feedback (the Services Publics+ export needs no mapping)")
async def import_dataset(caller: Caller, feedback: Feedback,
                         file: UploadFile = File(description=".csv, .jsonl or .xlsx"),
                         name: str = Form(description="Dataset (created if new; known message ids are kept)"),
                         mapping: str | None = Form(None, description='JSON: {"text": "Verbatim", "date": ...}')
                         ) -> ImportOut:
    columns = _mapping(mapping)
    data = await file.read(feedback.max_upload_bytes + 1)
    if len(data) > feedback.max_upload_bytes:
        raise PayloadTooLarge(f"The file is larger than {feedback.max_upload_bytes} bytes.")
    done = await feedback.import_file(caller, name, file.filename or "", data, columns)
    return ImportOut(**DatasetOut.model_validate(done.dataset).model_dump(), added=done.added,
                     already_there=done.already_there, skipped=done.skipped[:1000])


def _mapping(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"mapping is not JSON: {exc}", param="mapping") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequest('mapping must be an object of field names to column names: {"text": "Verbatim"}.',
                             param="mapping")
    return value


@router.get("/datasets", response_model=ListOf)
async def list_datasets(caller: Caller, feedback: Feedback) -> ListOf:
    return ListOf(data=[DatasetOut.model_validate(d) for d in await feedback.list_datasets(caller)])


@router.get("/datasets/{dataset_id}", response_model=DatasetOut)
async def get_dataset(dataset_id: Id, caller: Caller, feedback: Feedback) -> DatasetOut:
    return DatasetOut.model_validate(await feedback.get_dataset(caller, dataset_id))


@router.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_dataset(dataset_id: Id, caller: Caller, feedback: Feedback) -> None:
    await feedback.delete_dataset(caller, dataset_id)


@router.post("/analyses", response_model=AnalysisOut | EstimateOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Start an analysis (a durable background job), or estimate its tokens (dry_run)",
             responses={200: {"description": "dry_run: the estimate", "model": EstimateOut}})
async def start_analysis(body: AnalysisRequest, caller: Caller, analyses: FeedbackAnalyses,
                         response: Response) -> AnalysisOut | EstimateOut:
    plan = analyses.plan(caller, body.engine, body.model, replies=body.replies, reply_model=body.reply_model,
                       learn_from_labels=body.learn_from_labels)
    if body.dry_run:
        estimate = await analyses.estimate(caller, body.dataset, plan)
        response.status_code = status.HTTP_200_OK
        return EstimateOut(dataset_id=body.dataset, engine=plan.engine, model=plan.model,
                           messages=estimate.messages, tokens=estimate.tokens)
    return AnalysisOut.model_validate(await analyses.start(caller, body.dataset, plan, token_budget=body.token_budget))


@router.get("/analyses", response_model=ListOf)
async def list_analyses(caller: Caller, feedback: Feedback, dataset: Id | None = None) -> ListOf:
    return ListOf(data=[AnalysisOut.model_validate(a) for a in await feedback.list_analyses(caller, dataset)])


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut)
async def get_analysis(analysis_id: Id, caller: Caller, feedback: Feedback) -> FeedbackAnalysis:
    return await feedback.get(caller, analysis_id)


@router.post("/analyses/{analysis_id}/resume", response_model=AnalysisOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Resume a stopped analysis (budget or quota spent); only the messages left are analysed")
async def resume_analysis(analysis_id: Id, body: ResumeRequest, caller: Caller,
                          feedback: Feedback) -> FeedbackAnalysis:
    return await feedback.resume(caller, analysis_id, token_budget=body.token_budget)


@router.post("/analyses/{analysis_id}/cancel", response_model=AnalysisOut)
async def cancel_analysis(analysis_id: Id, caller: Caller, feedback: Feedback) -> FeedbackAnalysis:
    return await feedback.cancel(caller, analysis_id)


@router.get("/analyses/{analysis_id}/annotations", response_model=ListOf,
            responses={200: {"content": {"text/csv": {}}}},
            summary="One annotation per analysed message (pseudonymised text); format=csv for a spreadsheet")
async def annotations(analysis_id: Id, caller: Caller, feedback: Feedback, analyses: FeedbackAnalyses,
                      format: Literal["json", "csv"] = Query("json")) -> Any:
    if format == "csv":
        return Response(await analyses.annotations_csv(caller, analysis_id), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="analyse-{analysis_id}.csv"'})
    return ListOf(data=[_annotation_out(r) for r in await feedback.annotations(caller, analysis_id)])


@router.get("/analyses/{analysis_id}/report", response_class=HTMLResponse,
            summary="The analysis' report: a self-contained HTML page with its charts")
async def report(analysis_id: Id, caller: Caller, analyses: FeedbackAnalyses) -> HTMLResponse:
    _, _, html = await analyses.report(caller, analysis_id)
    return HTMLResponse(html, headers={"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                                  "img-src data:"})


@router.get("/analyses/{analysis_id}/evaluation", response_model=ListOf,
            summary="Per-label precision, recall and F1 against the labels the dataset came with")
async def evaluation(analysis_id: Id, caller: Caller, feedback: Feedback, analyses: FeedbackAnalyses) -> ListOf:
    rows = await feedback.annotations(caller, analysis_id)
    return ListOf(data=[s.as_dict() for s in evaluate(rows, analyses.taxonomy)])
