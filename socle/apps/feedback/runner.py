"""The analysis job: annotates a dataset's messages batch by batch, each batch's annotations committed
with the analysis' counters, so that a killed worker's successor (the job's lease ran out) starts from
the first message without one and never redoes a finished one. A message the engine cannot annotate is
kept as ``invalid`` with its reason; a spent token budget or quota stops the analysis, resumable; once
every message is done, the emerging topics are found."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.feedback import pii
from socle.apps.feedback.engines import (
    ENGINES,
    Engine,
    EngineContext,
    Example,
    Interrupted,
    Item,
    Outcome,
    engine_for,
)
from socle.apps.feedback.exports import annotations_csv
from socle.apps.feedback.replies import draft_reply, topic_namer
from socle.apps.feedback.report import render_report, render_report_fragment
from socle.apps.feedback.service import ACTIVE, ANALYZE, DEFAULT_OPTIONS, FeedbackService
from socle.apps.feedback.taxonomy import Taxonomy
from socle.apps.feedback.topics import emerging_topics
from socle.db.models import FeedbackAnalysis, FeedbackAnnotation, FeedbackDataset, FeedbackMessage, utcnow
from socle.errors import InvalidRequest, NotFound, PermissionDenied, RateLimited
from socle.identity.permissions import SYSTEM, Permission, Principal, require
from socle.identity.service import IdentityService
from socle.inference.service import InferenceService
from socle.jobs.worker import Handler, PermanentError

log = logging.getLogger("socle.feedback")
REPLY_OVERHEAD = 400  # a draft's instructions and its longest answer, in tokens
ENGINES_KEPT = 8


@dataclass(frozen=True, slots=True)
class Plan:
    """An analysis as asked, checked: its engine, its model (the engine's default when none was named) and
    its options (the service's defaults, overridden)."""

    engine: str
    model: str
    options: dict[str, Any]

    def matches(self, analysis: FeedbackAnalysis) -> bool:
        """``analysis`` was started from the same plan (the CLI resumes it rather than start another)."""
        return (analysis.engine, analysis.model) == (self.engine, self.model) and \
            all(analysis.options.get(k) == v for k, v in self.options.items())


@dataclass(frozen=True, slots=True)
class Estimate:
    messages: int
    tokens: int  # at most: prompts estimated generously, completions at their limit
    engine: str
    model: str


class AnalysisRunner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], identity: IdentityService,
                 inference: InferenceService, feedback: FeedbackService, taxonomy: Taxonomy, *,
                 embedding_model: str | None, cache_dir: Path) -> None:
        self._sessions = sessions
        self._identity = identity
        self._feedback = feedback
        self._inference = inference
        self.taxonomy = taxonomy
        self._embedding_model = embedding_model
        self._cache_dir = cache_dir
        # Fitted engines are worth keeping, a few: each holds its classifiers and a cache of vectors.
        self._engines: LRUCache[tuple[str, str, int], Engine] = LRUCache(ENGINES_KEPT)

    @property
    def handlers(self) -> dict[str, Handler]:
        return {ANALYZE: self.run}

    async def give_up(self, kind: str, payload: dict[str, Any], error: str) -> None:
        """The job failed for good (its attempts are spent): the analysis says so, and can be resumed."""
        if kind == ANALYZE:
            async with self._sessions() as session, session.begin():
                await session.execute(update(FeedbackAnalysis).where(
                    FeedbackAnalysis.id == int(payload["analysis_id"]), FeedbackAnalysis.status.in_(ACTIVE))
                    .values(status="failed", error=f"Échec après plusieurs essais : {error}"[:2000],
                            finished_at=utcnow()))

    def context(self, principal: Principal) -> EngineContext:
        return EngineContext(self._inference, principal, self.taxonomy, self._embedding_model, self._cache_dir)

    def engine(self, name: str, model: str, principal: Principal) -> Engine:
        key = (name, model, principal.user_id)
        if key not in self._engines:
            self._engines[key] = engine_for(name, self.context(principal), model)
        return self._engines[key]

    def plan(self, principal: Principal, engine: str, model: str | None = None, *, replies: bool = False,
             reply_model: str | None = None, learn_from_labels: bool | None = None) -> Plan:
        """An analysis checked now rather than failing later (an unknown engine, a model the caller may not
        see or of the wrong kind), its models chosen and its options complete."""
        chosen = self._model(principal, engine, model)
        drafts_by = self._model(principal, "llm", reply_model) if replies else None
        options = {**DEFAULT_OPTIONS, "replies": drafts_by is not None, "reply_model": drafts_by}
        if learn_from_labels is not None:
            options["learn_from_labels"] = learn_from_labels
        return Plan(engine, chosen, options)

    def _model(self, principal: Principal, engine: str, model: str | None) -> str:
        """The model ``engine`` will use: ``model``, or the engine's default."""
        require(principal, Permission.FEEDBACK_USE)
        if engine not in ENGINES:
            raise InvalidRequest(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.", param="engine")
        wanted = "embeddings" if engine == "embedding" else "chat"
        if model is None:
            if engine == "embedding" and self._embedding_model is not None:
                return self._embedding_model
            model = next((m.id for m in self._inference.list_models(principal) if m.config.type == wanted), None)
            if model is None:
                raise InvalidRequest(f"No {wanted} model is configured for the {engine} engine.", param="model")
        served = self._inference.get_model(principal, model)
        if served.config.type != wanted:
            raise InvalidRequest(f"The {engine} engine needs a {wanted} model; '{served.id}' is a "
                                 f"{served.config.type} model.", param="model", code="model_not_supported")
        if engine == "embedding" and self._embedding_model is None:
            raise InvalidRequest("The embedding engine needs the platform's embeddings model: none is configured.",
                                 param="engine")
        return served.id

    async def estimate(self, principal: Principal, dataset_id: int, plan: Plan) -> Estimate:
        """What an analysis of the dataset will cost at most, before it starts (the dry run): no model is
        called."""
        texts = [m.text for m in await self._feedback.messages(principal, dataset_id)]
        chosen = self.engine(plan.engine, plan.model, principal)
        tokens = sum(chosen.estimate_tokens(text) for text in texts)
        if plan.options["replies"]:
            tokens += sum(len(text) // 3 + REPLY_OVERHEAD for text in texts)
        return Estimate(messages=len(texts), tokens=tokens, engine=plan.engine, model=plan.model)

    async def start(self, principal: Principal, dataset_id: int, plan: Plan, *,
                    token_budget: int | None = None) -> FeedbackAnalysis:
        return await self._feedback.start(principal, dataset_id, engine=plan.engine, model=plan.model,
                                          token_budget=token_budget, options=plan.options)

    async def report(self, principal: Principal, analysis_id: int, *,
                     fragment: bool = False) -> tuple[FeedbackAnalysis, FeedbackDataset, str]:
        """An analysis' report: the self-contained HTML file, or (``fragment``) its body for a page of the UI.
        Drawn off the event loop: its charts take a while on a large dataset."""
        analysis = await self._feedback.get(principal, analysis_id)
        dataset = await self._feedback.get_dataset(principal, analysis.dataset_id)
        rows = await self._feedback.annotations(principal, analysis.id)
        render = render_report_fragment if fragment else render_report
        return analysis, dataset, await asyncio.to_thread(render, analysis, dataset, rows, self.taxonomy)

    async def annotations_csv(self, principal: Principal, analysis_id: int) -> str:
        """One row per annotated message, for a spreadsheet."""
        rows = await self._feedback.annotations(principal, analysis_id)
        return await asyncio.to_thread(annotations_csv, rows, self.taxonomy)

    async def run(self, payload: dict[str, Any]) -> None:
        analysis_id = int(payload["analysis_id"])
        async with self._sessions() as session, session.begin():
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            if analysis is None or analysis.status not in ACTIVE:
                return  # deleted, stopped or already finished: nothing to do
            analysis.status = "running"
            analysis.started_at = analysis.started_at or utcnow()
            owner, engine_name, model, options = analysis.owner_id, analysis.engine, analysis.model, analysis.options
        try:
            principal = SYSTEM if owner is None else await self._identity.principal_of(owner)
            engine = self.engine(engine_name, model, principal)
        except (InvalidRequest, NotFound, PermissionDenied) as exc:
            await self._finish(analysis_id, "failed", str(exc))
            raise PermanentError(str(exc)) from exc
        context = self.context(principal)
        examples = await self._examples(analysis_id) if options.get("learn_from_labels") else []
        while True:
            batch = await self._next_batch(analysis_id, engine.batch_size)
            if batch is None:
                return  # stopped meanwhile
            if not batch:
                break
            state = await self._state(analysis_id)
            cost = sum(engine.estimate_tokens(m.text) for m in batch)
            if state.token_budget is not None and state.tokens + cost > state.token_budget:
                await self._finish(analysis_id, "stopped", f"Budget de {state.token_budget} jetons atteint "
                                                           f"({state.tokens} consommés) : reprenez avec un budget plus grand.")
                return
            found = {m.id: pii.detect(m.text) for m in batch}
            items = [Item(m.id, pii.pseudonymise(m.text, found[m.id])) for m in batch]
            try:
                outcomes = await engine.annotate(items, examples)
                if options.get("replies"):
                    await self._draft_replies(context, str(options.get("reply_model") or model), items, outcomes)
            except Interrupted as exc:
                await self._save(analysis_id, items, exc.outcomes, found)
                await self._finish(analysis_id, "stopped", f"Quota atteint : {exc.cause}")
                return
            except RateLimited as exc:
                await self._finish(analysis_id, "stopped", f"Quota atteint : {exc}")
                return
            except (NotFound, PermissionDenied) as exc:
                await self._finish(analysis_id, "failed", str(exc))
                raise PermanentError(str(exc)) from exc
            await self._save(analysis_id, items, outcomes, found)
        await self._topics(analysis_id, engine_name, model, context)

    async def _next_batch(self, analysis_id: int, size: int) -> list[FeedbackMessage] | None:
        async with self._sessions() as session:
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            if analysis is None or analysis.status != "running":
                return None
            done = select(FeedbackAnnotation.message_id).where(FeedbackAnnotation.analysis_id == analysis_id)
            return list(await session.scalars(
                select(FeedbackMessage).where(FeedbackMessage.dataset_id == analysis.dataset_id,
                                              FeedbackMessage.id.not_in(done))
                .order_by(FeedbackMessage.id).limit(size)))

    async def _examples(self, analysis_id: int) -> list[Example]:
        """The dataset's labelled messages, pseudonymised like every text an engine sees."""
        async with self._sessions() as session:
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            assert analysis is not None
            rows = (await session.execute(select(FeedbackMessage.id, FeedbackMessage.text, FeedbackMessage.labels)
                                          .where(FeedbackMessage.dataset_id == analysis.dataset_id,
                                                 FeedbackMessage.labels.is_not(None)))).all()
        return [Example(r.id, pii.pseudonymise(r.text), r.labels) for r in rows if r.labels]

    async def _state(self, analysis_id: int) -> FeedbackAnalysis:
        async with self._sessions() as session:
            found = await session.get(FeedbackAnalysis, analysis_id)
            assert found is not None
            return found

    async def _draft_replies(self, context: EngineContext, model: str, items: list[Item],
                             outcomes: list[Outcome]) -> None:
        """A draft for each annotated message; a quota that refuses one keeps the batch up to it."""
        for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
            if outcome.result is None:
                continue
            try:
                outcome.result["draft_reply"], tokens = await draft_reply(context, model, item.text, outcome.result)
            except RateLimited as exc:
                raise Interrupted(outcomes[:index], exc) from exc
            outcome.tokens += tokens

    async def _save(self, analysis_id: int, items: list[Item], outcomes: list[Outcome],
                    found: dict[int, list[pii.Span]]) -> None:
        texts = {item.message_id: item.text for item in items}
        rows = [FeedbackAnnotation(
            analysis_id=analysis_id, message_id=o.message_id, status="ok" if o.result is not None else "invalid",
            text=texts[o.message_id], result=o.result, error=o.error, tokens=o.tokens, attempts=o.attempts,
            personal_data=[{"kind": s.kind, "start": s.start, "end": s.end} for s in found[o.message_id]],
            vector=None if o.vector is None else np.asarray(o.vector, dtype="<f4").tobytes()) for o in outcomes]
        try:
            async with self._sessions() as session, session.begin():
                session.add_all(rows)
                await session.flush()
                await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id).values(
                    done=FeedbackAnalysis.done + sum(r.status == "ok" for r in rows),
                    failed=FeedbackAnalysis.failed + sum(r.status != "ok" for r in rows),
                    tokens=FeedbackAnalysis.tokens + sum(r.tokens for r in rows)))
        except IntegrityError:  # another worker wrote this batch first (a lease that ran out): theirs stands
            log.warning("analysis %d: a batch was already annotated", analysis_id)

    async def _topics(self, analysis_id: int, engine_name: str, model: str, context: EngineContext) -> None:
        async with self._sessions() as session:
            rows = (await session.execute(
                select(FeedbackAnnotation.message_id, FeedbackAnnotation.text, FeedbackAnnotation.vector,
                       FeedbackAnnotation.result)
                .where(FeedbackAnnotation.analysis_id == analysis_id, FeedbackAnnotation.vector.is_not(None))
                .order_by(FeedbackAnnotation.message_id))).all()
        topics: list[dict[str, object]] = []
        if rows:
            vectors = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows])
            fit = [max((t["confidence"] for t in (r.result or {}).get("themes", [])), default=0.0) for r in rows]
            namer = topic_namer(context, model) if engine_name == "llm" else None
            found = await emerging_topics([r.message_id for r in rows], [r.text for r in rows], vectors, fit,
                                          namer=namer)
            topics = [t.as_dict() for t in found]
        async with self._sessions() as session, session.begin():
            await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id,
                                                                 FeedbackAnalysis.status == "running")
                                  .values(topics=topics, status="done", finished_at=utcnow()))

    async def _finish(self, analysis_id: int, status: str, error: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id)
                                  .values(status=status, error=error[:2000], finished_at=utcnow()))
